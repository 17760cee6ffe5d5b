//! compound-watch: watch scam compounds grow from space.
//!
//! A batch pipeline over public Sentinel-2 L2A imagery. Data flows one way, and the folders are
//! the stages (docs/ARCHITECTURE.md has the one-page map):
//!
//! - `aoi`, `grid`, `month`, `error`: the vocabulary every stage shares.
//! - `io`: scenes from a STAC API or a static catalog, HTTP, windows read and warped by GDAL, the
//!   window cache, atomic writes. Bytes in and out, no pixel logic.
//! - `detect`: pure pixel logic, from one block's numbers to per-pixel construction and
//!   demolition (reflectance, masks, composites, built-up score, spectral change, the block
//!   kernel) and the polygons around them. Never touches a file.
//! - `scan`: the orchestration: search -> fetch -> offsets -> detect -> assemble -> publish, with
//!   its configuration, progress, state and the all-or-nothing publication of the outputs.
//! - `output`: GeoJSON and COG writing, the diff, QGIS styles and project, the summary pages.
//! - `watch`: many sites from a watch list: runs, shards and their gather, the run's record and
//!   the alerts. Above `scan`, which it runs once per site.
//! - `evidence`: a scan's outputs bundled with their inputs and checksums, and the check that runs
//!   the scan again from the bundle alone. Above `scan`, which it runs through `scan::run` only.
//! - `sample` and `eval`: leaves that generate test scenes and measure detections against truth
//!   and labels; nothing in the pipeline imports them.
//!
//! The library never prints and never exits; the `compound-watch` binary does both. What the
//! binary, the tests and the benchmarks use is re-exported below; everything else is private.
#![warn(unreachable_pub)]
// No function over 80 lines (clippy.toml): the stages stay readable one screen at a time.
#![warn(clippy::too_many_lines)]

pub mod aoi;
pub mod detect;
mod error;
pub mod eval;
pub mod evidence;
mod grid;
mod io;
pub mod month;
mod output;
pub mod sample;
pub mod scan;
mod scene;
pub mod watch;

pub use error::{Error, Result};
pub use grid::{srs, Grid, Projector};
pub use io::cache::Cache;
pub use io::http::{Http, RetryPolicy};

/// Where scenes come from: a STAC API search or a static catalog, and what they find.
pub mod source {
    pub use crate::io::source::{
        open, scene_from_item, Band, Found, Linked, Provider, Scene, SceneSearch, SearchQuery, Skipped, StacApi,
        StaticCatalog,
    };
}

/// Reading a band of a scene onto the analysis grid.
pub mod window {
    pub use crate::io::window::{warp, warp_aligned, warp_with_gdal, GdalReader, Target, Window, WindowReader};
}

/// Reading and writing the report files.
pub mod report {
    pub use crate::detect::reflectance::OffsetDecision;
    pub use crate::output::provenance::{AoiRecord, Parameters, Period, Provenance, SceneRecord};
    pub use crate::output::report::{multipolygon_of, parse_geojson, read_geojson};
}

/// The report and diff in other vector formats (GeoPackage, FlatGeobuf, KML, CSV with WKT).
pub mod vector {
    pub use crate::output::vector::{export, write, Format, Written, LIST_SEPARATOR};
}

/// Comparing two reports.
pub mod diff {
    pub use crate::output::diff::{diff_files, parse, Counts, Diff};
}

/// The monthly summary pages, for one site and across sites.
pub mod summary {
    pub use crate::output::summary::{
        across_figures, read_site, write_across, write_site, AcrossFigures, LocationMap, MonthFigures, Period,
        SiteSummary, GAP_BELOW,
    };
}

pub use output::plural;

/// A scan's record in its output folder.
pub mod state {
    pub use crate::scan::state::{load, lock, parse, State};
}

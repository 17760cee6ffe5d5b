//! The report's provenance: the `compound_watch` member of every report, written by the scan and
//! read back by the state, the diff and the summary. One typed record, so that a figure on any
//! page can be traced to the scenes and parameters behind it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::detect::reflectance::OffsetDecision;
use crate::detect::spectral::Normalization;
use crate::detect::DetectParams;
use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::source::Skipped;
use crate::month::Month;
use crate::output::report::f32_as_written;

/// The name of the report member that holds the provenance.
pub(crate) const MEMBER: &str = "compound_watch";

/// The report's provenance member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Always "compound-watch".
    pub software: String,
    /// Crate version.
    pub version: String,
    /// The site.
    pub aoi: AoiRecord,
    /// First and last month.
    pub period: Period,
    /// The analysis grid.
    pub grid: Grid,
    /// Where scenes came from.
    pub source: String,
    /// Every parameter that shaped a figure.
    pub parameters: Parameters,
    /// Scenes used, in time order.
    pub scenes: Vec<SceneRecord>,
    /// Scenes found but left out, with reasons.
    pub skipped: Vec<Skipped>,
    /// Items replaced by a newer processing of the same tile and date.
    pub superseded: Vec<String>,
    /// Items read without error that hold no data over the AOI.
    #[serde(default)]
    pub no_data: Vec<String>,
    /// Items whose classification band showed nothing clear over the AOI: not read further, not
    /// used (their other bands were never fetched).
    #[serde(default)]
    pub cloudy: Vec<String>,
}

/// The site, as the report records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AoiRecord {
    /// Display name.
    pub name: String,
    /// File-name-safe name; polygon ids start with it.
    pub slug: String,
    /// The AOI file (or `--bbox` text).
    pub origin: String,
    /// West, south, east, north, degrees.
    pub bbox: [f64; 4],
    /// Geodesic area, m², rounded to the m².
    pub area_m2: f64,
    /// The AOI file's properties.
    pub properties: Map<String, Value>,
}

/// The months a report covers, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    /// First month.
    pub from: Month,
    /// Last month.
    pub to: Month,
}

/// Every parameter that shaped a figure, with the methods in words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameters {
    /// The change decision.
    pub detect: DetectParams,
    /// Largest scene cloud cover accepted, percent.
    pub max_cloud_cover: f64,
    /// Pixels of margin around clouds and shadows.
    pub cloud_buffer_px: usize,
    /// Rule 4 of the mask: persistent cloud flags are bright surfaces.
    pub persistent_cloud_is_surface: bool,
    /// Clear observations a pixel needs in a month.
    pub min_clear_obs: u16,
    /// Minimum mapping unit, m².
    pub min_area_m2: f64,
    /// How monthly composites are made.
    pub composite: String,
    /// How the built-up score is computed.
    pub score: String,
    /// How the spectral change is measured.
    pub change: String,
    /// The spectral change's normalization, as measured over this AOI.
    pub normalization: Normalization,
}

/// The methods, in the words the report gives them.
pub(crate) const COMPOSITE_METHOD: &str = "per-pixel monthly median of SCL-clear observations";
pub(crate) const SCORE_METHOD: &str =
    "product of logistic memberships: NDVI<0.45, MNDWI<0.25, blue/red>0.7, visible>0.10";
pub(crate) const CHANGE_METHOD: &str = "spectral step of blue, green, red, NIR, standardized by the AOI's month-to-month spread, 3x3 median then 5x5 mean, hysteresis change_low/change_high";

/// A scene as used, with the decision that turned its numbers into reflectance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneRecord {
    /// STAC item id.
    pub id: String,
    /// Collection.
    pub collection: String,
    /// Acquisition time, RFC 3339.
    pub datetime: String,
    /// MGRS tile.
    pub tile: Option<String>,
    /// Scene cloud cover, percent.
    pub cloud_cover: Option<f64>,
    /// Processing baseline.
    pub processing_baseline: Option<String>,
    /// The offset decision.
    pub offset: OffsetDecision,
}

impl Provenance {
    /// As JSON, with parameters kept in `f32` written as they were given (`0.4`, not its widening
    /// to `f64`).
    pub(crate) fn to_value(&self) -> Result<Value> {
        let mut value = serde_json::to_value(self).map_err(|e| Error::Config {
            field: "provenance".into(),
            reason: format!("cannot be serialized: {e}"),
        })?;
        if let Some(p) = value.get_mut("parameters") {
            *p = f32_as_written(p.take());
        }
        Ok(value)
    }

    /// The raw provenance member of a report, if it has one.
    pub(crate) fn member(report: &geojson::FeatureCollection) -> Option<&Value> {
        report.foreign_members.as_ref().and_then(|m| m.get(MEMBER))
    }

    /// The provenance of a report, or why it has none usable (the reason names the field).
    pub(crate) fn of(report: &geojson::FeatureCollection) -> std::result::Result<Provenance, String> {
        let member = Provenance::member(report)
            .ok_or("it has no `compound_watch` member: it was not written by `compound-watch scan`")?;
        Provenance::deserialize(member)
            .map_err(|e| format!("its `compound_watch` member is not a scan's provenance: {e}"))
    }
}

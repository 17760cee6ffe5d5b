//! compound-watch: watch scam compounds grow from space.
//!
//! A batch pipeline over public Sentinel-2 L2A imagery. Data flows one way through the stages,
//! one module each:
//!
//! `aoi` -> `grid` -> `source` (search) -> `window` (read + warp) / `cache` -> `mask` ->
//! `composite` -> `detect` (built-up score and its step) with `change` (spectral change,
//! region by region) -> `vectorize` -> `report`, run together by `scan`. After the report, `diff`
//! compares it with the previous one, `style` and `project` write what QGIS needs to open the
//! outputs styled, and `summary` turns the report and the scan's monthly figures into pages a
//! non-expert can read.
//!
//! The library never prints and never exits; the `compound-watch` binary does both.

pub mod aoi;
mod atomic;
pub mod cache;
pub mod change;
pub mod composite;
pub mod detect;
pub mod diff;
pub mod error;
pub mod eval;
mod gdal_ext;
pub mod grid;
pub mod http;
pub mod mask;
pub mod month;
pub mod project;
pub mod publish;
pub mod reflectance;
pub mod report;
pub mod sample;
pub mod scan;
pub mod source;
pub mod state;
pub mod style;
pub mod summary;
pub mod vectorize;
pub mod window;

pub use error::{Error, Result};

//! Detection: from one block's digital numbers to per-pixel construction and demolition, pure.
//!
//! `reflectance` (DN to reflectance, the 2022 offset) -> `mask` (which observations are clear)
//! -> `composite` (monthly medians) -> `builtup` (the built-up score and its step) with
//! `spectral` (the spectral change and its regions) -> `kernel` (one block, end to end) ->
//! `vectorize` (pixels to polygons). No module here reads a file or the network.

pub(crate) mod builtup;
pub(crate) mod composite;
pub(crate) mod kernel;
pub(crate) mod mask;
pub(crate) mod reflectance;
pub(crate) mod spectral;
pub(crate) mod vectorize;

pub use builtup::{scores, step, DetectParams, RoofModel};
pub use composite::monthly_median;
pub use kernel::MonthCounts;
pub use spectral::{changed_regions, spectral_step, Normalization};

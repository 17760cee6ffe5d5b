//! Input and output of bytes: where scenes come from (STAC searches, static catalogs), HTTP with
//! retries, reading and warping windows through GDAL, the window cache, and atomic file writes.
//!
//! Nothing here knows what a pixel means; the detection stage never reaches past this module
//! to the network or the disk.

pub(crate) mod aligned;
pub(crate) mod atomic;
pub(crate) mod cache;
pub(crate) mod gdal_ext;
pub(crate) mod http;
pub(crate) mod source;
pub(crate) mod window;

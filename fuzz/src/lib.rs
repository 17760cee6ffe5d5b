//! The fuzz targets' bodies, in `targets.rs` so that the main package's tests can run them too.

pub mod targets;

//! Integration tests, compiled into one binary: AOI errors, the end-to-end demo scan, the CLI.

mod aoi;
mod cli;
mod common;
mod diff;
mod recorded;
mod remote;
mod scan;
mod scenarios;
mod stac_api;
mod summary;

//! Integration tests, compiled into one binary: AOI errors, the end-to-end demo scan, the CLI.

mod aligned;
mod aoi;
mod architecture;
mod cli;
mod common;
mod crash;
mod diff;
mod evidence;
mod formats;
mod full_disk;
mod fuzz_smoke;
mod recorded;
mod refuse;
mod remote;
mod scan;
mod scenarios;
mod stac_api;
mod summary;
mod tiles;
mod watch;

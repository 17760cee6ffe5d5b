//! compound-watch's independent scenario suite (issue 12): synthetic Sentinel-2 L2A scenarios
//! with their truth, and an object-level scorer of scan reports against it.
//!
//! Written apart from the detector and sharing nothing with it (no band math, constants or code):
//! `materials` is its own spectral library, `world` its own landscape and events, `sky` its own
//! clouds, shadows, haze and scene classification, `scene` writes them in the on-disk layout the
//! scan reads, `score` compares a report with the truth and `table` renders the results.
//! The seeds it is measured on are split in `splits.json`; the held-out seeds must never be used
//! to choose any parameter of the detector.

pub mod materials;
pub mod scene;
pub mod score;
pub mod sky;
pub mod table;
pub mod world;

//! Stage 2, fetch: every band of every scene that the cache lacks is read onto the grid and
//! stored, a bounded number of scenes at once. A scene that cannot be read is skipped with the
//! reason; a cache that cannot be written stops the scan (its pixels were read, and skipping the
//! scene would publish a report without them).

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{Band, Scene, Skipped};
use crate::io::window::WindowReader;
use crate::scan::config::ScanConfig;
use crate::scan::progress::{Event, Progress};

/// What the fetch did.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    /// Scenes whose every band is in the cache.
    pub(crate) scenes: Vec<Scene>,
    /// Scenes that could not be read, with the reason.
    pub(crate) skipped: Vec<Skipped>,
    /// Scene bands read from the source in this run.
    pub(crate) windows_fetched: usize,
    /// Scene bands found in the cache.
    pub(crate) windows_cached: usize,
}

/// Fills the cache with `scenes`, `config.fetch_jobs` at a time.
pub(crate) fn fetch(
    config: &ScanConfig,
    grid: &Grid,
    cache: &Cache,
    reader: &dyn WindowReader,
    scenes: &[Scene],
    progress: &dyn Progress,
) -> Result<Fetched> {
    progress.event(Event::Stage {
        name: "fetch",
        total: scenes.len() as u64,
    });
    let counts = Counts::default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.fetch_jobs.max(1))
        .build()
        .map_err(|e| Error::Config {
            field: "--fetch-jobs".into(),
            reason: e.to_string(),
        })?;
    let outcomes: Vec<std::result::Result<(), Skipped>> = pool.install(|| {
        scenes
            .par_iter()
            .map(|scene| {
                let result = fetch_scene(scene, grid, cache, reader, config.offline, &counts);
                progress.event(Event::Advance(1));
                result
            })
            .collect::<Result<_>>()
    })?;
    let mut fetched = Fetched {
        scenes: Vec::new(),
        skipped: Vec::new(),
        windows_fetched: counts.fetched.into_inner(),
        windows_cached: counts.cached.into_inner(),
    };
    for (scene, outcome) in scenes.iter().zip(outcomes) {
        match outcome {
            Ok(()) => fetched.scenes.push(scene.clone()),
            Err(s) => fetched.skipped.push(s),
        }
    }
    Ok(fetched)
}

/// Windows read and found, counted across threads.
#[derive(Default)]
struct Counts {
    fetched: AtomicUsize,
    cached: AtomicUsize,
}

/// Reads every band of a scene that the cache lacks into the cache. The outer error stops the scan
/// (the cache cannot be written); the inner one skips the scene (it cannot be read).
fn fetch_scene(
    scene: &Scene,
    grid: &Grid,
    cache: &Cache,
    reader: &dyn WindowReader,
    offline: bool,
    counts: &Counts,
) -> Result<std::result::Result<(), Skipped>> {
    let skip = |reason: String| {
        Ok(Err(Skipped {
            id: scene.id.clone(),
            reason,
        }))
    };
    for band in Band::ALL {
        let entry = cache.entry(scene, band, grid);
        if cache.holds(&entry, scene, band, grid) {
            counts.cached.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if offline {
            return skip(format!(
                "{} is not in the cache and --offline forbids reading it",
                band.asset_key()
            ));
        }
        let data = match reader.read(&scene.hrefs[&band], band, grid) {
            Ok(data) => data,
            Err(e) => return skip(format!("{}: {e}", band.asset_key())),
        };
        if let Some(epsg) = scene.epsg.filter(|_| data.epsg.is_some_and(|e| Some(e) != scene.epsg)) {
            return skip(format!(
                "{}: the file is in EPSG:{}, but the item says proj:epsg {epsg}; the item or the file is \
                 wrong, so its pixels cannot be placed with confidence",
                band.asset_key(),
                data.epsg.unwrap_or_default()
            ));
        }
        cache.store(&entry, scene, band, grid, &data.values)?;
        counts.fetched.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Ok(()))
}

//! Stage 2, fetch: every band of every scene that the cache lacks is read onto the grid and
//! stored, a bounded number of scenes at once. The small classification band (SCL, 20 m) is read
//! first: a scene with nothing clear over the grid is not read further, and listed as cloudy, not
//! as skipped. A scene that cannot be read is skipped with the
//! reason; a cache that cannot be written stops the scan (its pixels were read, and skipping the
//! scene would publish a report without them).

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::detect::mask::{scl_is_clear, scl_is_cloud_or_shadow, MOSTLY_CLEAR};
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
    /// Scenes whose classes showed nothing clear over the grid: read no further, not used.
    pub(crate) cloudy: Vec<Scene>,
    /// Scenes whose classes hold no data over the grid: read no further, not used.
    pub(crate) no_data: Vec<Scene>,
    /// Scene bands not read because their scene was cloudy or without data.
    pub(crate) windows_scouted: usize,
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
    let outcomes: Vec<std::result::Result<Outcome, Skipped>> = pool.install(|| {
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
        cloudy: Vec::new(),
        no_data: Vec::new(),
        windows_scouted: counts.scouted.into_inner(),
    };
    for (scene, outcome) in scenes.iter().zip(outcomes) {
        match outcome {
            Ok(Outcome::Cached) => fetched.scenes.push(scene.clone()),
            Ok(Outcome::Cloudy) => fetched.cloudy.push(scene.clone()),
            Ok(Outcome::NoData) => fetched.no_data.push(scene.clone()),
            Err(s) => fetched.skipped.push(s),
        }
    }
    Ok(fetched)
}

/// Windows read, found and left unread, counted across threads.
#[derive(Default)]
struct Counts {
    fetched: AtomicUsize,
    cached: AtomicUsize,
    scouted: AtomicUsize,
}

/// What became of one scene.
enum Outcome {
    /// Every band is in the cache.
    Cached,
    /// Its classes show no clear pixel over the grid: the reflectance bands were not read.
    Cloudy,
    /// Its classes hold no data over the grid (outside the swath): not read further either.
    NoData,
}

/// Reads every band of a scene that the cache lacks into the cache, classes first: a scene whose
/// classes show nothing clear over the grid is not read further (see [`scout`]). The outer
/// error stops the scan (the cache cannot be written); the inner one skips the scene (it cannot
/// be read).
fn fetch_scene(
    scene: &Scene,
    grid: &Grid,
    cache: &Cache,
    reader: &dyn WindowReader,
    offline: bool,
    counts: &Counts,
) -> Result<std::result::Result<Outcome, Skipped>> {
    let skip = |reason: String| {
        Ok(Err(Skipped {
            id: scene.id.clone(),
            reason,
        }))
    };
    let scl_first = std::iter::once(Band::Scl).chain(Band::REFLECTANCE);
    for band in scl_first {
        let entry = cache.entry(scene, band, grid);
        let classes = if cache.holds(&entry, scene, band, grid) {
            counts.cached.fetch_add(1, Ordering::Relaxed);
            (band == Band::Scl)
                .then(|| Cache::read_rows(&entry, grid, 0..grid.height))
                .transpose()?
        } else {
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
            (band == Band::Scl).then_some(data.values)
        };
        if let Some(outcome) = classes.and_then(|c| scout(&c)) {
            counts.scouted.fetch_add(Band::REFLECTANCE.len(), Ordering::Relaxed);
            return Ok(Ok(outcome));
        }
    }
    Ok(Ok(Outcome::Cached))
}

/// Whether a scene's classes over the grid leave nothing to composite: no data at all, or no pixel
/// of a clear class and too cloudy for rule 4 of [`crate::detect::mask`] to turn any cloud flag
/// into a surface (so every pixel stays masked whatever its reflectance). None: read it.
fn scout(classes: &[u16]) -> Option<Outcome> {
    let (mut seen, mut cloudy) = (0usize, 0usize);
    for &c in classes {
        if scl_is_clear(c) {
            return None;
        }
        seen += (c != 0) as usize;
        cloudy += scl_is_cloud_or_shadow(c) as usize;
    }
    if seen == 0 {
        Some(Outcome::NoData)
    } else {
        (cloudy as f64 > MOSTLY_CLEAR * seen as f64).then_some(Outcome::Cloudy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_is_left_unread_only_when_nothing_of_it_can_be_clear() {
        assert!(
            matches!(scout(&[8, 9, 3, 10, 0]), Some(Outcome::Cloudy)),
            "cloud, shadow, cirrus"
        );
        assert!(matches!(scout(&[0, 0, 0]), Some(Outcome::NoData)));
        assert!(scout(&[9, 9, 9, 4]).is_none(), "one vegetated pixel");
        // Mostly clear by its classes (saturated, dark, snow) though no pixel is clear yet: rule 4
        // may still turn its cloud flags into surfaces, so it is read.
        assert!(scout(&[1, 2, 11, 2, 9]).is_none());
    }
}

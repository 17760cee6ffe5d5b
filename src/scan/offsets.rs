//! Stage 3, offsets: one decision per scene, from its own dark pixels, on how its digital numbers
//! become reflectance (the 2022 offset), and whether it is mostly clear (rule 4 of
//! [`crate::detect::mask`]). A scene with no data over the AOI (outside its swath, or a file
//! placed elsewhere) is listed apart: neither evidence nor an error.

use rayon::prelude::*;

use crate::detect::mask::{scl_is_clear, scl_is_cloud_or_shadow, MOSTLY_CLEAR};
use crate::detect::reflectance::{decide_offset, DarkHistogram, OffsetDecision};
use crate::error::Result;
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{Band, Scene};
use crate::month::Month;
use crate::scan::progress::{Event, Progress};

/// Rows read at once while counting dark pixels.
const ROWS_PER_READ: usize = 256;

/// The scenes that hold data over the grid, with their decisions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Decided {
    /// Scenes with data over the grid, in the order they were found.
    pub(crate) scenes: Vec<Scene>,
    /// Per scene: how its numbers become reflectance.
    pub(crate) decisions: Vec<OffsetDecision>,
    /// Per scene: at most [`MOSTLY_CLEAR`] of it is cloud, cirrus or shadow.
    pub(crate) mostly_clear: Vec<bool>,
    /// Scenes read without error that hold no data over the grid.
    pub(crate) no_data: Vec<String>,
    /// Scenes whose classes showed nothing clear over the grid (set by the fetch, which read no
    /// more of them).
    pub(crate) cloudy: Vec<String>,
}

impl Decided {
    /// Per month of `months`: the indices of its scenes.
    pub(crate) fn by_month(&self, months: &[Month]) -> Vec<Vec<usize>> {
        months
            .iter()
            .map(|m| {
                (0..self.scenes.len())
                    .filter(|&i| self.scenes[i].month() == *m)
                    .collect()
            })
            .collect()
    }
}

/// Decides every scene's offset, in parallel.
pub(crate) fn offsets(grid: &Grid, cache: &Cache, scenes: Vec<Scene>, progress: &dyn Progress) -> Result<Decided> {
    progress.event(Event::Stage {
        name: "offsets",
        total: scenes.len() as u64,
    });
    let looks = scenes
        .par_iter()
        .map(|scene| {
            let d = offset_decision(scene, grid, cache);
            progress.event(Event::Advance(1));
            d
        })
        .collect::<Result<Vec<_>>>()?;
    let mut decided = Decided::default();
    for (scene, look) in scenes.into_iter().zip(looks) {
        match look {
            Some((decision, clear)) => {
                decided.decisions.push(decision);
                decided.mostly_clear.push(clear);
                decided.scenes.push(scene);
            }
            None => decided.no_data.push(scene.id),
        }
    }
    Ok(decided)
}

/// A scene's offset decision, and whether it is mostly clear; None when the scene has no data
/// over the grid.
fn offset_decision(scene: &Scene, grid: &Grid, cache: &Cache) -> Result<Option<(OffsetDecision, bool)>> {
    let mut hist = DarkHistogram::default();
    let scl = cache.entry(scene, Band::Scl, grid);
    let (mut seen, mut cloudy) = (0u64, 0u64);
    for r0 in (0..grid.height).step_by(ROWS_PER_READ) {
        let rows = r0..(r0 + ROWS_PER_READ).min(grid.height);
        let classes = Cache::read_rows(&scl, grid, rows.clone())?;
        seen += classes.iter().filter(|&&c| c != 0).count() as u64;
        cloudy += classes.iter().filter(|&&c| scl_is_cloud_or_shadow(c)).count() as u64;
        let clear: Vec<bool> = classes.into_iter().map(scl_is_clear).collect();
        for band in [Band::Nir, Band::Swir16, Band::Swir22] {
            hist.add(
                &Cache::read_rows(&cache.entry(scene, band, grid), grid, rows.clone())?,
                &clear,
            );
        }
    }
    if seen == 0 {
        return Ok(None);
    }
    let mostly_clear = cloudy as f64 <= MOSTLY_CLEAR * seen as f64;
    Ok(Some((decide_offset(scene, hist.finish()), mostly_clear)))
}

//! Stage 3, offsets: one decision per scene, from its own dark pixels, on how its digital numbers
//! become reflectance (the 2022 offset), and whether it is mostly clear (rule 4 of
//! [`crate::detect::mask`]). A scene with no data over the AOI (outside its swath, or a file
//! placed elsewhere) is listed apart: neither evidence nor an error. A part of a region takes
//! the region's decisions as given ([`RegionStats`]): its own pixels would decide differently.

use std::ops::Range;

use rayon::prelude::*;

use crate::detect::mask::{scl_is_clear, scl_is_cloud_or_shadow, MOSTLY_CLEAR};
use crate::detect::reflectance::{decide_offset, DarkHistogram, OffsetDecision};
use crate::error::Result;
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{Band, Scene};
use crate::month::Month;
use crate::scan::progress::{Event, Progress};
use crate::scan::region::RegionStats;

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

/// Decides every scene's offset, in parallel: the `given` region's decision where it has one for
/// the scene, else from the scene's pixels over `grid`.
pub(crate) fn offsets(
    grid: &Grid,
    cache: &Cache,
    scenes: Vec<Scene>,
    given: Option<&RegionStats>,
    progress: &dyn Progress,
) -> Result<Decided> {
    progress.event(Event::Stage {
        name: "offsets",
        total: scenes.len() as u64,
    });
    let looks = scenes
        .par_iter()
        .map(|scene| {
            let region = given.and_then(|g| g.scenes.get(&scene.id));
            let d = match region {
                Some(s) => Ok(Some((s.offset.clone(), s.mostly_clear))),
                None => offset_decision(scene, grid, cache),
            };
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
    let mut looks = Looks::default();
    looks.add(scene, grid, cache, 0..grid.height, 0..grid.width, true)?;
    Ok(looks.decide(scene))
}

/// What a scene's pixels say about it, summed over windows of one or more grids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Looks {
    /// The dark pixels of its clear NIR and SWIR pixels.
    dark: DarkHistogram,
    /// Pixels with data.
    seen: u64,
    /// Of those, cloud, cirrus or shadow.
    cloudy: u64,
}

impl Looks {
    /// Adds a window of `grid` (`rows` x `cols`) of the scene's cached bands: its classes always,
    /// its NIR and SWIR bands when `bands` (a scene scouted as cloudy over the grid has no other
    /// band cached, and none of its pixels is clear).
    pub(crate) fn add(
        &mut self,
        scene: &Scene,
        grid: &Grid,
        cache: &Cache,
        rows: Range<usize>,
        cols: Range<usize>,
        bands: bool,
    ) -> Result<()> {
        let cut = |all: Vec<u16>| -> Vec<u16> {
            match cols.len() == grid.width {
                true => all,
                false => all
                    .chunks_exact(grid.width)
                    .flat_map(|r| &r[cols.clone()])
                    .copied()
                    .collect(),
            }
        };
        let scl = cache.entry(scene, Band::Scl, grid);
        for r0 in rows.clone().step_by(ROWS_PER_READ) {
            let read = r0..(r0 + ROWS_PER_READ).min(rows.end);
            let classes = cut(Cache::read_rows(&scl, grid, read.clone())?);
            self.seen += classes.iter().filter(|&&c| c != 0).count() as u64;
            self.cloudy += classes.iter().filter(|&&c| scl_is_cloud_or_shadow(c)).count() as u64;
            if !bands {
                continue;
            }
            let clear: Vec<bool> = classes.into_iter().map(scl_is_clear).collect();
            for band in [Band::Nir, Band::Swir16, Band::Swir22] {
                let values = cut(Cache::read_rows(&cache.entry(scene, band, grid), grid, read.clone())?);
                self.dark.add(&values, &clear);
            }
        }
        Ok(())
    }

    /// The scene's offset decision and whether it is mostly clear; None when no pixel had data.
    pub(crate) fn decide(&self, scene: &Scene) -> Option<(OffsetDecision, bool)> {
        if self.seen == 0 {
            return None;
        }
        let mostly_clear = self.cloudy as f64 <= MOSTLY_CLEAR * self.seen as f64;
        Some((decide_offset(scene, self.dark.finish()), mostly_clear))
    }
}

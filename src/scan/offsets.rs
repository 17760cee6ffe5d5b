//! Stage 3, offsets: one decision per scene, from its own dark pixels, on how its digital numbers
//! become reflectance (the 2022 offset, then its haze against the site's clearest scenes), and
//! whether it is mostly clear (rule 4 of [`crate::detect::mask`]). A scene with no data over the AOI (outside its swath, or a file
//! placed elsewhere) is listed apart: neither evidence nor an error. A part of a region takes
//! the region's decisions as given ([`RegionStats`]): its own pixels would decide differently.

use std::ops::Range;

use rayon::prelude::*;

use crate::detect::mask::{scl_is_clear, scl_is_cloud_or_shadow, MOSTLY_CLEAR};
use crate::detect::reflectance::{
    add_haze, decide_offset, site_dark, DarkHistogram, DarkLevel, OffsetDecision, HAZE_BANDS,
};
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

/// Decides every scene's offset and, with `haze`, its haze: the `given` region's decision where it
/// has one for the scene, else from the scene's pixels over `grid` (looked at in parallel), the
/// haze against the other scenes decided here.
pub(crate) fn offsets(
    grid: &Grid,
    cache: &Cache,
    scenes: Vec<Scene>,
    given: Option<&RegionStats>,
    haze: bool,
    progress: &dyn Progress,
) -> Result<Decided> {
    progress.event(Event::Stage {
        name: "offsets",
        total: scenes.len() as u64,
    });
    let looks = scenes
        .par_iter()
        .map(|scene| {
            let l = match given.is_some_and(|g| g.scenes.contains_key(&scene.id)) {
                true => None,
                false => Some(look(scene, grid, cache, haze)?),
            };
            progress.event(Event::Advance(1));
            Ok(l)
        })
        .collect::<Result<Vec<_>>>()?;
    let own: Vec<(&Scene, &Looks)> = scenes
        .iter()
        .zip(&looks)
        .filter_map(|(s, l)| Some((s, l.as_ref()?)))
        .collect();
    let mut own = decide(&own, haze).into_iter();
    let decisions: Vec<Option<(OffsetDecision, bool)>> = scenes
        .iter()
        .zip(&looks)
        .map(|(scene, l)| match l {
            Some(_) => own.next().expect("one decision per scene looked at"),
            None => given
                .and_then(|g| g.scenes.get(&scene.id))
                .map(|s| (s.offset.clone(), s.mostly_clear)),
        })
        .collect();
    let mut decided = Decided::default();
    for (scene, look) in scenes.into_iter().zip(decisions) {
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

/// What a scene's pixels over the grid say about it (its haze too, with `haze`).
fn look(scene: &Scene, grid: &Grid, cache: &Cache, haze: bool) -> Result<Looks> {
    let mut looks = Looks::new(haze);
    looks.add(scene, grid, cache, 0..grid.height, 0..grid.width, true)?;
    Ok(looks)
}

/// Each scene's offset decision and whether it is mostly clear (None for a scene with no data),
/// with `haze` its haze measured against the site's dark level over these scenes.
pub(crate) fn decide(looks: &[(&Scene, &Looks)], haze: bool) -> Vec<Option<(OffsetDecision, bool)>> {
    let decided: Vec<Option<(OffsetDecision, bool)>> = looks.iter().map(|(s, l)| l.decide(s)).collect();
    if !haze {
        return decided;
    }
    let levels: Vec<Option<[Option<u16>; HAZE_BANDS]>> = looks
        .iter()
        .zip(&decided)
        .map(|((_, l), d)| Some(l.dark_levels(d.as_ref()?.0.subtract_dn)))
        .collect();
    let site = site_dark(&levels.iter().flatten().copied().collect::<Vec<_>>());
    decided
        .into_iter()
        .zip(levels)
        .map(|(d, levels)| {
            let (mut offset, clear) = d?;
            add_haze(&mut offset, levels?, site);
            Some((offset, clear))
        })
        .collect()
}

/// What a scene's pixels say about it, summed over windows of one or more grids.
#[derive(Debug, Clone, Default)]
pub(crate) struct Looks {
    /// The dark pixels of its clear NIR and SWIR pixels.
    dark: DarkHistogram,
    /// The dark level of each visible band's clear pixels, when haze is measured.
    levels: Option<[DarkLevel; HAZE_BANDS]>,
    /// Pixels with data.
    seen: u64,
    /// Of those, cloud, cirrus or shadow.
    cloudy: u64,
}

impl Looks {
    /// Nothing looked at yet; with `haze`, the visible bands' dark levels are gathered too.
    pub(crate) fn new(haze: bool) -> Looks {
        Looks {
            levels: haze.then(Default::default),
            ..Looks::default()
        }
    }
    /// Adds a window of `grid` (`rows` x `cols`) of the scene's cached bands: its classes always,
    /// its NIR and SWIR bands when `bands`, and its visible bands too when haze is measured (a scene scouted as cloudy over the grid has no other
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
            for (b, band) in Band::REFLECTANCE.into_iter().enumerate() {
                let level = match (&mut self.levels, b < HAZE_BANDS) {
                    (Some(levels), true) => Some(&mut levels[b]),
                    (None, true) => continue,
                    (_, false) => None,
                };
                let values = cut(Cache::read_rows(&cache.entry(scene, band, grid), grid, read.clone())?);
                match level {
                    Some(level) => level.add(&values, &clear),
                    None => self.dark.add(&values, &clear),
                }
            }
        }
        Ok(())
    }

    /// The scene's offset decision (without haze) and whether it is mostly clear; None when no
    /// pixel had data.
    fn decide(&self, scene: &Scene) -> Option<(OffsetDecision, bool)> {
        if self.seen == 0 {
            return None;
        }
        let mostly_clear = self.cloudy as f64 <= MOSTLY_CLEAR * self.seen as f64;
        Some((decide_offset(scene, self.dark.finish()), mostly_clear))
    }

    /// Each visible band's dark level less the scene's offset `subtract_dn` (None where not
    /// measured).
    fn dark_levels(&self, subtract_dn: u16) -> [Option<u16>; HAZE_BANDS] {
        std::array::from_fn(|b| self.levels.as_ref()?[b].level(subtract_dn))
    }
}

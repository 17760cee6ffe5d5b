//! Stage 4, detect: the grid in blocks of rows, in parallel. For each block the scenes' rows (and
//! a halo for the cloud buffer) are read from the cache and handed to the pure kernel of
//! [`crate::detect::kernel`]; memory grows with the block, not the AOI.

use rayon::prelude::*;

use crate::detect::kernel::{self, BlockResult, Composites, Observation, Rows, SceneRows};
use crate::detect::mask::{persistent_surfaces, scl_is_cloud};
use crate::detect::reflectance::OffsetDecision;
use crate::detect::spectral::{Normalization, BANDS};
use crate::error::Result;
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{Band, Scene};
use crate::scan::config::ScanConfig;
use crate::scan::progress::{Event, Progress};

/// Rows of the AOI sampled for the spectral normalization: the first `NORMALIZATION_ROWS` of
/// every `NORMALIZATION_EVERY`.
const NORMALIZATION_ROWS: usize = 8;
const NORMALIZATION_EVERY: usize = 64;

/// The scenes a scan computes with, and where their pixels are: what every block reads.
#[derive(Clone, Copy)]
pub(crate) struct SceneSet<'a> {
    pub(crate) config: &'a ScanConfig,
    pub(crate) grid: &'a Grid,
    pub(crate) cache: &'a Cache,
    pub(crate) scenes: &'a [Scene],
    pub(crate) decisions: &'a [OffsetDecision],
    pub(crate) mostly_clear: &'a [bool],
    /// Per month of the period: indices of its scenes.
    pub(crate) by_month: &'a [Vec<usize>],
}

/// Runs the kernel over every block of the grid.
/// Returns the blocks' results in row order and the normalization they used.
pub(crate) fn detect(
    set: &SceneSet<'_>,
    aoi_mask: &[bool],
    progress: &dyn Progress,
) -> Result<(Vec<BlockResult>, Normalization)> {
    let (grid, rows) = (set.grid, set.config.block_rows);
    let blocks: Vec<(usize, usize)> = (0..grid.height)
        .step_by(rows)
        .map(|r0| (r0, (r0 + rows).min(grid.height)))
        .collect();
    progress.event(Event::Stage {
        name: "detect",
        total: blocks.len() as u64,
    });
    let norm = normalization(set, aoi_mask)?;
    let results = blocks
        .par_iter()
        .map(|&(r0, r1)| {
            let c = composites(set, r0, r1)?;
            let inside = &aoi_mask[r0 * grid.width..r1 * grid.width];
            let r = kernel::detect_block(&c, inside, &set.config.detect, &norm);
            progress.event(Event::Advance(1));
            Ok(r)
        })
        .collect::<Result<_>>()?;
    Ok((results, norm))
}

/// The monthly composites of rows `r0..r1`.
pub(crate) fn composites(set: &SceneSet<'_>, r0: usize, r1: usize) -> Result<Composites> {
    let config = set.config;
    let halo = config.cloud_buffer;
    let (h0, h1) = (r0.saturating_sub(halo), (r1 + halo).min(set.grid.height));
    let mut surfaces = if config.persistent_cloud_is_surface {
        surfaces(set, h0, h1)?
    } else {
        vec![None; set.scenes.len()]
    };
    let at = Rows {
        width: set.grid.width,
        halo_top: r0 - h0,
        rows: r1 - r0,
    };
    let months: Vec<Vec<Observation>> = set
        .by_month
        .iter()
        .map(|ids| {
            ids.iter()
                .map(|&s| {
                    let read = scene_rows(set, s, h0..h1, surfaces[s].take())?;
                    Ok(kernel::observe(s, read, at, halo))
                })
                .collect::<Result<_>>()
        })
        .collect::<Result<_>>()?;
    Ok(kernel::composites(
        &months,
        at.rows * at.width,
        set.scenes.len(),
        config.min_clear_obs,
    ))
}

/// One scene's classes and digital numbers over `rows`, from the cache.
fn scene_rows(
    set: &SceneSet<'_>,
    s: usize,
    rows: std::ops::Range<usize>,
    surface: Option<Vec<bool>>,
) -> Result<SceneRows> {
    let read = |band: Band| Cache::read_rows(&set.cache.entry(&set.scenes[s], band, set.grid), set.grid, rows.clone());
    Ok(SceneRows {
        scl: read(Band::Scl)?,
        dns: Band::REFLECTANCE.iter().map(|&b| read(b)).collect::<Result<_>>()?,
        surface,
        subtract_dn: set.decisions[s].subtract_dn,
    })
}

/// Rule 4 of [`crate::detect::mask`] over rows `h0..h1`: per scene, the pixels whose cloud flag
/// is a persistent bright surface (None for scenes with none, and for scenes not mostly clear).
fn surfaces(set: &SceneSet<'_>, h0: usize, h1: usize) -> Result<Vec<Option<Vec<bool>>>> {
    let mut order: Vec<usize> = set
        .by_month
        .iter()
        .flatten()
        .copied()
        .filter(|&s| set.mostly_clear[s])
        .collect();
    let scenes = set.scenes;
    order.sort_by(|&a, &b| (scenes[a].datetime, &scenes[a].id).cmp(&(scenes[b].datetime, &scenes[b].id)));
    let cloud: Vec<Vec<bool>> = order
        .iter()
        .map(|&s| {
            let scl = Cache::read_rows(&set.cache.entry(&scenes[s], Band::Scl, set.grid), set.grid, h0..h1)?;
            Ok(scl.into_iter().map(scl_is_cloud).collect())
        })
        .collect::<Result<_>>()?;
    let mut by_scene = vec![None; scenes.len()];
    for (s, surface) in order.into_iter().zip(persistent_surfaces(&cloud)) {
        by_scene[s] = surface;
    }
    Ok(by_scene)
}

/// The spectral-change normalization, measured on a sample of the AOI's rows.
fn normalization(set: &SceneSet<'_>, aoi_mask: &[bool]) -> Result<Normalization> {
    let grid = set.grid;
    let strips: Vec<(usize, usize)> = (0..grid.height)
        .step_by(NORMALIZATION_EVERY)
        .map(|r0| (r0, (r0 + NORMALIZATION_ROWS).min(grid.height)))
        .collect();
    let parts: Vec<Vec<Vec<[f32; 4]>>> = strips
        .par_iter()
        .map(|&(r0, r1)| {
            let block = composites(set, r0, r1)?;
            let inside: Vec<usize> = (0..(r1 - r0) * grid.width)
                .filter(|&p| aoi_mask[r0 * grid.width + p])
                .collect();
            Ok(block
                .months
                .iter()
                .map(|comp| match comp {
                    Some(c) => inside.iter().map(|&p| BANDS.map(|b| c.bands[(b, p)])).collect(),
                    None => vec![[f32::NAN; 4]; inside.len()],
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    let months = (0..set.by_month.len())
        .map(|m| parts.iter().flat_map(|part| part[m].iter().copied()).collect())
        .collect::<Vec<Vec<[f32; 4]>>>();
    Ok(Normalization::measure(&months))
}

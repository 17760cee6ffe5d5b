//! Stage 4, detect: the grid in blocks of rows, in parallel. For each block the scenes' rows (and
//! a halo for the cloud buffer) are read from the cache and handed to the pure kernel of
//! [`crate::detect::kernel`]; memory grows with the block, not the AOI.

use std::ops::Range;
use std::path::PathBuf;

use rayon::prelude::*;

use crate::detect::kernel::{self, BlockResult, Composites, Observation, Rows, SceneRows};
use crate::detect::mask::{persistent_surfaces, scl_is_cloud};
use crate::detect::reflectance::OffsetDecision;
use crate::detect::spectral::{Normalization, BANDS};
use crate::error::Result;
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{Band, Scene};
use crate::output::months::MonthStack;
use crate::scan::config::ScanConfig;
use crate::scan::progress::{Event, Progress};

/// Rows of the AOI sampled for the spectral normalization: the first `NORMALIZATION_ROWS` of
/// every `NORMALIZATION_EVERY`.
const NORMALIZATION_ROWS: usize = 8;
const NORMALIZATION_EVERY: usize = 64;
/// Pixel-months of the normalization sample at most (16 bytes each: 128 MB), whatever the AOI and
/// the period; only AOIs wider than about 30 km over years of months reach it.
const NORMALIZATION_PIXEL_MONTHS: usize = 8 << 20;

/// The scenes a scan computes with, and where their pixels are: what every block reads.
#[derive(Clone, Copy)]
pub(crate) struct SceneSet<'a> {
    pub(crate) config: &'a ScanConfig,
    pub(crate) grid: &'a Grid,
    /// Per scene: its cache entries, in the order of [`Band::ALL`].
    pub(crate) entries: &'a [[PathBuf; 7]],
    pub(crate) scenes: &'a [Scene],
    pub(crate) decisions: &'a [OffsetDecision],
    pub(crate) mostly_clear: &'a [bool],
    /// Per month of the period: indices of its scenes.
    pub(crate) by_month: &'a [Vec<usize>],
}

/// Runs the kernel over every block of the grid, with the `given` normalization (a region's, see
/// [`crate::scan::RegionStats`]) or, without one, the grid's own, writing each block's monthly
/// composites into `months` as it goes (when given).
/// Returns the blocks' results in row order and the normalization they used.
pub(crate) fn detect(
    set: &SceneSet<'_>,
    aoi_mask: &[bool],
    given: Option<&Normalization>,
    months: Option<&MonthStack>,
    progress: &dyn Progress,
) -> Result<(Vec<BlockResult>, Normalization)> {
    let grid = set.grid;
    let rows = block_rows(
        set.config.block_rows,
        grid,
        set.by_month.len(),
        rayon::current_num_threads(),
    );
    let blocks: Vec<(usize, usize)> = (0..grid.height)
        .step_by(rows)
        .map(|r0| (r0, (r0 + rows).min(grid.height)))
        .collect();
    progress.event(Event::Stage {
        name: "detect",
        total: blocks.len() as u64,
    });
    let norm = match given {
        Some(norm) => norm.clone(),
        None => normalization(set, aoi_mask)?,
    };
    let results = blocks
        .par_iter()
        .map(|&(r0, r1)| {
            let c = composites(set, r0, r1)?;
            if let Some(stack) = months {
                for (m, comp) in c.months.iter().enumerate() {
                    stack.write_rows(m, r0, &kernel::month_rows(comp.as_ref(), (r1 - r0) * grid.width))?;
                }
            }
            let inside = &aoi_mask[r0 * grid.width..r1 * grid.width];
            let r = kernel::detect_block(&c, inside, &set.config.detect, &norm);
            progress.event(Event::Advance(1));
            Ok(r)
        })
        .collect::<Result<_>>()?;
    Ok((results, norm))
}

/// Pixel-months a block holds at most: its composites and series take about 50 bytes each, so a
/// block stays near 100 MB however long the period or wide the AOI.
const BLOCK_PIXEL_MONTHS: usize = 2 << 20;
/// Blocks per thread at least, where the grid has the rows: small blocks keep every thread busy
/// to the end (a thread finishing its last block idles while another computes a large one).
const BLOCKS_PER_THREAD: usize = 4;

/// Rows per block: at most `max_rows`, at most [`BLOCK_PIXEL_MONTHS`], and few enough for
/// [`BLOCKS_PER_THREAD`] blocks per thread; never fewer than 8 (the halo read above and below a
/// block would then cost more than the block).
fn block_rows(max_rows: usize, grid: &Grid, months: usize, threads: usize) -> usize {
    let by_memory = BLOCK_PIXEL_MONTHS / (grid.width * months.max(1)).max(1);
    let by_threads = grid.height.div_ceil(threads.max(1) * BLOCKS_PER_THREAD);
    max_rows.min(by_memory).min(by_threads).max(8)
}

/// The monthly composites of rows `r0..r1`.
pub(crate) fn composites(set: &SceneSet<'_>, r0: usize, r1: usize) -> Result<Composites> {
    composites_window(set, r0..r1, 0..set.grid.width).map(|(c, _)| c)
}

/// The monthly composites of a window of the grid, and the columns they cover: `cols` and up to
/// a cloud buffer either side (the composites' pixels are rows `rows` x the returned columns).
pub(crate) fn composites_window(
    set: &SceneSet<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Result<(Composites, Range<usize>)> {
    let (window, at) = window_of(set, rows, cols);
    // One month at a time: a block holds one month's reflectance, whatever the period.
    let mut composites = Composites::new(at.rows * at.width, set.scenes.len(), &set.config.detect);
    each_month(set, &window, at, |month| {
        composites.push_month(&month, set.config.min_clear_obs)
    })?;
    Ok((composites, window.cols))
}

/// Every month's observations of a small window of the grid (a quicklook's chip: all months are
/// held at once), as [`composites_window`] would composite them, and the columns they cover.
pub(crate) fn month_observations(
    set: &SceneSet<'_>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> Result<(Vec<Vec<Observation>>, Range<usize>)> {
    let (window, at) = window_of(set, rows, cols);
    let mut months = Vec::with_capacity(set.by_month.len());
    each_month(set, &window, at, |month| months.push(month))?;
    Ok((months, window.cols))
}

/// The rows and columns read for a window (with a halo of a cloud buffer on every side, clipped
/// to the grid), and where the window sits in them.
fn window_of(set: &SceneSet<'_>, rows: Range<usize>, cols: Range<usize>) -> (Window, Rows) {
    let (grid, halo) = (set.grid, set.config.cloud_buffer);
    let (h0, h1) = (rows.start.saturating_sub(halo), (rows.end + halo).min(grid.height));
    let read_cols = cols.start.saturating_sub(halo)..(cols.end + halo).min(grid.width);
    let at = Rows {
        width: read_cols.len(),
        halo_top: rows.start - h0,
        rows: rows.len(),
    };
    (
        Window {
            rows: h0..h1,
            cols: read_cols,
        },
        at,
    )
}

/// Reads `window` of every scene and hands `each` one month's observations at a time, newest
/// first (the last month's pixels keeping only their newest views). Each scene's rows are read
/// once, its classes serving rule 4 and the mask alike.
fn each_month(set: &SceneSet<'_>, window: &Window, at: Rows, mut each: impl FnMut(Vec<Observation>)) -> Result<()> {
    let config = set.config;
    // Classes first, for every scene: rule 4 looks at all of them before any is masked.
    let mut classes: Vec<Option<Vec<u16>>> = vec![None; set.scenes.len()];
    for &s in set.by_month.iter().flatten() {
        classes[s] = Some(read_band(set, s, Band::Scl, window)?);
    }
    let mut surfaces = if config.persistent_cloud_is_surface {
        surfaces(set, &classes)
    } else {
        vec![None; set.scenes.len()]
    };
    for (m, ids) in set.by_month.iter().enumerate() {
        let mut month = ids
            .iter()
            .map(|&s| {
                let read = SceneRows {
                    scl: classes[s].take().expect("each scene is in one month"),
                    dns: Band::REFLECTANCE
                        .iter()
                        .map(|&b| read_band(set, s, b, window))
                        .collect::<Result<_>>()?,
                    surface: surfaces[s].take(),
                    subtract_dn: set.decisions[s].subtract_per_band(),
                };
                Ok(kernel::observe(s, read, at, config.cloud_buffer))
            })
            .collect::<Result<Vec<Observation>>>()?;
        newest_first(&mut month, set.scenes);
        if m + 1 == set.by_month.len() {
            keep_newest(&mut month, NEWEST_VIEWS);
        }
        each(month);
    }
    Ok(())
}

/// Clear views the last month of a period is composited from: its newest, so that a roof finished
/// in the middle of the month a scan ends with shows in that scan (as a provisional step), rather
/// than being outvoted by the views from before it. Three, so that one hazy or mis-masked view is
/// still outvoted (and [`kernel`]'s provisional rule asks for three).
const NEWEST_VIEWS: usize = 3;

/// Keeps, per pixel, only the `newest` latest clear views of `month` (ordered newest first);
/// the older ones become not clear, so that neither the composite nor its evidence counts them.
fn keep_newest(month: &mut [Observation], newest: usize) {
    let Some(pixels) = month.first().map(|o| o.clear.len()) else {
        return;
    };
    let mut kept = vec![0usize; pixels];
    for o in month.iter_mut() {
        for (k, c) in kept.iter_mut().zip(o.clear.iter_mut()) {
            if *c {
                *c = *k < newest;
                *k += 1;
            }
        }
    }
}

/// Orders a month's observations newest first, as [`Composites::push_month`] takes them.
fn newest_first(month: &mut [Observation], scenes: &[Scene]) {
    month.sort_by(|a, b| {
        let (a, b) = (&scenes[a.scene], &scenes[b.scene]);
        (b.datetime, &b.id).cmp(&(a.datetime, &a.id))
    });
}

/// Rows and columns of the grid read for a block.
struct Window {
    rows: Range<usize>,
    cols: Range<usize>,
}

/// One band of one scene over a window, from the cache.
fn read_band(set: &SceneSet<'_>, s: usize, band: Band, window: &Window) -> Result<Vec<u16>> {
    let (grid, cols) = (set.grid, &window.cols);
    let entry = &set.entries[s][Band::ALL.iter().position(|&b| b == band).expect("a band of ALL")];
    let all = Cache::read_rows(entry, grid, window.rows.clone())?;
    if cols.len() == grid.width {
        return Ok(all);
    }
    Ok(all
        .chunks_exact(grid.width)
        .flat_map(|row| &row[cols.clone()])
        .copied()
        .collect())
}

/// Rule 4 of [`crate::detect::mask`] over the rows read: per scene, the pixels whose cloud flag
/// is a persistent bright surface (None for scenes with none, and for scenes not mostly clear,
/// which do not count; the others count in time order).
fn surfaces(set: &SceneSet<'_>, classes: &[Option<Vec<u16>>]) -> Vec<Option<Vec<bool>>> {
    let scenes = set.scenes;
    let mut order: Vec<usize> = (0..scenes.len())
        .filter(|&s| set.mostly_clear[s] && classes[s].is_some())
        .collect();
    order.sort_by(|&a, &b| (scenes[a].datetime, &scenes[a].id).cmp(&(scenes[b].datetime, &scenes[b].id)));
    let cloud: Vec<Vec<bool>> = order
        .iter()
        .map(|&s| {
            let scl = classes[s].as_ref().expect("filtered on being read");
            scl.iter().map(|&c| scl_is_cloud(c)).collect()
        })
        .collect();
    let mut by_scene = vec![None; scenes.len()];
    for (s, surface) in order.into_iter().zip(persistent_surfaces(&cloud)) {
        by_scene[s] = surface;
    }
    by_scene
}

/// The spectral-change normalization, measured on a sample of the AOI's rows.
fn normalization(set: &SceneSet<'_>, aoi_mask: &[bool]) -> Result<Normalization> {
    let grid = set.grid;
    let windows: Vec<(Range<usize>, Range<usize>)> = normalization_strips(grid, set.by_month.len())
        .into_iter()
        .map(|rows| (rows, 0..grid.width))
        .collect();
    Ok(Normalization::measure(&normalization_sample(set, aoi_mask, &windows)?))
}

/// The rows of `grid` the normalization samples over `months` months: the first
/// `NORMALIZATION_ROWS` of every `NORMALIZATION_EVERY`, and on a large AOI over a long period only
/// every k-th such strip, so that the sample (held whole, every month of it at once) stays within
/// `NORMALIZATION_PIXEL_MONTHS`.
pub(crate) fn normalization_strips(grid: &Grid, months: usize) -> Vec<Range<usize>> {
    let all: Vec<Range<usize>> = (0..grid.height)
        .step_by(NORMALIZATION_EVERY)
        .map(|r0| r0..(r0 + NORMALIZATION_ROWS).min(grid.height))
        .collect();
    let pixel_months = all.len() * NORMALIZATION_ROWS * grid.width * months;
    let every = pixel_months.div_ceil(NORMALIZATION_PIXEL_MONTHS).max(1);
    all.into_iter().step_by(every).collect()
}

/// Per month, the magnitude bands of the composites of the AOI pixels (`aoi_mask`) of `windows`
/// (rows x columns of the grid), NaN in a gap: what [`Normalization::measure`] takes. The pixels'
/// order is the windows', row-major in each; the measure does not depend on it.
pub(crate) fn normalization_sample(
    set: &SceneSet<'_>,
    aoi_mask: &[bool],
    windows: &[(Range<usize>, Range<usize>)],
) -> Result<Vec<Vec<[f32; 4]>>> {
    let grid = set.grid;
    let parts: Vec<Vec<Vec<[f32; 4]>>> = windows
        .par_iter()
        .map(|(rows, cols)| {
            let (block, read_cols) = composites_window(set, rows.clone(), cols.clone())?;
            let width = read_cols.len();
            let inside: Vec<usize> = rows
                .clone()
                .enumerate()
                .flat_map(|(i, r)| {
                    cols.clone()
                        .filter(move |&c| aoi_mask[r * grid.width + c])
                        .map(move |c| i * width + c - read_cols.start)
                })
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
    let mut months: Vec<Vec<[f32; 4]>> = vec![Vec::new(); set.by_month.len()];
    for part in parts {
        for (month, values) in months.iter_mut().zip(part) {
            month.extend(values);
        }
    }
    Ok(months)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_both_threads_busy_and_memory_bounded_by_the_block() {
        // A 3 km AOI: 4 blocks a thread, not 5 blocks of 64 rows for 2 threads.
        assert_eq!(block_rows(64, &Grid::for_tests(300, 300), 30, 2), 38);
        // A 900 km2 AOI over 36 months: few rows a block, and the same pixel-months over 12.
        let wide = Grid::for_tests(3000, 3000);
        assert_eq!(block_rows(64, &wide, 36, 2), 19);
        assert!(block_rows(64, &wide, 12, 2) * 12 <= 64 * 36);
        // Never below 8 rows, never above the configured maximum.
        assert_eq!(block_rows(64, &Grid::for_tests(100_000, 300), 36, 2), 8);
        assert_eq!(block_rows(16, &Grid::for_tests(300, 3000), 12, 1), 16);
    }

    #[test]
    fn the_last_month_keeps_each_pixels_newest_clear_views() {
        // Scenes listed out of time order; pixel 0 clear in all four, pixel 1 in the two oldest,
        // pixel 2 in the newest only.
        let scenes: Vec<Scene> = ["2023-12-24", "2023-12-04", "2023-12-29", "2023-12-14"]
            .iter()
            .enumerate()
            .map(|(i, d)| Scene::for_tests(&format!("s{i}"), d))
            .collect();
        let clear = |s: usize| match s {
            0 => [true, false, false],
            1 => [true, true, false],
            2 => [true, false, true],
            _ => [true, true, false],
        };
        let mut month: Vec<Observation> = (0..4)
            .map(|s| Observation {
                scene: s,
                reflectance: ndarray::Array2::zeros((6, 3)),
                clear: ndarray::Array1::from(clear(s).to_vec()),
            })
            .collect();
        newest_first(&mut month, &scenes);
        keep_newest(&mut month, 3);
        let order: Vec<usize> = month.iter().map(|o| o.scene).collect();
        assert_eq!(order, vec![2, 0, 3, 1], "newest first");
        let kept: Vec<Vec<bool>> = month.iter().map(|o| o.clear.to_vec()).collect();
        assert_eq!(
            kept,
            vec![
                vec![true, false, true],
                vec![true, false, false],
                vec![true, true, false],
                vec![false, true, false],
            ]
        );
    }
}

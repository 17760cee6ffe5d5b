//! Region statistics: what a scan measures over its whole grid rather than pixel by pixel,
//! measured once for a region scanned in parts (`watch::tile`), so that every part computes with
//! the region's values and draws the unsplit scan's polygons.
//!
//! Three things a scan decides from all its pixels at once: per scene, the offset decision (from
//! the dark pixels, `detect::reflectance`) and whether the scene is mostly clear (which
//! scenes rule 4 of `detect::mask` counts); and the spectral normalization (medians and
//! spreads over a sample of the AOI's rows, [`Normalization`]). A part measuring them on its own
//! pixels draws other polygons than the unsplit scan. Here each part's windows are fetched (into
//! the cache its scan then reads) and counted over the cells the part owns, so the sums are the
//! region's; the normalization's sample is the unsplit scan's rows, taken from the parts that own
//! them. Everything else a scan decides pixel by pixel, or from a neighbourhood a part's margin
//! holds.
//!
//! Writes no output; reads only what the parts' scans would read anyway.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::detect::reflectance::OffsetDecision;
use crate::detect::Normalization;
use crate::error::Result;
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{Band, Scene, SceneSearch};
use crate::io::window::WindowReader;
use crate::scan::blocks::{self, SceneSet};
use crate::scan::config::ScanConfig;
use crate::scan::offsets::{self, Looks};
use crate::scan::progress::Progress;
use crate::scan::{fetch, search, state};

/// The values a part of a region takes as given instead of measuring them on its own pixels (set
/// as [`ScanConfig::given`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionStats {
    /// Per scene id, the scenes with data over the region and a clear pixel in it. A scene a part
    /// finds that is not here (the source changed between the passes) is decided on the part's own
    /// pixels.
    pub scenes: BTreeMap<String, SceneStats>,
    /// The spectral normalization over the region's AOI, per month of the scan's period.
    pub normalization: Normalization,
}

/// One scene's decisions over a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneStats {
    /// How its digital numbers become reflectance.
    pub offset: OffsetDecision,
    /// At most 30 % of its pixels with data over the region are cloud, cirrus or shadow.
    pub mostly_clear: bool,
}

/// One part of a region: its scan, and the cells of the region's grid it owns.
#[derive(Debug, Clone)]
pub struct Part {
    /// The part's scan (its AOI is the region's cut to what it scans; its grid is on the region's).
    pub config: ScanConfig,
    /// Rows of the region's grid the part owns: every row is owned by one part in each column.
    pub rows: Range<usize>,
    /// Columns of the region's grid the part owns.
    pub cols: Range<usize>,
}

/// The region's statistics from its parts (whose owned cells cover the region's grid once), and
/// how many scene bands were read from the source (the rest came from the cache).
///
/// Each part's scenes are searched and fetched as its scan will (a scene that cannot be read is
/// left to the part's scan to skip and report); then every scene's pixels are counted over the
/// owned cells, and the normalization's sample rows (the unsplit scan's) are
/// composited from the parts that own them, with the region's decisions.
pub fn measure(
    region: &Grid,
    parts: &[Part],
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<(RegionStats, usize)> {
    let mut looks: BTreeMap<String, (Scene, Looks)> = BTreeMap::new();
    let mut seen = Vec::new();
    let mut windows_fetched = 0;
    for part in parts {
        let (part_seen, fetched) = look(part, region, &mut looks, source, reader, progress)?;
        seen.push(part_seen);
        windows_fetched += fetched;
    }
    // A scene with no clear pixel anywhere is left out by the unsplit scan's scouting as well.
    let haze = parts.iter().any(|p| p.config.detect.haze_correction);
    let kept: Vec<(&Scene, &Looks)> = looks
        .iter()
        .filter(|(id, _)| seen.iter().any(|p| p.scenes.iter().any(|s| &s.id == *id)))
        .map(|(_, (scene, l))| (scene, l))
        .collect();
    let usable: BTreeMap<String, SceneStats> = kept
        .iter()
        .zip(offsets::decide(&kept, haze))
        .filter_map(|((scene, _), d)| {
            let (offset, mostly_clear) = d?;
            Some((scene.id.clone(), SceneStats { offset, mostly_clear }))
        })
        .collect();
    let normalization = normalization(region, parts, seen, &usable)?;
    let stats = RegionStats {
        scenes: usable,
        normalization,
    };
    Ok((stats, windows_fetched))
}

/// A part whose scenes were fetched.
struct Seen {
    grid: Grid,
    owned: Owned,
    /// Its scenes with a clear pixel in what it scans.
    scenes: Vec<Scene>,
}

/// Fetches a part's scenes and adds its owned cells' pixels to each scene's `looks`; returns the
/// part and the scene bands read from the source.
fn look(
    part: &Part,
    region: &Grid,
    looks: &mut BTreeMap<String, (Scene, Looks)>,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<(Seen, usize)> {
    let config = &part.config;
    let grid = Grid::for_aoi_in(&config.aoi, region.res, Some(region.epsg))?;
    config.check_grid(&grid)?;
    let owned = Owned::of(part, region, &grid);
    let cache = Cache::new(&config.cache_dir);
    let _cache_use = cache.share()?;
    let previous = state::load(&config.out_dir)?;
    let found = search::search(config, &grid, source, previous.as_ref(), progress)?;
    let fetched = fetch::fetch(config, &grid, &cache, reader, &found.scenes, progress)?;
    // Scenes scouted as cloudy hold no clear pixel here (no dark pixel either), but their classes
    // count towards how cloudy the scene is over the region.
    let read = fetched.scenes.iter().map(|s| (s, true));
    for (scene, bands) in read.chain(fetched.cloudy.iter().map(|s| (s, false))) {
        let (_, l) = looks
            .entry(scene.id.clone())
            .or_insert_with(|| (scene.clone(), Looks::new(config.detect.haze_correction)));
        l.add(scene, &grid, &cache, owned.rows.clone(), owned.cols.clone(), bands)?;
    }
    let seen = Seen {
        grid,
        owned,
        scenes: fetched.scenes,
    };
    Ok((seen, fetched.windows_fetched))
}

/// The normalization the unsplit scan measures: its sample rows, each composited by the part
/// that owns it, with the region's decisions (`usable`).
fn normalization(
    region: &Grid,
    parts: &[Part],
    seen: Vec<Seen>,
    usable: &BTreeMap<String, SceneStats>,
) -> Result<Normalization> {
    let months = parts
        .first()
        .map(|p| p.config.from.through(p.config.to))
        .unwrap_or_default();
    let strips = blocks::normalization_strips(region, months.len());
    let mut sample: Vec<Vec<[f32; 4]>> = vec![Vec::new(); months.len()];
    for (part, Seen { grid, owned, scenes }) in parts.iter().zip(seen) {
        let config = &part.config;
        let windows: Vec<(Range<usize>, Range<usize>)> = strips
            .iter()
            .filter_map(|rows| {
                let (start, end) = (rows.start.max(part.rows.start), rows.end.min(part.rows.end));
                let (start, end) = (
                    start.saturating_sub(owned.dr),
                    end.saturating_sub(owned.dr).min(grid.height),
                );
                (start < end).then(|| (start..end, owned.cols.clone()))
            })
            .collect();
        if windows.is_empty() {
            continue;
        }
        let scenes: Vec<Scene> = scenes.into_iter().filter(|s| usable.contains_key(&s.id)).collect();
        let decisions: Vec<OffsetDecision> = scenes.iter().map(|s| usable[&s.id].offset.clone()).collect();
        let mostly_clear: Vec<bool> = scenes.iter().map(|s| usable[&s.id].mostly_clear).collect();
        let by_month: Vec<Vec<usize>> = months
            .iter()
            .map(|m| (0..scenes.len()).filter(|&i| scenes[i].month() == *m).collect())
            .collect();
        let cache = Cache::new(&config.cache_dir);
        let _cache_use = cache.share()?;
        let entries: Vec<[std::path::PathBuf; 7]> = scenes
            .iter()
            .map(|s| Band::ALL.map(|b| cache.entry(s, b, &grid)))
            .collect();
        let set = SceneSet {
            config,
            grid: &grid,
            entries: &entries,
            scenes: &scenes,
            decisions: &decisions,
            mostly_clear: &mostly_clear,
            by_month: &by_month,
        };
        let aoi_mask = grid.aoi_mask(&config.aoi)?;
        for (month, values) in sample
            .iter_mut()
            .zip(blocks::normalization_sample(&set, &aoi_mask, &windows)?)
        {
            month.extend(values);
        }
    }
    Ok(Normalization::measure(&sample))
}

/// The cells a part owns, in its own grid.
struct Owned {
    rows: Range<usize>,
    cols: Range<usize>,
    /// The part's grid's first row in the region's grid.
    dr: usize,
}

impl Owned {
    fn of(part: &Part, region: &Grid, grid: &Grid) -> Owned {
        let dr = ((region.y0 - grid.y0) / region.res).round() as usize;
        let dc = ((grid.x0 - region.x0) / region.res).round() as usize;
        let cut =
            |r: &Range<usize>, d: usize, n: usize| r.start.saturating_sub(d).min(n)..r.end.saturating_sub(d).min(n);
        Owned {
            rows: cut(&part.rows, dr, grid.height),
            cols: cut(&part.cols, dc, grid.width),
            dr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aoi::{from_bbox, AoiLimits};
    use crate::month::Month;

    #[test]
    fn a_parts_owned_cells_are_found_in_its_own_grid() {
        let region = Grid {
            epsg: 32647,
            x0: 1000.0,
            y0: 5000.0,
            width: 300,
            height: 200,
            res: 10.0,
        };
        // The part's grid starts 40 rows down and 90 columns right of the region's.
        let grid = Grid {
            x0: 1900.0,
            y0: 4600.0,
            width: 150,
            height: 100,
            ..region.clone()
        };
        let aoi = from_bbox([98.5, 16.6, 98.51, 16.61], &AoiLimits::default()).unwrap();
        let month: Month = "2022-01".parse().unwrap();
        let part = Part {
            config: ScanConfig::new(aoi, month, month, "out".into(), "cache".into()),
            rows: 88..120,
            cols: 138..400,
        };
        let owned = Owned::of(&part, &region, &grid);
        assert_eq!((owned.rows, owned.cols, owned.dr), (48..80, 48..150, 40));
    }
}

//! Watching many sites: a watch list scanned site by site (several at once, the window cache
//! shared), then one record of the run (`run.json`, `run.md`), the across-sites summary and the
//! alerts for what is new.
//!
//! Each site is an ordinary scan ([`crate::scan::run`]) into `<out>/<name>/`, or a region-wide one
//! cut into tiles ([`tile`]); a site that fails or is refused is recorded and the others go on. A run
//! is cut into units (whole sites and tiles) that are scanned independently, then put together: a
//! tiled site's tiles merged into its report, then the run's record. A run may be cut into shards
//! for a cluster ([`shard`]): each shard scans its units and records them, and a gather puts them
//! together. A local run is one shard and its gather, in one process, through the same code. Never
//! prints, never exits.

mod alerts;
pub mod list;
mod record;
pub mod shard;
pub mod stats;
pub mod tile;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::aoi::{self, AoiLimits};
use crate::error::{Error, Result};
use crate::io::http::{Http, RetryPolicy};
use crate::io::source::{self, SceneSearch};
use crate::io::window::GdalReader;
use crate::scan::{self, ScanConfig, ScanSummary};
use shard::{Plan, Unit};

pub use alerts::{Alert, Delivery};
pub use list::{load, parse, AlertSettings, Area, Site, WatchList};
pub use record::{PolygonChanges, RunRecord, SiteRecord, Status};
pub use shard::Shard;

use serde::{Deserialize, Serialize};

/// The exit codes of `scan` and `run`, documented in the README and the `--help` of both.
pub mod exit {
    /// Finished; every scene found was used (and, with `--exit-code`, nothing new was found).
    pub const OK: u8 = 0;
    /// Failed: nothing new was written.
    pub const FAILED: u8 = 1;
    /// Finished, but some scenes were skipped.
    pub const SKIPPED_SCENES: u8 = 3;
    /// `scan`: refused (too few scenes). `run`: at least one site failed or was refused.
    pub const REFUSED: u8 = 4;
    /// With `--exit-code`: finished and something new was found (added or grown polygons).
    pub const NEW_FOUND: u8 = 5;
}

/// How a run is carried out, beyond what the watch list says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The window cache every site shares.
    pub cache: PathBuf,
    /// Sites scanned at once, at most.
    pub parallel: usize,
    /// Memory the sites and tiles scanned at once may take together, MB, as [`estimate_mb`] reckons
    /// it (None: only `parallel` limits them). A site larger than the budget is scanned alone.
    pub memory_mb: Option<u64>,
    /// Seconds before one HTTP request of a scan is given up (and retried).
    pub timeout_secs: u64,
}

/// Memory a scan holds per million grid pixels per month of its period, MB: measured as the peak
/// resident memory of `scan` on the generated sample (24 months; 0.048 Mpixel: 167 MB, 0.214 Mpixel:
/// 307 MB, so 840 MB per Mpixel, 35 per Mpixel-month), rounded up.
pub const MB_PER_MPIXEL_MONTH: f64 = 36.0;

/// Memory of the process itself (GDAL, thread pools, the binary), MB, once per run: the same
/// measurement's intercept (about 127 MB), rounded up.
pub const PROCESS_MB: u64 = 130;

/// The memory a site's scan is expected to take at its peak, MB, beyond the process's own: its
/// grid's pixels times its months; a tiled site's largest tile (each tile is a unit of its own,
/// budgeted as it is scanned). 0 when the site's outline cannot be read (its scan fails at once).
pub fn estimate_mb(site: &Site) -> u64 {
    let limits = AoiLimits::default();
    let aoi = match &site.area {
        Area::File(path) => aoi::load(path, &limits),
        Area::Bbox(bbox) => aoi::from_bbox(*bbox, &limits),
    };
    let Ok(aoi) = aoi else { return 0 };
    let pixels = match tile::plan(&aoi, site.tile_km2.unwrap_or(tile::DEFAULT_TILE_KM2)) {
        Ok(Some(tiling)) => tiling
            .tiles
            .iter()
            .map(|t| t.scanned.rows * t.scanned.cols)
            .max()
            .unwrap_or(0),
        Ok(None) => crate::grid::Grid::for_aoi(&aoi, 10.0).map_or(0, |g| g.len()),
        Err(_) => 0,
    };
    let months = f64::from(site.from.until(site.to) + 1);
    (pixels as f64 / 1e6 * months * MB_PER_MPIXEL_MONTH).ceil() as u64
}

/// Memory in use by the sites being scanned, MB, against a budget.
struct Budget {
    limit: Option<u64>,
    used: Mutex<u64>,
    freed: std::sync::Condvar,
}

impl Budget {
    /// Waits until `mb` fits beside what is in use (or nothing is in use), then takes it.
    fn take(&self, mb: u64) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(limit) = self.limit {
            while *used > 0 && *used + mb > limit {
                used = self.freed.wait(used).unwrap_or_else(|e| e.into_inner());
            }
        }
        *used += mb;
    }

    fn give_back(&self, mb: u64) {
        *self.used.lock().unwrap_or_else(|e| e.into_inner()) -= mb;
        self.freed.notify_all();
    }
}

/// What a run reports as it goes.
pub trait RunProgress: Sync {
    /// Called as a site starts and as it ends.
    fn event(&self, event: RunEvent<'_>);
}

/// One step of a run.
#[derive(Debug, Clone, Copy)]
pub enum RunEvent<'a> {
    /// A site's scan starts.
    Started {
        /// The site's name.
        site: &'a str,
    },
    /// A stage of a site's scan starts (as [`scan::Event::Stage`]).
    Stage {
        /// The site's name.
        site: &'a str,
        /// The stage's name.
        name: &'a str,
        /// Its units of work.
        total: u64,
    },
    /// A site's scan ended, whatever its outcome.
    Finished(&'a SiteRecord),
}

/// A site's scan progress, passed on as [`RunEvent::Stage`].
struct SiteStages<'a> {
    site: &'a str,
    progress: &'a dyn RunProgress,
}

impl scan::Progress for SiteStages<'_> {
    fn event(&self, event: scan::Event<'_>) {
        if let scan::Event::Stage { name, total } = event {
            self.progress.event(RunEvent::Stage {
                site: self.site,
                name,
                total,
            });
        }
    }
}

/// What a whole run (or a gather) wrote and found.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The content of `run.json`.
    pub record: RunRecord,
    /// The alerts new in this run (also in `alerts.json`).
    pub alerts: Vec<Alert>,
    /// Every file written in the output root.
    pub written: Vec<PathBuf>,
}

/// Scans every site of the list, then writes `run.json`, `run.md`, the across-sites summary and the
/// alerts into the output root. A site that fails is recorded; only an output root that cannot be
/// written fails the run.
pub fn run(list: &WatchList, options: &RunOptions, progress: &dyn RunProgress) -> Result<RunReport> {
    let started = now();
    let clock = Instant::now();
    let plan = Plan::of(list, options);
    let units: Vec<Unit> = plan.units.iter().map(|&(unit, _)| unit).collect();
    let mut regions = Regions::default();
    let (sites, tiles) = scan_units(list, &plan, &units, &mut regions, options, progress);
    let records = assemble(list, &plan, sites, tiles, &regions, options, progress, &|_| {
        String::new()
    })?;
    finish(list, records, &started, clock.elapsed(), 1)
}

/// What became of a tiled site's region statistics in [`prepare`].
#[derive(Debug)]
pub enum Prepared {
    /// Measured now and kept in the site's `region.json`.
    Measured,
    /// Those kept were still the region's.
    Reused,
    /// They could not be measured (the shards that scan its tiles try again).
    Failed(Error),
}

/// Measures the region statistics of every tiled site of the list (`run --plan`), or finds them
/// kept, so that the shards scanning its tiles read the region's imagery once. Returns each tiled
/// site's name, its tiles and what became of its statistics.
pub fn prepare(list: &WatchList, options: &RunOptions, progress: &dyn RunProgress) -> Vec<(String, usize, Prepared)> {
    let plan = Plan::of(list, options);
    let mut prepared = Vec::new();
    for (site, planned) in list.sites.iter().zip(&plan.sites) {
        let (Ok(config), Some(tiling)) = (&planned.config, &planned.tiling) else {
            continue;
        };
        progress.event(RunEvent::Started { site: &site.name });
        let state = match region_stats(site, config, tiling, options, progress) {
            Ok((_, true)) => Prepared::Measured,
            Ok((_, false)) => Prepared::Reused,
            Err(e) => Prepared::Failed(e),
        };
        prepared.push((site.name.clone(), tiling.tiles.len(), state));
    }
    prepared
}

/// Opens tiled `site`'s imagery and reads or measures its region statistics (see
/// [`stats::load_or_measure`]); `true` beside them when they were measured now.
fn region_stats(
    site: &Site,
    config: &ScanConfig,
    tiling: &tile::Tiling,
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> Result<(stats::Kept, bool)> {
    let stages = SiteStages {
        site: &site.name,
        progress,
    };
    let (source, reader) = open(site, options)?;
    stats::load_or_measure(config, tiling, source.as_ref(), &reader, &stages)
}

/// The region statistics of the tiled sites a process needs, by site index: measured or read once
/// per process, before the tiles' scans start.
#[derive(Debug, Default)]
pub(crate) struct Regions(std::collections::BTreeMap<usize, Result<stats::Kept>>);

impl Regions {
    /// Reads or measures the statistics of tiled site `i` (see [`stats::load_or_measure`]) unless
    /// this process has already; a failure is kept, and is each of its tiles' failure.
    fn prepare(&mut self, list: &WatchList, plan: &Plan, i: usize, options: &RunOptions, progress: &dyn RunProgress) {
        self.0.entry(i).or_insert_with(|| {
            let site = &list.sites[i];
            let planned = &plan.sites[i];
            let outcome = match (&planned.config, &planned.tiling) {
                (Ok(config), Some(tiling)) => region_stats(site, config, tiling, options, progress),
                _ => Err(Error::Config {
                    field: format!("site {}", site.name),
                    reason: "is not scanned in tiles: it has no region statistics".into(),
                }),
            };
            outcome.map(|(kept, _)| kept)
        });
    }

    /// The statistics this process has for site `i`, if it has them.
    fn kept(&self, i: usize) -> Option<&stats::Kept> {
        self.0.get(&i).and_then(|r| r.as_ref().ok())
    }

    fn get(&self, i: usize) -> std::result::Result<&stats::Kept, &Error> {
        match self.0.get(&i) {
            Some(Ok(stats)) => Ok(stats),
            Some(Err(e)) => Err(e),
            None => unreachable!("the statistics of site {i} are prepared before its tiles are scanned"),
        }
    }
}

/// One tile's scan, as a shard records it for the gather.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TileRecord {
    /// The site's name.
    pub site: String,
    /// The tile's name (`r<I>c<J>`).
    pub tile: String,
    /// The cells of the site's grid it owns: (row, column, rows, columns).
    pub core: [usize; 4],
    /// The key of the region statistics its scan computed with ([`stats::Kept::key`]; empty when
    /// they could not be had).
    #[serde(default)]
    pub stats_key: String,
    /// Its scan's record, named `<site>/<tile>`.
    pub record: SiteRecord,
    /// Its scan's summary, when it was published.
    pub summary: Option<ScanSummary>,
}

/// The source and window reader of a site's scans.
fn open(site: &Site, options: &RunOptions) -> Result<(Box<dyn SceneSearch>, GdalReader)> {
    let retry = RetryPolicy::default();
    let http = Http::new(Duration::from_secs(options.timeout_secs), retry);
    let source = source::open(&site.source, site.collection.as_deref(), http)?;
    let reader = GdalReader::new(retry, options.timeout_secs)?;
    Ok((source, reader))
}

/// Scans the given units: the statistics of their tiled sites first (one site after another),
/// then the units, each into its folder, at most `options.parallel` at once, and (with
/// `options.memory_mb`) only as many as fit in the memory budget together: a unit waits until its
/// estimate fits beside those running, and the units waiting start as memory frees, not
/// necessarily in the plan's order. Returns the records of the whole sites and of the tiles.
pub(crate) fn scan_units(
    list: &WatchList,
    plan: &Plan,
    units: &[Unit],
    regions: &mut Regions,
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> (Vec<SiteRecord>, Vec<TileRecord>) {
    for unit in units {
        if let Unit::Tile(i, _) = *unit {
            regions.prepare(list, plan, i, options, progress);
        }
    }
    let regions = &*regions;
    let budget = Budget {
        limit: options.memory_mb.map(|mb| mb.saturating_sub(PROCESS_MB)),
        used: Mutex::new(0),
        freed: std::sync::Condvar::new(),
    };
    let estimates: Vec<u64> = match options.memory_mb {
        Some(_) => units.iter().map(|&u| unit_mb(list, plan, u)).collect(),
        None => vec![0; units.len()],
    };
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<Done>>> = Mutex::new((0..units.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..options.parallel.clamp(1, units.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&unit) = units.get(i) else { break };
                budget.take(estimates[i]);
                let result = match unit {
                    Unit::Site(s) => Done::Site(Box::new(scan_site(list, s, plan, options, progress))),
                    Unit::Tile(s, t) => Done::Tile(Box::new(scan_tile(list, s, t, plan, regions, options, progress))),
                };
                budget.give_back(estimates[i]);
                done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    let (mut sites, mut tiles) = (Vec::new(), Vec::new());
    for result in done
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
    {
        match result {
            Done::Site(record) => sites.push(*record),
            Done::Tile(record) => tiles.push(*record),
        }
    }
    (sites, tiles)
}

/// A unit's record (boxed: a tile's is large).
enum Done {
    Site(Box<SiteRecord>),
    Tile(Box<TileRecord>),
}

/// The memory a unit's scan is expected to take at its peak, MB (see [`estimate_mb`]).
fn unit_mb(list: &WatchList, plan: &Plan, unit: Unit) -> u64 {
    let (i, pixels) = match unit {
        Unit::Site(i) => (
            i,
            plan.sites[i]
                .config
                .as_ref()
                .ok()
                .and_then(|c| crate::grid::Grid::for_aoi(&c.aoi, 10.0).ok())
                .map_or(0, |g| g.len()),
        ),
        Unit::Tile(i, t) => (
            i,
            plan.sites[i]
                .tiling
                .as_ref()
                .map_or(0, |tiling| tiling.tiles[t].scanned.rows * tiling.tiles[t].scanned.cols),
        ),
    };
    let site = &list.sites[i];
    let months = f64::from(site.from.until(site.to) + 1);
    (pixels as f64 / 1e6 * months * MB_PER_MPIXEL_MONTH).ceil() as u64
}

/// One whole site's scan, recorded whatever happens.
fn scan_site(list: &WatchList, i: usize, plan: &Plan, options: &RunOptions, progress: &dyn RunProgress) -> SiteRecord {
    let site = &list.sites[i];
    progress.event(RunEvent::Started { site: &site.name });
    let started = now();
    let clock = Instant::now();
    let stages = SiteStages {
        site: &site.name,
        progress,
    };
    let record = match &plan.sites[i].config {
        Ok(config) => {
            let outcome =
                open(site, options).and_then(|(source, reader)| scan::run(config, source.as_ref(), &reader, &stages));
            SiteRecord::of(site, &list.out, outcome.as_ref(), started, clock.elapsed())
        }
        Err(e) => SiteRecord::of(site, &list.out, Err(e), started, clock.elapsed()),
    };
    progress.event(RunEvent::Finished(&record));
    record
}

/// One tile's scan, with its region's statistics, recorded whatever happens; its progress is
/// reported as the site `<site>/<tile>`'s.
fn scan_tile(
    list: &WatchList,
    i: usize,
    t: usize,
    plan: &Plan,
    regions: &Regions,
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> TileRecord {
    let site = &list.sites[i];
    let (Ok(config), Some(tiling)) = (&plan.sites[i].config, &plan.sites[i].tiling) else {
        unreachable!("a tile unit is planned only for a site cut into tiles")
    };
    let tile = &tiling.tiles[t];
    let label = format!("{}/{}", site.name, tile.name);
    progress.event(RunEvent::Started { site: &label });
    let started = now();
    let clock = Instant::now();
    let stages = SiteStages { site: &label, progress };
    let record_of = |outcome: std::result::Result<&ScanSummary, &Error>| {
        let mut record = SiteRecord::of(site, &list.out, outcome, started.clone(), clock.elapsed());
        record.name.clone_from(&label);
        record
    };
    let (record, summary, stats_key) = match regions.get(i) {
        Err(e) => (record_of(Err(e)), None, String::new()),
        Ok(kept) => {
            let outcome = open(site, options).and_then(|(source, reader)| {
                tile::scan_tile(config, tiling, tile, &kept.stats, source.as_ref(), &reader, &stages)
            });
            (record_of(outcome.as_ref()), outcome.ok(), kept.key.clone())
        }
    };
    progress.event(RunEvent::Finished(&record));
    let c = tile.core;
    TileRecord {
        site: site.name.clone(),
        tile: tile.name.clone(),
        core: [c.row, c.col, c.rows, c.cols],
        stats_key,
        record,
        summary,
    }
}

/// The record of every site of the list, in its order, from the records of its units: a whole
/// site's own; a tiled site's from its tiles', merged ([`tile::finish`], which scans the patches the
/// merge needs) when every tile was published, else failed or refused as its first tile that was
/// not. `rerun` says how to rerun a unit (after a tile's reason), or nothing. Fails when a unit has
/// no record (the watch list changed since its shards ran).
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble(
    list: &WatchList,
    plan: &Plan,
    sites: Vec<SiteRecord>,
    tiles: Vec<TileRecord>,
    regions: &Regions,
    options: &RunOptions,
    progress: &dyn RunProgress,
    rerun: &dyn Fn(Unit) -> String,
) -> Result<Vec<SiteRecord>> {
    let mut by_name: std::collections::BTreeMap<String, SiteRecord> =
        sites.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut tiles: std::collections::BTreeMap<(String, String), TileRecord> = tiles
        .into_iter()
        .map(|t| ((t.site.clone(), t.tile.clone()), t))
        .collect();
    let changed = |what: String| Error::State {
        path: list.out.join(".compound-watch/shards"),
        reason: format!("no shard scanned {what}: the watch list changed since the shards ran; run the shards again"),
    };
    let mut records = Vec::new();
    for (i, site) in list.sites.iter().enumerate() {
        let Some(tiling) = &plan.sites[i].tiling else {
            let record = by_name
                .remove(&site.name)
                .ok_or_else(|| changed(plan.describe(list, Unit::Site(i))))?;
            records.push(record);
            continue;
        };
        let mut own = Vec::new();
        for (t, tile) in tiling.tiles.iter().enumerate() {
            let c = tile.core;
            let record = tiles
                .remove(&(site.name.clone(), tile.name.clone()))
                .filter(|r| r.core == [c.row, c.col, c.rows, c.cols])
                .ok_or_else(|| changed(plan.describe(list, Unit::Tile(i, t))))?;
            own.push(record);
        }
        records.push(tiled_site(list, plan, i, own, regions, options, progress, rerun));
    }
    Ok(records)
}

/// A tiled site's record from its tiles' (in its tiling's order), merging them when all were
/// published; recorded whatever happens.
#[allow(clippy::too_many_arguments)]
fn tiled_site(
    list: &WatchList,
    plan: &Plan,
    i: usize,
    tiles: Vec<TileRecord>,
    regions: &Regions,
    options: &RunOptions,
    progress: &dyn RunProgress,
    rerun: &dyn Fn(Unit) -> String,
) -> SiteRecord {
    let site = &list.sites[i];
    let (Ok(config), Some(tiling)) = (&plan.sites[i].config, &plan.sites[i].tiling) else {
        unreachable!("a site with tiles is planned with its configuration")
    };
    progress.event(RunEvent::Started { site: &site.name });
    let clock = Instant::now();
    let started = tiles.iter().map(|t| t.record.started.clone()).min().unwrap_or_else(now);
    let scanning = Duration::from_secs_f64(tiles.iter().map(|t| t.record.duration_s).sum());
    let failed = tiles.iter().position(|t| t.record.status != Status::Published);
    let mut record = match failed {
        Some(t) => {
            let tile = &tiles[t];
            let mut record = tile.record.clone();
            record.name.clone_from(&site.name);
            record.out = PathBuf::from(&site.name);
            record.started.clone_from(&started);
            record.reason = format!("tile {}: {}{}", tile.tile, tile.record.reason, rerun(Unit::Tile(i, t)));
            record.report = None;
            record.diff = None;
            record
        }
        None => {
            // The patches compute with the statistics the tiles did: those kept under the key
            // every tile's record names (a shard that measured them anew, because the source's
            // scenes changed between shards, scanned its tiles with other values).
            let key = tiles.first().map(|t| t.stats_key.clone()).unwrap_or_default();
            let keys_agree = tiles.iter().all(|t| t.stats_key == key);
            let summaries: Vec<ScanSummary> = tiles.into_iter().filter_map(|t| t.summary).collect();
            let stages = SiteStages {
                site: &site.name,
                progress,
            };
            let outcome = match keys_agree {
                false => Err(Error::State {
                    path: stats::path(config),
                    reason: format!(
                        "the site's tiles were scanned with different region statistics (the source's \
                         scenes changed between its shards); run `compound-watch run {} --plan`, then its \
                         shards again",
                        list.path.display()
                    ),
                }),
                true => regions
                    .kept(i)
                    .filter(|k| k.key == key)
                    .cloned()
                    .or_else(|| stats::load(config).filter(|k| k.key == key))
                    .ok_or_else(|| Error::State {
                        path: stats::path(config),
                        reason: "does not hold the region statistics the site's tiles were scanned with (it \
                                 was replaced or deleted since); run the shards of its tiles again"
                            .into(),
                    }),
            };
            let outcome = outcome.and_then(|kept| {
                let (source, reader) = open(site, options)?;
                tile::finish(
                    config,
                    tiling,
                    summaries,
                    &kept.stats,
                    source.as_ref(),
                    &reader,
                    &stages,
                )
            });
            SiteRecord::of(site, &list.out, outcome.as_ref(), started, scanning + clock.elapsed())
        }
    };
    record.duration_s = record::round_s(scanning + clock.elapsed());
    record.tiles = tiling.tiles.len();
    // Each tile has its own summary page; the region has none to put beside other sites.
    record.summary = None;
    progress.event(RunEvent::Finished(&record));
    record
}

/// The scan configuration of a site: the scan's defaults with the list's values on top.
pub fn site_config(site: &Site, out: PathBuf, options: &RunOptions) -> Result<ScanConfig> {
    let limits = AoiLimits::default();
    let aoi = match &site.area {
        Area::File(path) => aoi::load(path, &limits)?,
        Area::Bbox(bbox) => {
            let mut aoi = aoi::from_bbox(*bbox, &limits)?;
            aoi.name.clone_from(&site.name);
            aoi.slug.clone_from(&site.name);
            aoi
        }
    };
    let mut config = ScanConfig::new(aoi, site.from, site.to, out, options.cache.clone());
    config.max_cloud_cover = site.max_cloud_cover.unwrap_or(config.max_cloud_cover);
    config.min_area_m2 = site.min_area_m2.unwrap_or(config.min_area_m2);
    config.detect.roofs = site.roofs.unwrap_or(config.detect.roofs);
    config.detect.haze_correction = site
        .haze_correction
        .unwrap_or(config.detect.roofs.wants_haze_correction());
    config.check()?;
    Ok(config)
}

/// The exit code of one scan's outcome (as `scan` exits with it).
pub fn scan_exit_code(outcome: std::result::Result<&ScanSummary, &Error>) -> u8 {
    match outcome {
        Ok(s) if s.skipped.is_empty() => exit::OK,
        Ok(_) => exit::SKIPPED_SCENES,
        Err(Error::Refused { .. }) => exit::REFUSED,
        Err(_) => exit::FAILED,
    }
}

/// Writes what a whole run writes from the records of its sites: `run.json`, `run.md`, the
/// across-sites summary (`across.*`) and the alerts. `shards` is how many shards recorded them.
pub fn finish(
    list: &WatchList,
    records: Vec<SiteRecord>,
    started: &str,
    took: Duration,
    shards: usize,
) -> Result<RunReport> {
    let root = &list.out;
    std::fs::create_dir_all(root).map_err(Error::io(root))?;
    let mut written = Vec::new();
    let published: Vec<&SiteRecord> = records.iter().filter(|r| r.status == Status::Published).collect();
    let figures = published
        .iter()
        .filter(|r| r.summary.is_some())
        .map(|r| crate::output::summary::read_site(&root.join(&r.out)))
        .collect::<Result<Vec<_>>>()?;
    if !figures.is_empty() {
        written.extend(crate::output::summary::write_across(root, &figures)?);
    }
    let (alerts, delivery) = alerts::raise(list, &published)?;
    written.extend(alerts::write(root, &alerts)?);
    let record = RunRecord::new(list, records, started, took, shards, alerts.len(), delivery);
    written.extend(record.write(root)?);
    Ok(RunReport {
        record,
        alerts,
        written,
    })
}

/// The time now, as `run.json` writes it.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `path` relative to `root` when it is under it (outputs name each other relatively, so an output
/// root can be moved or copied from a cluster as a whole).
fn relative(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_waits_until_its_memory_fits_and_one_larger_than_the_budget_runs_alone() {
        let budget = Budget {
            limit: Some(100),
            used: Mutex::new(0),
            freed: std::sync::Condvar::new(),
        };
        budget.take(500);
        budget.give_back(500);
        budget.take(60);
        std::thread::scope(|s| {
            let second = s.spawn(|| {
                budget.take(60);
                *budget.used.lock().unwrap()
            });
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(*budget.used.lock().unwrap(), 60, "60 + 60 > 100: the second waits");
            budget.give_back(60);
            assert_eq!(second.join().unwrap(), 60, "and starts once the first is done");
        });
    }
}

//! Watching many sites: a watch list scanned site by site (several at once, the window cache
//! shared), then one record of the run (`run.json`, `run.md`), the across-sites summary and the
//! alerts for what is new.
//!
//! Each site is an ordinary scan ([`crate::scan::run`]) into `<out>/<name>/`; a site that fails or
//! is refused is recorded and the others go on. A run may be cut into shards for a cluster
//! ([`shard`]): each shard scans its sites and records them, and a gather writes what a whole run
//! writes. A local run is one shard and its gather, in one process. Never prints, never exits.

mod alerts;
pub mod list;
mod record;
pub mod shard;
pub mod tile;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::aoi::{self, AoiLimits};
use crate::error::{Error, Result};
use crate::io::http::{Http, RetryPolicy};
use crate::io::source;
use crate::io::window::GdalReader;
use crate::scan::{self, ScanConfig, ScanSummary};

pub use alerts::{Alert, Delivery};
pub use list::{load, parse, AlertSettings, Area, Site, WatchList};
pub use record::{PolygonChanges, RunRecord, SiteRecord, Status};
pub use shard::Shard;

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
    /// Memory the sites scanned at once may take together, MB, as [`estimate_mb`] reckons it
    /// (None: only `parallel` limits them). A site larger than the budget is scanned alone.
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
/// grid's pixels times its months; a tiled site's largest tile (its tiles are scanned one after
/// another). 0 when the site's outline cannot be read (its scan fails at once).
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
    let sites: Vec<&Site> = list.sites.iter().collect();
    let records = scan_sites(list, &sites, options, progress);
    finish(list, records, &started, clock.elapsed(), 1)
}

/// Scans the given sites, each into `<out>/<name>/`: at most `options.parallel` at once, and (with
/// `options.memory_mb`) only as many as fit in the memory budget together: a site waits until its
/// estimate fits beside those running, and the sites waiting start as memory frees, not
/// necessarily in the list's order.
pub fn scan_sites(
    list: &WatchList,
    sites: &[&Site],
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> Vec<SiteRecord> {
    let budget = Budget {
        limit: options.memory_mb.map(|mb| mb.saturating_sub(PROCESS_MB)),
        used: Mutex::new(0),
        freed: std::sync::Condvar::new(),
    };
    let estimates: Vec<u64> = match options.memory_mb {
        Some(_) => sites.iter().map(|s| estimate_mb(s)).collect(),
        None => vec![0; sites.len()],
    };
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<SiteRecord>>> = Mutex::new(vec![None; sites.len()]);
    std::thread::scope(|scope| {
        for _ in 0..options.parallel.clamp(1, sites.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(site) = sites.get(i) else { break };
                budget.take(estimates[i]);
                progress.event(RunEvent::Started { site: &site.name });
                let record = scan_site(list, site, options, progress);
                budget.give_back(estimates[i]);
                progress.event(RunEvent::Finished(&record));
                done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(record);
            });
        }
    });
    done.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// One site's scan, recorded whatever happens.
fn scan_site(list: &WatchList, site: &Site, options: &RunOptions, progress: &dyn RunProgress) -> SiteRecord {
    let started = now();
    let clock = Instant::now();
    let out = list.out.join(&site.name);
    let mut tiles = 0;
    let stages = SiteStages {
        site: &site.name,
        progress,
    };
    let outcome = site_config(site, out, options).and_then(|config| {
        let retry = RetryPolicy::default();
        let http = Http::new(Duration::from_secs(options.timeout_secs), retry);
        let source = source::open(&site.source, site.collection.as_deref(), http)?;
        let reader = GdalReader::new(retry, options.timeout_secs)?;
        let summary = match tile::plan(&config.aoi, site.tile_km2.unwrap_or(tile::DEFAULT_TILE_KM2))? {
            Some(tiling) => {
                tiles = tiling.tiles.len();
                tile::scan(&config, &tiling, source.as_ref(), &reader, &stages)?
            }
            None => scan::run(&config, source.as_ref(), &reader, &stages)?,
        };
        Ok((config, summary))
    });
    let mut record = SiteRecord::of(site, &list.out, &outcome, started, clock.elapsed());
    if tiles > 0 {
        record.tiles = tiles;
        // Each tile has its own summary page; the region has none to put beside other sites.
        record.summary = None;
    }
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

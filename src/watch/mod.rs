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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::aoi::{self, AoiLimits};
use crate::error::{Error, Result};
use crate::io::http::{Http, RetryPolicy};
use crate::io::source;
use crate::io::window::GdalReader;
use crate::scan::{self, ScanConfig, ScanSummary, Silent};

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
    /// Sites scanned at once.
    pub parallel: usize,
    /// Seconds before one HTTP request of a scan is given up (and retried).
    pub timeout_secs: u64,
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
    /// A site's scan ended, whatever its outcome.
    Finished(&'a SiteRecord),
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

/// Scans the given sites, `options.parallel` at once, each into `<out>/<name>/`.
pub fn scan_sites(
    list: &WatchList,
    sites: &[&Site],
    options: &RunOptions,
    progress: &dyn RunProgress,
) -> Vec<SiteRecord> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<SiteRecord>>> = Mutex::new(vec![None; sites.len()]);
    std::thread::scope(|scope| {
        for _ in 0..options.parallel.clamp(1, sites.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(site) = sites.get(i) else { break };
                progress.event(RunEvent::Started { site: &site.name });
                let record = scan_site(list, site, options);
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
fn scan_site(list: &WatchList, site: &Site, options: &RunOptions) -> SiteRecord {
    let started = now();
    let clock = Instant::now();
    let out = list.out.join(&site.name);
    let outcome = site_config(site, out, options).and_then(|config| {
        let retry = RetryPolicy::default();
        let http = Http::new(Duration::from_secs(options.timeout_secs), retry);
        let source = source::open(&site.source, site.collection.as_deref(), http)?;
        let reader = GdalReader::new(retry, options.timeout_secs)?;
        scan::run(&config, source.as_ref(), &reader, &Silent).map(|s| (config, s))
    });
    SiteRecord::of(site, &list.out, &outcome, started, clock.elapsed())
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

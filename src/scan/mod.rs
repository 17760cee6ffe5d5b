//! The scan: runs the stages in order for one AOI and period, and publishes the outputs.
//!
//! search -> fetch -> offsets -> (refuse?) -> detect (blocks of rows, in parallel) -> assemble ->
//! write (into a staging folder) -> publish (the whole set, or nothing). Each stage is a module;
//! the pixel rules they apply live in [`crate::detect`], the files they write in
//! `crate::output`. Partial failure is data: a scene that cannot be read is skipped and listed,
//! never fatal; too few usable scenes refuse the scan and leave the previous outputs as they were.

mod assemble;
mod blocks;
mod config;
mod fetch;
mod offsets;
mod progress;
pub(crate) mod publish;
pub mod region;
mod search;
pub(crate) mod state;
mod write;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::grid::Grid;
use crate::io::cache::Cache;
use crate::io::source::{Band, SceneSearch, Skipped};
use crate::io::window::WindowReader;
use crate::output::diff;
use crate::output::months::{self, MonthStack};
use crate::output::provenance::{self, AoiRecord, Parameters, Period, Provenance, SceneRecord};
use crate::output::summary::MonthFigures;

pub use config::{ScanConfig, FIRST_MONTH};
pub use progress::{Event, Progress, Silent};
pub use region::RegionStats;
pub use state::lock;

/// What happened, for the binary to report and turn into an exit code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanSummary {
    /// Scenes the search found (after de-duplication).
    pub scenes_found: usize,
    /// Of those, scenes the previous scan of this output did not have.
    pub scenes_new: usize,
    /// Scenes that went into the composites.
    pub scenes_used: usize,
    /// Scene bands read from the source in this run.
    pub windows_fetched: usize,
    /// Scene bands found in the cache.
    pub windows_cached: usize,
    /// Scenes left out, with the reason.
    pub skipped: Vec<Skipped>,
    /// Scenes read without error that hold no data over the AOI (not used, not an error).
    pub no_data: Vec<String>,
    /// Scenes whose classification band showed nothing clear over the AOI: their six reflectance
    /// bands were not read (not used, not an error).
    pub cloudy: Vec<String>,
    /// Scene bands not read because their scene was cloudy or without data over the AOI.
    pub windows_scouted: usize,
    /// Months in the period with at least one usable scene.
    pub months_with_scenes: usize,
    /// Polygons in the report.
    pub detections: usize,
    /// The report file.
    pub report: PathBuf,
    /// The latest-composite COG.
    pub composite: PathBuf,
    /// The diff against the previous report in this output (everything `added` when there is none).
    pub diff: PathBuf,
    /// Polygons of each kind in the diff.
    pub changes: diff::Counts,
    /// The QGIS project that opens the outputs styled.
    pub project: PathBuf,
    /// The monthly summary for readers (summary.md, .csv, .json and pictures beside it).
    pub summary_page: PathBuf,
    /// Demolition polygons written.
    pub demolitions: usize,
    /// Written demolition layer.
    pub demolition: PathBuf,
    /// Per month of the period: its figures, as the summary (`summary.json`) has them.
    pub months: Vec<MonthFigures>,
    /// Pixels of the grid inside the AOI.
    pub aoi_pixels: u64,
}

/// Runs a scan end to end, under the output's lock, and records the attempt in the output's
/// `.compound-watch/attempts.jsonl` whatever its outcome.
///
/// Nothing in `--out` changes unless the whole new set of outputs is published (see
/// `scan::publish`); a scan that finds no scene, or can use too few of them, returns
/// [`Error::Refused`] and leaves the previous outputs as they were.
pub fn run(
    config: &ScanConfig,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    config.check()?;
    let grid = Grid::for_aoi_in(&config.aoi, 10.0, config.epsg)?;
    config.check_grid(&grid)?;
    let out = &config.out_dir;
    if out.exists() && !out.is_dir() {
        return Err(Error::Config {
            field: "--out".into(),
            reason: format!(
                "{} is a file, not a folder; give the folder the outputs go to",
                out.display()
            ),
        });
    }
    std::fs::create_dir_all(out).map_err(Error::io(out))?;
    let _lock = state::lock(out)?;
    // A run killed while publishing is completed first, so this one starts from a whole set.
    publish::recover(out)?;
    let result = scan_locked(config, &grid, source, reader, progress);
    let (outcome, reason, counts) = match &result {
        Ok(s) => (
            "published",
            String::new(),
            (s.scenes_found, s.scenes_used, s.skipped.len()),
        ),
        Err(e @ Error::Refused { skipped, .. }) => ("refused", e.to_string(), (0, 0, skipped.len())),
        Err(e) => ("failed", e.to_string(), (0, 0, 0)),
    };
    let attempt = state::Attempt {
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        version: env!("CARGO_PKG_VERSION").into(),
        from: config.from,
        to: config.to,
        source: source.describe(),
        outcome: outcome.into(),
        reason,
        scenes_found: counts.0,
        scenes_used: counts.1,
        scenes_skipped: counts.2,
    };
    // The scan's own outcome is what the caller needs: a scan that worked is not turned into a
    // failure because its log line could not be written, and a scan that failed or was refused
    // reports why, not the log's error (the full disk that failed it usually fails the log too).
    let _logged = state::record_attempt(out, &attempt);
    result
}

/// Why a scan must not replace the outputs: too few scenes to stand behind any figure.
fn refusal(config: &ScanConfig, found: usize, readable: usize, used: usize, skipped: &[Skipped]) -> Option<String> {
    let period = format!("{}..{}", config.from, config.to);
    if found == 0 {
        return Some(format!(
            "the source has no scene of this AOI in {period} (with cloud cover <= {}%); check the \
             source, the AOI and the period",
            config.max_cloud_cover
        ));
    }
    if used < config.min_scenes {
        return Some(format!(
            "only {used} of the {found} scenes found in {period} could be used ({} skipped), fewer than \
             --min-scenes {}",
            skipped.len(),
            config.min_scenes
        ));
    }
    if (used as f64) < config.min_used_share * readable as f64 {
        return Some(format!(
            "only {used} of the {found} scenes found in {period} could be used ({} skipped), less than \
             --min-used-share {}; the source or the cache is failing",
            skipped.len(),
            config.min_used_share
        ));
    }
    None
}

/// The stages, in order, under the output's lock.
/// The offsets stage, then the refusal: the scenes decided on, or [`Error::Refused`] when too few
/// are left (nothing in `--out` changes).
fn decide(
    config: &ScanConfig,
    grid: &Grid,
    cache: &Cache,
    found: &search::Searched,
    fetched: &fetch::Fetched,
    skipped: Vec<Skipped>,
    progress: &dyn Progress,
) -> Result<offsets::Decided> {
    let given = config.given.as_ref();
    let mut decided = offsets::offsets(
        grid,
        cache,
        fetched.scenes.clone(),
        given,
        config.detect.haze_correction,
        progress,
    )?;
    decided.no_data.extend(fetched.no_data.iter().map(|s| s.id.clone()));
    decided.cloudy = fetched.cloudy.iter().map(|s| s.id.clone()).collect();
    // Scenes seen to hold nothing clear or no data are not failures: the share used is of the others.
    let readable = found.found.saturating_sub(fetched.cloudy.len() + decided.no_data.len());
    if let Some(reason) = refusal(config, found.found, readable, decided.scenes.len(), &skipped) {
        let out = config.out_dir.clone();
        return Err(Error::Refused { out, reason, skipped });
    }
    Ok(decided)
}

fn scan_locked(
    config: &ScanConfig,
    grid: &Grid,
    source: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    let aoi_mask = grid.aoi_mask(&config.aoi)?;
    let cache = Cache::new(&config.cache_dir);
    let _cache_use = cache.share()?;
    let previous = state::load(&config.out_dir)?;
    let found = search::search(config, grid, source, previous.as_ref(), progress)?;
    let fetched = fetch::fetch(config, grid, &cache, reader, &found.scenes, progress)?;
    let skipped = [found.rejected.as_slice(), fetched.skipped.as_slice()].concat();
    let given = config.given.as_ref();
    let decided = decide(config, grid, &cache, &found, &fetched, skipped.clone(), progress)?;
    let months = config.from.through(config.to);
    let by_month = decided.by_month(&months);
    // A month's figures count every scene acquired in it, the cloudy ones left unread too.
    let acquired: Vec<usize> = months
        .iter()
        .zip(&by_month)
        .map(|(m, used)| used.len() + fetched.cloudy.iter().filter(|s| s.month() == *m).count())
        .collect();
    let entries: Vec<[PathBuf; 7]> = decided
        .scenes
        .iter()
        .map(|s| Band::ALL.map(|b| cache.entry(s, b, grid)))
        .collect();
    let set = blocks::SceneSet {
        config,
        grid,
        entries: &entries,
        scenes: &decided.scenes,
        decisions: &decided.decisions,
        mostly_clear: &decided.mostly_clear,
        by_month: &by_month,
    };
    // The staging folder is begun before detection: the blocks write the monthly composites
    // into it as they go.
    let staging = publish::Staging::begin(&config.out_dir)?;
    let month_stack = (config.monthly_composites)
        .then(|| MonthStack::create(&staging.path(months::DIR), grid, &months))
        .transpose()?;
    let (results, norm) = blocks::detect(
        &set,
        &aoi_mask,
        given.map(|g| &g.normalization),
        month_stack.as_ref(),
        progress,
    )?;
    progress.event(Event::Stage {
        name: "report",
        total: 1,
    });
    let mut assembled = assemble::assemble(config, grid, results, &decided.scenes, &months)?;
    let provenance = provenance_of(config, grid, source, &decided, norm, &found, &skipped);
    let aoi_pixels = aoi_mask.iter().filter(|&&m| m).count() as u64;
    let months = assembled.month_figures(&months, &acquired, aoi_pixels, grid.res);
    let outputs = write::Outputs {
        month_stack,
        set,
        provenance: &provenance,
        assembled: &mut assembled,
        months,
        found: &found.scenes,
        items: &found.items,
    };
    let written = write::write(&staging, outputs)?;
    progress.event(Event::Advance(1));
    staging.publish(progress)?;
    let months_with_scenes = acquired.iter().filter(|&&n| n > 0).count();
    Ok(ScanSummary {
        scenes_new: found.new,
        scenes_found: found.found,
        scenes_used: decided.scenes.len(),
        windows_fetched: fetched.windows_fetched,
        windows_cached: fetched.windows_cached,
        skipped,
        no_data: decided.no_data,
        cloudy: decided.cloudy,
        windows_scouted: fetched.windows_scouted,
        months_with_scenes,
        detections: assembled.construction.len(),
        demolitions: assembled.demolition.len(),
        months: written.months,
        aoi_pixels,
        changes: written.changes,
        ..ScanSummary::paths(&config.out_dir)
    })
}

impl ScanSummary {
    /// A summary of nothing, with the paths of the outputs in `out`.
    fn paths(out: &std::path::Path) -> ScanSummary {
        ScanSummary {
            scenes_found: 0,
            scenes_new: 0,
            scenes_used: 0,
            windows_fetched: 0,
            windows_cached: 0,
            skipped: Vec::new(),
            no_data: Vec::new(),
            cloudy: Vec::new(),
            windows_scouted: 0,
            months_with_scenes: 0,
            detections: 0,
            report: out.join("report.geojson"),
            composite: out.join("composite.tif"),
            diff: out.join("diff.geojson"),
            changes: diff::Counts::default(),
            project: out.join("project.qgs"),
            summary_page: out.join("summary.html"),
            demolitions: 0,
            demolition: out.join("demolition.geojson"),
            months: Vec::new(),
            aoi_pixels: 0,
        }
    }
}

/// The report's provenance: the site, period, grid, source, parameters and every scene.
fn provenance_of(
    config: &ScanConfig,
    grid: &Grid,
    source: &dyn SceneSearch,
    decided: &offsets::Decided,
    normalization: crate::detect::Normalization,
    found: &search::Searched,
    skipped: &[Skipped],
) -> Provenance {
    let aoi = &config.aoi;
    Provenance {
        software: "compound-watch".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        aoi: AoiRecord {
            name: aoi.name.clone(),
            slug: aoi.slug.clone(),
            origin: aoi.origin.clone(),
            bbox: aoi.bbox(),
            area_m2: aoi.area_m2.round(),
            properties: aoi.properties.clone(),
        },
        period: Period {
            from: config.from,
            to: config.to,
        },
        grid: grid.clone(),
        source: source.describe(),
        parameters: Parameters {
            detect: config.detect,
            max_cloud_cover: config.max_cloud_cover,
            cloud_buffer_px: config.cloud_buffer,
            persistent_cloud_is_surface: config.persistent_cloud_is_surface,
            min_clear_obs: config.min_clear_obs,
            min_area_m2: config.min_area_m2,
            composite: provenance::COMPOSITE_METHOD.into(),
            score: provenance::SCORE_METHOD.into(),
            change: provenance::CHANGE_METHOD.into(),
            normalization,
        },
        scenes: decided
            .scenes
            .iter()
            .zip(&decided.decisions)
            .map(|(s, d)| SceneRecord {
                id: s.id.clone(),
                collection: s.collection.clone(),
                datetime: s.datetime.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                tile: s.tile.clone(),
                cloud_cover: s.cloud_cover,
                processing_baseline: s.processing_baseline.clone(),
                offset: d.clone(),
            })
            .collect(),
        skipped: skipped.to_vec(),
        superseded: found.superseded.clone(),
        no_data: decided.no_data.clone(),
        cloudy: decided.cloudy.clone(),
    }
}

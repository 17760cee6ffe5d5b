//! The scan: runs the stages in order for one AOI and period, and writes the outputs.
//!
//! Fetch, then compute. First every missing scene band is read through the [`WindowReader`] into
//! the cache, scenes in parallel. Then the grid is processed in blocks of rows, in parallel, each
//! block reading only its rows of the cached windows: memory grows with the block, not the AOI.
//! Partial failure is data: a scene that cannot be read is skipped and listed, never fatal.

pub(crate) mod publish;
pub(crate) mod state;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;
use serde::Serialize;

use crate::aoi::Aoi;
use crate::detect::builtup::{scores, step, DetectParams};
use crate::detect::composite::{median, monthly_median, Composite};
use crate::detect::mask::{
    clear_mask, persistent_cloud_onset, scl_is_clear, scl_is_cloud, scl_is_cloud_or_shadow, MOSTLY_CLEAR,
};
use crate::detect::reflectance::{decide_offset, reflectance, DarkHistogram, OffsetDecision};
use crate::detect::spectral::{changed_regions, spectral_step, Normalization, BANDS};
use crate::detect::vectorize;
use crate::error::{Error, Result};
use crate::grid::{Grid, Projector};
use crate::io::atomic;
use crate::io::cache::Cache;
use crate::io::source::{dedupe, Band, Found, Scene, SceneSearch, SearchQuery, Skipped};
use crate::io::window::WindowReader;
use crate::month::Month;
use crate::output::diff;
use crate::output::qgis::project::{self, Content, Layer, Project};
use crate::output::qgis::style;
use crate::output::report::{self, Detection};
use crate::output::summary;
use state::State;

/// Everything a scan needs to know, already checked.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// The site.
    pub aoi: Aoi,
    /// First month, included.
    pub from: Month,
    /// Last month, included.
    pub to: Month,
    /// Where the report and composite go.
    pub out_dir: PathBuf,
    /// Where warped windows are cached.
    pub cache_dir: PathBuf,
    /// Largest accepted scene cloud cover, percent.
    pub max_cloud_cover: f64,
    /// Change decision parameters.
    pub detect: DetectParams,
    /// Pixels of margin around SCL clouds and shadows that are not trusted either.
    pub cloud_buffer: usize,
    /// Clear observations a pixel needs in a month for that month not to be a gap.
    pub min_clear_obs: u16,
    /// Minimum mapping unit, m².
    pub min_area_m2: f64,
    /// Rows per processing block.
    pub block_rows: usize,
    /// Scenes read at once (I/O-bound, so more than the cores is fine).
    pub fetch_jobs: usize,
    /// Use only the cache and the previous scan's scene list: no search, no reads.
    pub offline: bool,
    /// Rule 4 of [`crate::detect::mask`]: cloud flags that never move are bright surfaces.
    pub persistent_cloud_is_surface: bool,
    /// Fewest usable scenes a scan needs to publish anything; with fewer it leaves the previous
    /// outputs untouched ([`Error::Refused`]).
    pub min_scenes: usize,
    /// Smallest share of the scenes found that must be usable (read without error, with data over
    /// the AOI) for the scan to publish.
    pub min_used_share: f64,
    /// Largest analysis grid accepted, km² (the grid is the AOI's bounding box in UTM, so parts
    /// far apart make a large grid from a small area).
    pub max_grid_km2: f64,
}

/// The first month with Sentinel-2 L2A data (Sentinel-2A began acquiring in June 2015).
pub const FIRST_MONTH: &str = "2015-06";

/// Bytes of memory a scan holds per grid pixel for the whole AOI at once (the latest composite,
/// change magnitudes, masks and per-pixel results); the per-block work comes on top of it.
const BYTES_PER_GRID_PIXEL: u64 = 48;

impl ScanConfig {
    /// A configuration with the documented defaults.
    pub fn new(aoi: Aoi, from: Month, to: Month, out_dir: PathBuf, cache_dir: PathBuf) -> ScanConfig {
        ScanConfig {
            aoi,
            from,
            to,
            out_dir,
            cache_dir,
            max_cloud_cover: 80.0,
            detect: DetectParams::default(),
            cloud_buffer: 2,
            min_clear_obs: 1,
            min_area_m2: 1_000.0,
            block_rows: 64,
            fetch_jobs: 8,
            offline: false,
            persistent_cloud_is_surface: true,
            min_scenes: 4,
            min_used_share: 0.5,
            max_grid_km2: 2_500.0,
        }
    }

    /// Checks every value, naming the flag that is wrong.
    pub fn check(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(Error::Config {
                field: field.into(),
                reason,
            })
        };
        if self.to < self.from {
            return bad(
                "--to",
                format!(
                    "{} is before --from {}; the period runs from --from to --to",
                    self.to, self.from
                ),
            );
        }
        if !(0.0..=100.0).contains(&self.max_cloud_cover) {
            return bad(
                "--max-cloud-cover",
                format!("{} is not a percentage (0-100)", self.max_cloud_cover),
            );
        }
        if self.min_area_m2 < 0.0 || !self.min_area_m2.is_finite() {
            return bad(
                "--min-area",
                format!("{} must be a positive area in m²", self.min_area_m2),
            );
        }
        if self.block_rows == 0 {
            return bad("block_rows", "must be at least 1".into());
        }
        let first: Month = FIRST_MONTH.parse().expect("a valid month");
        if self.from < first {
            return bad(
                "--from",
                format!(
                    "{} is before Sentinel-2 began ({first}); start at {first} or later",
                    self.from
                ),
            );
        }
        let next = Month::of(chrono::Utc::now().date_naive()).plus(1);
        if self.to > next {
            return bad(
                "--to",
                format!(
                    "{} is in the future; the last month with scenes is at most {next}",
                    self.to
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.min_used_share) {
            return bad(
                "--min-used-share",
                format!("{} is not a share between 0 and 1", self.min_used_share),
            );
        }
        if !(self.max_grid_km2.is_finite() && self.max_grid_km2 > 0.0) {
            return bad(
                "--max-aoi-km2",
                format!("{} must be a finite positive area in km²", self.max_grid_km2),
            );
        }
        Ok(())
    }

    /// Refuses, before anything is allocated, a grid larger than the limit or than this machine's
    /// memory could hold.
    pub fn check_grid(&self, grid: &Grid) -> Result<()> {
        let km2 = grid.len() as f64 * grid.res * grid.res / 1e6;
        let fail = |reason: String| {
            Err(Error::Aoi {
                path: self.aoi.origin.clone().into(),
                reason,
            })
        };
        if km2 > self.max_grid_km2 {
            return fail(format!(
                "its bounding box covers {km2:.0} km² ({} x {} pixels of 10 m), more than the {:.0} km² \
                 maximum (the AOI itself covers {:.1} km²: parts far apart make a large box); scan each \
                 part as its own AOI, or raise the limit with --max-aoi-km2",
                grid.width,
                grid.height,
                self.max_grid_km2,
                self.aoi.area_m2 / 1e6
            ));
        }
        let needed = grid.len() as u64 * BYTES_PER_GRID_PIXEL;
        if let Some(total) = physical_memory() {
            if needed > total / 10 * 8 {
                return fail(format!(
                    "its {km2:.0} km² grid needs about {} GB of memory, more than this machine's {} GB \
                     allow; split it into smaller AOIs",
                    needed >> 30,
                    total >> 30
                ));
            }
        }
        Ok(())
    }
}

/// Total physical memory in bytes, where the system says (Linux `/proc/meminfo`).
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// What happened, for the binary to report and turn into an exit code.
#[derive(Debug, Clone, Serialize)]
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
    /// Per month of the period: the month, its scenes, and the counts behind its figures.
    pub months: Vec<MonthSummary>,
    /// Pixels of the grid inside the AOI.
    pub aoi_pixels: u64,
}

/// One month of a scan, for summaries.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthSummary {
    /// The month.
    pub month: Month,
    /// Scenes used in it.
    pub scenes: usize,
    /// Counts over AOI pixels.
    pub counts: MonthCounts,
}

/// Progress of a long scan, for a progress bar or log lines. The library never prints.
pub trait Progress: Sync {
    /// Called at each step.
    fn event(&self, event: Event<'_>);
}

/// One progress step.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A stage starts with `total` units of work.
    Stage {
        /// Stage name.
        name: &'a str,
        /// Units of work.
        total: u64,
    },
    /// Units of work done in the current stage.
    Advance(u64),
}

/// Progress that goes nowhere.
pub struct Silent;
impl Progress for Silent {
    fn event(&self, _: Event<'_>) {}
}

/// A scene as used, with the decision that turned its numbers into reflectance. Provenance.
#[derive(Debug, Clone, Serialize)]
pub struct SceneRecord {
    /// STAC item id.
    pub id: String,
    /// Collection.
    pub collection: String,
    /// Acquisition time.
    pub datetime: String,
    /// MGRS tile.
    pub tile: Option<String>,
    /// Scene cloud cover, percent.
    pub cloud_cover: Option<f64>,
    /// Processing baseline.
    pub processing_baseline: Option<String>,
    /// The offset decision.
    pub offset: OffsetDecision,
}

/// The report's provenance member.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    /// Always "compound-watch".
    pub software: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// The site.
    pub aoi: serde_json::Value,
    /// First and last month.
    pub period: serde_json::Value,
    /// The analysis grid.
    pub grid: Grid,
    /// Where scenes came from.
    pub source: String,
    /// Every parameter that shaped a figure.
    pub parameters: serde_json::Value,
    /// Scenes used, in time order.
    pub scenes: Vec<SceneRecord>,
    /// Scenes found but left out, with reasons.
    pub skipped: Vec<Skipped>,
    /// Items replaced by a newer processing of the same tile and date.
    pub superseded: Vec<String>,
    /// Items read without error that hold no data over the AOI.
    pub no_data: Vec<String>,
}

/// Per-pixel detection, kept only for pixels that changed.
#[derive(Debug, Clone)]
struct PixelChange {
    pixel: usize,
    month: usize,
    confidence: f32,
    clear_obs: u32,
    evidence: Vec<u32>,
}

/// What one block of rows yields.
struct BlockResult {
    /// Pixels whose built-up score steps up (kept only where the change stage agrees).
    changes: Vec<PixelChange>,
    /// Pixels whose built-up score steps down (demolition; kept only where the change stage agrees).
    demolitions: Vec<PixelChange>,
    /// Per pixel of the block: the spectral step magnitude, 0 where there is none.
    magnitude: Vec<f32>,
    /// Latest clear composite of red, green, blue, NIR, reflectance x 10000 (0 = never seen).
    latest: [Vec<u16>; 4],
    /// Per month, over the block's AOI pixels.
    months: Vec<MonthCounts>,
}

/// Counts behind one month's figures, over AOI pixels.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MonthCounts {
    /// Pixels with a clear composite.
    pub clear_pixels: u64,
    /// Clear pixels whose built-up score is at or above the threshold.
    pub builtup_pixels: u64,
    /// Histogram of clear observations per AOI pixel (index = observations, the last bin holds
    /// that many or more).
    pub clear_obs_histogram: Vec<u64>,
}

/// Bins of [`MonthCounts::clear_obs_histogram`].
const OBS_BINS: usize = 16;

impl MonthCounts {
    fn add(&mut self, other: &MonthCounts) {
        self.clear_pixels += other.clear_pixels;
        self.builtup_pixels += other.builtup_pixels;
        if self.clear_obs_histogram.is_empty() {
            self.clear_obs_histogram = vec![0; OBS_BINS];
        }
        for (a, b) in self.clear_obs_histogram.iter_mut().zip(&other.clear_obs_histogram) {
            *a += b;
        }
    }

    /// Median clear observations per AOI pixel (the histogram's lower median).
    pub fn clear_obs_median(&self) -> u64 {
        let total: u64 = self.clear_obs_histogram.iter().sum();
        let mut seen = 0;
        for (obs, &n) in self.clear_obs_histogram.iter().enumerate() {
            seen += n;
            if total > 0 && seen * 2 >= total {
                return obs as u64;
            }
        }
        0
    }
}

/// What every per-block computation reads: the configuration, the grid, the cache, and the scenes
/// with their per-scene decisions (offset, mostly clear) and their months.
#[derive(Clone, Copy)]
struct Stack<'a> {
    config: &'a ScanConfig,
    grid: &'a Grid,
    cache: &'a Cache,
    scenes: &'a [Scene],
    decisions: &'a [OffsetDecision],
    mostly_clear: &'a [bool],
    by_month: &'a [Vec<usize>],
}

/// One block's monthly composites (None for a month without scenes) and which scenes saw each
/// pixel clearly (one bit per scene, `words` u64 per pixel).
struct BlockComposites {
    months: Vec<Option<Composite>>,
    seen: Vec<u64>,
    words: usize,
}

fn block_composites(stack: &Stack<'_>, r0: usize, r1: usize) -> Result<BlockComposites> {
    let Stack {
        config,
        grid,
        cache,
        scenes,
        decisions,
        by_month,
        ..
    } = *stack;
    let pixels = (r1 - r0) * grid.width;
    let words = scenes.len().div_ceil(64).max(1);
    let mut seen = vec![0u64; pixels * words];
    let surfaces = if config.persistent_cloud_is_surface {
        persistent_surfaces(stack, r0, r1)?
    } else {
        HashMap::new()
    };
    let mut months = Vec::with_capacity(by_month.len());
    for scene_ids in by_month {
        if scene_ids.is_empty() {
            months.push(None);
            continue;
        }
        let mut refl = Vec::with_capacity(scene_ids.len());
        let mut clear = Vec::with_capacity(scene_ids.len());
        for &s in scene_ids {
            let surface = surfaces.get(&s).map(Vec::as_slice);
            let (r, c) = scene_rows(
                &scenes[s],
                &decisions[s],
                surface,
                grid,
                cache,
                r0,
                r1,
                config.cloud_buffer,
            )?;
            for (p, _) in c.iter().enumerate().filter(|(_, &c)| c) {
                seen[p * words + s / 64] |= 1 << (s % 64);
            }
            refl.push(r);
            clear.push(c);
        }
        let views: Vec<_> = refl.iter().map(|r| r.view()).collect();
        let masks: Vec<_> = clear.iter().map(|c| c.view()).collect();
        months.push(Some(monthly_median(&views, &masks, 6, pixels, config.min_clear_obs)));
    }
    Ok(BlockComposites { months, seen, words })
}

/// The spectral-change normalization, measured on a sample of the AOI: 8 rows in every 64.
fn normalization(stack: &Stack<'_>, aoi_mask: &[bool]) -> Result<Normalization> {
    let grid = stack.grid;
    let strips: Vec<(usize, usize)> = (0..grid.height)
        .step_by(64)
        .map(|r0| (r0, (r0 + 8).min(grid.height)))
        .collect();
    let parts: Vec<Vec<Vec<[f32; 4]>>> = strips
        .par_iter()
        .map(|&(r0, r1)| {
            let block = block_composites(stack, r0, r1)?;
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
    let months = (0..stack.by_month.len())
        .map(|m| parts.iter().flat_map(|part| part[m].iter().copied()).collect())
        .collect::<Vec<Vec<[f32; 4]>>>();
    Ok(Normalization::measure(&months))
}

/// Runs a scan end to end, under the output's lock, and records the attempt in the output's
/// `.compound-watch/attempts.jsonl` whatever its outcome.
///
/// Nothing in `--out` changes unless the whole new set of outputs is published (see
/// [`crate::scan::publish`]); a scan that finds no scene, or can use too few of them, returns
/// [`Error::Refused`] and leaves the previous outputs as they were.
pub fn run(
    config: &ScanConfig,
    search: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    config.check()?;
    let grid = Grid::for_aoi(&config.aoi, 10.0)?;
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
    let result = scan_locked(config, &grid, search, reader, progress);
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
        source: search.describe(),
        outcome: outcome.into(),
        reason,
        scenes_found: counts.0,
        scenes_used: counts.1,
        scenes_skipped: counts.2,
    };
    // A scan that worked is not turned into a failure because its log line could not be written.
    let recorded = state::record_attempt(out, &attempt);
    match result {
        Ok(summary) => Ok(summary),
        Err(e) => {
            recorded?;
            Err(e)
        }
    }
}

/// Why a scan must not replace the outputs: too few scenes to stand behind any figure.
fn refusal(config: &ScanConfig, found: usize, used: usize, skipped: &[Skipped]) -> Option<String> {
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
    if (used as f64) < config.min_used_share * found as f64 {
        return Some(format!(
            "only {used} of the {found} scenes found in {period} could be used ({} skipped), less than \
             --min-used-share {}; the source or the cache is failing",
            skipped.len(),
            config.min_used_share
        ));
    }
    None
}

fn scan_locked(
    config: &ScanConfig,
    grid: &Grid,
    search: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    let grid = grid.clone();
    let inside = config.aoi.bbox();
    let aoi_mask = grid.aoi_mask(&config.aoi)?;
    let cache = Cache::new(&config.cache_dir);
    let _cache_use = cache.share()?;

    progress.event(Event::Stage {
        name: "search",
        total: 1,
    });
    let previous = state::load(&config.out_dir)?;
    let found = if config.offline {
        offline_scenes(config, &grid, previous.as_ref())?
    } else {
        search.search(&SearchQuery {
            bbox: inside,
            geometry: Some(config.aoi.geometry.clone()),
            from: config.from,
            to: config.to,
            max_cloud_cover: config.max_cloud_cover,
        })?
    };
    progress.event(Event::Advance(1));
    let (found_scenes, superseded) = dedupe(found.scenes);
    let scenes_found = found_scenes.len() + found.rejected.len();
    let mut skipped = found.rejected;
    let seen_before: BTreeSet<&str> = previous
        .iter()
        .flat_map(|s| s.scenes.iter().map(|s| s.id.as_str()))
        .collect();
    let scenes_new = found_scenes
        .iter()
        .filter(|s| !seen_before.contains(s.id.as_str()))
        .count();

    // Fetch: every missing band of every scene, a bounded number of scenes at once.
    let fetched = AtomicUsize::new(0);
    let cached = AtomicUsize::new(0);
    progress.event(Event::Stage {
        name: "fetch",
        total: found_scenes.len() as u64,
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.fetch_jobs.max(1))
        .build()
        .map_err(|e| Error::Config {
            field: "--fetch-jobs".into(),
            reason: e.to_string(),
        })?;
    // A scene that cannot be read is skipped; a cache that cannot be written stops the scan (its
    // pixels were read, and skipping it would publish a report without them).
    let outcomes: Vec<std::result::Result<Scene, Skipped>> = pool.install(|| {
        found_scenes
            .par_iter()
            .map(|scene| {
                let result = fetch_scene(scene, &grid, &cache, reader, config.offline, &fetched, &cached);
                progress.event(Event::Advance(1));
                Ok(result?.map(|()| scene.clone()))
            })
            .collect::<Result<_>>()
    })?;
    let mut scenes = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(scene) => scenes.push(scene),
            Err(s) => skipped.push(s),
        }
    }

    // Offsets: one decision per scene, from its own dark pixels.
    progress.event(Event::Stage {
        name: "offsets",
        total: scenes.len() as u64,
    });
    let looks = scenes
        .par_iter()
        .map(|scene| {
            let d = offset_decision(scene, &grid, &cache, config.block_rows.max(256));
            progress.event(Event::Advance(1));
            d
        })
        .collect::<Result<Vec<_>>>()?;
    // A scene with no data over the AOI (outside its swath, or a file placed elsewhere) is not
    // used: it is listed apart, and counts neither as evidence nor as an error.
    let (mut decisions, mut mostly_clear, mut no_data) = (Vec::new(), Vec::new(), Vec::new());
    let mut with_data = Vec::new();
    for (scene, look) in scenes.into_iter().zip(looks) {
        match look {
            Some((decision, clear)) => {
                decisions.push(decision);
                mostly_clear.push(clear);
                with_data.push(scene);
            }
            None => no_data.push(scene.id),
        }
    }
    let scenes = with_data;
    if let Some(reason) = refusal(config, scenes_found, scenes.len(), &skipped) {
        return Err(Error::Refused {
            out: config.out_dir.clone(),
            reason,
            skipped,
        });
    }

    // Compute, block by block.
    let months = config.from.through(config.to);
    let by_month: Vec<Vec<usize>> = months
        .iter()
        .map(|m| {
            scenes
                .iter()
                .enumerate()
                .filter(|(_, s)| s.month() == *m)
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    let blocks: Vec<(usize, usize)> = (0..grid.height)
        .step_by(config.block_rows)
        .map(|r0| (r0, (r0 + config.block_rows).min(grid.height)))
        .collect();
    progress.event(Event::Stage {
        name: "detect",
        total: blocks.len() as u64,
    });
    let stack = Stack {
        config,
        grid: &grid,
        cache: &cache,
        scenes: &scenes,
        decisions: &decisions,
        mostly_clear: &mostly_clear,
        by_month: &by_month,
    };
    let norm = normalization(&stack, &aoi_mask)?;
    let results: Vec<BlockResult> = blocks
        .par_iter()
        .map(|&(r0, r1)| {
            let r = process_block(&stack, &aoi_mask, &norm, r0, r1);
            progress.event(Event::Advance(1));
            r
        })
        .collect::<Result<_>>()?;

    // Assemble and vectorize.
    progress.event(Event::Stage {
        name: "report",
        total: 1,
    });
    let mut latest: [Vec<u16>; 4] = Default::default();
    let mut magnitude = Vec::with_capacity(grid.len());
    let mut month_counts = vec![MonthCounts::default(); months.len()];
    let (mut ups, mut downs) = (Vec::new(), Vec::new());
    for block in results {
        for (i, band) in block.latest.into_iter().enumerate() {
            latest[i].extend(band);
        }
        magnitude.extend(block.magnitude);
        for (total, m) in month_counts.iter_mut().zip(&block.months) {
            total.add(m);
        }
        ups.extend(block.changes);
        downs.extend(block.demolitions);
    }
    // New construction: a step up in built-up score inside a region of significant spectral change;
    // demolition: a step down inside one.
    let changed_region = changed_regions(&magnitude, grid.width, grid.height, &config.detect);
    let min_pixels = (config.min_area_m2 / (grid.res * grid.res)).ceil().max(1.0) as usize;
    let to_wgs84 = Projector::new(grid.epsg, 4326)?;
    let polygons = |steps: &[PixelChange], kind: &str| -> Result<Vec<Detection>> {
        let mut at = vec![usize::MAX; grid.len()];
        for (i, c) in steps.iter().enumerate() {
            at[c.pixel] = i;
        }
        let changed: Vec<bool> = (0..grid.len())
            .map(|p| at[p] != usize::MAX && changed_region[p])
            .collect();
        let mut found = vectorize::regions(&changed, &grid, min_pixels)?
            .iter()
            .map(|region| {
                let pixels: Vec<&PixelChange> = region.pixels.iter().map(|&p| &steps[at[p]]).collect();
                detection(
                    &config.aoi.slug,
                    kind,
                    &grid,
                    region,
                    &pixels,
                    &scenes,
                    &months,
                    &to_wgs84,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        found.sort_by(|a, b| (a.first_detected, &a.id).cmp(&(b.first_detected, &b.id)));
        Ok(found)
    };
    let mut detections = polygons(&ups, "")?;
    let demolished = polygons(&downs, "demolition-")?;

    let records: Vec<SceneRecord> = scenes
        .iter()
        .zip(&decisions)
        .map(|(s, d)| SceneRecord {
            id: s.id.clone(),
            collection: s.collection.clone(),
            datetime: s.datetime.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            tile: s.tile.clone(),
            cloud_cover: s.cloud_cover,
            processing_baseline: s.processing_baseline.clone(),
            offset: d.clone(),
        })
        .collect();
    let provenance = Provenance {
        software: "compound-watch",
        version: env!("CARGO_PKG_VERSION"),
        aoi: serde_json::json!({
            "name": config.aoi.name,
            "slug": config.aoi.slug,
            "origin": config.aoi.origin,
            "bbox": config.aoi.bbox(),
            "area_m2": (config.aoi.area_m2).round(),
            "properties": config.aoi.properties,
        }),
        period: serde_json::json!({ "from": config.from, "to": config.to }),
        grid: grid.clone(),
        source: search.describe(),
        parameters: report::f32_as_written(serde_json::json!({
            "detect": config.detect,
            "max_cloud_cover": config.max_cloud_cover,
            "cloud_buffer_px": config.cloud_buffer,
            "persistent_cloud_is_surface": config.persistent_cloud_is_surface,
            "min_clear_obs": config.min_clear_obs,
            "min_area_m2": config.min_area_m2,
            "composite": "per-pixel monthly median of SCL-clear observations",
            "score": "product of logistic memberships: NDVI<0.45, MNDWI<0.25, blue/red>0.7, visible>0.10",
            "change": "spectral step of blue, green, red, NIR, standardized by the AOI's month-to-month spread, averaged over 5x5 px, hysteresis change_low/change_high",
            "normalization": norm,
        })),
        scenes: records,
        skipped: skipped.clone(),
        superseded,
        no_data: no_data.clone(),
    };
    // Every output is written into a staging folder and published as one set at the end.
    let staging = publish::Staging::begin(&config.out_dir)?;
    let out = |name: &str| config.out_dir.join(name);
    let mut collection = report::feature_collection(&config.aoi.slug, &detections, &provenance)?;
    // The previous report must be read before the new one replaces it: ids continue from it and
    // the diff compares against it. With none, the diff lists every polygon as added.
    let period = provenance.period.clone();
    let (previous, keep) = match state::previous_report(&config.out_dir, &period)? {
        Some(p) => (p.report, p.keep),
        None => (
            geojson::FeatureCollection {
                bbox: None,
                features: Vec::new(),
                foreign_members: None,
            },
            None,
        ),
    };
    if let Some(bytes) = keep {
        atomic::write(&staging.path(state::PREVIOUS_REPORT_FILE), &bytes)?;
    }
    diff::stabilize_ids(&previous, &mut collection);
    // The stable ids are the ids: summaries and quicklooks name polygons as the report does.
    for (d, f) in detections.iter_mut().zip(&collection.features) {
        if let Some(geojson::feature::Id::String(id)) = &f.id {
            d.id.clone_from(id);
        }
    }
    let changes = diff::diff(&previous, &collection);
    let report_path = staging.path("report.geojson");
    report::write_geojson(&report_path, &collection)?;
    // Demolition is never new construction; it goes to its own layer, with the same provenance.
    let demolition_path = staging.path("demolition.geojson");
    let demolition = report::feature_collection(&config.aoi.slug, &demolished, &provenance)?;
    report::write_geojson(&demolition_path, &demolition)?;
    style::write_qml(&demolition_path, &style::report_style(&demolition))?;
    style::write_qml(&report_path, &style::report_style(&collection))?;
    let diff_path = staging.path("diff.geojson");
    report::write_geojson(&diff_path, &changes.collection)?;
    style::write_qml(&diff_path, &style::diff_style())?;
    let aoi_path = staging.path("aoi.geojson");
    report::write_geojson(&aoi_path, &report::aoi_feature_collection(&config.aoi))?;
    style::write_qml(&aoi_path, &style::aoi_style())?;
    let description = format!(
        "compound-watch latest clear composite of {} for {}..{}: each pixel from the most recent month with a clear view; reflectance x 10000",
        config.aoi.name, config.from, config.to
    );
    report::write_cog(
        &staging.path("composite.tif"),
        &report::CogRaster {
            epsg: grid.epsg,
            geo_transform: grid.geo_transform(),
            width: grid.width,
            height: grid.height,
            bands: vec![
                (&latest[0], "red (B04)"),
                (&latest[1], "green (B03)"),
                (&latest[2], "blue (B02)"),
                (&latest[3], "nir (B08)"),
            ],
            rgb: true,
            description: &description,
            metadata: vec![("SCALE_FACTOR", "0.0001".into())],
        },
    )?;
    let month_summaries: Vec<MonthSummary> = months
        .iter()
        .zip(month_counts)
        .zip(&by_month)
        .map(|((&month, counts), ids)| MonthSummary {
            month,
            scenes: ids.len(),
            counts,
        })
        .collect();
    let aoi_pixels = aoi_mask.iter().filter(|&&m| m).count() as u64;
    let site = summary::SiteSummary {
        aoi_name: config.aoi.name.clone(),
        aoi_slug: config.aoi.slug.clone(),
        period: summary::Period {
            from: config.from,
            to: config.to,
        },
        months: month_figures(&month_summaries, aoi_pixels, grid.res),
        report: collection.clone(),
        quicklooks: quicklooks_of(&stack, &detections)?,
        synthetic: scenes.iter().any(|s| s.synthetic),
    };
    summary::write_site(&staging.path(""), &site)?;
    project::write(
        &staging.path("project.qgs"),
        &qgis_project(config, &grid, &collection, &demolition),
    )?;
    atomic::write_json(
        &staging.path(state::STATE_FILE),
        &State {
            version: env!("CARGO_PKG_VERSION").into(),
            aoi: config.aoi.slug.clone(),
            grid: grid.clone(),
            source: search.describe(),
            from: config.from,
            to: config.to,
            scenes: found_scenes,
        },
    )?;
    progress.event(Event::Advance(1));
    progress.event(Event::Stage {
        name: "publish",
        total: staging.len()? as u64,
    });
    staging.publish(&|| progress.event(Event::Advance(1)))?;
    Ok(ScanSummary {
        scenes_new,
        scenes_found,
        scenes_used: scenes.len(),
        windows_fetched: fetched.into_inner(),
        windows_cached: cached.into_inner(),
        skipped,
        no_data,
        months_with_scenes: by_month.iter().filter(|s| !s.is_empty()).count(),
        detections: detections.len(),
        report: out("report.geojson"),
        composite: out("composite.tif"),
        summary_page: out("summary.html"),
        demolitions: demolished.len(),
        demolition: out("demolition.geojson"),
        months: month_summaries,
        aoi_pixels,
        diff: out("diff.geojson"),
        changes: changes.counts,
        project: out("project.qgs"),
    })
}

/// The QGIS project of a scan's outputs, in the grid's UTM CRS and framed on the grid.
fn qgis_project(
    config: &ScanConfig,
    grid: &Grid,
    report: &geojson::FeatureCollection,
    demolition: &geojson::FeatureCollection,
) -> Project {
    let vector = |id: &str, name: &str, style: style::LayerStyle| Layer {
        id: id.into(),
        name: name.into(),
        file: format!("{id}.geojson"),
        epsg: 4326,
        content: Content::Vector(style),
    };
    let (x1, y0) = (
        grid.x0 + grid.width as f64 * grid.res,
        grid.y0 - grid.height as f64 * grid.res,
    );
    Project {
        title: format!("compound-watch: {} {}..{}", config.aoi.name, config.from, config.to),
        epsg: grid.epsg,
        extent: [grid.x0, y0, x1, grid.y0],
        layers: vec![
            vector("aoi", "AOI", style::aoi_style()),
            vector("diff", "change since the previous scan (diff)", style::diff_style()),
            vector("report", "new construction (report)", style::report_style(report)),
            vector(
                "demolition",
                "demolition (reported apart)",
                style::report_style(demolition),
            ),
            Layer {
                id: "composite".into(),
                name: "latest clear composite".into(),
                file: "composite.tif".into(),
                epsg: grid.epsg,
                // Reflectance x 10000: 0.25 white shows land and roofs without saturating most of them.
                content: Content::TrueColour { max: 2500 },
            },
        ],
    }
}

/// A month is a gap in the summary when less than this share of the AOI was seen clearly: its
/// built-up area would be a count over part of the site, not comparable with other months.
pub const GAP_BELOW: f64 = 0.8;

/// How many of the largest new polygons get before/after quicklooks.
pub const QUICKLOOKS: usize = 4;

/// Quicklook stretch: reflectance at or above this is white; a gamma of 1.5 lifts the dark
/// vegetation. One fixed stretch for every chip, before and after alike, so a change of colour
/// is a change on the ground and never an artefact of contrast.
pub const QUICKLOOK_WHITE: f32 = 0.3;

/// Quicklook colour of pixels not seen clearly in the chip's month.
const UNSEEN: [u8; 3] = [128, 128, 128];

/// One quicklook pixel: reflectance to 8 bits with the fixed stretch of [`QUICKLOOK_WHITE`] and a
/// gamma of 1.5; NaN (not seen clearly) is [`UNSEEN`] grey.
fn quicklook_rgb(p: [f32; 3]) -> [u8; 3] {
    if p.iter().any(|v| v.is_nan()) {
        return UNSEEN;
    }
    p.map(|v| ((v / QUICKLOOK_WHITE).clamp(0.0, 1.0).powf(1.0 / 1.5) * 255.0).round() as u8)
}

/// The summary's figures for each month, from the scan's counts.
pub fn month_figures(months: &[MonthSummary], aoi_pixels: u64, res: f64) -> Vec<summary::MonthFigures> {
    let ha_per_pixel = res * res / 10_000.0;
    months
        .iter()
        .map(|m| {
            let clear_fraction = if aoi_pixels == 0 {
                0.0
            } else {
                m.counts.clear_pixels as f64 / aoi_pixels as f64
            };
            let gap = clear_fraction < GAP_BELOW;
            summary::MonthFigures {
                month: m.month,
                scenes: m.scenes,
                clear_fraction,
                clear_obs_median: m.counts.clear_obs_median() as f64,
                gap,
                builtup_ha: (!gap).then_some(m.counts.builtup_pixels as f64 * ha_per_pixel),
            }
        })
        .collect()
}

/// Before/after true-colour chips of the largest new polygons, cut from the monthly composites.
///
/// "Before" is the last month before the polygon's first detection in which at least 95 % of the
/// chip was seen clearly (else the clearest such month); "after" is the last month of the period
/// meeting the same test from the first detection on (the finished state). Both use the fixed
/// stretch of [`QUICKLOOK_WHITE`]; pixels not seen clearly that month are grey.
fn quicklooks_of(stack: &Stack<'_>, detections: &[Detection]) -> Result<Vec<summary::Quicklook>> {
    let (config, grid) = (stack.config, stack.grid);
    let months = config.from.through(config.to);
    let to_grid = Projector::new(4326, grid.epsg)?;
    let mut largest: Vec<&Detection> = detections.iter().collect();
    largest.sort_by(|a, b| b.area_m2.total_cmp(&a.area_m2).then(a.id.cmp(&b.id)));
    let mut out = Vec::new();
    for d in largest.into_iter().take(QUICKLOOKS) {
        let ring: Vec<(f64, f64)> = d
            .outline
            .exterior()
            .coords()
            .map(|c| {
                to_grid
                    .coord(*c)
                    .map(|g| ((g.x - grid.x0) / grid.res, (grid.y0 - g.y) / grid.res))
            })
            .collect::<Result<_>>()?;
        let (min_c, max_c) = ring
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
        let (min_r, max_r) = ring
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
        let pad = ((max_c - min_c).max(max_r - min_r) * 0.5).max(8.0);
        let c0 = (min_c - pad).floor().max(0.0) as usize;
        let c1 = ((max_c + pad).ceil() as usize).min(grid.width);
        let r0 = (min_r - pad).floor().max(0.0) as usize;
        let r1 = ((max_r + pad).ceil() as usize).min(grid.height);
        if c1 <= c0 || r1 <= r0 {
            continue;
        }
        let block = block_composites(stack, r0, r1)?;
        let (w, h) = (c1 - c0, r1 - r0);
        let clear_share = |m: usize| -> f64 {
            block.months[m].as_ref().map_or(0.0, |comp| {
                let seen = (0..h)
                    .flat_map(|r| (c0..c1).map(move |c| r * grid.width + c))
                    .filter(|&p| !comp.bands[(0, p)].is_nan())
                    .count();
                seen as f64 / (w * h) as f64
            })
        };
        let Some(first) = months.iter().position(|&m| m == d.first_detected) else {
            continue;
        };
        let pick = |range: std::ops::Range<usize>| -> Option<usize> {
            let shares: Vec<(usize, f64)> = range.map(|m| (m, clear_share(m))).filter(|(_, s)| *s > 0.0).collect();
            shares
                .iter()
                .rev()
                .find(|(_, s)| *s >= 0.95)
                .or_else(|| shares.iter().max_by(|a, b| a.1.total_cmp(&b.1)))
                .map(|(m, _)| *m)
        };
        let (Some(before), Some(after)) = (pick(0..first), pick(first..months.len())) else {
            continue;
        };
        let rgb = |m: usize| -> Vec<[f32; 3]> {
            let comp = block.months[m].as_ref().expect("picked months have composites");
            (0..h)
                .flat_map(|r| (c0..c1).map(move |c| r * grid.width + c))
                .map(|p| [comp.bands[(2, p)], comp.bands[(1, p)], comp.bands[(0, p)]])
                .collect()
        };
        let image_of = |px: &[[f32; 3]]| {
            image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
                image::Rgb(quicklook_rgb(px[y as usize * w + x as usize]))
            })
        };
        out.push(summary::Quicklook {
            id: d.id.clone(),
            area_ha: d.area_m2 / 10_000.0,
            first_detected: d.first_detected,
            before_month: months[before],
            after_month: months[after],
            before: image_of(&rgb(before)),
            after: image_of(&rgb(after)),
            outline: ring.iter().map(|&(c, r)| (c - c0 as f64, r - r0 as f64)).collect(),
        });
    }
    Ok(out)
}

/// The scenes of the previous scan in this output that fall in the period, for `--offline`.
fn offline_scenes(config: &ScanConfig, grid: &Grid, previous: Option<&State>) -> Result<Found> {
    let state = previous.ok_or_else(|| Error::Config {
        field: "--offline".into(),
        reason: format!(
            "{} holds no earlier scan to rerun; run once without --offline to search the source",
            config.out_dir.display()
        ),
    })?;
    if state.grid != *grid {
        return Err(Error::Config {
            field: "--offline".into(),
            reason: format!(
                "the earlier scan in {} was of another AOI ({})",
                config.out_dir.display(),
                state.aoi
            ),
        });
    }
    let scenes = state
        .scenes
        .iter()
        .filter(|s| (config.from..=config.to).contains(&s.month()))
        .cloned()
        .collect();
    Ok(Found {
        scenes,
        rejected: Vec::new(),
    })
}

/// Reads every band of a scene that the cache lacks into the cache. The outer error stops the scan
/// (the cache cannot be written); the inner one skips the scene (it cannot be read).
fn fetch_scene(
    scene: &Scene,
    grid: &Grid,
    cache: &Cache,
    reader: &dyn WindowReader,
    offline: bool,
    fetched: &AtomicUsize,
    cached: &AtomicUsize,
) -> Result<std::result::Result<(), Skipped>> {
    let skip = |reason: String| {
        Ok(Err(Skipped {
            id: scene.id.clone(),
            reason,
        }))
    };
    for band in Band::ALL {
        let entry = cache.entry(scene, band, grid);
        if cache.holds(&entry, scene, band, grid) {
            cached.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if offline {
            return skip(format!(
                "{} is not in the cache and --offline forbids reading it",
                band.asset_key()
            ));
        }
        let href = &scene.hrefs[&band];
        let data = match reader.read(href, band, grid) {
            Ok(data) => data,
            Err(e) => return skip(format!("{}: {e}", band.asset_key())),
        };
        if let Some(epsg) = scene.epsg.filter(|_| data.epsg.is_some_and(|e| Some(e) != scene.epsg)) {
            return skip(format!(
                "{}: the file is in EPSG:{}, but the item says proj:epsg {epsg}; the item or the file is \
                 wrong, so its pixels cannot be placed with confidence",
                band.asset_key(),
                data.epsg.unwrap_or_default()
            ));
        }
        cache.store(&entry, scene, band, grid, &data.values)?;
        fetched.fetch_add(1, Ordering::Relaxed);
    }
    Ok(Ok(()))
}

/// A scene's offset decision, and whether it is mostly clear (rule 4 of [`crate::detect::mask`]); None
/// when the scene has no data over the grid.
fn offset_decision(
    scene: &Scene,
    grid: &Grid,
    cache: &Cache,
    rows_per_read: usize,
) -> Result<Option<(OffsetDecision, bool)>> {
    let mut hist = DarkHistogram::default();
    let scl = cache.entry(scene, Band::Scl, grid);
    let (mut seen, mut cloudy) = (0u64, 0u64);
    for r0 in (0..grid.height).step_by(rows_per_read) {
        let rows = r0..(r0 + rows_per_read).min(grid.height);
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

/// Rule 4 of [`crate::detect::mask`] over rows `r0..r1` and their halo: for each scene with pixels whose
/// cloud flag is a persistent bright surface, those pixels (over the halo rows).
fn persistent_surfaces(stack: &Stack<'_>, r0: usize, r1: usize) -> Result<HashMap<usize, Vec<bool>>> {
    let Stack {
        config,
        grid,
        cache,
        scenes,
        mostly_clear,
        by_month,
        ..
    } = *stack;
    let halo = config.cloud_buffer;
    let (h0, h1) = (r0.saturating_sub(halo), (r1 + halo).min(grid.height));
    let mut order: Vec<usize> = by_month
        .iter()
        .flatten()
        .copied()
        .filter(|&s| mostly_clear[s])
        .collect();
    order.sort_by(|&a, &b| (scenes[a].datetime, &scenes[a].id).cmp(&(scenes[b].datetime, &scenes[b].id)));
    let cloud: Vec<Vec<bool>> = order
        .iter()
        .map(|&s| {
            Ok(
                Cache::read_rows(&cache.entry(&scenes[s], Band::Scl, grid), grid, h0..h1)?
                    .into_iter()
                    .map(scl_is_cloud)
                    .collect(),
            )
        })
        .collect::<Result<_>>()?;
    let pixels = (h1 - h0) * grid.width;
    let mut flags = Vec::with_capacity(order.len());
    let onsets: Vec<Option<usize>> = (0..pixels)
        .map(|p| {
            flags.clear();
            flags.extend(cloud.iter().map(|c| c[p]));
            persistent_cloud_onset(&flags)
        })
        .collect();
    let mut surfaces = HashMap::new();
    for (rank, &s) in order.iter().enumerate() {
        let surface: Vec<bool> = (0..pixels)
            .map(|p| cloud[rank][p] && onsets[p].is_some_and(|o| o <= rank))
            .collect();
        if surface.iter().any(|&x| x) {
            surfaces.insert(s, surface);
        }
    }
    Ok(surfaces)
}

/// One scene's rows: reflectance (6 bands x pixels) and clear mask, both over `r0..r1` only.
/// `surface` (over the halo rows) marks cloud flags that rule 4 of [`crate::detect::mask`] overrides.
#[allow(clippy::too_many_arguments)]
fn scene_rows(
    scene: &Scene,
    decision: &OffsetDecision,
    surface: Option<&[bool]>,
    grid: &Grid,
    cache: &Cache,
    r0: usize,
    r1: usize,
    halo: usize,
) -> Result<(Array2<f32>, Array1<bool>)> {
    let (h0, h1) = (r0.saturating_sub(halo), (r1 + halo).min(grid.height));
    let read = |band: Band| Cache::read_rows(&cache.entry(scene, band, grid), grid, h0..h1);
    let mut scl = read(Band::Scl)?;
    if let Some(surface) = surface {
        // A bright surface mistaken for cloud: "not vegetated", so it is clear and grows no buffer.
        scl.iter_mut()
            .zip(surface)
            .filter(|(_, &s)| s)
            .for_each(|(v, _)| *v = 5);
    }
    let scl = Array2::from_shape_vec((h1 - h0, grid.width), scl).expect("rows x width");
    let dns: Vec<Vec<u16>> = Band::REFLECTANCE.iter().map(|&b| read(b)).collect::<Result<_>>()?;
    let valid = Array2::from_shape_fn((h1 - h0, grid.width), |(r, c)| {
        dns.iter().all(|d| d[r * grid.width + c] != 0)
    });
    let clear = clear_mask(scl.view(), valid.view(), halo);
    let (start, end) = ((r0 - h0) * grid.width, (r1 - h0) * grid.width);
    let pixels = end - start;
    let mut refl = Array2::zeros((6, pixels));
    for (b, d) in dns.iter().enumerate() {
        for (p, &dn) in d[start..end].iter().enumerate() {
            refl[(b, p)] = reflectance(dn, decision.subtract_dn);
        }
    }
    let clear = Array1::from_iter(clear.iter().skip(start).take(pixels).copied());
    Ok((refl, clear))
}

fn process_block(
    stack: &Stack<'_>,
    aoi_mask: &[bool],
    norm: &Normalization,
    r0: usize,
    r1: usize,
) -> Result<BlockResult> {
    let (config, grid, by_month) = (stack.config, stack.grid, stack.by_month);
    let pixels = (r1 - r0) * grid.width;
    let n_months = by_month.len();
    let BlockComposites { months, seen, words } = block_composites(stack, r0, r1)?;
    let mut score = Array2::from_elem((n_months, pixels), f32::NAN);
    let mut spectra = vec![[f32::NAN; 4]; n_months * pixels];
    let mut clear_obs = vec![0u32; pixels];
    let mut latest: [Vec<u16>; 4] = std::array::from_fn(|_| vec![0u16; pixels]);
    let mut counts = vec![MonthCounts::default(); n_months];
    for (m, comp) in months.iter().enumerate() {
        counts[m].clear_obs_histogram = vec![0; OBS_BINS];
        let Some(comp) = comp else {
            counts[m].clear_obs_histogram[0] = (0..pixels).filter(|&p| aoi_mask[r0 * grid.width + p]).count() as u64;
            continue;
        };
        let month_scores = scores(comp.bands.view());
        for p in 0..pixels {
            let inside = aoi_mask[r0 * grid.width + p];
            clear_obs[p] += comp.clear_obs[p] as u32;
            if inside {
                counts[m].clear_obs_histogram[(comp.clear_obs[p] as usize).min(OBS_BINS - 1)] += 1;
            }
            if month_scores[p].is_nan() {
                continue;
            }
            if inside {
                counts[m].clear_pixels += 1;
                counts[m].builtup_pixels += (month_scores[p] >= config.detect.threshold) as u64;
            }
            score[(m, p)] = month_scores[p];
            let b = comp.bands.index_axis(Axis(1), p);
            spectra[p * n_months + m] = BANDS.map(|band| b[band]);
            for (i, band) in [2, 1, 0, 3].into_iter().enumerate() {
                latest[i][p] = (b[band] * 10_000.0).round().clamp(1.0, 65_535.0) as u16;
            }
        }
    }
    let mut changes = Vec::new();
    let mut demolitions = Vec::new();
    let mut magnitude = vec![0f32; pixels];
    let mut series = vec![0f32; n_months];
    let mut inverted = vec![0f32; n_months];
    for p in 0..pixels {
        let pixel = r0 * grid.width + p;
        if !aoi_mask[pixel] {
            continue;
        }
        if let Some(s) = spectral_step(&spectra[p * n_months..(p + 1) * n_months], norm, &config.detect) {
            magnitude[p] = s.magnitude;
        }
        series.iter_mut().zip(score.column(p)).for_each(|(s, &v)| *s = v);
        let up = step(&series, &config.detect);
        // Demolition: the same step on the inverted score (a built surface becoming bare).
        let down = if up.is_none() {
            inverted.iter_mut().zip(&series).for_each(|(i, &v)| *i = 1.0 - v);
            step(&inverted, &config.detect)
        } else {
            None
        };
        for (st, list) in [(up, &mut changes), (down, &mut demolitions)] {
            let Some(st) = st else {
                continue;
            };
            // Evidence: the clear months just before, at and just after the step.
            let clear_months: Vec<usize> = (0..n_months).filter(|&m| !series[m].is_nan()).collect();
            let at = clear_months
                .iter()
                .position(|&m| m == st.index)
                .expect("the step is at a clear month");
            let evidence_months: BTreeSet<usize> = clear_months[at.saturating_sub(1)..(at + 2).min(clear_months.len())]
                .iter()
                .copied()
                .collect();
            let evidence = evidence_months
                .iter()
                .flat_map(|&m| by_month[m].iter().copied())
                .filter(|&s| seen[p * words + s / 64] & (1 << (s % 64)) != 0)
                .map(|s| s as u32)
                .collect();
            list.push(PixelChange {
                pixel,
                month: st.index,
                confidence: st.confidence,
                clear_obs: clear_obs[p],
                evidence,
            });
        }
    }
    Ok(BlockResult {
        changes,
        demolitions,
        magnitude,
        latest,
        months: counts,
    })
}

#[allow(clippy::too_many_arguments)]
fn detection(
    slug: &str,
    kind: &str,
    grid: &Grid,
    region: &vectorize::Region,
    pixels: &[&PixelChange],
    scenes: &[Scene],
    months: &[Month],
    to_wgs84: &Projector,
) -> Result<Detection> {
    let mut month_idx: Vec<usize> = pixels.iter().map(|p| p.month).collect();
    month_idx.sort_unstable();
    // The lower median: a region is dated when at least half of it has changed.
    let first = month_idx[(month_idx.len() - 1) / 2];
    let confidence = pixels.iter().map(|p| p.confidence as f64).sum::<f64>() / pixels.len() as f64;
    let mut obs: Vec<f32> = pixels.iter().map(|p| p.clear_obs as f32).collect();
    let n_clear_obs = median(&mut obs).round() as u32;
    let evidence: BTreeSet<u32> = pixels.iter().flat_map(|p| p.evidence.iter().copied()).collect();
    let mut evidence: Vec<&Scene> = evidence.into_iter().map(|s| &scenes[s as usize]).collect();
    evidence.sort_by(|a, b| (a.datetime, &a.id).cmp(&(b.datetime, &b.id)));
    let first_pixel = region.pixels[0];
    let outline = report::wgs84_outline(&region.outline, to_wgs84)?;
    Ok(Detection {
        id: format!(
            "{slug}-{kind}r{:05}c{:05}",
            first_pixel / grid.width,
            first_pixel % grid.width
        ),
        area_m2: report::area_m2(&outline),
        outline,
        first_detected: months[first],
        confidence,
        n_clear_obs,
        scenes: evidence.into_iter().map(|s| s.id.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quicklook_stretch_is_fixed_white_at_quicklook_white_with_gamma_1_5() {
        assert_eq!(QUICKLOOK_WHITE, 0.3);
        // Black, white at 0.3 and above (clipped), negative reflectance clipped to black.
        assert_eq!(quicklook_rgb([0.0, 0.3, 0.9]), [0, 255, 255]);
        assert_eq!(quicklook_rgb([-0.01, 0.0, 0.0]), [0, 0, 0]);
        // Gamma 1.5 lifts the dark: an eighth of white is a quarter of 255 (0.125^(1/1.5) = 0.25),
        // a linear stretch would give 32.
        assert_eq!(quicklook_rgb([0.0375, 0.0375, 0.0375]), [64, 64, 64]);
        // 0.15 (half of white): 0.5^(2/3) = 0.63 -> 161.
        assert_eq!(quicklook_rgb([0.15, 0.0, 0.0])[0], 161);
        // Not seen clearly: grey, whatever the other bands hold.
        assert_eq!(quicklook_rgb([f32::NAN, 0.1, 0.1]), UNSEEN);
    }
}

//! The scan: runs the stages in order for one AOI and period, and writes the outputs.
//!
//! Fetch, then compute. First every missing scene band is read through the [`WindowReader`] into
//! the cache, scenes in parallel. Then the grid is processed in blocks of rows, in parallel, each
//! block reading only its rows of the cached windows: memory grows with the block, not the AOI.
//! Partial failure is data: a scene that cannot be read is skipped and listed, never fatal.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;
use serde::Serialize;

use crate::aoi::Aoi;
use crate::cache::Cache;
use crate::composite::{median, monthly_median};
use crate::detect::{scores, step, DetectParams};
use crate::diff;
use crate::error::{Error, Result};
use crate::grid::{Grid, Projector};
use crate::mask::{clear_mask, scl_is_clear};
use crate::month::Month;
use crate::project::{self, Content, Layer, Project};
use crate::reflectance::{decide_offset, reflectance, DarkHistogram, OffsetDecision};
use crate::report::{self, Detection};
use crate::source::{dedupe, Band, Found, Scene, SceneSearch, SearchQuery, Skipped};
use crate::state::{self, State};
use crate::style;
use crate::vectorize;
use crate::window::WindowReader;

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
}

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
        }
    }

    fn check(&self) -> Result<()> {
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
        Ok(())
    }
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
    changes: Vec<PixelChange>,
    /// Latest clear composite of red, green, blue, NIR, reflectance x 10000 (0 = never seen).
    latest: [Vec<u16>; 4],
}

/// Runs a scan end to end.
pub fn run(
    config: &ScanConfig,
    search: &dyn SceneSearch,
    reader: &dyn WindowReader,
    progress: &dyn Progress,
) -> Result<ScanSummary> {
    config.check()?;
    let grid = Grid::for_aoi(&config.aoi, 10.0)?;
    let inside = config.aoi.bbox();
    let aoi_mask = grid.aoi_mask(&config.aoi)?;
    let cache = Cache::new(&config.cache_dir);

    progress.event(Event::Stage {
        name: "search",
        total: 1,
    });
    std::fs::create_dir_all(&config.out_dir).map_err(Error::io(&config.out_dir))?;
    let _lock = state::lock(&config.out_dir)?;
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
    let outcomes: Vec<std::result::Result<Scene, Skipped>> = pool.install(|| {
        found_scenes
            .par_iter()
            .map(|scene| {
                let result = fetch_scene(scene, &grid, &cache, reader, config.offline, &fetched, &cached);
                progress.event(Event::Advance(1));
                result.map(|()| scene.clone()).map_err(|e| Skipped {
                    id: scene.id.clone(),
                    reason: e.to_string(),
                })
            })
            .collect()
    });
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
    let decisions: Vec<OffsetDecision> = scenes
        .par_iter()
        .map(|scene| {
            let d = offset_decision(scene, &grid, &cache, config.block_rows.max(256));
            progress.event(Event::Advance(1));
            d
        })
        .collect::<Result<_>>()?;

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
    let results: Vec<BlockResult> = blocks
        .par_iter()
        .map(|&(r0, r1)| {
            let r = process_block(config, &grid, &cache, &scenes, &decisions, &by_month, &aoi_mask, r0, r1);
            progress.event(Event::Advance(1));
            r
        })
        .collect::<Result<_>>()?;

    // Assemble and vectorize.
    progress.event(Event::Stage {
        name: "report",
        total: 1,
    });
    let mut changed = vec![false; grid.len()];
    let mut change_at = vec![usize::MAX; grid.len()];
    let mut changes = Vec::new();
    let mut latest: [Vec<u16>; 4] = Default::default();
    for block in results {
        for (i, band) in block.latest.into_iter().enumerate() {
            latest[i].extend(band);
        }
        for c in block.changes {
            changed[c.pixel] = true;
            change_at[c.pixel] = changes.len();
            changes.push(c);
        }
    }
    let min_pixels = (config.min_area_m2 / (grid.res * grid.res)).ceil().max(1.0) as usize;
    let regions = vectorize::regions(&changed, &grid, min_pixels)?;
    let to_wgs84 = Projector::new(grid.epsg, 4326)?;
    let mut detections = regions
        .iter()
        .map(|region| {
            let pixels: Vec<&PixelChange> = region.pixels.iter().map(|&p| &changes[change_at[p]]).collect();
            detection(&config.aoi.slug, &grid, region, &pixels, &scenes, &months, &to_wgs84)
        })
        .collect::<Result<Vec<_>>>()?;
    detections.sort_by(|a, b| (a.first_detected, &a.id).cmp(&(b.first_detected, &b.id)));

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
        parameters: serde_json::json!({
            "detect": config.detect,
            "max_cloud_cover": config.max_cloud_cover,
            "cloud_buffer_px": config.cloud_buffer,
            "min_clear_obs": config.min_clear_obs,
            "min_area_m2": config.min_area_m2,
            "composite": "per-pixel monthly median of SCL-clear observations",
            "score": "product of logistic memberships: NDVI<0.45, MNDWI<0.25, blue/red>0.7, visible>0.10",
        }),
        scenes: records,
        skipped: skipped.clone(),
        superseded,
    };
    let report_path = config.out_dir.join("report.geojson");
    let mut collection = report::feature_collection(&config.aoi.slug, &detections, &provenance)?;
    // The previous report must be read before the new one replaces it: ids continue from it and
    // the diff compares against it. With none, the diff lists every polygon as added.
    let period = provenance.period.clone();
    let previous = state::previous_report(&config.out_dir, &period)?.unwrap_or(geojson::FeatureCollection {
        bbox: None,
        features: Vec::new(),
        foreign_members: None,
    });
    diff::stabilize_ids(&previous, &mut collection);
    let changes = diff::diff(&previous, &collection);
    report::write_geojson(&report_path, &collection)?;
    style::write_qml(&report_path, &style::report_style(&collection))?;
    let diff_path = config.out_dir.join("diff.geojson");
    report::write_geojson(&diff_path, &changes.collection)?;
    style::write_qml(&diff_path, &style::diff_style())?;
    let aoi_path = config.out_dir.join("aoi.geojson");
    report::write_geojson(&aoi_path, &report::aoi_feature_collection(&config.aoi))?;
    style::write_qml(&aoi_path, &style::aoi_style())?;
    let composite_path = config.out_dir.join("composite.tif");
    let description = format!(
        "compound-watch latest clear composite of {} for {}..{}: each pixel from the most recent month with a clear view; reflectance x 10000",
        config.aoi.name, config.from, config.to
    );
    report::write_cog(
        &composite_path,
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
    let project_path = config.out_dir.join("project.qgs");
    project::write(&project_path, &qgis_project(config, &grid, &collection))?;
    progress.event(Event::Advance(1));
    state::save(
        &config.out_dir,
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
    Ok(ScanSummary {
        scenes_new,
        scenes_found,
        scenes_used: scenes.len(),
        windows_fetched: fetched.into_inner(),
        windows_cached: cached.into_inner(),
        skipped,
        months_with_scenes: by_month.iter().filter(|s| !s.is_empty()).count(),
        detections: detections.len(),
        report: report_path,
        composite: composite_path,
        diff: diff_path,
        changes: changes.counts,
        project: project_path,
    })
}

/// The QGIS project of a scan's outputs, in the grid's UTM CRS and framed on the grid.
fn qgis_project(config: &ScanConfig, grid: &Grid, report: &geojson::FeatureCollection) -> Project {
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

fn fetch_scene(
    scene: &Scene,
    grid: &Grid,
    cache: &Cache,
    reader: &dyn WindowReader,
    offline: bool,
    fetched: &AtomicUsize,
    cached: &AtomicUsize,
) -> Result<()> {
    for band in Band::ALL {
        let entry = cache.entry(scene, band, grid);
        if entry.is_file() {
            cached.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if offline {
            return Err(Error::Scene {
                id: scene.id.clone(),
                reason: format!(
                    "{} is not in the cache and --offline forbids reading it",
                    band.asset_key()
                ),
            });
        }
        let href = &scene.hrefs[&band];
        let data = reader.read(href, band, grid).map_err(|e| Error::Scene {
            id: scene.id.clone(),
            reason: format!("{}: {e}", band.asset_key()),
        })?;
        cache.store(&entry, grid, &data)?;
        fetched.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn offset_decision(scene: &Scene, grid: &Grid, cache: &Cache, rows_per_read: usize) -> Result<OffsetDecision> {
    let mut hist = DarkHistogram::default();
    let scl = cache.entry(scene, Band::Scl, grid);
    for r0 in (0..grid.height).step_by(rows_per_read) {
        let rows = r0..(r0 + rows_per_read).min(grid.height);
        let clear: Vec<bool> = Cache::read_rows(&scl, grid, rows.clone())?
            .into_iter()
            .map(scl_is_clear)
            .collect();
        for band in [Band::Nir, Band::Swir16, Band::Swir22] {
            hist.add(
                &Cache::read_rows(&cache.entry(scene, band, grid), grid, rows.clone())?,
                &clear,
            );
        }
    }
    Ok(decide_offset(scene, hist.finish()))
}

/// One scene's rows: reflectance (6 bands x pixels) and clear mask, both over `r0..r1` only.
fn scene_rows(
    scene: &Scene,
    decision: &OffsetDecision,
    grid: &Grid,
    cache: &Cache,
    r0: usize,
    r1: usize,
    halo: usize,
) -> Result<(Array2<f32>, Array1<bool>)> {
    let (h0, h1) = (r0.saturating_sub(halo), (r1 + halo).min(grid.height));
    let read = |band: Band| Cache::read_rows(&cache.entry(scene, band, grid), grid, h0..h1);
    let scl = Array2::from_shape_vec((h1 - h0, grid.width), read(Band::Scl)?).expect("rows x width");
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

#[allow(clippy::too_many_arguments)]
fn process_block(
    config: &ScanConfig,
    grid: &Grid,
    cache: &Cache,
    scenes: &[Scene],
    decisions: &[OffsetDecision],
    by_month: &[Vec<usize>],
    aoi_mask: &[bool],
    r0: usize,
    r1: usize,
) -> Result<BlockResult> {
    let pixels = (r1 - r0) * grid.width;
    let months = by_month.len();
    let mut score = Array2::from_elem((months, pixels), f32::NAN);
    let mut clear_obs = vec![0u32; pixels];
    let mut latest: [Vec<u16>; 4] = std::array::from_fn(|_| vec![0u16; pixels]);
    // Which scenes saw each pixel clearly: one bit per scene, kept only for this block.
    let words = scenes.len().div_ceil(64).max(1);
    let mut seen = vec![0u64; pixels * words];
    for (m, scene_ids) in by_month.iter().enumerate() {
        if scene_ids.is_empty() {
            continue;
        }
        let mut refl = Vec::with_capacity(scene_ids.len());
        let mut clear = Vec::with_capacity(scene_ids.len());
        for &s in scene_ids {
            let (r, c) = scene_rows(&scenes[s], &decisions[s], grid, cache, r0, r1, config.cloud_buffer)?;
            for (p, _) in c.iter().enumerate().filter(|(_, &c)| c) {
                seen[p * words + s / 64] |= 1 << (s % 64);
            }
            refl.push(r);
            clear.push(c);
        }
        let views: Vec<_> = refl.iter().map(|r| r.view()).collect();
        let masks: Vec<_> = clear.iter().map(|c| c.view()).collect();
        let comp = monthly_median(&views, &masks, 6, pixels, config.min_clear_obs);
        let month_scores = scores(comp.bands.view());
        for p in 0..pixels {
            clear_obs[p] += comp.clear_obs[p] as u32;
            if month_scores[p].is_nan() {
                continue;
            }
            score[(m, p)] = month_scores[p];
            let b = comp.bands.index_axis(Axis(1), p);
            for (i, band) in [2, 1, 0, 3].into_iter().enumerate() {
                latest[i][p] = (b[band] * 10_000.0).round().clamp(1.0, 65_535.0) as u16;
            }
        }
    }
    let mut changes = Vec::new();
    let mut series = vec![0f32; months];
    for p in 0..pixels {
        let pixel = r0 * grid.width + p;
        if !aoi_mask[pixel] {
            continue;
        }
        series.iter_mut().zip(score.column(p)).for_each(|(s, &v)| *s = v);
        let Some(st) = step(&series, &config.detect) else {
            continue;
        };
        // Evidence: the clear months just before, at and just after the step.
        let clear_months: Vec<usize> = (0..months).filter(|&m| !series[m].is_nan()).collect();
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
        changes.push(PixelChange {
            pixel,
            month: st.index,
            confidence: st.confidence,
            clear_obs: clear_obs[p],
            evidence,
        });
    }
    Ok(BlockResult { changes, latest })
}

fn detection(
    slug: &str,
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
            "{slug}-r{:05}c{:05}",
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

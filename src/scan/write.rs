//! Stage 6, write: every output of a scan, into the staging folder that [`crate::scan::publish`]
//! then swaps in as one set. The report's ids continue from the previous report, which is read
//! before anything replaces it; the diff compares against it.

use rayon::prelude::*;

use crate::detect::composite::monthly_median;
use crate::detect::kernel::{Recent, RECENT_MONTHS, REFLECTANCE_BANDS, TRUE_COLOUR};
use crate::error::Result;
use crate::grid::{Grid, Projector};
use crate::io::atomic;
use crate::io::source::Scene;
use crate::output::diff;
use crate::output::months::{self, MonthStack};
use crate::output::provenance::Provenance;
use crate::output::qgis::{project, style};
use crate::output::report::{self, Detection};
use crate::output::stac_item;
use crate::output::summary::{self, Chip, LocationMap, MonthFigures, Quicklook};
use crate::output::vector::{self, Format};
use crate::scan::assemble::Assembled;
use crate::scan::blocks::{self, SceneSet};
use crate::scan::publish::Staging;
use crate::scan::state::{self, State};

/// Pixels of margin around a quicklook's polygon at least, and as a share of its size.
const CHIP_MIN_PAD: f64 = 8.0;
const CHIP_PAD_SHARE: f64 = 0.5;

/// What the written set holds, for the scan's summary.
#[derive(Debug, Clone)]
pub(crate) struct Written {
    /// Polygons of each kind in the diff.
    pub(crate) changes: diff::Counts,
    /// The summary's months, as `summary.json` has them.
    pub(crate) months: Vec<MonthFigures>,
}

/// Everything the outputs are made from.
pub(crate) struct Outputs<'a> {
    pub(crate) set: SceneSet<'a>,
    pub(crate) provenance: &'a Provenance,
    pub(crate) assembled: &'a mut Assembled,
    /// Per month of the period, as measured (nothing derived from the report yet).
    pub(crate) months: Vec<MonthFigures>,
    /// Every scene found, for the next `--offline` run.
    pub(crate) found: &'a [Scene],
    /// The item documents the search was served, kept as the record of what the scan was told.
    pub(crate) items: &'a [serde_json::Value],
    /// The monthly composites, filled by the detect stage, to be finished as COGs.
    pub(crate) month_stack: Option<MonthStack>,
}

/// Writes the whole set into `staging`.
pub(crate) fn write(staging: &Staging, mut o: Outputs<'_>) -> Result<Written> {
    let config = o.set.config;
    let (out, slug) = (&config.out_dir, &config.aoi.slug);
    let mut collection = report::feature_collection(slug, &o.assembled.construction, o.provenance)?;
    report::add_below_unit(&mut collection, &o.assembled.below_unit, config.min_area_m2);
    // With no previous report, the diff lists every polygon as added.
    let (previous, keep, first_scan) = match state::previous_report(out, &o.provenance.period)? {
        Some(p) => (p.report, p.keep, false),
        None => (empty_collection(), None, true),
    };
    if let Some(bytes) = keep {
        atomic::write(&staging.path(state::PREVIOUS_REPORT_FILE), &bytes)?;
    }
    diff::stabilize_ids(&previous, &mut collection);
    // The stable ids are the ids: summaries and quicklooks name polygons as the report does.
    for (d, f) in o.assembled.construction.iter_mut().zip(&collection.features) {
        if let Some(geojson::feature::Id::String(id)) = &f.id {
            d.id.clone_from(id);
        }
    }
    let changes = diff::diff(&previous, &collection);
    let demolition = report::feature_collection(slug, &o.assembled.demolition, o.provenance)?;
    write_layers(staging, &collection, &demolition, &changes.collection, config)?;
    // The COGs go through GDAL on one thread while the quicklooks' windows are composited.
    let month_stack = o.month_stack.take();
    let (composite, quicklooks) = rayon::join(
        || {
            write_composite(staging, o.set.grid, &o.assembled.recent, config)?;
            month_stack.map_or(Ok(Vec::new()), |m| m.finish(&config.aoi.name))
        },
        || quicklooks(&o.set, &o.assembled.construction),
    );
    let month_files = composite?;
    let site = summary::SiteSummary {
        aoi_name: config.aoi.name.clone(),
        aoi_slug: slug.clone(),
        period: o.provenance.period,
        months: o.months,
        report: collection.clone(),
        quicklooks: quicklooks?,
        location: Some(location_map(o.set.grid, &config.aoi, o.assembled)?),
        // The day only: a rerun the same day writes the same pages.
        generated: chrono::Utc::now().date_naive(),
        synthetic: o.set.scenes.iter().any(|s| s.synthetic),
    };
    let figures = summary::figures(&site)?;
    summary::write_figures(&staging.path(""), &site, &figures)?;
    let title = format!("compound-watch: {} {}..{}", config.aoi.name, config.from, config.to);
    project::write(
        &staging.path("project.qgs"),
        &project::of_scan(
            title,
            o.set.grid,
            &o.provenance.period,
            &collection,
            &demolition,
            first_scan,
            !month_files.is_empty(),
        ),
    )?;
    atomic::write_json(&staging.path(state::ITEMS_FILE), &state::item_collection(o.items))?;
    atomic::write_json(&staging.path(state::AOI_FILE), &config.aoi.to_record())?;
    write_formats(staging, &collection, &changes.collection, &config.formats)?;
    write_stac_item(staging, config, o.items, !month_files.is_empty())?;
    atomic::write_json(
        &staging.path(state::STATE_FILE),
        &State {
            version: env!("CARGO_PKG_VERSION").into(),
            aoi: slug.clone(),
            grid: o.set.grid.clone(),
            source: o.provenance.source.clone(),
            from: config.from,
            to: config.to,
            scenes: o.found.to_vec(),
        },
    )?;
    Ok(Written {
        changes: changes.counts,
        months: figures.months,
    })
}

fn empty_collection() -> geojson::FeatureCollection {
    geojson::FeatureCollection {
        bbox: None,
        features: Vec::new(),
        foreign_members: None,
    }
}

/// The vector layers and their styles: report, demolition (never new construction, so its own
/// layer with the same provenance), diff and AOI.
fn write_layers(
    staging: &Staging,
    report: &geojson::FeatureCollection,
    demolition: &geojson::FeatureCollection,
    diff: &geojson::FeatureCollection,
    config: &crate::scan::config::ScanConfig,
) -> Result<()> {
    let report_path = staging.path("report.geojson");
    report::write_geojson(&report_path, report)?;
    let demolition_path = staging.path("demolition.geojson");
    report::write_geojson(&demolition_path, demolition)?;
    style::write_qml(&demolition_path, &style::report_style(demolition))?;
    style::write_qml(&report_path, &style::report_style(report))?;
    let diff_path = staging.path("diff.geojson");
    report::write_geojson(&diff_path, diff)?;
    style::write_qml(&diff_path, &style::diff_style())?;
    let aoi_path = staging.path("aoi.geojson");
    report::write_geojson(&aoi_path, &report::aoi_feature_collection(&config.aoi))?;
    style::write_qml(&aoi_path, &style::aoi_style())
}

/// The report and the diff in each of `formats` (report.gpkg, diff.gpkg, ...).
fn write_formats(
    staging: &Staging,
    report: &geojson::FeatureCollection,
    diff: &geojson::FeatureCollection,
    formats: &[Format],
) -> Result<()> {
    for &format in formats {
        for (layer, collection) in [("report", report), ("diff", diff)] {
            let path = staging.path(&format!("{layer}.{}", format.name()));
            vector::write(collection, layer, format, &path)?;
        }
    }
    Ok(())
}

/// The STAC Item describing the outputs written so far (`stac-item.json`): each output the staging
/// folder holds becomes an asset.
fn write_stac_item(
    staging: &Staging,
    config: &crate::scan::config::ScanConfig,
    items: &[serde_json::Value],
    with_months: bool,
) -> Result<()> {
    let asset = |key: &str, file: &str, media_type: &str, role: &'static str, title: &str| stac_item::Output {
        key: key.to_owned(),
        href: format!("./{file}"),
        media_type: media_type.to_owned(),
        roles: vec![role],
        title: title.to_owned(),
    };
    let geojson = "application/geo+json";
    let cog = "image/tiff; application=geotiff; profile=cloud-optimized";
    let mut outputs = vec![
        asset("report", "report.geojson", geojson, "data", "New construction polygons"),
        asset(
            "diff",
            "diff.geojson",
            geojson,
            "data",
            "Changes since the previous report",
        ),
        asset(
            "demolition",
            "demolition.geojson",
            geojson,
            "data",
            "Demolition polygons",
        ),
        asset(
            "composite",
            "composite.tif",
            cog,
            "visual",
            "Recent composite: per pixel the median of the clear months of the period's last 3 \
             (RGB + NIR x 10000), then the newest and oldest month used (YYMM) and the clear \
             observations behind it",
        ),
        asset("summary", "summary.html", "text/html", "overview", "Monthly summary"),
        asset(
            "summary-json",
            "summary.json",
            "application/json",
            "metadata",
            "Monthly figures",
        ),
        asset(
            "project",
            "project.qgs",
            "application/x-qgis",
            "metadata",
            "QGIS project",
        ),
    ];
    if with_months {
        for month in config.from.through(config.to) {
            let file = months::file(month);
            let title = format!("Composite of {month} (RGB + NIR x 10000, clear observations)");
            outputs.push(asset(&format!("month-{month}"), &file, cog, "visual", &title));
        }
    }
    for format in &config.formats {
        for layer in ["report", "diff"] {
            let (key, file) = (format!("{layer}-{format}"), format!("{layer}.{format}"));
            let title = format!("{layer} as {}", format.name().to_uppercase());
            outputs.push(asset(&key, &file, format.media_type(), "data", &title));
        }
    }
    outputs.retain(|o| staging.path(o.href.trim_start_matches("./")).is_file());
    let period = crate::output::provenance::Period {
        from: config.from,
        to: config.to,
    };
    let item = stac_item::item(&config.aoi, period, &outputs, items)?;
    atomic::write_json(&staging.path(stac_item::FILE), &item)
}

/// The recent composite as a COG: red, green, blue, NIR (as the QGIS project and styles read
/// it), then the newest and the oldest clear month used per pixel and the clear observations
/// behind them, so that a seam between pixels of other months can be seen for what it is.
fn write_composite(
    staging: &Staging,
    grid: &Grid,
    recent: &Recent,
    config: &crate::scan::config::ScanConfig,
) -> Result<()> {
    let months = config.from.through(config.to);
    let window = &months[months.len().saturating_sub(RECENT_MONTHS)..];
    let (first, last) = (window[0], window[window.len() - 1]);
    let description = format!(
        "compound-watch recent composite of {} for {}..{}: per pixel and band, the median of the \
         clear monthly composites of {first}..{last} (the period's last {RECENT_MONTHS} months), or \
         where none of them is clear, of the {RECENT_MONTHS} months ending at the pixel's newest clear \
         month; reflectance x 10000 (bands 1-4), newest and oldest month used as YYMM (bands 5-6), \
         clear observations behind the pixel (band 7); 0 is no data",
        config.aoi.name, config.from, config.to
    );
    let yymm = |index: &[u16]| -> Vec<u16> {
        index
            .iter()
            .map(|&i| match i {
                0 => 0,
                i => {
                    let m = months[i as usize - 1];
                    (m.year.rem_euclid(100) * 100) as u16 + m.month as u16
                }
            })
            .collect()
    };
    let (newest, oldest) = (yymm(&recent.newest), yymm(&recent.oldest));
    let b = &recent.bands;
    report::write_cog(
        &staging.path("composite.tif"),
        &report::CogRaster {
            epsg: grid.epsg,
            geo_transform: grid.geo_transform(),
            width: grid.width,
            height: grid.height,
            bands: vec![
                (&b[0], "red (B04)"),
                (&b[1], "green (B03)"),
                (&b[2], "blue (B02)"),
                (&b[3], "nir (B08)"),
                (&newest, "newest clear month used (YYMM, 2203 = 2022-03)"),
                (&oldest, "oldest clear month used (YYMM, 2203 = 2022-03)"),
                (&recent.clear_obs, "clear observations behind the pixel"),
            ],
            rgb: true,
            description: &description,
            metadata: vec![
                ("SCALE_FACTOR", "0.0001".into()),
                ("SCALED_BANDS", "1,2,3,4".into()),
                ("RECENT_WINDOW", format!("{first}..{last}")),
                ("RECENT_WINDOW_MONTHS", RECENT_MONTHS.to_string()),
                (
                    "RECENT_METHOD",
                    "per-band median of the clear monthly composites in the window; a pixel with no \
                     clear month in it takes the window ending at its newest clear month"
                        .into(),
                ),
            ],
        },
    )
}

/// The recent composite with the AOI and every polygon (construction) in its pixel coordinates.
fn location_map(grid: &Grid, aoi: &crate::aoi::Aoi, assembled: &Assembled) -> Result<LocationMap> {
    let to_grid = Projector::new(4326, grid.epsg)?;
    let pixels = |ring: &geo::LineString<f64>| grid_pixels(ring, grid, &to_grid);
    let b = &assembled.recent.bands;
    Ok(LocationMap {
        composite: summary::true_colour([&b[0], &b[1], &b[2]], grid.width, grid.height),
        metres_per_pixel: grid.res,
        aoi: aoi
            .geometry
            .iter()
            .map(|p| pixels(p.exterior()))
            .collect::<Result<_>>()?,
        polygons: assembled
            .construction
            .iter()
            .map(|d| Ok((d.id.clone(), pixels(d.outline.exterior())?)))
            .collect::<Result<_>>()?,
    })
}

/// A WGS84 ring in the grid's pixel coordinates: x right, y down, (0, 0) the grid's top-left corner.
fn grid_pixels(ring: &geo::LineString<f64>, grid: &Grid, to_grid: &Projector) -> Result<Vec<(f64, f64)>> {
    ring.coords()
        .map(|c| {
            to_grid
                .coord(*c)
                .map(|g| ((g.x - grid.x0) / grid.res, (grid.y0 - g.y) / grid.res))
        })
        .collect()
}

/// Before/after quicklooks of every new polygon, largest first, made in parallel.
fn quicklooks(set: &SceneSet<'_>, detections: &[Detection]) -> Result<Vec<Quicklook>> {
    let mut largest: Vec<&Detection> = detections.iter().collect();
    largest.sort_by(|a, b| b.area_m2.total_cmp(&a.area_m2).then(a.id.cmp(&b.id)));
    let to_grid = Projector::new(4326, set.grid.epsg)?;
    let rings: Vec<(&Detection, Vec<(f64, f64)>)> = largest
        .into_iter()
        .map(|d| Ok((d, grid_pixels(d.outline.exterior(), set.grid, &to_grid)?)))
        .collect::<Result<_>>()?;
    let chips: Vec<Option<Chip>> = rings
        .par_iter()
        .map(|(d, ring)| chip(set, d, ring))
        .collect::<Result<_>>()?;
    Ok(chips.iter().flatten().flat_map(summary::quicklook).collect())
}

/// The window of the monthly composites around one polygon (`ring`, in grid pixel coordinates),
/// with a margin.
fn chip(set: &SceneSet<'_>, d: &Detection, ring: &[(f64, f64)]) -> Result<Option<Chip>> {
    let grid = set.grid;
    let span = |f: fn(&(f64, f64)) -> f64| {
        ring.iter()
            .map(f)
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    let ((min_c, max_c), (min_r, max_r)) = (span(|p| p.0), span(|p| p.1));
    let pad = ((max_c - min_c).max(max_r - min_r) * CHIP_PAD_SHARE).max(CHIP_MIN_PAD);
    let c0 = (min_c - pad).floor().max(0.0) as usize;
    let c1 = ((max_c + pad).ceil() as usize).min(grid.width);
    let r0 = (min_r - pad).floor().max(0.0) as usize;
    let r1 = ((max_r + pad).ceil() as usize).min(grid.height);
    if c1 <= c0 || r1 <= r0 {
        return Ok(None);
    }
    // Every month's clear share picks the two months shown; only those two are composited.
    let (observations, cols) = blocks::month_observations(set, r0..r1, c0..c1)?;
    let width = cols.len();
    let chip_pixels = || (0..r1 - r0).flat_map(|r| (c0..c1).map(move |c| r * width + c - cols.start));
    let min_clear = set.config.min_clear_obs.max(1);
    let clear_share: Vec<f64> = observations
        .iter()
        .map(|month| {
            let seen = chip_pixels()
                .filter(|&p| month.iter().filter(|o| o.clear[p]).count() >= usize::from(min_clear))
                .count();
            seen as f64 / ((r1 - r0) * (c1 - c0)) as f64
        })
        .collect();
    let months = set.config.from.through(set.config.to);
    let Some((before, after)) = summary::pick_months(&months, d.first_detected, &clear_share) else {
        return Ok(None);
    };
    let rgb = observations
        .iter()
        .enumerate()
        .map(|(m, month)| {
            (m == before || m == after).then(|| {
                let views: Vec<_> = month.iter().map(|o| o.reflectance.view()).collect();
                let masks: Vec<_> = month.iter().map(|o| o.clear.view()).collect();
                // A picked month was seen, so it has observations.
                let pixels = month[0].clear.len();
                let comp = monthly_median(&views, &masks, REFLECTANCE_BANDS, pixels, set.config.min_clear_obs);
                chip_pixels().map(|p| TRUE_COLOUR.map(|b| comp.bands[(b, p)])).collect()
            })
        })
        .collect();
    Ok(Some(Chip {
        id: d.id.clone(),
        area_ha: d.area_m2 / 10_000.0,
        first_detected: d.first_detected,
        months,
        rgb,
        width: c1 - c0,
        height: r1 - r0,
        outline: ring.iter().map(|&(c, r)| (c - c0 as f64, r - r0 as f64)).collect(),
    }))
}

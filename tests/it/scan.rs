//! The end-to-end scan of the bundled sample: accuracy against its truth, reruns, outputs.

use std::sync::atomic::Ordering;

use compound_watch::eval;
use compound_watch::report;
use compound_watch::scan::{self, Silent};
use compound_watch::source::StaticCatalog;

use crate::common::{demo_config, demo_scan, output_files, python_tool, read_json, sample_dir, CountingReader};

/// The README's accuracy table on the sample, exactly: 15 objects of >= 1,000 m², all found, every
/// polygon on real construction (16 polygons), all dated within one
/// month of the first clear view.
#[test]
fn demo_finds_the_sample_construction_and_dates_it() {
    let demo = demo_scan();
    let report = report::read_geojson(&demo.summary.report).unwrap();
    let truth = report::read_geojson(&sample_dir().join("truth.geojson")).unwrap();
    let s = eval::match_truth(&report, &truth, 1_000.0);
    assert_eq!(s.truth_objects, 15, "construction objects >= 1000 m2: {s:?}");
    assert_eq!(s.recalled, 15, "object recall: {s:?}");
    assert_eq!((s.correct, s.detections), (16, 16), "precision: {s:?}");
    assert_eq!(s.dated_within_one_month, 15, "dated within +-1 month: {s:?}");
}

#[test]
fn no_polygon_is_reported_on_the_cleared_but_unbuilt_sites_or_the_demolition() {
    use geo::BooleanOps;
    let demo = demo_scan();
    let report = report::read_geojson(&demo.summary.report).unwrap();
    let truth = report::read_geojson(&sample_dir().join("truth.geojson")).unwrap();
    let poly = report::multipolygon_of;
    for t in truth
        .features
        .iter()
        .filter(|f| f.property("kind").unwrap() != "construction")
    {
        for d in &report.features {
            use geo::Area;
            let overlap = poly(d).intersection(&poly(t)).unsigned_area();
            assert!(
                overlap == 0.0,
                "{:?} overlaps {} ({:?})",
                d.id,
                t.property("kind").unwrap(),
                t.id
            );
        }
    }
}

#[test]
fn a_second_scan_reads_no_scene_and_writes_identical_outputs() {
    let demo = demo_scan();
    assert!(demo.reads > 0);
    assert_eq!(demo.reads, demo.summary.windows_fetched);
    let out2 = demo.dir.join("out-again");
    let reader = CountingReader::default();
    let config = scan::ScanConfig {
        monthly_composites: true,
        ..demo_config(&out2, &demo.cache())
    };
    let summary = scan::run(
        &config,
        &StaticCatalog::new(sample_dir().join("catalog.json")),
        &reader,
        &Silent,
    )
    .unwrap();
    assert_eq!(reader.reads.load(Ordering::SeqCst), 0, "the rerun read scenes again");
    assert_eq!(summary.windows_cached, demo.summary.windows_fetched);
    // Every output, not only the report: the same inputs give the same bytes.
    let (first, again) = (
        output_files(demo.summary.report.parent().unwrap()),
        output_files(summary.report.parent().unwrap()),
    );
    assert_eq!(first.keys().collect::<Vec<_>>(), again.keys().collect::<Vec<_>>());
    for (name, bytes) in &first {
        assert!(
            &again[name] == bytes,
            "{name} differs between two scans of the same inputs"
        );
    }
}

#[test]
fn every_feature_carries_its_figures_and_traceable_scenes() {
    let demo = demo_scan();
    let doc = read_json(&demo.summary.report);
    let used: Vec<&str> = doc["compound_watch"]["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(used.len(), demo.summary.scenes_used);
    assert!(doc.get("crs").is_none());
    let features = doc["features"].as_array().unwrap();
    assert_eq!(features.len(), demo.summary.detections);
    for f in features {
        let p = &f["properties"];
        assert_eq!(f["id"], p["id"]);
        let date = p["first_detected"].as_str().unwrap();
        assert!(date.len() == 10 && date.ends_with("-01"), "{date}");
        let c = p["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&c));
        assert!(p["area_m2"].as_f64().unwrap() >= 1_000.0 * 0.99);
        assert!(p["n_clear_obs"].as_u64().unwrap() > 0);
        let scenes = p["scenes"].as_array().unwrap();
        assert!(!scenes.is_empty());
        assert!(scenes.iter().all(|s| used.contains(&s.as_str().unwrap())));
    }
    for key in ["version", "aoi", "period", "grid", "source", "parameters", "skipped"] {
        assert!(doc["compound_watch"].get(key).is_some(), "provenance lacks {key}");
    }
}

#[test]
fn offset_decisions_follow_the_pixels_when_flags_lie() {
    let demo = demo_scan();
    let doc = read_json(&demo.summary.report);
    let scenes = doc["compound_watch"]["scenes"].as_array().unwrap();
    let contradicted = scenes
        .iter()
        .filter(|s| s["offset"]["flag_consistent"] == false)
        .count();
    assert!(
        contradicted > 0,
        "the sample has items whose flag is wrong; the pixels should catch some"
    );
    for s in scenes {
        let date = s["datetime"].as_str().unwrap();
        if date < "2022-01-25" {
            assert_eq!(s["offset"]["subtract_dn"], 0, "{s}");
        }
    }
}

#[test]
fn the_report_passes_the_strict_rfc7946_checker() {
    let demo = demo_scan();
    let path = demo.summary.report.to_str().unwrap().to_owned();
    let Some(out) = python_tool("tools/check_geojson.py", &[&path, "--bbox", "97,15,100,18"], "shapely") else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check_geojson.py: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_composite_is_a_cloud_optimized_geotiff_on_the_grid() {
    use gdal::Metadata;
    let demo = demo_scan();
    let ds = gdal::Dataset::open(&demo.summary.composite).unwrap();
    assert_eq!(ds.raster_count(), 7);
    assert_eq!(ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(), Some("COG"));
    let gt = ds.geo_transform().unwrap();
    assert_eq!((gt[1], gt[5]), (10.0, -10.0));
    assert_eq!(gt[0] % 10.0, 0.0);
    assert!(ds.spatial_ref().unwrap().auth_code().unwrap() == 32647);
}

/// Every band of a dataset, as u16.
fn bands(ds: &gdal::Dataset) -> Vec<Vec<u16>> {
    (1..=ds.raster_count())
        .map(|i| ds.rasterband(i).unwrap().read_band_as::<u16>().unwrap().data().to_vec())
        .collect()
}

/// The months of the demo period and their COGs, read whole.
fn demo_months() -> Vec<(compound_watch::month::Month, gdal::Dataset)> {
    let demo = demo_scan();
    let out = demo.summary.report.parent().unwrap();
    demo.summary
        .months
        .iter()
        .map(|m| {
            let path = out.join(format!("months/{}.tif", m.month));
            (
                m.month,
                gdal::Dataset::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            )
        })
        .collect()
}

/// One COG per month: RGB + NIR and the clear observations, labelled; reflectance exactly where
/// the month saw the pixel clearly; never more observations than the month's scenes; a month
/// without scenes is no data throughout.
#[test]
fn every_month_has_a_cog_with_its_clear_counts_and_no_data_in_its_gaps() {
    use gdal::Metadata;
    let demo = demo_scan();
    let months = demo_months();
    assert_eq!(months.len(), 24, "2021-07..2023-06");
    let composite = gdal::Dataset::open(&demo.summary.composite).unwrap();
    let mut without_scenes = 0;
    for ((month, ds), figures) in months.iter().zip(&demo.summary.months) {
        assert_eq!(ds.raster_size(), composite.raster_size(), "{month}");
        assert_eq!(ds.metadata_item("LAYOUT", "IMAGE_STRUCTURE").as_deref(), Some("COG"));
        assert_eq!(
            ds.metadata_item("MONTH", "").as_deref(),
            Some(month.to_string().as_str())
        );
        let names: Vec<String> = (1..=5)
            .map(|i| ds.rasterband(i).unwrap().description().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "red (B04)",
                "green (B03)",
                "blue (B02)",
                "nir (B08)",
                "clear observations"
            ]
        );
        assert!((1..=5).all(|i| ds.rasterband(i).unwrap().no_data_value() == Some(0.0)));
        let b = bands(ds);
        let (red, count) = (&b[0], &b[4]);
        let seen = count.iter().filter(|&&n| n > 0).count();
        assert!(
            red.iter().zip(count).all(|(&r, &n)| (r > 0) == (n > 0)),
            "{month}: reflectance where the clear count is 0, or none where it is not"
        );
        let most = *count.iter().max().unwrap() as usize;
        assert!(
            most <= figures.scenes,
            "{month}: {most} clear observations of {} scenes",
            figures.scenes
        );
        if figures.scenes == 0 {
            without_scenes += 1;
            assert!(
                b.iter().all(|band| band.iter().all(|&v| v == 0)),
                "{month}: no scene, yet data"
            );
        } else {
            // The summary's share of AOI pixels seen clearly, from the same composites.
            let share = seen as f64 / count.len() as f64;
            assert!(
                (share - figures.clear_fraction).abs() < 0.05,
                "{month}: {share} of the grid seen, the summary says {} of the AOI",
                figures.clear_fraction
            );
        }
    }
    eprintln!("{without_scenes} months without scenes");
}

/// The recent composite is the median of the monthly composites of its window, per pixel, and
/// says which months and how many observations stand behind it: not the per-pixel latest month.
#[test]
fn the_recent_composite_is_the_median_of_the_monthly_composites_of_its_window() {
    use gdal::Metadata;
    let demo = demo_scan();
    let ds = gdal::Dataset::open(&demo.summary.composite).unwrap();
    assert_eq!(
        ds.metadata_item("RECENT_WINDOW", "").as_deref(),
        Some("2023-04..2023-06")
    );
    let names: Vec<String> = (1..=7)
        .map(|i| ds.rasterband(i).unwrap().description().unwrap())
        .collect();
    assert_eq!(&names[..4], ["red (B04)", "green (B03)", "blue (B02)", "nir (B08)"]);
    assert!(names[4].starts_with("newest clear month used (YYMM") && names[6].starts_with("clear observations"));
    let recent = bands(&ds);
    let months: Vec<(u16, Vec<Vec<u16>>)> = demo_months()
        .iter()
        .map(|(m, ds)| (((m.year % 100) * 100) as u16 + m.month as u16, bands(ds)))
        .collect();
    let (mut several, mut unlike_latest, mut widened) = (0, 0, 0);
    for p in 0..recent[0].len() {
        let (newest, oldest, obs) = (recent[4][p], recent[5][p], recent[6][p]);
        if newest == 0 {
            assert!(recent.iter().all(|b| b[p] == 0), "pixel {p}: never seen, yet data");
            continue;
        }
        let used: Vec<&Vec<Vec<u16>>> = months
            .iter()
            .filter(|(yymm, b)| (oldest..=newest).contains(yymm) && b[4][p] > 0)
            .map(|(_, b)| b)
            .collect();
        assert!(!used.is_empty() && used.len() <= 3, "pixel {p}: {} months", used.len());
        assert_eq!(
            obs,
            used.iter().map(|b| b[4][p]).sum::<u16>(),
            "pixel {p}: observations"
        );
        widened += (newest < 2304) as usize;
        for band in 0..4 {
            let mut v: Vec<u16> = used.iter().map(|b| b[band][p]).collect();
            v.sort_unstable();
            let (lo, hi) = (v[(v.len() - 1) / 2], v[v.len() / 2]);
            // The median of the reflectances, stored: within rounding of the stored months' median.
            assert!(
                (lo.saturating_sub(1)..=hi + 1).contains(&recent[band][p]),
                "pixel {p} band {band}: {} is not the median of {v:?}",
                recent[band][p]
            );
            let latest = used.last().unwrap()[band][p];
            unlike_latest += (used.len() >= 3 && recent[band][p].abs_diff(latest) > 1) as usize;
        }
        several += (used.len() >= 2) as usize;
    }
    eprintln!(
        "{several} pixels of several months, {unlike_latest} band values unlike the latest month, {widened} widened"
    );
    assert!(
        several > recent[0].len() / 2,
        "most pixels stand on several months: {several}"
    );
    assert!(unlike_latest > 0, "the median never differs from the latest month");
}

/// The README's confidence table: every polygon is real construction and lies at 0.7-0.8 (4),
/// 0.8-0.9 (8) or 0.9 and above (4); none below 0.7.
#[test]
fn the_confidence_table_of_the_readme_holds() {
    use geo::{Area, BooleanOps, MultiPolygon};
    let demo = demo_scan();
    let report = report::read_geojson(&demo.summary.report).unwrap();
    let truth = report::read_geojson(&sample_dir().join("truth.geojson")).unwrap();
    let poly = report::multipolygon_of;
    let built: Vec<MultiPolygon<f64>> = truth
        .features
        .iter()
        .filter(|f| f.property("kind").unwrap() == "construction")
        .map(poly)
        .collect();
    let mut bins = [(0usize, 0usize); 5]; // [<0.6, 0.6-0.7, 0.7-0.8, 0.8-0.9, >=0.9]: (real, all)
    for f in &report.features {
        let c = f.property("confidence").unwrap().as_f64().unwrap();
        let d = poly(f);
        // Real: on construction by 30 % of its own area, or covering half a building (a polygon
        // holds the building's cleared yard too).
        let real = built.iter().any(|t| {
            let overlap = d.intersection(t).unsigned_area();
            overlap >= 0.3 * d.unsigned_area() || overlap >= 0.5 * t.unsigned_area()
        });
        let bin = ((c - 0.5) * 10.0).floor().clamp(0.0, 4.0) as usize;
        bins[bin].1 += 1;
        bins[bin].0 += real as usize;
    }
    assert_eq!(
        bins,
        [(0, 0), (0, 0), (4, 4), (8, 8), (4, 4)],
        "(real, polygons) per confidence bin <0.6, 0.6-0.7, 0.7-0.8, 0.8-0.9, >=0.9"
    );
    let lowest = report
        .features
        .iter()
        .map(|f| f.property("confidence").unwrap().as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert!(lowest >= 0.7, "a polygon below 0.7: {lowest}");
}

/// The demolished block of the sample is an old town roof among trees: its 10 m pixels mix roof
/// and canopy, which `any-material` (the default) scores between 0.1 and 0.8 from one view to the
/// next, so it sees no step down; `bright-flat` calls the mix a roof every month and finds it.
/// The README says so (Accuracy).
#[test]
fn demolition_is_reported_apart_on_the_demolished_block_only() {
    use geo::{Area, BooleanOps};
    let demo = demo_scan();
    let default = report::read_geojson(&demo.summary.demolition).unwrap();
    assert!(
        default.features.is_empty(),
        "the default model sees no demolition: {default:?}"
    );
    let mut config = demo_config(&demo.dir.join("out-bright-flat"), &demo.cache());
    config.detect.roofs = compound_watch::detect::RoofModel::BrightFlat;
    config.detect.haze_correction = false;
    let source = StaticCatalog::new(sample_dir().join("catalog.json"));
    let summary = scan::run(&config, &source, &CountingReader::default(), &Silent).unwrap();
    let demolition = report::read_geojson(&summary.demolition).unwrap();
    let truth = report::read_geojson(&sample_dir().join("truth.geojson")).unwrap();
    let block = truth
        .features
        .iter()
        .find(|f| f.property("kind").unwrap() == "demolition")
        .unwrap();
    let cleared: compound_watch::month::Month = block.property("cleared").unwrap().as_str().unwrap()[..7]
        .parse()
        .unwrap();
    eprintln!(
        "demolition polygons: {:?}",
        demolition.features.iter().map(|f| &f.properties).collect::<Vec<_>>()
    );
    assert_eq!(demolition.features.len(), 1, "one demolished block, one polygon");
    let found = &demolition.features[0];
    let overlap = report::multipolygon_of(found)
        .intersection(&report::multipolygon_of(block))
        .unsigned_area();
    assert!(
        overlap > 0.5 * report::multipolygon_of(found).unsigned_area(),
        "the polygon lies on the block"
    );
    let month: compound_watch::month::Month = found.property("first_detected").unwrap().as_str().unwrap()[..7]
        .parse()
        .unwrap();
    // Dated by the first clear view after the block came down: never before, at most a season late.
    assert!(
        (0..=3).contains(&cleared.until(month)),
        "demolished {cleared}, detected {month}"
    );
    // The README: "0.1 of its 0.36 ha" (rounded to 0.01 ha for the block, 0.1 ha for the polygon).
    let block_ha = block.property("area_m2").unwrap().as_f64().unwrap() / 10_000.0;
    assert!((block_ha - 0.36).abs() < 0.005, "the block is {block_ha} ha");
    let found_ha = found.property("area_ha").unwrap().as_f64().unwrap();
    assert!((found_ha - 0.1).abs() < 0.05, "the demolition polygon is {found_ha} ha");
}

#[test]
fn the_scan_summary_adds_up_to_its_report() {
    let demo = demo_scan();
    let dir = demo.summary.report.parent().unwrap();
    let report = report::read_geojson(&demo.summary.report).unwrap();
    let summary = crate::common::read_json(&dir.join("summary.json"));
    let area: f64 = report
        .features
        .iter()
        .map(|f| f.property("area_ha").unwrap().as_f64().unwrap())
        .sum();
    let totals = &summary["totals"];
    assert!((totals["new_ha"].as_f64().unwrap() - area).abs() < 0.001 + 1e-9);
    assert_eq!(totals["new_polygons"].as_u64().unwrap() as usize, report.features.len());
    let months = summary["months"].as_array().unwrap();
    assert_eq!(months.len(), demo.summary.months.len());
    let by_month: f64 = months.iter().map(|m| m["new_ha"].as_f64().unwrap()).sum();
    assert!((by_month - area).abs() < 0.001 * months.len() as f64);
    // Scenes per month agree with the provenance; gaps have no built-up figure.
    let scenes = report.foreign_members.as_ref().unwrap()["compound_watch"]["scenes"]
        .as_array()
        .unwrap()
        .clone();
    for m in months {
        let month = m["month"].as_str().unwrap();
        let n = scenes
            .iter()
            .filter(|s| s["datetime"].as_str().unwrap().starts_with(month))
            .count();
        assert_eq!(m["scenes"].as_u64().unwrap() as usize, n, "{month}");
        assert_eq!(
            m["gap"].as_bool().unwrap(),
            m["builtup_measured_ha"].is_null(),
            "{month}"
        );
    }
    for q in summary["quicklooks"].as_array().unwrap() {
        assert!(dir.join(q["path"].as_str().unwrap()).is_file());
    }
}

/// A scene whose classification band shows nothing clear over the AOI is scouted out: its six
/// reflectance bands are never read, it is listed as cloudy (not as skipped), and it still counts
/// in its month's scenes.
#[test]
fn a_scene_all_cloud_in_its_classes_is_not_downloaded() {
    let dir = tempfile::tempdir().unwrap();
    let sample = dir.path().join("sample");
    crate::common::copy_dir(sample_dir(), &sample);
    let item = "S2A_47QNU_20220118_0_L2A";
    let scl = sample.join("items").join(item).join("SCL.tif");
    overcast(&scl);
    let config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
    let reader = CountingReader::default();
    let summary = scan::run(
        &config,
        &StaticCatalog::new(sample.join("catalog.json")),
        &reader,
        &Silent,
    )
    .unwrap();
    assert_eq!(summary.cloudy, vec![item.to_owned()]);
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    assert_eq!(summary.windows_scouted, 6);
    assert_eq!(reader.reads.load(Ordering::SeqCst), 7 * summary.scenes_used + 1);
    assert_eq!(summary.scenes_used + 1, summary.scenes_found);
    let january = |months: &[compound_watch::summary::MonthFigures]| {
        months.iter().find(|m| m.month.to_string() == "2022-01").unwrap().scenes
    };
    assert_eq!(
        january(&summary.months),
        january(&demo_scan().summary.months),
        "the cloudy scene still counts in its month"
    );
    let report = read_json(&summary.report);
    let provenance = &report["compound_watch"];
    assert_eq!(provenance["cloudy"], serde_json::json!([item]));
    assert!(provenance["scenes"].as_array().unwrap().iter().all(|s| s["id"] != item));
    // A rerun finds the classes in the cache and scouts the scene out again, reading nothing.
    let again = CountingReader::default();
    let config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
    let rerun = scan::run(
        &config,
        &StaticCatalog::new(sample.join("catalog.json")),
        &again,
        &Silent,
    )
    .unwrap();
    assert_eq!(again.reads.load(Ordering::SeqCst), 0);
    assert_eq!(rerun.cloudy, vec![item.to_owned()]);
    // Its evidence is its classes: a bundle holds them, and verify re-runs to the same report.
    let bundle = dir.path().join("bundle");
    let cache = compound_watch::Cache::new(dir.path().join("cache"));
    compound_watch::evidence::write(&dir.path().join("out"), &cache, &bundle).unwrap();
    let verdict = compound_watch::evidence::verify(&bundle).unwrap();
    assert!(
        matches!(verdict, compound_watch::evidence::Verdict::Confirmed { .. }),
        "{verdict:?}"
    );
}

/// Rewrites a classification band as cloud (high probability) everywhere it has data.
fn overcast(path: &std::path::Path) {
    let (size, transform, srs, values) = {
        let ds = gdal::Dataset::open(path).unwrap();
        let band = ds.rasterband(1).unwrap();
        let size = ds.raster_size();
        let values: Vec<u16> = band
            .read_as::<u16>((0, 0), size, size, None)
            .unwrap()
            .data()
            .iter()
            .map(|&v| if v == 0 { 0 } else { 9 })
            .collect();
        (size, ds.geo_transform().unwrap(), ds.spatial_ref().unwrap(), values)
    };
    std::fs::remove_file(path).unwrap();
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let mut ds = driver.create_with_band_type::<u16, _>(path, size.0, size.1, 1).unwrap();
    ds.set_geo_transform(&transform).unwrap();
    ds.set_spatial_ref(&srs).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    band.set_no_data_value(Some(0.0)).unwrap();
    band.write((0, 0), size, &mut gdal::raster::Buffer::new(size, values))
        .unwrap();
}

/// Construction under the mapping unit is counted, not dropped silently: raising the unit moves
/// the polygons under it from the report into the `below_mapping_unit` member.
#[test]
fn construction_below_the_mapping_unit_is_counted_in_the_report() {
    let demo = demo_scan();
    let report = read_json(&demo.summary.report);
    let below = |r: &serde_json::Value| {
        let b = &r["below_mapping_unit"];
        (
            b["regions"].as_u64().unwrap(),
            b["area_m2"].as_f64().unwrap(),
            b["to_m2"].as_f64().unwrap(),
        )
    };
    let (regions, area, to) = below(&report);
    assert_eq!(to, 1_000.0);
    assert!(
        area >= 400.0 * regions as f64 && area < 1_000.0 * regions as f64 + 1e-6,
        "{area} m2 in {regions}"
    );
    // The new unit: in the widest gap between the polygons' areas, so pixel counts and geodesic
    // areas cannot fall on different sides of it.
    let mut areas: Vec<f64> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["area_m2"].as_f64().unwrap())
        .collect();
    areas.sort_by(f64::total_cmp);
    let (gap, unit) = areas
        .windows(2)
        .filter(|w| w[0] >= 1_500.0 && w[1] <= 30_000.0)
        .map(|w| (w[1] - w[0], (w[0] + w[1]) / 2.0))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert!(gap > 500.0, "{areas:?}");
    let smaller: Vec<f64> = areas.iter().copied().filter(|&a| a < unit).collect();

    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(&dir.path().join("out"), &demo.cache());
    config.min_area_m2 = unit;
    let summary = scan::run(
        &config,
        &StaticCatalog::new(sample_dir().join("catalog.json")),
        &CountingReader::default(),
        &Silent,
    )
    .unwrap();
    let raised = read_json(&summary.report);
    assert_eq!(
        raised["features"].as_array().unwrap().len(),
        areas.len() - smaller.len(),
        "polygons of at least {unit} m2"
    );
    let (raised_regions, raised_area, raised_to) = below(&raised);
    assert_eq!(raised_to, unit);
    assert_eq!(raised_regions, regions + smaller.len() as u64, "below {unit} m2");
    let expected = area + smaller.iter().sum::<f64>();
    assert!(
        (raised_area - expected).abs() < 0.03 * expected,
        "{raised_area} m2 against {expected}"
    );
}

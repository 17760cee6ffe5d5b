//! The summary of the real demo report, and the `summary` command across two scan outputs.
//!
//! The monthly figures are made up here (the scan does not yet hand them over), but the report,
//! its provenance and the image chips are the demo scan's own, so the totals are checked against a
//! report the pipeline really wrote.

use std::path::{Path, PathBuf};

use approx::assert_relative_eq;
use assert_cmd::Command;
use compound_watch::month::Month;
use compound_watch::summary::{self, MonthFigures, Quicklook, SiteSummary};
use serde_json::Value;

use crate::common::{demo_scan, sample_dir};

fn month_of(date: &str) -> Month {
    date[..7].parse().unwrap()
}

fn provenance(report: &geojson::FeatureCollection) -> &Value {
    &report.foreign_members.as_ref().unwrap()["compound_watch"]
}

fn props(f: &geojson::Feature) -> &serde_json::Map<String, Value> {
    f.properties.as_ref().unwrap()
}

/// Plausible months for the demo: scenes counted from the provenance; August and September are
/// gaps unless a polygon was first seen in them; built-up area grows by the report's new hectares.
fn month_figures(report: &geojson::FeatureCollection, from: Month, to: Month) -> Vec<MonthFigures> {
    let scene_months: Vec<Month> = provenance(report)["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| month_of(s["datetime"].as_str().unwrap()))
        .collect();
    let mut built = 140.0;
    from.through(to)
        .into_iter()
        .map(|m| {
            let new: f64 = report
                .features
                .iter()
                .filter(|f| month_of(props(f)["first_detected"].as_str().unwrap()) == m)
                .map(|f| props(f)["area_ha"].as_f64().unwrap())
                .sum();
            built += new;
            let gap = matches!(m.month, 8 | 9) && new == 0.0;
            MonthFigures {
                month: m,
                scenes: scene_months.iter().filter(|&&s| s == m).count(),
                clear_fraction: if gap { 0.12 } else { 0.93 },
                clear_obs_median: if gap { 0.0 } else { 3.0 },
                gap,
                builtup_ha: (!gap).then_some(built),
            }
        })
        .collect()
}

/// A true-colour chip of one sample scene around `ring` (lon/lat), stretched 2-98 % per band,
/// with the ring in chip pixel coordinates.
fn chip(scene: &str, ring: &[(f64, f64)], epsg: u32) -> (image::RgbImage, Vec<(f64, f64)>) {
    let to_map = compound_watch::grid::Projector::new(4326, epsg).unwrap();
    let dir = sample_dir().join("items").join(scene);
    let open = |band: &str| gdal::Dataset::open(dir.join(format!("{band}.tif"))).unwrap();
    let red = open("B04");
    let gt = red.geo_transform().unwrap();
    let px: Vec<(f64, f64)> = ring
        .iter()
        .map(|&(lon, lat)| {
            let c = to_map.coord(geo::Coord { x: lon, y: lat }).unwrap();
            ((c.x - gt[0]) / gt[1], (c.y - gt[3]) / gt[5])
        })
        .collect();
    let (w, h) = red.raster_size();
    let pad = 8.0;
    let x0 = (px.iter().map(|p| p.0).fold(f64::MAX, f64::min) - pad).floor().max(0.0);
    let y0 = (px.iter().map(|p| p.1).fold(f64::MAX, f64::min) - pad).floor().max(0.0);
    let x1 = (px.iter().map(|p| p.0).fold(f64::MIN, f64::max) + pad)
        .ceil()
        .min(w as f64);
    let y1 = (px.iter().map(|p| p.1).fold(f64::MIN, f64::max) + pad)
        .ceil()
        .min(h as f64);
    let (cw, ch) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let bands: Vec<Vec<u8>> = [red, open("B03"), open("B02")]
        .iter()
        .map(|ds| {
            let buf = ds
                .rasterband(1)
                .unwrap()
                .read_as::<u16>((x0 as isize, y0 as isize), (cw, ch), (cw, ch), None)
                .unwrap();
            let values = buf.data().to_vec();
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let lo = f64::from(sorted[sorted.len() * 2 / 100]);
            let hi = f64::from(sorted[sorted.len() * 98 / 100]).max(lo + 1.0);
            values
                .iter()
                .map(|&v| ((f64::from(v) - lo) / (hi - lo) * 255.0).clamp(0.0, 255.0) as u8)
                .collect()
        })
        .collect();
    let img = image::RgbImage::from_fn(cw as u32, ch as u32, |x, y| {
        let i = y as usize * cw + x as usize;
        image::Rgb([bands[0][i], bands[1][i], bands[2][i]])
    });
    (img, px.iter().map(|&(x, y)| (x - x0, y - y0)).collect())
}

/// Quicklooks of the two largest polygons: the last clear scene before the change and the clear
/// scene after it, as the report lists them.
fn quicklooks(report: &geojson::FeatureCollection) -> Vec<Quicklook> {
    let prov = provenance(report);
    let epsg = prov["grid"]["epsg"].as_u64().unwrap() as u32;
    let scene_month = |id: &str| {
        let s = prov["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap();
        month_of(s["datetime"].as_str().unwrap())
    };
    let mut features: Vec<&geojson::Feature> = report.features.iter().collect();
    features.sort_by(|a, b| {
        props(b)["area_ha"]
            .as_f64()
            .unwrap()
            .total_cmp(&props(a)["area_ha"].as_f64().unwrap())
    });
    features
        .into_iter()
        .take(2)
        .map(|f| {
            let p = props(f);
            let scenes: Vec<&str> = p["scenes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            let polygon = geo::Polygon::<f64>::try_from(f.geometry.clone().unwrap()).unwrap();
            let ring: Vec<(f64, f64)> = polygon.exterior().coords().map(|c| (c.x, c.y)).collect();
            let (before, outline) = chip(scenes[0], &ring, epsg);
            let (after, _) = chip(scenes[scenes.len() - 1], &ring, epsg);
            Quicklook {
                id: p["id"].as_str().unwrap().to_owned(),
                area_ha: p["area_ha"].as_f64().unwrap(),
                first_detected: month_of(p["first_detected"].as_str().unwrap()),
                before_month: scene_month(scenes[0]),
                after_month: scene_month(scenes[scenes.len() - 1]),
                before,
                after,
                outline,
            }
        })
        .collect()
}

fn demo_summary(from: Month, to: Month) -> SiteSummary {
    let out = demo_scan().dir.join("out");
    let mut report = compound_watch::report::read_geojson(&out.join("report.geojson")).unwrap();
    report
        .features
        .retain(|f| (from..=to).contains(&month_of(props(f)["first_detected"].as_str().unwrap())));
    let aoi = &provenance(&report)["aoi"];
    SiteSummary {
        aoi_name: aoi["name"].as_str().unwrap().to_owned(),
        aoi_slug: aoi["slug"].as_str().unwrap().to_owned(),
        period: summary::Period { from, to },
        months: month_figures(&report, from, to),
        quicklooks: quicklooks(&report),
        report,
        synthetic: true,
    }
}

fn sums(report: &geojson::FeatureCollection) -> (f64, usize) {
    let ha = report
        .features
        .iter()
        .map(|f| props(f)["area_ha"].as_f64().unwrap())
        .sum();
    (ha, report.features.len())
}

/// Writes the demo's summary (and one of its first year, as a second AOI) where the test run
/// keeps the demo scan, so a person can open them afterwards.
fn written_sites() -> &'static (PathBuf, PathBuf) {
    static DIRS: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    DIRS.get_or_init(|| {
        let whole = demo_scan().dir.join("summary-whole");
        let first_year = demo_scan().dir.join("summary-first-year");
        summary::write_site(
            &whole,
            &demo_summary("2021-07".parse().unwrap(), "2023-06".parse().unwrap()),
        )
        .unwrap();
        let mut year = demo_summary("2021-07".parse().unwrap(), "2022-06".parse().unwrap());
        year.aoi_name += ", first year";
        year.aoi_slug += "-first-year";
        summary::write_site(&first_year, &year).unwrap();
        eprintln!("summaries written in {} and {}", whole.display(), first_year.display());
        (whole, first_year)
    })
}

#[test]
fn summary_of_the_demo_report_agrees_with_it() {
    let (dir, _) = written_sites();
    let report = compound_watch::report::read_geojson(&demo_scan().dir.join("out/report.geojson")).unwrap();
    let (ha, n) = sums(&report);
    assert!(n > 0, "the demo finds construction");
    let figures = summary::read_site(dir).unwrap();
    assert_relative_eq!(figures.totals.new_ha, ha, epsilon = 1e-6);
    assert_eq!(figures.totals.new_polygons, n);
    assert_eq!(figures.months.iter().map(|m| m.new_polygons).sum::<usize>(), n);
    assert_relative_eq!(figures.months.last().unwrap().cumulative_new_ha, ha, epsilon = 1e-6);
    let cw = provenance(&report);
    assert_eq!(figures.version, cw["version"].as_str().unwrap());
    assert_eq!(figures.parameters, cw["parameters"]);
    assert_eq!(figures.scenes.len(), cw["scenes"].as_array().unwrap().len());
    assert!(figures.synthetic);
    // A gap is left out, not counted as no built-up area.
    let gap = figures
        .months
        .iter()
        .find(|m| m.gap)
        .expect("the made-up months have gaps");
    assert_eq!(gap.builtup_ha, None);
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 24);
    let html = std::fs::read_to_string(dir.join("summary.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("SYNTHETIC DATA"));
    let pictures: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(pictures.len(), 4, "two charts and two quicklooks");
    for p in pictures {
        let img = image::open(dir.join(p)).unwrap();
        assert!(img.width() >= 512, "{p} is {}x{}", img.width(), img.height());
    }
}

fn cli() -> Command {
    Command::cargo_bin("compound-watch").unwrap()
}

#[test]
fn summary_command_sums_two_outputs() {
    let (whole, first_year) = written_sites();
    let out = tempfile::tempdir().unwrap();
    let across = out.path().join("run");
    let assert = cli()
        .arg("summary")
        .arg(whole)
        .arg(first_year)
        .arg("-o")
        .arg(&across)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let a = summary::read_site(whole).unwrap();
    let b = summary::read_site(first_year).unwrap();
    assert!(
        b.totals.new_polygons < a.totals.new_polygons,
        "the first year is a part of the whole"
    );
    let figures: summary::AcrossFigures =
        serde_json::from_str(&std::fs::read_to_string(across.join("across.json")).unwrap()).unwrap();
    assert_relative_eq!(figures.new_ha, a.totals.new_ha + b.totals.new_ha, epsilon = 1e-6);
    assert_eq!(figures.new_polygons, a.totals.new_polygons + b.totals.new_polygons);
    assert_eq!(
        figures.sites[1].latest_month.as_ref().unwrap().month.to_string(),
        "2022-06"
    );
    assert!(
        stdout.contains(&format!("{} polygons", figures.new_polygons)),
        "{stdout}"
    );
    for name in ["across.md", "across.html", "across.csv", "across/cumulative.png"] {
        assert!(across.join(name).is_file(), "{name}");
        assert!(stdout.contains(name), "{stdout}");
    }
    assert_eq!(
        std::fs::read_to_string(across.join("across.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[test]
fn summary_command_names_a_directory_without_summary_json() {
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let assert = cli()
        .arg("summary")
        .arg(empty.path())
        .arg("-o")
        .arg(out.path().join("run"))
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    let expected = Path::new(empty.path()).join("summary.json");
    assert!(
        stderr.contains(&expected.display().to_string()) && stderr.contains("--out"),
        "{stderr}"
    );
    assert!(
        !out.path().join("run").exists(),
        "nothing is written when an input is missing"
    );
    cli().args(["summary", "-o", "x"]).assert().code(2);
}

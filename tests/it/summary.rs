//! The summary the demo scan wrote from its own figures (its `ScanSummary::months`),
//! `MonthFigures::measured` on hand-made counts, and the `summary` command across two scan outputs.

use std::path::{Path, PathBuf};

use approx::assert_relative_eq;
use assert_cmd::Command;
use compound_watch::detect::MonthCounts;
use compound_watch::month::Month;
use compound_watch::summary::{self, MonthFigures, SiteSummary, GAP_BELOW};
use serde_json::Value;

use crate::common::demo_scan;

fn month_of(date: &str) -> Month {
    date[..7].parse().unwrap()
}

fn provenance(report: &geojson::FeatureCollection) -> &Value {
    &report.foreign_members.as_ref().unwrap()["compound_watch"]
}

fn props(f: &geojson::Feature) -> &serde_json::Map<String, Value> {
    f.properties.as_ref().unwrap()
}

/// The demo scan's output directory: its report and the summary the scan wrote beside it.
fn demo_out() -> PathBuf {
    demo_scan().summary.report.parent().unwrap().to_path_buf()
}

/// The demo scan's monthly figures, as the scan returned them.
fn demo_months() -> Vec<MonthFigures> {
    demo_scan().summary.months.clone()
}

fn sums(report: &geojson::FeatureCollection) -> (f64, usize) {
    let ha = report
        .features
        .iter()
        .map(|f| props(f)["area_ha"].as_f64().unwrap())
        .sum();
    (ha, report.features.len())
}

#[test]
fn the_scan_writes_its_own_monthly_figures_and_a_summary_that_agrees_with_its_report() {
    let dir = demo_out();
    let report = compound_watch::report::read_geojson(&dir.join("report.geojson")).unwrap();
    let (ha, n) = sums(&report);
    assert!(n > 0, "the demo finds construction");
    let figures = summary::read_site(&dir).unwrap();
    assert_relative_eq!(figures.totals.new_ha, ha, epsilon = 1e-6);
    assert_eq!(figures.totals.new_polygons, n);
    assert_eq!(figures.months.iter().map(|m| m.new_polygons).sum::<usize>(), n);
    assert_relative_eq!(figures.months.last().unwrap().cumulative_new_ha, ha, epsilon = 1e-6);
    let cw = provenance(&report);
    assert_eq!(figures.version, cw["version"].as_str().unwrap());
    assert_eq!(figures.parameters, cw["parameters"]);
    assert_eq!(figures.scenes.len(), cw["scenes"].as_array().unwrap().len());
    assert!(figures.synthetic);
    // Every month as the scan returned it is the month summary.json holds, and each is a gap
    // exactly when too little of the AOI was seen, with a built-up area only where it was measured.
    let measured = demo_months();
    assert_eq!(figures.months.len(), 24);
    assert_eq!(figures.months, measured, "summary.json and the scan's months differ");
    for m in &measured {
        assert_eq!(m.gap, m.clear_fraction < GAP_BELOW, "{}", m.month);
        assert_eq!(m.gap, m.builtup_measured_ha.is_none(), "{}", m.month);
        assert!(
            m.builtup_ha.is_some(),
            "{}: the stable estimate holds through gaps",
            m.month
        );
    }
    // The stable estimate moves only by the confirmed construction and demolition of each month
    // (pixels against geodesic polygon areas: within 5 % and 0.01 ha).
    for pair in measured.windows(2) {
        let jump = pair[1].builtup_ha.unwrap() - pair[0].builtup_ha.unwrap();
        let (new, gone) = (pair[1].new_ha, pair[1].demolished_ha);
        assert!(
            jump >= -gone * 1.05 - 0.01 && jump <= new * 1.05 + 0.01,
            "{}: stable built-up moved {jump} ha with {new} ha new and {gone} ha demolished",
            pair[1].month,
        );
    }
    // The synthetic monsoon leaves months the scan cannot measure; they are gaps, not zeros.
    let gaps: Vec<&MonthFigures> = measured.iter().filter(|m| m.gap).collect();
    assert!(!gaps.is_empty(), "the sample's monsoon gives gap months");
    assert!(gaps.len() < measured.len(), "most months are measured");
    assert!(gaps.iter().all(|m| m.builtup_measured_ha.is_none()));
    let csv = std::fs::read_to_string(dir.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 24);
    let html = std::fs::read_to_string(dir.join("summary.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("SYNTHETIC DATA"));
    // The Markdown is rendered, not shown: no backtick reaches the page.
    assert!(!html.contains('`'), "a backtick in summary.html");
    assert!(html.contains("<code>compound-watch sample</code>"));
    let pictures: Vec<&str> = html
        .split("src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(
        pictures.len(),
        1 + 2 + n,
        "the location map, two charts and a quicklook of every polygon: {pictures:?}"
    );
    assert_eq!(figures.quicklooks.len(), n, "a quicklook for every polygon");
    assert_eq!(pictures[0], "summary/location.png");
    for p in &pictures {
        let img = image::open(dir.join(p)).unwrap();
        let (w, h) = (img.width(), img.height());
        if p.contains("quicklook-") {
            // Two panels side by side under two caption rows (30 px each), 12 px margins: each
            // chip enlarged so its longer side is at least 256 px.
            let panel = ((w - 36) / 2).max(h - 84);
            assert!(panel >= 256, "{p} is {w}x{h}");
        } else {
            assert!(w >= 512, "{p} is {w}x{h}");
        }
    }
    for chart in &figures.charts {
        let img = image::open(dir.join(&chart.path)).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (1920, 760),
            "{} at twice 960x380",
            chart.path
        );
    }
    // The mail copy carries every picture inside itself and points at no file.
    let mail = std::fs::read_to_string(dir.join("summary-mail.html")).unwrap();
    let embedded: Vec<&str> = mail.split("src=\"").skip(1).collect();
    assert_eq!(embedded.len(), pictures.len());
    assert!(embedded.iter().all(|s| s.starts_with("data:image/png;base64,")));
    // summary.json says what the report says, in the report's forms.
    let json: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    for p in json["polygons"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        let f = report
            .features
            .iter()
            .find(|f| props(f)["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in the report"));
        assert_eq!(p["first_detected"], props(f)["first_detected"], "{id}");
        assert_eq!(p["n_clear_obs"], props(f)["n_clear_obs"], "{id}");
        assert!(p["n_clear_obs"].is_u64(), "{id}: n_clear_obs {}", p["n_clear_obs"]);
        for c in [&p["lon"], &p["lat"]] {
            let text = c.to_string();
            let decimals = text.split('.').nth(1).map_or(0, str::len);
            assert!(decimals <= 6, "{id}: {text} has more decimals than the report's 6");
        }
    }
    assert!(json["generated"].as_str().unwrap().len() == 10);
    assert!(json["latest_scene"]["datetime"]
        .as_str()
        .unwrap()
        .starts_with("2023-06"));
    // New construction falls only in months that saw something: a month may be too cloudy to
    // measure the site and still date a polygon whose own pixels were clear, never one unseen.
    for m in &measured {
        if m.new_polygons + m.provisional_polygons > 0 {
            assert!(
                m.clear_fraction > 0.0,
                "{}: new construction in a month that saw nothing",
                m.month
            );
        }
    }
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(!md.contains("dated to the next clear month"));
    assert!(md.contains("can fall in a gap month"));
}

fn counts(clear: u64, builtup: u64, obs: &[u64]) -> MonthCounts {
    MonthCounts {
        clear_pixels: clear,
        builtup_pixels: builtup,
        stable_pixels: 40,
        ambiguous_pixels: 5,
        demolished_pixels: 0,
        clear_obs_histogram: obs.to_vec(),
    }
}

/// Hand-made counts over a 100-pixel AOI of 10 m pixels (0.01 ha each): the clear share, the gap
/// rule (a month is a gap below GAP_BELOW, 0.8, of the AOI seen clearly) and no built-up figure in
/// a gap, however many built-up pixels were counted.
#[test]
fn month_figures_measure_clear_share_and_leave_gaps_unmeasured() {
    assert_eq!(GAP_BELOW, 0.8);
    let month = |m: &str| -> Month { m.parse().unwrap() };
    let given = [
        ("2022-01", 6, counts(100, 30, &[0, 10, 20, 70])),
        ("2022-02", 2, counts(80, 10, &[20, 80])),
        ("2022-03", 3, counts(79, 50, &[21, 79])),
        ("2022-04", 0, MonthCounts::default()),
    ];
    let measure = |aoi_pixels: u64, res: f64| -> Vec<MonthFigures> {
        given
            .iter()
            .map(|(m, scenes, c)| MonthFigures::measured(month(m), *scenes, c, aoi_pixels, res))
            .collect()
    };
    let f = measure(100, 10.0);
    assert_eq!(f.len(), 4);
    assert_eq!((f[0].month, f[0].scenes), (month("2022-01"), 6));
    assert_relative_eq!(f[0].clear_fraction, 1.0);
    assert_eq!(f[0].clear_obs_median, 3.0);
    assert!(!f[0].gap);
    assert_relative_eq!(f[0].builtup_measured_ha.unwrap(), 0.30, epsilon = 1e-12);
    // Exactly the threshold is measured.
    assert_relative_eq!(f[1].clear_fraction, 0.8);
    assert!(!f[1].gap);
    assert_relative_eq!(f[1].builtup_measured_ha.unwrap(), 0.10, epsilon = 1e-12);
    assert_eq!(f[1].clear_obs_median, 1.0);
    // Just under it is a gap: the 50 built-up pixels are a count over part of the site.
    assert_relative_eq!(f[2].clear_fraction, 0.79);
    assert!(f[2].gap);
    assert_eq!(f[2].builtup_measured_ha, None);
    // The stable estimate is not a single month's measurement: it is given in gaps too.
    assert_relative_eq!(f[2].builtup_ha.unwrap(), 0.40, epsilon = 1e-12);
    assert_relative_eq!(f[2].builtup_uncertainty_ha, 0.05, epsilon = 1e-12);
    // A month with no scene at all.
    assert_eq!(
        (f[3].clear_fraction, f[3].gap, f[3].builtup_measured_ha),
        (0.0, true, None)
    );
    assert_eq!(f[3].clear_obs_median, 0.0);
    // 20 m pixels are four times the area; an empty AOI measures nothing.
    assert_relative_eq!(measure(100, 20.0)[0].builtup_measured_ha.unwrap(), 1.2, epsilon = 1e-12);
    let none = measure(0, 10.0);
    assert_eq!(
        (none[0].clear_fraction, none[0].gap, none[0].builtup_measured_ha),
        (0.0, true, None)
    );
}

/// The demo's first year as a second AOI, from the same scan's figures, written where the test run
/// keeps the demo scan so a person can open it afterwards.
fn first_year_site() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let (from, to): (Month, Month) = ("2021-07".parse().unwrap(), "2022-06".parse().unwrap());
        let mut report = compound_watch::report::read_geojson(&demo_scan().summary.report).unwrap();
        report
            .features
            .retain(|f| (from..=to).contains(&month_of(props(f)["first_detected"].as_str().unwrap())));
        let aoi = provenance(&report)["aoi"].clone();
        let site = SiteSummary {
            aoi_name: format!("{}, first year", aoi["name"].as_str().unwrap()),
            aoi_slug: format!("{}-first-year", aoi["slug"].as_str().unwrap()),
            period: summary::Period { from, to },
            months: demo_months().into_iter().filter(|m| m.month <= to).collect(),
            quicklooks: Vec::new(),
            location: None,
            generated: chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(),
            report,
            synthetic: true,
        };
        let dir = demo_scan().dir.join("summary-first-year");
        summary::write_site(&dir, &site).unwrap();
        dir
    })
}

fn cli() -> Command {
    Command::cargo_bin("compound-watch").unwrap()
}

#[test]
fn summary_command_sums_two_outputs() {
    let (whole, first_year) = (&demo_out(), first_year_site());
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

//! Diffs between scans, the QGIS styles and project: written by every scan, stable ids from one scan
//! to the next, the `diff` command, and the real QGIS client opening all of it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use assert_cmd::Command;
use compound_watch::scan::{self, ScanSummary, Silent};
use compound_watch::source::StaticCatalog;
use serde_json::Value;

use crate::common::{demo_config, demo_scan, python_tool, qgis_tool, read_json, sample_dir, CountingReader};

/// Two scans into one output, a month apart in the sample's terms: first to 2023-01, then to the end
/// of the sample (2023-06), as a monthly cron job would leave them. Returns the first report (as it
/// was before the second scan replaced it) and the second scan.
struct Later {
    first_report: Value,
    summary: ScanSummary,
}

fn later_scan() -> &'static Later {
    static LATER: OnceLock<Later> = OnceLock::new();
    LATER.get_or_init(|| {
        let demo = demo_scan();
        let out = tempfile::tempdir().unwrap().keep().join("out");
        let source = StaticCatalog::new(sample_dir().join("catalog.json"));
        let mut config = demo_config(&out, &demo.cache());
        config.to = "2023-01".parse().unwrap();
        let first = scan::run(&config, &source, &CountingReader::default(), &Silent).unwrap();
        let first_report = read_json(&first.report);
        let summary = scan::run(
            &demo_config(&out, &demo.cache()),
            &source,
            &CountingReader::default(),
            &Silent,
        )
        .unwrap();
        Later { first_report, summary }
    })
}

fn ids(collection: &Value) -> BTreeSet<String> {
    collection["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

fn counts(diff: &Value) -> [u64; 5] {
    let c = &diff["compound_watch_diff"]["counts"];
    ["added", "grown", "shrunk", "unchanged", "removed"].map(|k| c[k].as_u64().unwrap())
}

#[test]
fn the_first_scan_of_an_output_writes_an_all_added_diff_styles_and_a_project() {
    let demo = demo_scan();
    let out = demo.summary.report.parent().unwrap();
    let diff = read_json(&demo.summary.diff);
    assert_eq!(counts(&diff), [demo.summary.detections as u64, 0, 0, 0, 0]);
    assert_eq!(ids(&diff), ids(&read_json(&demo.summary.report)));
    for file in ["report.qml", "diff.qml", "aoi.geojson", "aoi.qml", "project.qgs"] {
        assert!(out.join(file).is_file(), "the scan did not write {file}");
    }
    let project = std::fs::read_to_string(&demo.summary.project).unwrap();
    assert!(
        !project.contains(&out.display().to_string()),
        "project.qgs must use relative paths so the output can be moved"
    );
}

#[test]
fn a_later_scan_keeps_the_ids_and_lists_what_changed() {
    let later = later_scan();
    let first_ids = ids(&later.first_report);
    let report = read_json(&later.summary.report);
    let diff = read_json(&later.summary.diff);
    let c = counts(&diff);
    eprintln!("2023-01 -> 2023-06: added, grown, shrunk, unchanged, removed = {c:?}");
    assert_eq!(
        c.iter().sum::<u64>() as usize,
        diff["features"].as_array().unwrap().len()
    );
    // Everything the sample builds is first seen clearly by December 2022: a scan to 2023-01 has
    // seen it all, and a later one adds nothing (an added polygon would be a late detection).
    let truth = read_json(&sample_dir().join("truth.geojson"));
    let last_new = truth["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["kind"] == "construction")
        .map(|f| f["properties"]["first_clear_after"].as_str().unwrap()[..7].to_owned())
        .max()
        .unwrap();
    assert!(last_new.as_str() < "2023-01", "{last_new}");
    assert_eq!(c[0], 0, "nothing new after {last_new}, yet polygons were added: {c:?}");
    assert!(c[1] + c[3] > 0, "some polygons of 2023-01 should continue: {c:?}");
    let mut carried = 0;
    for f in diff["features"].as_array().unwrap() {
        let p = &f["properties"];
        let id = p["id"].as_str().unwrap();
        match p["change"].as_str().unwrap() {
            "added" => assert!(p["prev_ids"].as_array().unwrap().is_empty()),
            "removed" => assert!(first_ids.contains(id), "{id} was removed but never reported"),
            _ if p["split_from"].as_array().unwrap().is_empty() => {
                // A continued polygon carries its previous id, in the diff and in the report.
                assert!(first_ids.contains(id), "{id} continues a polygon but has a new id");
                carried += 1;
            }
            _ => {}
        }
    }
    assert!(carried > 0);
    let current: BTreeSet<String> = diff["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["change"] != "removed")
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(current, ids(&report), "the diff and the report must use the same ids");
}

/// The month of a report feature's date property (`YYYY-MM-DD`), as `YYYY-MM`.
fn month_of(f: &Value, key: &str) -> String {
    f["properties"][key].as_str().unwrap()[..7].to_owned()
}

#[test]
fn construction_seen_in_the_last_month_is_provisional_then_confirmed_with_the_same_id() {
    // The full sample's polygons dated at least two months before its end: scanning only up to
    // their first month sees each in one clear month, too few to confirm.
    let demo = demo_scan();
    let full = read_json(&demo.summary.report);
    let last_month = "2023-04";
    let candidates: Vec<&Value> = full["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| month_of(f, "first_detected").as_str() <= last_month)
        .collect();
    let target = candidates.last().expect("the sample has construction before 2023-05");
    let at = month_of(target, "first_detected");
    let out = tempfile::tempdir().unwrap().keep().join("out");
    let source = StaticCatalog::new(sample_dir().join("catalog.json"));
    let mut config = demo_config(&out, &demo.cache());
    config.to = at.parse().unwrap();
    let first = scan::run(&config, &source, &CountingReader::default(), &Silent).unwrap();
    let first_report = read_json(&first.report);
    let first_seen_at = |report: &Value| -> Vec<Value> {
        report["features"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| month_of(f, "first_detected") == at)
            .cloned()
            .collect()
    };
    let provisional: Vec<Value> = first_seen_at(&first_report)
        .into_iter()
        .filter(|f| f["properties"]["status"] == "provisional")
        .collect();
    eprintln!(
        "scan to {at}: {} polygons first seen in {at}, {} provisional",
        first_seen_at(&first_report).len(),
        provisional.len()
    );
    assert!(
        !provisional.is_empty(),
        "construction first seen in the last month of a scan is provisional"
    );
    for f in &provisional {
        assert!(f["properties"]["confirmed_on"].is_null());
        assert!(month_of(f, "last_clear_before") < at);
    }
    // The next scans, month by month, keep the id and confirm it once a second clear month shows it.
    let second = scan::run(
        &demo_config(&out, &demo.cache()),
        &source,
        &CountingReader::default(),
        &Silent,
    )
    .unwrap();
    let diff = read_json(&second.diff);
    let report = read_json(&second.report);
    for f in &provisional {
        let id = f["id"].as_str().unwrap();
        let now = diff["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not in the diff"));
        let p = &now["properties"];
        assert_eq!(p["status_prev"], "provisional", "{id}");
        match p["status"].as_str().unwrap() {
            "confirmed" => {
                assert_eq!(month_of(now, "first_detected"), at, "{id} keeps its first month");
                assert!(month_of(now, "confirmed_on") > at);
                assert!(ids(&report).contains(id));
            }
            "withdrawn" => assert_eq!(p["change"], "removed"),
            other => panic!("{id}: status {other} after five more months"),
        }
    }
    let confirmed = diff["compound_watch_diff"]["counts"]["confirmed"].as_u64().unwrap();
    assert!(confirmed >= 1, "at least one provisional polygon is confirmed later");
}

#[test]
fn rerunning_a_scan_writes_the_same_diff_and_report() {
    let later = later_scan();
    let (report, diff) = (
        std::fs::read(&later.summary.report).unwrap(),
        std::fs::read(&later.summary.diff).unwrap(),
    );
    let out = later.summary.report.parent().unwrap();
    let copy = tempfile::tempdir().unwrap();
    // Copy the output (with its .compound-watch state) so the shared one is not disturbed.
    copy_dir(out, copy.path());
    let again = scan::run(
        &demo_config(copy.path(), &demo_scan().cache()),
        &StaticCatalog::new(sample_dir().join("catalog.json")),
        &CountingReader::default(),
        &Silent,
    )
    .unwrap();
    assert_eq!(std::fs::read(&again.report).unwrap(), report);
    assert_eq!(
        std::fs::read(&again.diff).unwrap(),
        diff,
        "a rerun of the same period must diff against the same previous report"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != "lock" {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_diff_passes_the_strict_rfc7946_checker() {
    let path = later_scan().summary.diff.to_str().unwrap().to_owned();
    let Some(out) = python_tool("tools/check_geojson.py", &[&path, "--bbox", "97,15,100,18"], "shapely") else {
        return;
    };
    assert!(
        out.status.success(),
        "check_geojson.py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// QGIS applies each .qml, every feature gets a symbol, and the map renders over the composite.
/// The PNGs are kept in target/qgis-maps/ to be looked at.
#[test]
fn qgis_styles_every_feature_of_the_report_and_the_diff() {
    let later = later_scan();
    let maps = crate::common::root().join("target/qgis-maps");
    std::fs::create_dir_all(&maps).unwrap();
    for (data, name) in [(&later.summary.report, "report"), (&later.summary.diff, "diff")] {
        let qml = data.with_extension("qml");
        let png = maps.join(format!("{name}.png"));
        let Some(out) = qgis_tool("render_map.py", &[data, &qml, &png, &later.summary.composite]) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "render_map.py {name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("render error"), "{stdout}");
        let labels = if name == "report" { "True" } else { "False" };
        assert!(
            stdout.contains(&format!("renderer: categorizedSymbol | labels: {labels}")),
            "{name}.qml was not applied: {stdout}"
        );
        eprintln!("{name}: {}", png.display());
    }
}

#[test]
fn qgis_opens_the_project_with_every_layer_valid_even_after_a_move() {
    let later = later_scan();
    let moved = tempfile::tempdir().unwrap();
    copy_dir(later.summary.report.parent().unwrap(), moved.path());
    let project: PathBuf = moved.path().join("project.qgs");
    let Some(out) = qgis_tool("check_project.py", &[&project]) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check_project.py: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 layers, crs EPSG:32647"), "{stdout}");
    assert!(
        stdout.contains(&moved.path().display().to_string()),
        "layers not found beside the project: {stdout}"
    );
}

/// The project's temporal controller steps through the months: rendered by headless QGIS at two
/// months (docs/render_project.py) with the monthly composites ticked, the report layer shows the
/// polygons first detected by each, as the report dates them, and of the monthly composites only
/// that month's is drawn. The PNGs are kept in target/qgis-maps/ to be looked at.
#[test]
fn qgis_steps_the_project_through_the_months_by_first_detected() {
    /// The layer-panel group of the monthly composites in project.qgs.
    const MONTHS_GROUP: &str = "monthly composites (tick, then step with the temporal controller)";
    let scan = &demo_scan().summary;
    let report = read_json(&scan.report);
    let dates: Vec<&str> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["first_detected"].as_str().unwrap())
        .collect();
    let maps = crate::common::root().join("target/qgis-maps");
    std::fs::create_dir_all(&maps).unwrap();
    let script = crate::common::root().join("docs/render_project.py");
    let mut shown = Vec::new();
    for month in ["2022-01", "2022-10"] {
        let png = maps.join(format!("project-{month}.png"));
        let args = [
            scan.project.as_os_str(),
            png.as_os_str(),
            "--month".as_ref(),
            month.as_ref(),
            "--width".as_ref(),
            "800".as_ref(),
            "--tick".as_ref(),
            MONTHS_GROUP.as_ref(),
        ];
        let Some(out) = crate::common::qgis_python(&script, &args) else {
            return;
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("render error"),
            "render_project.py {month}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find(|l| l.starts_with("temporal report: "))
            .unwrap_or_else(|| panic!("the report layer is not temporal: {stdout}"));
        let n: usize = line["temporal report: ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let first_day = format!("{month}-01");
        let expected = dates.iter().filter(|&&d| d <= first_day.as_str()).count();
        assert_eq!(n, expected, "{month}: {line}");
        assert!(
            stdout.lines().any(|l| l == format!("temporal rasters: {month}")),
            "{month}: not that month's composite alone: {stdout}"
        );
        assert!(line.contains(&format!("of {} features", dates.len())), "{line}");
        shown.push((n, std::fs::read(&png).unwrap()));
        eprintln!("{month}: {} ({line})", png.display());
    }
    assert!(
        0 < shown[0].0 && shown[0].0 < shown[1].0,
        "the two months show different polygons"
    );
    assert_ne!(shown[0].1, shown[1].1, "the two maps differ");
}

fn cli() -> Command {
    Command::cargo_bin("compound-watch").unwrap()
}

#[test]
fn the_diff_command_writes_the_diff_and_its_style() {
    let later = later_scan();
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.geojson");
    std::fs::write(&old, later.first_report.to_string()).unwrap();
    let out = dir.path().join("d/diff.geojson");
    let assert = cli()
        .arg("diff")
        .arg(&old)
        .arg(&later.summary.report)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let diff = read_json(&out);
    let c = counts(&diff);
    assert!(stdout.contains(&format!("{} added, {} grown", c[0], c[1])), "{stdout}");
    assert!(out.with_extension("qml").is_file());
    // Same features and kinds as the scan's own diff (which also knew nothing but the two reports).
    let kinds = |d: &Value| -> Vec<(String, String)> {
        d["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["id"].as_str().unwrap().into(),
                    f["properties"]["change"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(kinds(&diff), kinds(&read_json(&later.summary.diff)));
    assert_eq!(
        diff["compound_watch_diff"]["previous"]["file"],
        old.display().to_string()
    );
}

#[test]
fn the_diff_command_names_a_missing_or_unreadable_file_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let report = demo_scan().summary.report.clone();
    let missing = dir.path().join("missing.geojson");
    let not_json = dir.path().join("notes.geojson");
    std::fs::write(&not_json, "these are my notes, not GeoJSON").unwrap();
    let points = dir.path().join("points.geojson");
    std::fs::write(
        &points,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","id":"x","properties":{},"geometry":{"type":"Point","coordinates":[98.5,16.7]}}]}"#,
    )
    .unwrap();
    for (bad, says) in [
        (&missing, "cannot be read"),
        (&not_json, "is not JSON"),
        (&points, "no Polygon"),
    ] {
        let out = dir.path().join("diff.geojson");
        let assert = cli()
            .arg("diff")
            .arg(bad)
            .arg(&report)
            .arg("-o")
            .arg(&out)
            .assert()
            .code(1);
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(
            stderr.contains(&bad.display().to_string()) && stderr.contains(says),
            "{stderr}"
        );
        assert!(!out.exists(), "nothing may be written when an input is bad");
    }
    cli()
        .arg("diff")
        .arg(&report)
        .arg(&report)
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--out"));
}

//! The real binary: help, exit codes, and errors a user can act on.

use std::path::Path;

use assert_cmd::Command;

use crate::common::{root, sample_dir};

fn cli() -> Command {
    Command::cargo_bin("compound-watch").unwrap()
}

#[test]
fn help_documents_the_exit_codes() {
    let out = cli()
        .args(["scan", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    for needle in [
        "--aoi",
        "--bbox",
        "--source",
        "--from",
        "--to",
        "--out",
        "--cache",
        "Exit codes",
        "3  finished",
    ] {
        assert!(text.contains(needle), "help lacks {needle:?}");
    }
}

#[test]
fn a_bad_aoi_exits_1_naming_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let aoi = dir.path().join("site.geojson");
    std::fs::write(&aoi, r#"{"type":"Point","coordinates":[98.5,16.7]}"#).unwrap();
    let out = dir.path().join("out");
    let assert = cli()
        .args([
            "scan",
            "--source",
            "catalog.json",
            "--from",
            "2022-01",
            "--to",
            "2022-03",
            "--out",
        ])
        .arg(&out)
        .arg("--aoi")
        .arg(&aoi)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains(&aoi.display().to_string()) && stderr.contains("polygon"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn a_bad_month_is_a_usage_error() {
    cli()
        .args([
            "scan",
            "--bbox",
            "98.49,16.67,98.53,16.71",
            "--source",
            "x",
            "--from",
            "2022-13",
            "--to",
            "2022-03",
            "--out",
            "o",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("YYYY-MM"));
}

/// A catalog with two good sample items and one whose red band is missing: the scan finishes,
/// lists the broken scene, and exits 3.
#[test]
fn a_skipped_scene_is_listed_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let items: Vec<_> = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("202301"))
        .collect();
    assert!(items.len() >= 3);
    let mut links = vec![];
    for (i, item_dir) in items.iter().take(3).enumerate() {
        let id = item_dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut item: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(item_dir.join(format!("{id}.json"))).unwrap()).unwrap();
        for (_, asset) in item["assets"].as_object_mut().unwrap() {
            let href = asset["href"].as_str().unwrap().trim_start_matches("./").to_owned();
            asset["href"] = item_dir.join(href).display().to_string().into();
        }
        if i == 0 {
            item["assets"]["red"]["href"] = dir.path().join("missing/B04.tif").display().to_string().into();
        }
        let path = dir.path().join(format!("{id}.json"));
        std::fs::write(&path, item.to_string()).unwrap();
        links.push(serde_json::json!({"rel": "item", "href": format!("./{id}.json")}));
    }
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        serde_json::json!({"type": "Catalog", "id": "t", "description": "t", "stac_version": "1.0.0", "links": links})
            .to_string(),
    )
    .unwrap();
    let assert = cli()
        // Two usable scenes of three: allowed here, below the default --min-scenes 4.
        .args([
            "scan",
            "--from",
            "2023-01",
            "--to",
            "2023-01",
            "--quiet",
            "--min-scenes",
            "2",
            "--aoi",
        ])
        .arg(root().join("aoi/myawaddy.geojson"))
        .arg("--source")
        .arg(&catalog)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--cache")
        .arg(dir.path().join("cache"))
        .assert()
        .code(3);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("skipped") && stderr.contains("red"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("out/report.geojson")).unwrap()).unwrap();
    assert_eq!(report["compound_watch"]["skipped"].as_array().unwrap().len(), 1);
}

fn scan_args(out: &std::path::Path, cache: &std::path::Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["scan", "--from", "2021-07", "--to", "2023-06", "--quiet", "--aoi"]
        .iter()
        .map(Into::into)
        .collect();
    args.push(root().join("aoi/myawaddy.geojson").into());
    args.push("--source".into());
    args.push(sample_dir().join("catalog.json").into());
    args.push("--out".into());
    args.push(out.into());
    args.push("--cache".into());
    args.push(cache.into());
    args
}

/// The stages a scan announced on stderr (`compound-watch: 2026-01-31T12:00:00Z fetch (146)`
/// without a terminal: each line stamped with the time, RFC 3339 UTC).
fn stages_of(stderr: &[u8]) -> Vec<(String, u64)> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("compound-watch: "))
        .filter_map(|l| {
            let (time, rest) = l.split_once(' ')?;
            chrono::DateTime::parse_from_rfc3339(time)
                .ok()
                .filter(|_| time.ends_with('Z'))?;
            Some(rest)
        })
        .filter_map(|l| {
            let (name, total) = l.split_once(" (")?;
            Some((name.to_owned(), total.strip_suffix(')')?.parse().ok()?))
        })
        .collect()
}

/// Killed (abort, as `kill -9`: no cleanup) at each stage boundary in turn (as a stage starts,
/// half-way through it, as its last unit is done) through the binary's test hook
/// COMPOUND_WATCH_ABORT_AT, then rerun: every file in --out is byte for byte the uninterrupted
/// scan's, and no temporary file is left. The kill points come from the stages the scan announces,
/// so a stage added later is covered without changing this test.
#[test]
fn a_scan_killed_at_each_stage_boundary_and_rerun_writes_what_an_uninterrupted_scan_writes() {
    use std::os::unix::process::ExitStatusExt;
    let sample = crate::scenarios::scenario_dir(compound_watch::sample::Scenario::MonsoonBuilding);
    let bbox = crate::scenarios::BBOX.map(|v| v.to_string()).join(",");
    let dir = tempfile::tempdir().unwrap();
    let scan = |out: &Path, cache: &Path, abort_at: Option<&str>| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("compound-watch"));
        // With --months: the monthly composites, written during detection, are published with the rest.
        cmd.args([
            "scan", "--months", "--from", "2021-07", "--to", "2023-06", "--bbox", &bbox, "--source",
        ])
        .arg(sample.join("catalog.json"))
        .arg("--out")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .env_remove("COMPOUND_WATCH_ABORT_AT");
        if let Some(point) = abort_at {
            cmd.env("COMPOUND_WATCH_ABORT_AT", point);
        }
        cmd.output().unwrap()
    };
    let (reference, warm_cache) = (dir.path().join("reference"), dir.path().join("cache"));
    let first = scan(&reference, &warm_cache, None);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let expected = crate::common::output_files(&reference);
    let stages = stages_of(&first.stderr);
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    for stage in ["search", "fetch", "offsets", "detect", "report"] {
        assert!(names.contains(&stage), "no {stage} stage in {names:?}");
    }
    let mut points = Vec::new();
    for (name, total) in &stages {
        points.push((name.clone(), name.clone()));
        if *total > 1 {
            points.push((name.clone(), format!("{name}:{}", total / 2)));
        }
        if *total > 0 {
            points.push((name.clone(), format!("{name}:{total}")));
        }
    }
    for (i, (stage, point)) in points.iter().enumerate() {
        let out = dir.path().join(format!("out-{i}"));
        // Killed while fetching, the scan is killed while it fills its cache: give it an empty one.
        let cache = if stage == "fetch" {
            dir.path().join(format!("cache-{i}"))
        } else {
            warm_cache.clone()
        };
        let killed = scan(&out, &cache, Some(point));
        assert_eq!(
            killed.status.signal(),
            Some(6), // SIGABRT
            "{point}: the scan was not aborted there: {}",
            String::from_utf8_lossy(&killed.stderr)
        );
        let reached = stages_of(&killed.stderr);
        assert_eq!(
            reached.last().map(|(n, _)| n.as_str()),
            Some(stage.as_str()),
            "{point}: aborted in another stage"
        );
        let rerun = scan(&out, &cache, None);
        assert!(
            rerun.status.success(),
            "{point}: the rerun failed: {}",
            String::from_utf8_lossy(&rerun.stderr)
        );
        let got = crate::common::output_files(&out);
        let leftovers: Vec<&String> = got
            .keys()
            .filter(|k| k.rsplit('/').next().unwrap().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{point}: temporary files left: {leftovers:?}");
        let differ: Vec<&String> = expected
            .keys()
            .chain(got.keys())
            .filter(|k| expected.get(*k) != got.get(*k))
            .collect();
        assert!(
            differ.is_empty(),
            "killed at {point} and rerun, these files differ from the uninterrupted scan's: {differ:?}"
        );
    }
}

#[test]
fn a_second_concurrent_scan_on_the_same_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("out"), dir.path().join("cache"));
    let _held = compound_watch::state::lock(&out).unwrap();
    let assert = cli().args(scan_args(&out, &cache)).assert().code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("another scan") && stderr.contains(&std::process::id().to_string()),
        "{stderr}"
    );
    assert!(!out.join("report.geojson").exists());
}

#[test]
fn cache_info_counts_the_windows_and_offline_without_a_previous_scan_says_what_to_do() {
    let demo = crate::common::demo_scan();
    let out = cli()
        .args(["cache", "info", "--cache"])
        .arg(demo.cache())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(&format!("windows:   {} ", demo.summary.windows_fetched)),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut args = scan_args(&dir.path().join("out"), &demo.cache());
    args.push("--offline".into());
    cli()
        .args(args)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("run once without --offline"));
}

/// One row of the README's OSCD table: precision, recall, F1, leave-one-city-out F1 with its fitted
/// (low, high) pair (none on the pooled row), construction F1.
struct OscdRow {
    precision: f64,
    recall: f64,
    f1: f64,
    held_out_f1: f64,
    held_out_pair: Option<(f64, f64)>,
    construction_f1: f64,
}

/// The README's "On real labelled Sentinel-2" table, read from README.md itself so the test and the
/// claim cannot drift apart.
fn readme_oscd_table() -> std::collections::BTreeMap<String, OscdRow> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("| city | precision | recall | F1 |")
        .expect("README.md has the OSCD table");
    let mut rows = std::collections::BTreeMap::new();
    for line in readme[start..].lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.replace('*', "").trim().to_owned())
            .collect();
        let num = |c: &str| -> f64 { c.split_whitespace().next().unwrap().parse().unwrap() };
        let held_out_pair = cells[4].split_once('(').map(|(_, pair)| {
            let (low, high) = pair.trim_end_matches(')').split_once('/').unwrap();
            (low.parse().unwrap(), high.parse().unwrap())
        });
        rows.insert(
            cells[0].clone(),
            OscdRow {
                precision: num(&cells[1]),
                recall: num(&cells[2]),
                f1: num(&cells[3]),
                held_out_f1: num(&cells[4]),
                held_out_pair,
                construction_f1: num(&cells[5]),
            },
        );
    }
    rows
}

/// The OSCD evaluation runs on the real labelled pairs in the shared data, writes maps on the label
/// grid, and scores what the README's table states, per city and pooled, to +-0.005 (the table
/// rounds to 0.001; the slack lets a harmless change of float order through, a change of the
/// detector not). The fitted pair is the scan's default, 1.6/3.2, as the README says.
#[test]
fn eval_oscd_scores_what_the_readme_states() {
    let Some(shared) = crate::common::shared() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = cli()
        .args(["eval", "oscd", "--data"])
        .arg(shared.join("data/oscd"))
        .arg("--out")
        .arg(dir.path())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("**pooled**"), "{text}");
    let json = crate::common::read_json(&dir.path().join("eval.json"));
    let readme = readme_oscd_table();
    let cities = json["cities"].as_array().unwrap();
    assert_eq!(cities.len(), 5);
    assert_eq!(readme.len(), 6, "five cities and the pooled row in the README");
    let close = |what: String, got: f64, stated: f64| {
        assert!(
            (got - stated).abs() <= 0.005,
            "{what}: measured {got:.4}, the README states {stated:.3}"
        );
    };
    let mut default_pair_folds = 0;
    for city in cities {
        let name = city["name"].as_str().unwrap();
        let map = gdal::Dataset::open(dir.path().join(format!("{name}-cm.tif"))).unwrap();
        let labels = gdal::Dataset::open(shared.join(format!("data/oscd/{name}/cm/{name}-cm.tif"))).unwrap();
        assert_eq!(
            map.raster_size(),
            labels.raster_size(),
            "{name}: the map is not on the label grid"
        );
        let row = readme
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the README table"));
        let s = &city["scores"];
        close(
            format!("{name} precision"),
            s["precision"].as_f64().unwrap(),
            row.precision,
        );
        close(format!("{name} recall"), s["recall"].as_f64().unwrap(), row.recall);
        close(format!("{name} F1"), s["f1"].as_f64().unwrap(), row.f1);
        let loco = &city["leave_one_out"];
        close(
            format!("{name} leave-one-city-out F1"),
            loco["scores"]["f1"].as_f64().unwrap(),
            row.held_out_f1,
        );
        let pair = (
            loco["change_low"].as_f64().unwrap(),
            loco["change_high"].as_f64().unwrap(),
        );
        let stated = row.held_out_pair.unwrap();
        assert!(
            (pair.0 - stated.0).abs() < 1e-4 && (pair.1 - stated.1).abs() < 1e-4,
            "{name}: leave-one-city-out fitted {pair:?}, the README states {stated:?}"
        );
        default_pair_folds += usize::from((pair.0 - 1.6).abs() < 1e-4 && (pair.1 - 3.2).abs() < 1e-4);
        close(
            format!("{name} construction F1"),
            city["construction_scores"]["f1"].as_f64().unwrap(),
            row.construction_f1,
        );
    }
    let pooled = &readme["pooled"];
    let p = &json["pooled"];
    close(
        "pooled precision".into(),
        p["precision"].as_f64().unwrap(),
        pooled.precision,
    );
    close("pooled recall".into(), p["recall"].as_f64().unwrap(), pooled.recall);
    close("pooled F1".into(), p["f1"].as_f64().unwrap(), pooled.f1);
    close(
        "pooled leave-one-city-out F1".into(),
        json["pooled_leave_one_out"]["f1"].as_f64().unwrap(),
        pooled.held_out_f1,
    );
    close(
        "pooled construction F1".into(),
        json["pooled_construction"]["f1"].as_f64().unwrap(),
        pooled.construction_f1,
    );
    // "The scan's defaults (1.6/3.2) are the grid's best on all five cities", and "three of five
    // folds pick the same pair".
    let fitted: (f64, f64) = serde_json::from_value(json["fitted_on_all"].clone()).unwrap();
    assert!(
        (fitted.0 - 1.6).abs() < 1e-4 && (fitted.1 - 3.2).abs() < 1e-4,
        "fitted on all five cities: {fitted:?}"
    );
    let detect = &json["parameters"];
    assert!(
        (detect["change_low"].as_f64().unwrap() - 1.6).abs() < 1e-4
            && (detect["change_high"].as_f64().unwrap() - 3.2).abs() < 1e-4,
        "the scan's defaults are not the fitted pair: {detect}"
    );
    assert_eq!(default_pair_folds, 3, "folds that fit 1.6/3.2");
}

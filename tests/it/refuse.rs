//! Never publish a wrong report: every bad input, failed or empty scan over an output that holds a
//! good report must exit with its documented code, say what is wrong, and leave every previous
//! output byte for byte as it was.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

use crate::common::{copy_dir, demo_scan, output_files, read_json, root, sample_dir};

/// A copy of the demo scan's output (a report with well over 10 polygons) to fail over.
pub(crate) fn good_output(dir: &Path) -> PathBuf {
    let out = dir.join("out");
    copy_dir(&demo_scan().dir.join("out"), &out);
    let polygons = read_json(&out.join("report.geojson"))["features"]
        .as_array()
        .unwrap()
        .len();
    assert!(polygons >= 10, "the good report has {polygons} polygons");
    out
}

/// The demo's scan arguments, with `--out`; `changes` replaces or adds flags.
pub(crate) fn scan_args(out: &Path, cache: &Path, changes: &[(&str, &str)]) -> Vec<String> {
    let mut flags: Vec<(String, String)> = [
        ("--aoi", root().join("aoi/myawaddy.geojson").display().to_string()),
        ("--source", sample_dir().join("catalog.json").display().to_string()),
        ("--from", "2021-07".into()),
        ("--to", "2023-06".into()),
        ("--out", out.display().to_string()),
        ("--cache", cache.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in changes {
        if *k == "--aoi" {
            flags.retain(|(f, _)| f != "--aoi");
        }
        if *k == "--bbox" {
            flags.retain(|(f, _)| f != "--aoi");
        }
        match flags.iter_mut().find(|(f, _)| f == k) {
            Some(flag) => flag.1 = (*v).to_owned(),
            None => flags.push(((*k).to_owned(), (*v).to_owned())),
        }
    }
    let mut args = vec!["scan".to_owned(), "--quiet".to_owned()];
    for (k, v) in flags {
        args.push(k);
        if !v.is_empty() {
            args.push(v);
        }
    }
    args
}

/// Runs the scan with `changes` over a copy of a good output; checks the exit code, that stderr
/// says `says`, and that nothing in the output changed. Returns stderr.
fn refused(dir: &Path, changes: &[(&str, &str)], code: i32, says: &str) -> String {
    let out = good_output(dir);
    let before = output_files(&out);
    let cache = demo_scan().cache();
    let args = scan_args(&out, &cache, changes);
    let assert = Command::cargo_bin("compound-watch")
        .unwrap()
        .args(&args)
        .timeout(std::time::Duration::from_secs(120))
        .assert();
    let output = assert.get_output();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}\nstdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.contains(says), "{args:?}: stderr lacks {says:?}:\n{stderr}");
    // One row of the bad-input table (shown with --nocapture): the changed flags, code, message.
    let message = stderr
        .lines()
        .find(|l| l.contains("error") || l.contains("refused"))
        .unwrap_or_default();
    println!("| `{changes:?}` | {code} | {message} |");
    let after = output_files(&out);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "{args:?}: files were added or removed"
    );
    for (name, bytes) in &before {
        assert!(after[name] == *bytes, "{args:?}: {name} changed");
    }
    stderr
}

/// Writes a copy of the sample's catalog whose items are changed by `edit` (their assets resolved
/// to absolute paths first, so they still point at the sample's files unless `edit` says otherwise).
fn edited_catalog(dir: &Path, edit: impl Fn(&mut Value)) -> PathBuf {
    let catalog = dir.join("catalog");
    std::fs::create_dir_all(catalog.join("items")).unwrap();
    let mut links = vec![];
    for entry in std::fs::read_dir(sample_dir().join("items")).unwrap() {
        let item_dir = entry.unwrap().path();
        let id = item_dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut item = read_json(&item_dir.join(format!("{id}.json")));
        for (_, asset) in item["assets"].as_object_mut().unwrap() {
            let href = asset["href"].as_str().unwrap().trim_start_matches("./").to_owned();
            asset["href"] = item_dir.join(href).display().to_string().into();
        }
        edit(&mut item);
        let file = catalog.join("items").join(format!("{id}.json"));
        std::fs::write(&file, item.to_string()).unwrap();
        links.push(serde_json::json!({"rel": "item", "href": format!("./items/{id}.json")}));
    }
    let doc = serde_json::json!({"type": "Catalog", "stac_version": "1.0.0", "id": "sentinel-2-l2a",
        "description": "edited copy", "links": links});
    std::fs::write(catalog.join("catalog.json"), doc.to_string()).unwrap();
    catalog.join("catalog.json")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn fifo(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(made.success());
    path.display().to_string()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// Empty and failed scans: exit 4, nothing published.

#[test]
fn an_empty_catalog_publishes_nothing() {
    let d = tmp();
    let empty = write(
        d.path(),
        "catalog.json",
        r#"{"type":"Catalog","stac_version":"1.0.0","id":"c","description":"empty","links":[]}"#,
    );
    refused(d.path(), &[("--source", &empty)], 4, "no scene of this AOI");
}

#[test]
fn a_period_without_scenes_publishes_nothing() {
    let d = tmp();
    refused(
        d.path(),
        &[("--from", "2019-01"), ("--to", "2019-06")],
        4,
        "no scene of this AOI",
    );
}

#[test]
fn a_box_outside_the_source_publishes_nothing() {
    let d = tmp();
    refused(
        d.path(),
        &[("--bbox", "100.1,13.1,100.15,13.15")],
        4,
        "no scene of this AOI",
    );
}

/// A scan of the sample's catalog with every item changed by `edit`, and a cache of its own: it
/// must be refused (exit 4), each skipped scene saying `reason`.
fn refused_with_edited_items(edit: impl Fn(&mut Value), reason: &str) {
    let d = tmp();
    let catalog = edited_catalog(d.path(), edit);
    let cache = d.path().join("c");
    let changes = [
        ("--source", catalog.to_str().unwrap()),
        ("--cache", cache.to_str().unwrap()),
    ];
    let stderr = refused(d.path(), &changes, 4, "could be used");
    assert!(stderr.contains(reason), "{stderr}");
}

#[test]
fn assets_that_are_all_missing_publish_nothing() {
    refused_with_edited_items(
        |item| {
            for (_, asset) in item["assets"].as_object_mut().unwrap() {
                asset["href"] = "./missing.tif".into();
            }
        },
        "file not found",
    );
}

#[test]
fn assets_that_are_fifos_are_refused_not_waited_for() {
    let d = tmp();
    let pipe = fifo(d.path(), "asset.tif");
    refused_with_edited_items(
        |item| {
            for (_, asset) in item["assets"].as_object_mut().unwrap() {
                asset["href"] = pipe.clone().into();
            }
        },
        "not a regular file",
    );
}

#[test]
fn assets_in_another_crs_than_their_item_says_are_skipped_not_used_empty() {
    refused_with_edited_items(
        |item| item["properties"]["proj:epsg"] = 32648.into(),
        "the file is in EPSG:32647, but the item says proj:epsg 32648",
    );
}

#[test]
fn offline_with_an_empty_cache_publishes_nothing() {
    let d = tmp();
    refused(
        d.path(),
        &[
            ("--offline", ""),
            ("--cache", d.path().join("empty-cache").to_str().unwrap()),
        ],
        4,
        "--offline forbids reading it",
    );
}

#[test]
fn too_few_usable_scenes_publish_nothing() {
    let d = tmp();
    refused(d.path(), &[("--min-scenes", "1000")], 4, "fewer than --min-scenes 1000");
}

#[test]
fn a_cache_that_is_a_file_stops_the_scan_before_anything() {
    let d = tmp();
    let file = write(d.path(), "cache", "not a folder");
    refused(
        d.path(),
        &[("--cache", &file)],
        1,
        "pass --cache with a writable folder",
    );
}

// Bad AOIs: exit 1, named, before any work.

fn bad_aoi(text: &str, says: &str) {
    let d = tmp();
    let aoi = write(d.path(), "site.geojson", text);
    let stderr = refused(d.path(), &[("--aoi", &aoi)], 1, says);
    assert!(stderr.contains("site.geojson"), "the message names the file: {stderr}");
}

fn ring(coords: &[(f64, f64)]) -> String {
    let c: Vec<String> = coords.iter().map(|(x, y)| format!("[{x},{y}]")).collect();
    format!(r#"{{"type":"Polygon","coordinates":[[{}]]}}"#, c.join(","))
}

#[test]
fn aoi_errors_name_the_file_and_the_fix() {
    bad_aoi("{ not json", "is not JSON");
    bad_aoi(r#"{"type":"Point","coordinates":[98.5,16.7]}"#, "no Polygon");
    bad_aoi(r#"{"type":"Polygon","coordinates":"x"}"#, "not valid GeoJSON");
    bad_aoi(
        &ring(&[
            (16.68, 98.50),
            (16.68, 98.52),
            (16.70, 98.52),
            (16.70, 98.50),
            (16.68, 98.50),
        ]),
        "[latitude, longitude]",
    );
    bad_aoi(
        &ring(&[
            (181.0, 16.68),
            (181.02, 16.68),
            (181.02, 16.70),
            (181.0, 16.70),
            (181.0, 16.68),
        ]),
        "subtract 360",
    );
    bad_aoi(
        &ring(&[
            (480000.0, 1845000.0),
            (481000.0, 1845000.0),
            (481000.0, 1846000.0),
            (480000.0, 1845000.0),
        ]),
        "projected metres",
    );
    bad_aoi(
        &ring(&[
            (179.9, 16.68),
            (-179.9, 16.68),
            (-179.9, 16.70),
            (179.9, 16.70),
            (179.9, 16.68),
        ]),
        "antimeridian",
    );
    bad_aoi(
        &ring(&[
            (98.50, 16.68),
            (98.52, 16.70),
            (98.52, 16.68),
            (98.50, 16.70),
            (98.50, 16.68),
        ]),
        "not a valid polygon",
    );
    bad_aoi(
        &ring(&[(98.5, 16.7), (98.5, 16.7), (98.5, 16.7), (98.5, 16.7)]),
        "degenerate",
    );
    bad_aoi(
        &ring(&[(98.0, 15.0), (99.0, 15.0), (99.0, 16.0), (98.0, 16.0), (98.0, 15.0)]),
        "--max-aoi-km2",
    );
}

#[test]
fn an_aoi_of_parts_far_apart_is_refused_by_its_bounding_box() {
    // Two 1 km² parts 110 km apart (diagonally): a 12,000 km² grid for 2 km² of site.
    let part = |x: f64, y: f64| {
        format!(
            "[[[{x},{y}],[{},{y}],[{},{}],[{x},{}],[{x},{y}]]]",
            x + 0.01,
            x + 0.01,
            y + 0.01,
            y + 0.01
        )
    };
    let text = format!(
        r#"{{"type":"MultiPolygon","coordinates":[{},{}]}}"#,
        part(98.5, 16.68),
        part(99.2, 17.5)
    );
    bad_aoi(&text, "bounding box covers");
}

/// A closed ring of `n` distinct vertices around the middle of the demo AOI.
fn circle(n: usize) -> Vec<(f64, f64)> {
    (0..=n)
        .map(|i| {
            let a = std::f64::consts::TAU * (i % n) as f64 / n as f64;
            (98.51 + 0.01 * a.cos(), 16.69 + 0.01 * a.sin())
        })
        .collect()
}

#[test]
fn an_aoi_with_a_million_vertices_is_refused_at_once() {
    let coords = circle(1_000_000);
    let started = std::time::Instant::now();
    bad_aoi(&ring(&coords), "Simplify");
    assert!(started.elapsed().as_secs() < 60, "took {:?}", started.elapsed());
}

#[test]
fn an_aoi_with_more_vertices_than_an_outline_needs_is_refused() {
    let coords = circle(20_000);
    bad_aoi(&ring(&coords), "20001 vertices");
}

#[test]
fn aoi_files_that_are_missing_folders_or_fifos_are_refused() {
    let d = tmp();
    let missing = d.path().join("missing.geojson");
    refused(d.path(), &[("--aoi", missing.to_str().unwrap())], 1, "cannot be read");
    let d = tmp();
    refused(
        d.path(),
        &[("--aoi", d.path().to_str().unwrap())],
        1,
        "not a regular file",
    );
    let d = tmp();
    let pipe = fifo(d.path(), "site.geojson");
    refused(d.path(), &[("--aoi", &pipe)], 1, "not a regular file");
}

// Bad command lines: exit 2 from the argument checks, nothing touched.

#[test]
fn bad_flags_are_usage_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("--from", "2023-06"), ("--to", "2021-07")], "before --from"),
        (&[("--from", "2014-01")], "before Sentinel-2 began"),
        (&[("--to", "9999-12")], "in the future"),
        (&[("--from", "2022-13")], "--from"),
        (&[("--bbox", "98.54,16.67,98.49,16.71")], "west must be less than east"),
        (&[("--bbox", "98.54,16.67,98.49")], "four numbers"),
        (&[("--bbox", "NaN,16.67,98.49,16.71")], "finite"),
        (&[("--max-aoi-km2", "NaN")], "not a finite number"),
        (&[("--max-aoi-km2", "inf")], "not a finite number"),
        (&[("--max-aoi-km2", "0")], "must be above 0"),
        (&[("--max-cloud-cover", "150")], "percentage"),
        (&[("--min-area", "-5")], "must not be negative"),
        (&[("--min-used-share", "2")], "share"),
    ];
    for (changes, says) in cases {
        let d = tmp();
        refused(d.path(), changes, 2, says);
    }
}

// Broken sources and state: exit 1, named.

#[test]
fn broken_sources_and_state_are_named() {
    let d = tmp();
    let missing = d.path().join("nowhere/catalog.json");
    refused(
        d.path(),
        &[("--source", missing.to_str().unwrap())],
        1,
        "cannot be read",
    );
    let d = tmp();
    let garbage = write(d.path(), "catalog.json", "{ nope");
    refused(d.path(), &[("--source", &garbage)], 1, "is not JSON");
    let d = tmp();
    let pipe = fifo(d.path(), "catalog.json");
    refused(d.path(), &[("--source", &pipe)], 1, "not a regular file");
    let d = tmp();
    refused(d.path(), &[("--source", "http://127.0.0.1:9/stac")], 1, "127.0.0.1:9");
}

#[test]
fn a_corrupt_state_or_previous_report_is_named_and_kept() {
    let d = tmp();
    let out = good_output(d.path());
    std::fs::write(out.join(".compound-watch/state.json"), "{ torn").unwrap();
    let before = output_files(&out);
    let args = scan_args(&out, &demo_scan().cache(), &[]);
    let assert = Command::cargo_bin("compound-watch")
        .unwrap()
        .args(&args)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("scan state") && stderr.contains("delete it"),
        "{stderr}"
    );
    assert_eq!(output_files(&out), before);

    let d = tmp();
    let out = good_output(d.path());
    std::fs::write(out.join("report.geojson"), "{ torn").unwrap();
    let before = output_files(&out);
    let args = scan_args(&out, &demo_scan().cache(), &[("--to", "2023-05")]);
    let assert = Command::cargo_bin("compound-watch")
        .unwrap()
        .args(&args)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("move it out"), "{stderr}");
    assert_eq!(output_files(&out), before);
}

#[test]
fn an_out_that_is_a_file_is_named() {
    let d = tmp();
    let file = write(d.path(), "out", "a file");
    let args = scan_args(Path::new(&file), &demo_scan().cache(), &[]);
    let assert = Command::cargo_bin("compound-watch")
        .unwrap()
        .args(&args)
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("is a file, not a folder"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a file");
}

#[test]
fn every_attempt_is_logged_beside_the_outputs() {
    let d = tmp();
    let out = good_output(d.path());
    let log = out.join(".compound-watch/attempts.jsonl");
    let lines_before = std::fs::read_to_string(&log).map(|t| t.lines().count()).unwrap_or(0);
    let args = scan_args(&out, &demo_scan().cache(), &[("--min-scenes", "1000")]);
    Command::cargo_bin("compound-watch")
        .unwrap()
        .args(&args)
        .assert()
        .code(4);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), lines_before + 1);
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "refused");
    assert!(last["reason"].as_str().unwrap().contains("--min-scenes"), "{last}");
}

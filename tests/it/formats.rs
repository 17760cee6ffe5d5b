//! The report and diff in other vector formats, read back by GDAL, and the STAC Item of a scan's
//! outputs checked by a real STAC validator.

use std::path::Path;

use assert_cmd::Command;
use gdal::vector::LayerAccess;

use crate::common::{copy_dir, demo_scan, read_json, root, sample_dir, skip_or_fail};

/// (field name, OGR type name) of the first layer of a vector file, and its feature count.
fn layer_fields(path: &Path) -> (Vec<(String, String)>, u64) {
    let dataset = gdal::Dataset::open(path).unwrap_or_else(|e| panic!("GDAL cannot open {}: {e}", path.display()));
    let layer = dataset.layer(0).unwrap();
    let fields = layer
        .defn()
        .fields()
        .map(|f| (f.name(), gdal::vector::field_type_to_name(f.field_type())))
        .collect();
    (fields, layer.feature_count())
}

#[test]
fn scan_format_writes_report_and_diff_in_gpkg_fgb_kml_and_csv_that_gdal_reads() {
    let demo = demo_scan();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    copy_dir(&demo.dir.join("out"), &out);
    // An offline rerun of the demo: the cache and the recorded scene list, no reads.
    Command::cargo_bin("compound-watch")
        .unwrap()
        .args(["scan", "--from", "2021-07", "--to", "2023-06", "--offline", "-q"])
        .arg("--aoi")
        .arg(root().join("aoi/myawaddy.geojson"))
        .arg("--source")
        .arg(sample_dir().join("catalog.json"))
        .arg("--out")
        .arg(&out)
        .arg("--cache")
        .arg(demo.cache())
        .args(["--format", "gpkg,fgb,kml,csv"])
        .assert()
        .success();
    let report = read_json(&out.join("report.geojson"));
    let polygons = report["features"].as_array().unwrap().len() as u64;
    assert!(polygons > 0);
    let type_of = |fields: &[(String, String)], name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no field {name} in {fields:?}"))
    };
    for ext in ["gpkg", "fgb"] {
        let (fields, count) = layer_fields(&out.join(format!("report.{ext}")));
        assert_eq!(count, polygons, "{ext}");
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        for needed in [
            "id",
            "area_m2",
            "area_ha",
            "status",
            "first_detected",
            "confidence",
            "n_clear_obs",
            "scenes",
        ] {
            assert!(names.contains(&needed), "report.{ext} lacks {needed}: {names:?}");
        }
        assert_eq!(type_of(&fields, "area_m2"), "Real", "{ext}");
        // FlatGeobuf keeps dates as DateTime columns (GDAL 3.6 reads a Date field back so).
        let date = if ext == "fgb" { "DateTime" } else { "Date" };
        assert_eq!(type_of(&fields, "first_detected"), date, "{ext}");
        assert_eq!(type_of(&fields, "n_clear_obs"), "Integer64", "{ext}");
        assert_eq!(
            type_of(&fields, "scenes"),
            "String",
            "{ext}: joined, GDAL 3.6 has no StringList here"
        );
        let (diff_fields, _) = layer_fields(&out.join(format!("diff.{ext}")));
        assert!(
            diff_fields.iter().any(|(n, _)| n == "change"),
            "diff.{ext}: {diff_fields:?}"
        );
    }
    // The scenes of the first polygon, joined with ";" and not OGR's "(3:a,b,c)".
    let dataset = gdal::Dataset::open(out.join("report.gpkg")).unwrap();
    let mut layer = dataset.layer(0).unwrap();
    let first = layer.features().next().unwrap();
    let scenes = first
        .field_as_string(first.field_index("scenes").unwrap())
        .unwrap()
        .unwrap();
    let expected: Vec<&str> = report["features"][0]["properties"]["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(scenes, expected.join(";"));
    let (kml, count) = layer_fields(&out.join("report.kml"));
    assert_eq!(count, polygons);
    assert!(kml.iter().any(|(n, _)| n == "scenes"), "{kml:?}");
    // The CSV: one row per polygon with its outline as WKT.
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(header.starts_with("WKT,id,"), "{header}");
    assert_eq!(csv.lines().count() as u64, polygons + 1);
    assert!(csv.lines().nth(1).unwrap().starts_with("\"MULTIPOLYGON ((("), "{csv}");
    // Each value under its own column (the driver's WKT column comes first).
    let row = gdal::Dataset::open(out.join("report.csv")).unwrap();
    let mut rows = row.layer(0).unwrap();
    let first = rows.features().next().unwrap();
    let value = |name: &str| {
        first
            .field_as_string(first.field_index(name).unwrap())
            .unwrap()
            .unwrap()
    };
    let properties = &report["features"][0]["properties"];
    assert_eq!(value("id"), properties["id"].as_str().unwrap());
    assert_eq!(value("status"), properties["status"].as_str().unwrap());
    assert_eq!(value("first_detected"), properties["first_detected"].as_str().unwrap());
    assert_eq!(value("scenes"), expected.join(";"));
    // The STAC Item lists the extra formats as assets.
    let item = read_json(&out.join("stac-item.json"));
    assert_eq!(item["assets"]["report-gpkg"]["type"], "application/geopackage+sqlite3");
    assert_eq!(item["assets"]["diff-fgb"]["href"], "./diff.fgb");
}

#[test]
fn export_writes_the_formats_of_an_existing_output() {
    let demo = demo_scan();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    copy_dir(&demo.dir.join("out"), &out);
    let assert = Command::cargo_bin("compound-watch")
        .unwrap()
        .arg("export")
        .arg(&out)
        .args(["--format", "fgb"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(
        stdout.contains("report.fgb") && stdout.contains("joined with \";\""),
        "{stdout}"
    );
    let (_, count) = layer_fields(&out.join("report.fgb"));
    assert_eq!(count, demo.summary.detections as u64);
    Command::cargo_bin("compound-watch")
        .unwrap()
        .arg("export")
        .arg(&out)
        .args(["--format", "shp"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("gpkg, fgb, kml, csv"));
}

/// Runs stac-validator on `item` against the STAC 1.1.0 core schemas pystac bundles (the
/// validator would otherwise fetch them from schemas.stacspec.org; tests never touch the internet).
/// None (and the test skipped, or failed under CI) when either is missing.
fn stac_validator(item: &Path) -> Option<serde_json::Value> {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import os, pystac; print(os.path.dirname(pystac.__file__))"])
        .output();
    let validator = std::process::Command::new("stac-validator").arg("--help").output();
    let (Ok(probe), Ok(validator)) = (probe, validator) else {
        skip_or_fail(
            "stac-validator or python3 is missing (python3 -m pip install stac-validator pystac; make stac-validator)",
        );
        return None;
    };
    if !probe.status.success() || !validator.status.success() {
        skip_or_fail(
            "stac-validator or pystac is missing (python3 -m pip install stac-validator pystac; make stac-validator)",
        );
        return None;
    }
    let schemas = Path::new(String::from_utf8_lossy(&probe.stdout).trim()).join("validation/jsonschemas");
    let mut cmd = std::process::Command::new("stac-validator");
    cmd.args(["validate", "--core"]);
    let spec = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema";
    for name in [
        "item",
        "bands",
        "common",
        "basics",
        "datetime",
        "instrument",
        "licensing",
        "provider",
        "data-values",
    ] {
        cmd.arg("-s")
            .arg(format!("{spec}/{name}.json"))
            .arg(schemas.join(format!("stac-spec/v1.1.0/{name}.json")));
    }
    for name in ["Feature", "Geometry"] {
        cmd.arg("-s")
            .arg(format!("https://geojson.org/schema/{name}.json"))
            .arg(schemas.join(format!("geojson/{name}.json")));
    }
    let out = cmd.arg(item).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("stac-validator {}:\n{stdout}", item.display());
    let json = &stdout[stdout
        .find('[')
        .unwrap_or_else(|| panic!("no JSON from stac-validator: {stdout}"))..];
    let end = json.rfind(']').unwrap() + 1;
    let report: serde_json::Value = serde_json::from_str(&json[..end]).unwrap();
    Some(report[0].clone())
}

#[test]
fn the_stac_item_of_a_scan_validates_and_a_broken_one_does_not() {
    let demo = demo_scan();
    let path = demo.dir.join("out/stac-item.json");
    let item = read_json(&path);
    assert_eq!(item["properties"]["start_datetime"], "2021-07-01T00:00:00Z");
    assert_eq!(item["properties"]["end_datetime"], "2023-06-30T23:59:59Z");
    for (key, role) in [
        ("report", "data"),
        ("diff", "data"),
        ("composite", "visual"),
        ("month-2022-03", "visual"),
        ("summary", "overview"),
    ] {
        assert_eq!(item["assets"][key]["roles"][0], role, "{key}");
        let href = item["assets"][key]["href"].as_str().unwrap();
        assert!(demo.dir.join("out").join(href).is_file(), "{href}");
    }
    let derived = item["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rel"] == "derived_from")
        .count();
    let items = read_json(&demo.dir.join("out/.compound-watch/items.json"));
    let items = items["features"].as_array().unwrap().len();
    assert!(items >= demo.summary.scenes_used, "{items} items recorded");
    assert_eq!(derived, items, "one derived_from link per source item");
    let Some(report) = stac_validator(&path) else {
        return;
    };
    assert_eq!(report["valid_stac"], true, "{report}");
    assert_eq!(report["asset_type"], "ITEM");
    // The validator really validates: an item without any datetime is refused.
    let dir = tempfile::tempdir().unwrap();
    let mut broken = item.clone();
    broken["properties"].as_object_mut().unwrap().remove("start_datetime");
    let broken_path = dir.path().join("broken.json");
    std::fs::write(&broken_path, broken.to_string()).unwrap();
    let report = stac_validator(&broken_path).unwrap();
    assert_eq!(report["valid_stac"], false, "{report}");
}

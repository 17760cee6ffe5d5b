//! Each kind of bad AOI gets an error that names the file and says how to fix it.

use std::path::PathBuf;

use compound_watch::aoi::{self, AoiLimits};

fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn polygon(ring: &str) -> String {
    format!(
        r#"{{"type":"Feature","properties":{{"name":"t"}},"geometry":{{"type":"Polygon","coordinates":[{ring}]}}}}"#
    )
}

/// Loads `text` as an AOI file and returns the error message, which must name the file.
fn error_for(name: &str, text: &str) -> String {
    let (_dir, path) = write(name, text);
    let err = aoi::load(&path, &AoiLimits::default()).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()),
        "the message does not name the file: {err}"
    );
    err
}

#[test]
fn the_bundled_aois_all_load() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("aoi");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "geojson") {
            let a = aoi::load(&path, &AoiLimits::default()).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                a.properties.contains_key("sources"),
                "{} has no sources",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 7, "expected at least 7 bundled sites, found {n}");
}

#[test]
fn not_json() {
    let err = error_for("broken.geojson", "{\"type\": \"Feature\", ");
    assert!(err.contains("is not JSON") && err.contains("GeoJSON"), "{err}");
}

#[test]
fn no_polygon() {
    let err = error_for("point.geojson", r#"{"type":"Point","coordinates":[98.5,16.7]}"#);
    assert!(
        err.contains("no Polygon or MultiPolygon") && err.contains("Point"),
        "{err}"
    );
}

#[test]
fn self_intersecting_ring() {
    let bowtie = "[[98.50,16.68],[98.53,16.70],[98.53,16.68],[98.50,16.70],[98.50,16.68]]";
    let err = error_for("bowtie.geojson", &polygon(bowtie));
    assert!(
        err.contains("not a valid polygon") && err.contains("Fix Geometries"),
        "{err}"
    );
}

#[test]
fn lat_lon_swapped() {
    let swapped = "[[16.67,98.49],[16.67,98.53],[16.71,98.53],[16.71,98.49],[16.67,98.49]]";
    let err = error_for("swapped.geojson", &polygon(swapped));
    assert!(err.contains("[latitude, longitude]") && err.contains("swap"), "{err}");
}

#[test]
fn projected_metres() {
    let utm = "[[479000,1843000],[483000,1843000],[483000,1847000],[479000,1847000],[479000,1843000]]";
    let err = error_for("utm.geojson", &polygon(utm));
    assert!(err.contains("projected metres") && err.contains("EPSG:4326"), "{err}");
}

#[test]
fn empty_or_degenerate_area() {
    let collapsed = "[[98.5,16.7],[98.5,16.7],[98.5,16.7],[98.5,16.7]]";
    let err = error_for("collapsed.geojson", &polygon(collapsed));
    assert!(err.contains("empty or degenerate"), "{err}");
    let err = error_for("empty.geojson", r#"{"type":"FeatureCollection","features":[]}"#);
    assert!(err.contains("no Polygon"), "{err}");
}

#[test]
fn larger_than_the_maximum() {
    let big = "[[97.0,15.0],[99.0,15.0],[99.0,17.0],[97.0,17.0],[97.0,15.0]]";
    let err = error_for("big.geojson", &polygon(big));
    assert!(err.contains("km²") && err.contains("--max-aoi-km2"), "{err}");
    // The maximum is configurable.
    let (_dir, path) = write("big.geojson", &polygon(big));
    assert!(aoi::load(
        &path,
        &AoiLimits {
            max_area_km2: 100_000.0,
            ..AoiLimits::default()
        }
    )
    .is_ok());
}

#[test]
fn crossing_the_antimeridian() {
    let fiji = "[[179.9,-17.0],[-179.9,-17.0],[-179.9,-16.9],[179.9,-16.9],[179.9,-17.0]]";
    let err = error_for("fiji.geojson", &polygon(fiji));
    assert!(err.contains("antimeridian") && err.contains("split"), "{err}");
}

//! One generated scenario checked end to end without the detector: the truth a perfect scan would
//! report scores perfectly, the truth's dates are consistent, and the rasters carry what the truth
//! and scene log say (the 2022 offset in raw scenes, a roof where the truth puts it).

use std::path::{Path, PathBuf};

use compound_watch_testbed::scene::{self, GENERATOR_VERSION};
use compound_watch_testbed::score::{self, month_index};
use compound_watch_testbed::world::Spec;
use gdal::Dataset;
use serde_json::{json, Value};

/// Seed 7 is in neither split of splits.json.
const SEED: u64 = 7;

/// Generated once per machine (both tests of this binary wait for the one generation).
fn scenario() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(generate_once).clone()
}

fn generate_once() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/test-scenario-{SEED}-v{GENERATOR_VERSION}"));
    if !dir.join("truth.geojson").is_file() {
        let tmp = dir.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        scene::generate(&tmp, &Spec::standard(SEED)).unwrap();
        std::fs::rename(&tmp, &dir).unwrap();
    }
    dir
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn pixels(path: &Path) -> Vec<u16> {
    let ds = Dataset::open(path).unwrap();
    let (w, h) = ds.raster_size();
    ds.rasterband(1)
        .unwrap()
        .read_as::<u16>((0, 0), (w, h), (w, h), None)
        .unwrap()
        .data()
        .to_vec()
}

#[test]
fn a_perfect_report_of_the_truth_scores_perfectly() {
    let dir = scenario();
    let truth = read(&dir.join("truth.geojson"));
    let features: Vec<Value> = truth["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["properties"]["reportable"] == json!(true))
        .map(|f| {
            json!({"type": "Feature", "geometry": f["geometry"], "properties": {
                "id": f["properties"]["id"], "area_m2": f["properties"]["area_m2"],
                "first_detected": format!("{}-01", f["properties"]["first_clear_view"].as_str().unwrap()),
                "confidence": 1.0}})
        })
        .collect();
    assert!(features.len() >= 4, "only {} reportable objects", features.len());
    let report = json!({"type": "FeatureCollection", "features": features});
    let s = score::score(&report, &truth).unwrap();
    assert_eq!(s.found(), s.reportable());
    assert_eq!(
        (
            s.real,
            s.false_on_change,
            s.false_beside_construction,
            s.false_elsewhere
        ),
        (s.detections, 0, 0, 0)
    );
    assert!(s.date_errors().iter().all(|&e| e == 0), "{:?}", s.date_errors());
    // The same report one month late everywhere is scored one month late.
    let mut late = report.clone();
    for f in late["features"].as_array_mut().unwrap() {
        let m = month_index(f["properties"]["first_detected"].as_str().unwrap()).unwrap() + 1;
        f["properties"]["first_detected"] = json!(format!("{:04}-{:02}-01", m / 12, m % 12 + 1));
    }
    assert!(score::score(&late, &truth)
        .unwrap()
        .date_errors()
        .iter()
        .all(|&e| e == 1));
}

#[test]
fn the_truth_dates_and_the_rasters_agree() {
    let dir = scenario();
    let truth = read(&dir.join("truth.geojson"));
    for f in truth["features"].as_array().unwrap() {
        let p = &f["properties"];
        let new_state = month_index(p["new_state"].as_str().unwrap()).unwrap();
        if let Some(fcv) = p["first_clear_view"].as_str() {
            assert!(month_index(fcv).unwrap() >= new_state, "{p}");
        }
        if p["class"] == "construction" {
            assert!(p["cleared"].as_str().unwrap() < p["new_state"].as_str().unwrap(), "{p}");
        }
    }
    let scenes = read(&dir.join("scenes.json"));
    let scenes = scenes.as_array().unwrap();
    assert!(
        scenes.len() > 170,
        "{} scenes in 30 months at a 5-day revisit",
        scenes.len()
    );
    // Raw post-2022 scenes carry +1,000 DN: even open water stays above 1,000 in the NIR.
    let raw = scenes
        .iter()
        .find(|s| s["add_dn"] == 1000 && s["cloud_cover"].as_f64().unwrap() < 5.0)
        .unwrap();
    let harmonized = scenes
        .iter()
        .find(|s| s["add_dn"] == 0 && s["cloud_cover"].as_f64().unwrap() < 5.0)
        .unwrap();
    let nir = |s: &Value| {
        let id = s["id"].as_str().unwrap();
        pixels(&dir.join(format!("items/{id}/B08.tif")))
    };
    assert!(*nir(raw).iter().min().unwrap() > 1000);
    assert!(*nir(harmonized).iter().min().unwrap() < 600);
    // Some post-2022 item's flag disagrees with its pixels (the provider trap).
    assert!(scenes.iter().any(|s| (s["add_dn"] == 1000 && s["flag"] == true)
        || (s["add_dn"] == 0 && s["flag"] == false && s["date"].as_str().unwrap() > "2022-01-25")));
}

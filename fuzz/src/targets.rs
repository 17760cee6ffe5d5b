//! The body of every fuzz target, one plain function each, over the library functions the program
//! calls after reading a file. Two builds share this one file: the afl binaries in `src/bin/` (the
//! coverage-guided campaigns) and the main package's `tests/it/fuzz_smoke.rs` (an uninstrumented
//! replay of the corpus plus seeded mutations, run by `cargo test`). So it may use only
//! `compound_watch`, `serde_json` and std, and every library path the fuzzers reach is named here.
//!
//! Beyond "no panic", each function asserts what callers rely on; a failed assert is a crash.

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use compound_watch::aoi::{self, AoiLimits};
use compound_watch::month::Month;
use compound_watch::source::{Band, Found, Provider, SearchQuery, StacApi, StaticCatalog};
use compound_watch::{diff, report, state};
use compound_watch::{Http, RetryPolicy};
use serde_json::{json, Value};

/// A target's body: it panics on a bug, and returns on any input the program would refuse.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of the afl binaries and of `corpus/` folders).
pub const ALL: [(&str, Target); 6] = [
    ("aoi", aoi),
    ("bbox", bbox),
    ("stac_item", stac_item),
    ("item_collection", item_collection),
    ("report", report),
    ("state", state),
];

/// Inputs longer than this are skipped. Real AOIs, items, pages and reports are larger, but bugs in
/// parsers show on small inputs, and the AOI check's topology test is quadratic in the vertex count
/// (huge polygons are the AOI vertex limit's job, not the fuzzer's).
pub const MAX_INPUT: usize = 16 * 1024;

/// The input as text, as `std::fs::read_to_string` would give it, or `None` (not UTF-8, or too long).
fn text(data: &[u8]) -> Option<&str> {
    if data.len() > MAX_INPUT {
        return None;
    }
    std::str::from_utf8(data).ok()
}

/// A search for the whole world from year 1 to 9999 under any cloud cover, so that every
/// well-formed item goes on to become a scene (or be refused with a reason).
fn query() -> SearchQuery {
    SearchQuery {
        bbox: [-180.0, -90.0, 180.0, 90.0],
        geometry: None,
        from: Month { year: 1, month: 1 },
        to: Month { year: 9999, month: 12 },
        max_cloud_cover: 100.0,
    }
}

/// The AOI file parser and checker: `aoi::parse`, which `aoi::load` calls on a file's text.
pub fn aoi(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let limits = AoiLimits::default();
    if let Ok(aoi) = aoi::parse(text, Path::new("fuzz.geojson"), &limits) {
        // A checked AOI has coordinates (`bbox` expects them) and an area within the limits.
        let [w, s, e, n] = aoi.bbox();
        assert!(w < e && s < n, "empty box {:?} for {text:?}", aoi.bbox());
        assert!(aoi.area_m2 >= limits.min_area_m2 && aoi.area_m2 <= limits.max_area_km2 * 1e6);
    }
}

/// The `--bbox W,S,E,N` parser and check: `aoi::parse_bbox`, then `aoi::from_bbox`.
pub fn bbox(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let Ok(bbox) = aoi::parse_bbox(text) else {
        return;
    };
    let limits = AoiLimits::default();
    if let Ok(aoi) = aoi::from_bbox(bbox, &limits) {
        let [w, s, e, n] = aoi.bbox();
        assert!(w < e && s < n, "empty box {:?} for {text:?}", aoi.bbox());
        assert!(aoi.area_m2 >= limits.min_area_m2 && aoi.area_m2 <= limits.max_area_km2 * 1e6);
    }
}

/// A static catalog's documents: the links of a catalog or collection (`StaticCatalog::links`) and
/// an item file turned into a scene (`StaticCatalog::read_item`, over `source::scene_from_item`),
/// both as `StaticCatalog::search` reads them from `serde_json::from_str` of the file.
pub fn stac_item(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let path = Path::new("catalog/items/item.json");
    let _ = StaticCatalog::links(&doc, path);
    if let Ok(Some(Ok(scene))) = StaticCatalog::read_item(doc, path, "catalog", &query()) {
        // A scene has a file for every band it reads.
        assert!(Band::ALL.iter().all(|b| scene.hrefs.contains_key(b)), "{scene:?}");
    }
}

/// One page of STAC API search results (an ItemCollection): `StacApi::read_page`, on the JSON that
/// `Http` parses from the answer, after a POST whose body a `merge: true` next link extends.
pub fn item_collection(data: &[u8]) {
    // Built once per process: plain hrefs, since signing would ask a token service over HTTP, which
    // a fuzz target must not. Nothing here sends a request.
    static API: OnceLock<StacApi> = OnceLock::new();
    let api = API.get_or_init(|| {
        StacApi::new(
            "http://127.0.0.1:9/v1",
            "sentinel-2-l2a",
            Provider::Plain,
            Http::new(Duration::from_secs(1), RetryPolicy::default()),
        )
    });
    let Some(text) = text(data) else {
        return;
    };
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let request = json!({"collections": ["sentinel-2-l2a"], "limit": 100, "token": "t1"});
    let (mut ids, mut found) = (HashSet::new(), Found::default());
    let url = "http://127.0.0.1:9/v1/search";
    if api
        .read_page(url, Some(&request), &doc, &query(), &mut ids, &mut found)
        .is_ok()
    {
        for scene in &found.scenes {
            assert!(Band::ALL.iter().all(|b| scene.hrefs.contains_key(b)), "{scene:?}");
        }
        // Each id is read once per search, however often a page repeats it.
        assert!(found.scenes.len() <= ids.len());
    }
}

/// The report readers: `report::parse_geojson` (incremental scans) and `diff::parse`, which checks
/// ids and geometries on top of it (the `diff` command and a scan's previous report).
pub fn report(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let path = Path::new("out/report.geojson");
    let parsed = report::parse_geojson(text, path);
    let checked = diff::parse(text, path);
    // `diff::parse` accepts only what `report::parse_geojson` accepts.
    assert!(parsed.is_ok() || checked.is_err());
}

/// The scan state reader: `state::parse`, which `state::load` calls on `.compound-watch/state.json`,
/// then what it read saved and read back.
pub fn state(data: &[u8]) {
    let Some(text) = text(data) else {
        return;
    };
    let path = Path::new("out/.compound-watch/state.json");
    if let Ok(state) = state::parse(text, path) {
        // What was read can be saved and read back: `state::save` writes it with serde_json.
        let saved = serde_json::to_string(&state).expect("a read state serializes");
        let again = state::parse(&saved, path).expect("a saved state reads back");
        assert_eq!(serde_json::to_string(&again).unwrap(), saved);
    }
}

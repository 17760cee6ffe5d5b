//! The remote path for real, offline: STAC API search and COG window reads over a loopback HTTP
//! server with Range support, recorded real STAC responses, and injected faults.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use compound_watch::grid::Grid;
use compound_watch::http::{Http, RetryPolicy};
use compound_watch::scan::{self, Silent};
use compound_watch::source::{Band, Provider, SceneSearch, SearchQuery, StacApi};
use compound_watch::window::{GdalReader, WindowReader};
use serde_json::{json, Value};

use crate::common::server::{Fault, Reply, Server};
use crate::common::{
    demo_config, demo_scan, read_json, sample_dir, serve_landing_page, shared, ITEM_SEARCH_WITH_FILTER,
};

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(5),
    }
}

fn http() -> Http {
    Http::new(Duration::from_secs(10), quick_retry())
}

fn reader() -> GdalReader {
    GdalReader::new(quick_retry(), 10).unwrap()
}

/// Serves the bundled sample as an Earth Search-like STAC API: `POST /stac/search` with
/// datetime, cloud-cover filter and `limit`, paginated by a `next` token in a POST body, and its
/// COGs under `/files/`.
fn sample_api(server: &Server, page_size: usize) {
    let base = server.url("/files");
    let mut items: Vec<Value> = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| {
            let dir = e.unwrap().path();
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let mut item = read_json(&dir.join(format!("{id}.json")));
            for (_, asset) in item["assets"].as_object_mut().unwrap() {
                let name = asset["href"].as_str().unwrap().trim_start_matches("./").to_owned();
                asset["href"] = format!("{base}/items/{id}/{name}").into();
            }
            item
        })
        .collect();
    items.sort_by(|a, b| {
        a["properties"]["datetime"]
            .as_str()
            .cmp(&b["properties"]["datetime"].as_str())
    });
    let search_url = server.url("/stac/search");
    server.route("/stac/search", move |req, _| {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let (query, offset) = match body.get("next").and_then(Value::as_str) {
            Some(token) => {
                let t: Value = serde_json::from_str(token).unwrap();
                (t["q"].clone(), t["offset"].as_u64().unwrap() as usize)
            }
            None => (body.clone(), 0),
        };
        let (from, to) = query["datetime"].as_str().unwrap().split_once('/').unwrap();
        let max_cc = query["filter"]["args"][1].as_f64().unwrap_or(100.0);
        let matching: Vec<&Value> = items
            .iter()
            .filter(|i| {
                let d = i["properties"]["datetime"].as_str().unwrap();
                d >= from && d <= to && i["properties"]["eo:cloud_cover"].as_f64().unwrap() <= max_cc
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(page_size)
            .map(|v| (*v).clone())
            .collect();
        let mut links = vec![];
        if offset + page_size < matching.len() {
            let token = json!({"offset": offset + page_size, "q": query}).to_string();
            links.push(
                json!({"rel": "next", "method": "POST", "href": search_url, "merge": false, "body": {"next": token}}),
            );
        }
        Reply::json(&json!({"type": "FeatureCollection", "features": page, "links": links}))
    });
    serve_landing_page(server, "/stac", &ITEM_SEARCH_WITH_FILTER);
    server.files("/files", sample_dir());
}

/// A search of the sample's area between two months, any cloud cover.
fn query(from: &str, to: &str) -> SearchQuery {
    SearchQuery {
        bbox: [98.0, 16.0, 99.0, 17.0],
        geometry: None,
        from: from.parse().unwrap(),
        to: to.parse().unwrap(),
        max_cloud_cover: 100.0,
    }
}

fn sample_api_source(server: &Server) -> StacApi {
    StacApi::new(&server.url("/stac"), "sentinel-2-l2a", Provider::Plain, http()).with_page_size(25)
}

fn features(report: &Path) -> Value {
    read_json(report)["features"].clone()
}

#[test]
fn a_scan_over_http_gives_the_same_report_as_the_catalog_on_disk() {
    let server = Server::start();
    sample_api(&server, 25);
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
    let summary = scan::run(&config, &sample_api_source(&server), &reader(), &Silent).unwrap();
    let demo = demo_scan();
    assert_eq!(summary.scenes_used, demo.summary.scenes_used);
    assert_eq!(features(&summary.report), features(&demo.summary.report));
    let ids = |p: &Path| {
        read_json(p)["compound_watch"]["scenes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&summary.report), ids(&demo.summary.report));
    // Paginated: 124 items at 25 a page.
    assert!(server.count("/stac/search") >= 5);
}

#[test]
fn reruns_fetch_nothing_and_one_more_month_fetches_only_its_scenes() {
    let server = Server::start();
    sample_api(&server, 25);
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
    config.from = "2022-11".parse().unwrap();
    config.to = "2023-01".parse().unwrap();
    let source = sample_api_source(&server);
    let first = scan::run(&config, &source, &reader(), &Silent).unwrap();
    assert_eq!(first.windows_fetched, first.scenes_used * 7);

    server.reset_counters();
    let again = scan::run(&config, &source, &reader(), &Silent).unwrap();
    assert_eq!(again.windows_fetched, 0);
    let asset_bytes: u64 = server.bytes.load(Ordering::SeqCst);
    let file_requests = server
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p, _)| p.starts_with("/files"))
        .count();
    assert_eq!(file_requests, 0, "a rerun read {asset_bytes} bytes of imagery");

    config.to = "2023-02".parse().unwrap();
    let later = scan::run(&config, &source, &reader(), &Silent).unwrap();
    let february = later.scenes_used - first.scenes_used;
    assert!(february > 0);
    assert_eq!(later.scenes_new, february);
    assert_eq!(later.windows_fetched, february * 7);

    // --offline: the previous scene list and the cache, not one request.
    server.reset_counters();
    let mut offline = config.clone();
    offline.offline = true;
    let again = scan::run(&offline, &source, &reader(), &Silent).unwrap();
    assert_eq!(server.requests.lock().unwrap().len(), 0);
    assert_eq!(again.scenes_used, later.scenes_used);
    assert_eq!(
        std::fs::read(&again.report).unwrap(),
        std::fs::read(&later.report).unwrap()
    );
}

/// Bytes fetched for a small window are close to the COG blocks it needs, from the server's counters.
#[test]
fn a_small_window_fetches_little_more_than_its_cog_blocks() {
    let Some(shared) = shared() else {
        eprintln!("SKIPPED: ../shared is absent (the real Earth Search COG item lives there)");
        return;
    };
    use gdal::Metadata;
    let item_dir = shared.join("data/s2-l2a-cog/S2A_29RKH_20200219_0_L2A");
    let server = Server::start();
    server.files("/cog", &item_dir);
    let ds = gdal::Dataset::open(item_dir.join("B04.tif")).unwrap();
    let gt = ds.geo_transform().unwrap();
    let band = ds.rasterband(1).unwrap();
    let (bw, bh) = band.block_size();
    // A 1.5 km x 1.5 km grid in the middle of block (0, 0), aligned to 10 m.
    let (cx, cy) = (gt[0] + gt[1] * (bw as f64 / 2.0), gt[3] + gt[5] * (bh as f64 / 2.0));
    let grid = Grid {
        epsg: 32629,
        x0: (cx / 10.0).floor() * 10.0,
        y0: (cy / 10.0).floor() * 10.0,
        width: 150,
        height: 150,
        res: 10.0,
    };
    let needed: u64 = band.metadata_item("BLOCK_SIZE_0_0", "TIFF").unwrap().parse().unwrap();
    let data = reader().read(&server.url("/cog/B04.tif"), Band::Red, &grid).unwrap();
    assert!(
        data.values.iter().filter(|&&v| v > 0).count() > 100 * 100,
        "the window should hold data"
    );
    let fetched = server.bytes.load(Ordering::SeqCst);
    eprintln!(
        "window of {} px: fetched {fetched} bytes for a {needed}-byte block ({:.2}x)",
        grid.len(),
        fetched as f64 / needed as f64
    );
    assert!(
        fetched as f64 <= 1.2 * needed as f64,
        "fetched {fetched} bytes for {needed} bytes of blocks"
    );
    let requests = server.requests.lock().unwrap();
    assert!(
        requests
            .iter()
            .filter(|(m, _, _)| m == "GET")
            .all(|(_, _, range)| range.is_some()),
        "every GET was a Range request: {requests:?}"
    );
}

fn one_scene_grid() -> Grid {
    let aoi =
        compound_watch::aoi::load(&crate::common::root().join("aoi/myawaddy.geojson"), &Default::default()).unwrap();
    Grid::for_aoi(&aoi, 10.0).unwrap()
}

fn one_href(server: &Server, name: &str) -> (String, String) {
    let id = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_string_lossy()
        .into_owned();
    let path = format!("/files/items/{id}/{name}");
    (server.url(&path), path)
}

#[test]
fn asset_reads_recover_from_503_twice_a_reset_and_a_short_body() {
    let server = Server::start();
    server.files("/files", sample_dir());
    let grid = one_scene_grid();
    let expected = GdalReader::default()
        .read(
            &sample_dir()
                .join("items")
                .join(one_href(&server, "B04.tif").1.split('/').nth(3).unwrap())
                .join("B04.tif")
                .display()
                .to_string(),
            Band::Red,
            &grid,
        )
        .unwrap();
    for (name, faults) in [
        ("B04.tif", vec![Fault::Status(503, vec![]), Fault::Status(503, vec![])]),
        ("B03.tif", vec![Fault::Reset]),
        ("B02.tif", vec![Fault::Short]),
    ] {
        let (url, path) = one_href(&server, name);
        // Faults on the first data request after the header: queue them for every request to the path.
        server.inject(&path, faults);
        let started = Instant::now();
        let data = reader().read(&url, Band::Red, &grid);
        assert!(data.is_ok(), "{name}: {:?}", data.err());
        assert!(started.elapsed() < Duration::from_secs(30));
        if name == "B04.tif" {
            assert_eq!(data.unwrap(), expected, "the recovered read must equal a clean one");
        }
    }
}

#[test]
fn a_missing_asset_is_not_retried_and_its_scene_is_skipped_with_the_reason() {
    let server = Server::start();
    sample_api(&server, 50);
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
    config.from = "2023-01".parse().unwrap();
    config.to = "2023-01".parse().unwrap();
    // The first January item's red band answers 404.
    let id = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|id| id.contains("_202301"))
        .min()
        .unwrap();
    let path = format!("/files/items/{id}/B04.tif");
    server.inject(&path, vec![Fault::Status(404, vec![]); 10]);
    let summary = scan::run(&config, &sample_api_source(&server), &reader(), &Silent).unwrap();
    assert_eq!(summary.skipped.len(), 1, "{:?}", summary.skipped);
    assert_eq!(summary.skipped[0].id, id);
    assert!(
        summary.skipped[0].reason.contains("404"),
        "{}",
        summary.skipped[0].reason
    );
    assert!(
        // GDAL's open (HEAD, maybe a GET) and one status probe; four attempts would make 8 or more.
        server.count(&path) <= 3,
        "a 404 was retried: {} requests",
        server.count(&path)
    );
    let report = read_json(&summary.report);
    assert_eq!(report["compound_watch"]["skipped"][0]["id"], json!(id));
}

#[test]
fn stac_pages_recover_from_429_with_retry_after() {
    let server = Server::start();
    sample_api(&server, 500);
    server.inject(
        "/stac/search",
        [Fault::Status(429, vec![("Retry-After".into(), "1".into())])],
    );
    let started = Instant::now();
    let q = query("2023-01", "2023-01");
    let found = sample_api_source(&server).search(&q).unwrap();
    assert!(!found.scenes.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(server.count("/stac/search"), 2);
}

#[test]
fn a_malformed_page_stops_the_search_with_a_reason() {
    let q = query("2021-07", "2023-06");
    let server = Server::start();
    sample_api(&server, 25);
    // Page 1 is answered normally, page 2 is not JSON.
    server.inject("/stac/search", [Fault::Pass, Fault::Garbage]);
    let found = sample_api_source(&server).search(&q).unwrap();
    assert_eq!(found.scenes.len(), 25);
    assert!(
        found
            .rejected
            .iter()
            .any(|r| r.id == "search page 2" && r.reason.contains("not JSON")),
        "{:?}",
        found.rejected
    );

    // Page 1 malformed: nothing to go on, a clear error naming the URL.
    let server = Server::start();
    sample_api(&server, 25);
    server.inject("/stac/search", [Fault::Garbage]);
    let err = sample_api_source(&server).search(&q).unwrap_err().to_string();
    assert!(err.contains("/stac/search") && err.contains("not JSON"), "{err}");
}

#[test]
fn a_next_link_that_loops_back_ends_the_search() {
    let q = query("2021-07", "2023-06");
    let looping = Server::start();
    let url = looping.url("/loop/search");
    let dir = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let item = read_json(&dir.join(format!("{}.json", dir.file_name().unwrap().to_string_lossy())));
    looping.route("/loop/search", move |_, _| {
        Reply::json(&json!({"type": "FeatureCollection", "features": [item], "links": [{"rel": "next", "method": "POST", "href": url, "body": {"next": "same"}}]}))
    });
    serve_landing_page(&looping, "/loop", &ITEM_SEARCH_WITH_FILTER);
    let src = StacApi::new(&looping.url("/loop"), "sentinel-2-l2a", Provider::Plain, http());
    let started = Instant::now();
    let found = src.search(&q).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(found.scenes.len(), 1);
    assert_eq!(looping.count("/loop/search"), 2);
    assert!(
        found.rejected.iter().any(|r| r.reason.contains("leads back")),
        "{:?}",
        found.rejected
    );
}

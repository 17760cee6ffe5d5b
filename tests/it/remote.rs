//! The remote path for real, offline: STAC API search and COG window reads over a loopback HTTP
//! server with Range support, recorded real STAC responses, and injected faults.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use compound_watch::scan::{self, Silent};
use compound_watch::source::{Band, Provider, SceneSearch, SearchQuery, StacApi};
use compound_watch::window::{GdalReader, Window, WindowReader};
use compound_watch::Grid;
use compound_watch::{Http, RetryPolicy};
use serde_json::{json, Value};

use crate::common::server::{Fault, FaultOn, Reply, Server};
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
    // Paginated: every item of the period at 25 a page, each page asked for once.
    let matching = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| {
            let dir = e.unwrap().path();
            read_json(&dir.join(format!("{}.json", dir.file_name().unwrap().to_string_lossy())))
        })
        .filter(|item| item["properties"]["eo:cloud_cover"].as_f64().unwrap() <= config.max_cloud_cover)
        .count();
    assert_eq!(server.count("/stac/search"), matching.div_ceil(25));
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
    let file_requests = server.log().iter().filter(|r| r.path.starts_with("/files")).count();
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
    assert_eq!(server.log().len(), 0);
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
    let requests = server.log();
    assert!(
        requests.iter().filter(|r| r.method == "GET").all(|r| r.range.is_some()),
        "every GET was a Range request: {requests:?}"
    );
}

fn one_scene_grid() -> Grid {
    let aoi =
        compound_watch::aoi::load(&crate::common::root().join("aoi/myawaddy.geojson"), &Default::default()).unwrap();
    Grid::for_aoi(&aoi, 10.0).unwrap()
}

/// The first sample item's id.
fn first_item() -> String {
    std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .min()
        .unwrap()
}

/// A fresh server with the sample's files, and the URL and path of one band of the first item.
/// Fresh on purpose: GDAL caches blocks per URL for the whole process, and a new port is a new URL.
fn one_asset(name: &str) -> (String, String, Server) {
    let server = Server::start();
    server.files("/files", sample_dir());
    let path = format!("/files/items/{}/{name}", first_item());
    (server.url(&path), path, server)
}

/// A clean read of one band over HTTP: its pixels, and how many block reads (Range GETs) it took.
fn clean_read(name: &str, grid: &Grid) -> (Vec<u16>, usize) {
    let (url, path, server) = one_asset(name);
    let data = reader().read(&url, Band::Red, grid).unwrap().values;
    let local = GdalReader::default()
        .read(
            &sample_dir()
                .join(path.trim_start_matches("/files/"))
                .display()
                .to_string(),
            Band::Red,
            grid,
        )
        .unwrap()
        .values;
    assert_eq!(data, local, "a clean read over HTTP must equal the local file");
    server.print_log(&format!("clean read of {name}"));
    (data, server.count_on(&path, FaultOn::RangeGet))
}

/// Each fault hits a block read (not GDAL's HEAD), fires once, costs a known number of extra
/// block reads, and the recovered window equals a clean read of the same file.
#[test]
fn asset_reads_recover_from_503_twice_a_reset_and_a_short_body() {
    let grid = one_scene_grid();
    // Extra Range GETs: a 503 is retried by GDAL itself (one GET each). A broken body fails the
    // read: one status probe (bytes=0-0), then the reader's retry reads the header and the blocks
    // again (GDAL's cache of the file is cleared first: it would keep a block cut short); a reset
    // header read costs GDAL's own second try at the header on top.
    for (name, faults, extra) in [
        (
            "B04.tif",
            vec![Fault::Status(503, vec![]), Fault::Status(503, vec![])],
            2,
        ),
        ("B03.tif", vec![Fault::Reset], 3),
        // The header read passes; the short body cuts the one big block read.
        ("B02.tif", vec![Fault::Pass, Fault::Short], 3),
    ] {
        let (clean, clean_reads) = clean_read(name, &grid);
        let (url, path, server) = one_asset(name);
        server.inject(&path, FaultOn::RangeGet, faults.clone());
        let started = Instant::now();
        let data = reader().read(&url, Band::Red, &grid);
        server.print_log(&format!("{name} with {faults:?}"));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(
            data.unwrap().values,
            clean,
            "{name}: the recovered read must equal a clean one"
        );
        let injected: Vec<Fault> = faults.iter().filter(|f| **f != Fault::Pass).cloned().collect();
        assert_eq!(
            server.fired(&path),
            injected,
            "{name}: every fault fired once, in order"
        );
        assert_eq!(server.pending(&path), 0);
        assert_eq!(
            server.count_on(&path, FaultOn::RangeGet),
            clean_reads + extra,
            "{name}: {extra} block reads more than the {clean_reads} of a clean read"
        );
    }
}

/// `--timeout`: a block read that stalls past the timeout is abandoned and retried, well before
/// the stall would have ended, and the window equals a clean read.
#[test]
fn a_stalled_block_read_times_out_and_is_retried() {
    let grid = one_scene_grid();
    let (clean, clean_reads) = clean_read("B08.tif", &grid);
    let (url, path, server) = one_asset("B08.tif");
    let stall = Duration::from_secs(6);
    server.inject(&path, FaultOn::RangeGet, [Fault::Stall(stall)]);
    let started = Instant::now();
    let data = GdalReader::new(quick_retry(), 1).unwrap().read(&url, Band::Red, &grid);
    let took = started.elapsed();
    server.print_log("B08.tif with a 6 s stall and a 1 s timeout");
    assert_eq!(data.unwrap().values, clean);
    assert!(took >= Duration::from_secs(1), "the stall was not waited for: {took:?}");
    assert!(took < stall, "the 1 s timeout did not fire: {took:?}");
    assert_eq!(server.fired(&path), [Fault::Stall(stall)]);
    assert_eq!(server.count_on(&path, FaultOn::RangeGet), clean_reads + 1);
}

/// 401 and 403 on a block read are final: never retried, and the error says the status. GDAL's
/// open asks for the header twice and the reader probes the status once (bytes=0-0); a retried
/// read would ask at least twice more.
#[test]
fn asset_reads_are_not_retried_on_401_or_403() {
    let grid = one_scene_grid();
    for code in [401, 403] {
        let (url, path, server) = one_asset("B04.tif");
        server.inject(&path, FaultOn::RangeGet, vec![Fault::Status(code, vec![]); 20]);
        let err = reader().read(&url, Band::Red, &grid).unwrap_err().to_string();
        server.print_log(&format!("B04.tif answering {code}"));
        assert!(err.contains(&code.to_string()), "{err}");
        assert_eq!(server.count_on(&path, FaultOn::RangeGet), 3, "HTTP {code} was retried");
        assert_eq!(server.log().last().unwrap().range.as_deref(), Some("bytes=0-0"));
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
    server.inject(&path, FaultOn::Any, vec![Fault::Status(404, vec![]); 10]);
    let summary = scan::run(&config, &sample_api_source(&server), &reader(), &Silent).unwrap();
    server.print_log("a scan of 2023-01 with one red band answering 404");
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
        FaultOn::Any,
        [Fault::Status(429, vec![("Retry-After".into(), "1".into())])],
    );
    let started = Instant::now();
    let q = query("2023-01", "2023-01");
    let found = sample_api_source(&server).search(&q).unwrap();
    server.print_log("one page answering 429 with Retry-After: 1");
    assert_eq!(scene_ids(&found), clean_search(&q, 500).0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(server.count("/stac/search"), 2);
    assert_eq!(server.fired("/stac/search").len(), 1);
}

#[test]
fn a_malformed_page_stops_the_search_with_a_reason() {
    let q = query("2021-07", "2023-06");
    let server = Server::start();
    sample_api(&server, 25);
    // Page 1 is answered normally, page 2 is not JSON.
    server.inject("/stac/search", FaultOn::Any, [Fault::Pass, Fault::Garbage]);
    let found = sample_api_source(&server).search(&q).unwrap();
    server.print_log("page 2 not JSON");
    assert_eq!(server.fired("/stac/search"), [Fault::Garbage]);
    assert_eq!(server.count("/stac/search"), 2, "a malformed page is not retried");
    let (clean, _) = clean_search(&q, 25);
    assert_eq!(scene_ids(&found), clean[..25]);
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
    server.inject("/stac/search", FaultOn::Any, [Fault::Garbage]);
    let err = sample_api_source(&server).search(&q).unwrap_err().to_string();
    server.print_log("page 1 not JSON");
    assert!(err.contains("/stac/search") && err.contains("not JSON"), "{err}");
    assert_eq!(server.count("/stac/search"), 1);
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

fn scene_ids(found: &compound_watch::source::Found) -> Vec<String> {
    found.scenes.iter().map(|s| s.id.clone()).collect()
}

/// The scene ids of a search without faults, and the pages it took.
fn clean_search(q: &SearchQuery, page_size: usize) -> (Vec<String>, usize) {
    let server = Server::start();
    sample_api(&server, page_size);
    let found = sample_api_source(&server).search(q).unwrap();
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
    (scene_ids(&found), server.count("/stac/search"))
}

#[test]
fn stac_pages_recover_from_5xx_and_give_up_after_max_retries() {
    let q = query("2022-01", "2022-06");
    let (clean, pages) = clean_search(&q, 10);
    assert!(pages >= 3, "the test needs several pages, got {pages}");

    // Page 1 answers 503 then 502, page 2 answers 500: three retries, the same scenes.
    let server = Server::start();
    sample_api(&server, 10);
    let faults = [
        Fault::Status(503, vec![]),
        Fault::Status(502, vec![]),
        Fault::Pass,
        Fault::Status(500, vec![]),
    ];
    server.inject("/stac/search", FaultOn::Any, faults);
    let found = sample_api_source(&server).search(&q).unwrap();
    server.print_log("page 1 answering 503 and 502, page 2 answering 500");
    assert_eq!(scene_ids(&found), clean);
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
    assert_eq!(server.fired("/stac/search").len(), 3);
    assert_eq!(server.count("/stac/search"), pages + 3);

    // 503 on every attempt: the first try and `max_retries` more, then a clear error.
    let server = Server::start();
    sample_api(&server, 10);
    let retries = quick_retry().max_retries as usize;
    server.inject(
        "/stac/search",
        FaultOn::Any,
        vec![Fault::Status(503, vec![]); retries + 5],
    );
    let err = sample_api_source(&server).search(&q).unwrap_err().to_string();
    server.print_log("page 1 answering 503 for good");
    assert_eq!(server.count("/stac/search"), retries + 1);
    assert!(
        err.contains("HTTP 503")
            && err.contains(&format!("still after {retries} retries"))
            && err.contains("/stac/search"),
        "{err}"
    );
}

#[test]
fn stac_requests_are_not_retried_on_401_or_403() {
    let q = query("2022-01", "2022-06");
    for code in [401, 403] {
        let server = Server::start();
        sample_api(&server, 10);
        server.inject("/stac/search", FaultOn::Any, vec![Fault::Status(code, vec![]); 5]);
        let err = sample_api_source(&server).search(&q).unwrap_err().to_string();
        server.print_log(&format!("page 1 answering {code}"));
        assert_eq!(server.count("/stac/search"), 1, "HTTP {code} was retried");
        assert!(
            err.contains(&format!("HTTP {code}")) && err.contains("/stac/search"),
            "{err}"
        );
    }
}

/// `--timeout` on STAC requests: a page that stalls past it is asked again, long before the stall ends.
#[test]
fn a_stalled_stac_page_times_out_and_is_retried() {
    let q = query("2022-01", "2022-06");
    let (clean, pages) = clean_search(&q, 10);
    let server = Server::start();
    sample_api(&server, 10);
    let stall = Duration::from_secs(5);
    server.inject("/stac/search", FaultOn::Any, [Fault::Pass, Fault::Stall(stall)]);
    let timeout = Duration::from_millis(500);
    let source = StacApi::new(
        &server.url("/stac"),
        "sentinel-2-l2a",
        Provider::Plain,
        Http::new(timeout, quick_retry()),
    )
    .with_page_size(10);
    let started = Instant::now();
    let found = source.search(&q).unwrap();
    let took = started.elapsed();
    server.print_log("page 2 stalling 5 s, timeout 0.5 s");
    assert_eq!(scene_ids(&found), clean);
    assert!(took >= timeout, "the stall was not waited for: {took:?}");
    assert!(took < stall, "the timeout did not fire: {took:?}");
    assert_eq!(server.fired("/stac/search"), [Fault::Stall(stall)]);
    assert_eq!(server.count("/stac/search"), pages + 1);
}

/// `--fetch-jobs`: never more scenes read at once than asked, and more than one when asked.
#[test]
fn fetch_jobs_bounds_the_reads_in_flight() {
    let mut report = None;
    for jobs in [1, 3] {
        let server = Server::start();
        sample_api(&server, 50);
        // Every answer takes 20 ms, so reads that can overlap do.
        server.set_latency(Duration::from_millis(20));
        let dir = tempfile::tempdir().unwrap();
        let mut config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
        config.from = "2023-01".parse().unwrap();
        config.to = "2023-02".parse().unwrap();
        config.fetch_jobs = jobs;
        let summary = scan::run(&config, &sample_api_source(&server), &reader(), &Silent).unwrap();
        let max = server.max_in_flight();
        eprintln!(
            "fetch_jobs {jobs}: {} scenes, {} requests, at most {max} in flight",
            summary.scenes_used,
            server.log().len()
        );
        assert!(summary.scenes_used > jobs, "the test needs more scenes than jobs");
        assert!(max <= jobs, "{max} requests in flight with fetch_jobs {jobs}");
        if jobs > 1 {
            assert!(max > 1, "fetch_jobs {jobs} read one scene at a time");
        }
        // The same detections whatever the concurrency.
        let found = features(&summary.report);
        match &report {
            None => report = Some(found),
            Some(first) => assert_eq!(*first, found, "the report depends on fetch_jobs"),
        }
    }
}

/// A Planetary Computer token that expires between two pages is fetched again; each href carries
/// the token that was valid when it was signed.
#[test]
fn a_planetary_computer_token_that_expires_mid_search_is_renewed() {
    let q = query("2022-01", "2022-06");
    let (clean, pages) = clean_search(&q, 10);
    let server = Server::start();
    sample_api(&server, 10);
    // Page 2 comes after the first token expired.
    server.inject(
        "/stac/search",
        FaultOn::Any,
        [Fault::Pass, Fault::Stall(Duration::from_millis(1500))],
    );
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = issued.clone();
    server.route("/sas/token/sentinel-2-l2a", move |_, _| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let expiry = chrono::Utc::now() + chrono::Duration::milliseconds(1000);
        Reply::json(&json!({"msft:expiry": expiry.to_rfc3339(), "token": format!("sig=token{n}")}))
    });
    let source = StacApi::new(
        &server.url("/stac"),
        "sentinel-2-l2a",
        Provider::PlanetaryComputer {
            sas_url: server.url("/sas"),
        },
        http(),
    )
    .with_page_size(10)
    .with_token_margin(Duration::from_millis(200));
    let found = source.search(&q).unwrap();
    server.print_log("a 1 s token, page 2 after 1.5 s");
    assert_eq!(scene_ids(&found), clean);
    assert!(pages >= 2);
    assert_eq!(server.count("/sas/token/sentinel-2-l2a"), 2, "one token per page here");
    let token_of = |i: usize| {
        let hrefs: Vec<&String> = found.scenes[i].hrefs.values().collect();
        let token = hrefs[0].rsplit_once('?').unwrap().1.to_owned();
        assert!(hrefs.iter().all(|h| h.ends_with(&format!("?{token}"))), "{hrefs:?}");
        token
    };
    // Scenes are sorted by date and pages come in date order: page 1 holds the first 10.
    assert_eq!(token_of(0), "sig=token1");
    assert_eq!(token_of(9), "sig=token1");
    assert_eq!(token_of(10), "sig=token2");
    assert_eq!(token_of(found.scenes.len() - 1), "sig=token2");
}

/// A window reader that keeps what it read, to see which scene gave which pixels.
struct KeepingReader {
    inner: GdalReader,
    reads: std::sync::Mutex<Vec<(String, Band, Vec<u16>)>>,
}

impl WindowReader for KeepingReader {
    fn read(&self, href: &str, band: Band, grid: &Grid) -> compound_watch::Result<Window> {
        let data = self.inner.read(href, band, grid)?;
        self.reads
            .lock()
            .unwrap()
            .push((href.to_owned(), band, data.values.clone()));
        Ok(data)
    }
}

/// Writes `data` as a tiled GeoTIFF on `target`.
fn write_tiff(path: &Path, target: &compound_watch::window::Target, data: Vec<u16>) {
    let driver = gdal::DriverManager::get_driver_by_name("GTiff").unwrap();
    let options: gdal::raster::RasterCreationOptions =
        ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE"]
            .into_iter()
            .collect();
    let mut ds = driver
        .create_with_band_type_with_options::<u16, _>(path, target.width, target.height, 1, &options)
        .unwrap();
    ds.set_geo_transform(&target.geo_transform).unwrap();
    ds.set_spatial_ref(&compound_watch::srs(target.epsg).unwrap()).unwrap();
    let mut band = ds.rasterband(1).unwrap();
    band.set_no_data_value(Some(0.0)).unwrap();
    let shape = (target.width, target.height);
    band.write((0, 0), shape, &mut gdal::raster::Buffer::new(shape, data))
        .unwrap();
}

/// The part of `grid` between columns `c0` and `c1`, as a raster in `epsg` at `res` metres,
/// two pixels wider on every side.
fn part_in(grid: &Grid, c0: usize, c1: usize, epsg: u32, res: f64) -> compound_watch::window::Target {
    let to = compound_watch::Projector::new(grid.epsg, epsg).unwrap();
    let corners: Vec<geo::Coord<f64>> = [(c0, 0), (c1, 0), (c0, grid.height), (c1, grid.height)]
        .into_iter()
        .map(|(c, r)| to.coord(grid.to_map(c as f64, r as f64)).unwrap())
        .collect();
    let pad = 2.0 * res;
    let x0 = (corners.iter().map(|c| c.x).fold(f64::MAX, f64::min) / res).floor() * res - pad;
    let x1 = (corners.iter().map(|c| c.x).fold(f64::MIN, f64::max) / res).ceil() * res + pad;
    let y0 = (corners.iter().map(|c| c.y).fold(f64::MIN, f64::max) / res).ceil() * res + pad;
    let y1 = (corners.iter().map(|c| c.y).fold(f64::MAX, f64::min) / res).floor() * res - pad;
    compound_watch::window::Target {
        epsg,
        geo_transform: [x0, res, 0.0, y0, 0.0, -res],
        width: ((x1 - x0) / res).round() as usize,
        height: ((y0 - y1) / res).round() as usize,
    }
}

/// Non-zero pixels of a window between two columns.
fn filled(data: &[u16], width: usize, c0: usize, c1: usize) -> (usize, usize) {
    let inside = data.iter().enumerate().filter(|(p, _)| (c0..c1).contains(&(p % width)));
    let (mut n, mut set) = (0, 0);
    for (_, &v) in inside {
        n += 1;
        set += usize::from(v > 0);
    }
    (set, n)
}

/// An AOI across a UTM zone boundary: one acquisition delivered as two items, the west half in
/// EPSG:32646 (tile 46QHD) and the east half in EPSG:32647 (tile 47QNU), served as a STAC API.
/// The scan keeps both, GDAL warps each onto the one grid, and each fills its own half.
#[test]
fn an_aoi_across_two_utm_zones_is_read_from_both_items() {
    let grid = one_scene_grid();
    assert_eq!(grid.epsg, 32647);
    // The clearest sample item with data over the whole grid is the acquisition to split.
    let (id, item) = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| {
            let id = e.unwrap().file_name().to_string_lossy().into_owned();
            let item = read_json(&sample_dir().join(format!("items/{id}/{id}.json")));
            (id, item)
        })
        .filter(|(id, _)| {
            let href = sample_dir().join(format!("items/{id}/B04.tif"));
            let data = GdalReader::default()
                .read(&href.display().to_string(), Band::Red, &grid)
                .unwrap();
            data.values.iter().all(|&v| v > 0)
        })
        .min_by(|a, b| {
            let cc = |i: &Value| i["properties"]["eo:cloud_cover"].as_f64().unwrap();
            cc(&a.1).total_cmp(&cc(&b.1))
        })
        .unwrap();
    let seam = grid.width / 2;
    let server = Server::start();
    let files = tempfile::tempdir().unwrap();
    let mut items = vec![];
    for (tile, epsg, c0, c1) in [("46QHD", 32646, 0, seam), ("47QNU", 32647, seam, grid.width)] {
        let part_id = id.replace("47QNU", tile);
        std::fs::create_dir_all(files.path().join(&part_id)).unwrap();
        let mut part = item.clone();
        part["id"] = json!(part_id);
        part["properties"]["s2:mgrs_tile"] = json!(tile);
        part["properties"]["proj:epsg"] = json!(epsg);
        for band in Band::ALL {
            let asset = &mut part["assets"][band.asset_key()];
            let name = asset["href"].as_str().unwrap().trim_start_matches("./").to_owned();
            let target = part_in(&grid, c0, c1, epsg, band.native_resolution() as f64);
            let source = sample_dir().join(format!("items/{id}/{name}"));
            let data =
                compound_watch::window::warp(&source.display().to_string(), band.is_categorical(), &target).unwrap();
            write_tiff(&files.path().join(&part_id).join(&name), &target, data.values);
            asset["href"] = json!(server.url(&format!("/split/{part_id}/{name}")));
        }
        items.push(part);
    }
    server.files("/split", files.path());
    server.route("/stac/search", move |_, _| {
        Reply::json(&json!({"type": "FeatureCollection", "features": items, "links": []}))
    });
    serve_landing_page(&server, "/stac", &ITEM_SEARCH_WITH_FILTER);

    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
    let month = &item["properties"]["datetime"].as_str().unwrap()[..7];
    config.from = month.parse().unwrap();
    config.to = month.parse().unwrap();
    config.min_scenes = 1; // one acquisition, split in two items
    let reader = KeepingReader {
        inner: reader(),
        reads: Default::default(),
    };
    let summary = scan::run(&config, &sample_api_source(&server), &reader, &Silent).unwrap();
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    assert_eq!(summary.scenes_used, 2, "both tiles of the one date are used");
    assert_eq!(summary.windows_fetched, 14);

    let clean = GdalReader::default()
        .read(
            &sample_dir().join(format!("items/{id}/B04.tif")).display().to_string(),
            Band::Red,
            &grid,
        )
        .unwrap()
        .values;
    let reads = reader.reads.lock().unwrap();
    let red = |tile: &str| {
        reads
            .iter()
            .find(|(href, band, _)| *band == Band::Red && href.contains(tile))
            .map(|(_, _, data)| data.clone())
            .unwrap()
    };
    let (west, east) = (red("46QHD"), red("47QNU"));
    let w = grid.width;
    // Each item fills its own half (to the seam, give or take the rotation between the zones) ...
    let (set, n) = filled(&west, w, 0, seam - 2);
    assert_eq!(set, n, "the EPSG:32646 item must fill the west half");
    assert_eq!(
        filled(&west, w, seam + 40, w).0,
        0,
        "the EPSG:32646 item reaches into the east half"
    );
    let (set, n) = filled(&east, w, seam + 2, w);
    assert_eq!(set, n, "the EPSG:32647 item must fill the east half");
    assert_eq!(
        filled(&east, w, 0, seam - 4).0,
        0,
        "the EPSG:32647 item reaches into the west half"
    );
    // ... with the acquisition's pixels where they belong: close to the unsplit item's, far closer
    // than the same pixels one column off.
    let mean_diff = |data: &[u16], c0: usize, c1: usize, shift: usize| {
        let (mut sum, mut n) = (0f64, 0usize);
        for p in 0..data.len() {
            let c = p % w;
            if (c0..c1).contains(&c) && c + shift < w {
                sum += (data[p] as f64 - clean[p + shift] as f64).abs();
                n += 1;
            }
        }
        sum / n as f64
    };
    for (name, data, c0, c1) in [("west", &west, 0, seam - 2), ("east", &east, seam + 2, w)] {
        let (aligned, shifted) = (mean_diff(data, c0, c1, 0), mean_diff(data, c0, c1, 1));
        eprintln!("{name}: mean |difference| to the unsplit item {aligned:.1}, one column off {shifted:.1}");
        // Resampled twice (west) the pixels are smoother, but still much closer than a column off.
        assert!(aligned < 0.7 * shifted, "{name}: {aligned} vs {shifted} one column off");
    }
    // The month's composite holds pixels from both halves.
    let composite = gdal::Dataset::open(&summary.composite).unwrap();
    let band = composite.rasterband(1).unwrap();
    let (cw, ch) = composite.raster_size();
    assert_eq!((cw, ch), (grid.width, grid.height));
    let data = band
        .read_as::<f64>((0, 0), (cw, ch), (cw, ch), None)
        .unwrap()
        .data()
        .to_vec();
    let nodata = band.no_data_value();
    let valid: Vec<u16> = data
        .iter()
        .map(|&v| u16::from(v.is_finite() && Some(v) != nodata && v != 0.0))
        .collect();
    let (west_set, _) = filled(&valid, w, 0, seam);
    let (east_set, _) = filled(&valid, w, seam, w);
    eprintln!("composite: {west_set} valid pixels west of the seam, {east_set} east");
    assert!(west_set > 0 && east_set > 0, "the composite misses a half");
}

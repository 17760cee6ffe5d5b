//! Any STAC API, by what it declares: a real one (rustac's stac-server, in-memory backend, which
//! declares no filter extension) and the loopback server declaring the filter or the query
//! extension. The cloud-cover limit must reach each in a form it understands, and the report must
//! not depend on which.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use compound_watch::scan::{self, Silent};
use compound_watch::source::{self, Provider, SceneSearch, SearchQuery, StacApi, StaticCatalog};
use compound_watch::window::GdalReader;
use compound_watch::{Http, RetryPolicy};
use serde_json::{json, Value};

use crate::common::server::{Reply, Server};
use crate::common::{demo_config, demo_scan, read_json, sample_dir};

const COLLECTION: &str = "sentinel-2-l2a";
const ITEM_SEARCH: &str = "https://api.stacspec.org/v1.0.0/item-search";
const FILTER: &str = "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter";
const QUERY: &str = "https://api.stacspec.org/v1.0.0/item-search#query";

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_secs(1),
    }
}

fn http() -> Http {
    Http::new(Duration::from_secs(10), quick_retry())
}

/// The sample's items with their asset hrefs pointing at `files` (the sample served by `files`).
fn sample_items(files: &str) -> Vec<Value> {
    let mut items: Vec<Value> = std::fs::read_dir(sample_dir().join("items"))
        .unwrap()
        .map(|e| {
            let dir = e.unwrap().path();
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let mut item = read_json(&dir.join(format!("{id}.json")));
            for (_, asset) in item["assets"].as_object_mut().unwrap() {
                let name = asset["href"].as_str().unwrap().trim_start_matches("./").to_owned();
                asset["href"] = format!("{files}/items/{id}/{name}").into();
            }
            item
        })
        .collect();
    items.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    items
}

/// rustac's STAC API server with its in-memory backend on loopback, holding `items`; the body of
/// every request to `/search` is kept. Stops when dropped.
struct StacServer {
    url: String,
    search_bodies: Arc<Mutex<Vec<Value>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl StacServer {
    fn start(items: Vec<Value>) -> StacServer {
        use stac::api::TransactionClient;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let search_bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (root, log) = (url.clone(), search_bodies.clone());
        let (ready, is_ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut backend = stac_server::MemoryBackend::new();
                backend
                    .add_collection(stac::Collection::new(COLLECTION, "the bundled sample"))
                    .await
                    .unwrap();
                for item in items {
                    backend.add_item(serde_json::from_value(item).unwrap()).await.unwrap();
                }
                let api = stac_server::Api::new(backend, &root).unwrap();
                let router = stac_server::routes::from_api(api).layer(axum::middleware::from_fn(
                    move |request: axum::extract::Request, next: axum::middleware::Next| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = request.into_parts();
                            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                            if parts.uri.path() == "/search" {
                                log.lock()
                                    .unwrap()
                                    .push(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
                            }
                            let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
                            next.run(request).await
                        }
                    },
                ));
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                ready.send(()).unwrap();
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        stopped.await.ok();
                    })
                    .await
                    .unwrap();
            });
        });
        is_ready.recv().unwrap();
        StacServer {
            url,
            search_bodies,
            stop: Some(stop),
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.search_bodies.lock().unwrap().clone()
    }
}

impl Drop for StacServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

fn features(report: &Path) -> Value {
    read_json(report)["features"].clone()
}

fn scene_ids(source: &dyn SceneSearch, q: &SearchQuery) -> Vec<String> {
    let found = source.search(q).unwrap();
    assert!(found.rejected.is_empty(), "{:?}", found.rejected);
    found.scenes.into_iter().map(|s| s.id).collect()
}

/// The demo's period and area with a cloud-cover limit that a third of the sample exceeds.
fn cloudy_query() -> SearchQuery {
    SearchQuery {
        bbox: [98.0, 16.0, 99.0, 17.0],
        geometry: None,
        from: "2021-07".parse().unwrap(),
        to: "2023-06".parse().unwrap(),
        max_cloud_cover: 30.0,
    }
}

fn catalog_on_disk() -> StaticCatalog {
    StaticCatalog::new(sample_dir().join("catalog.json"))
}

#[test]
fn a_scan_through_a_real_stac_server_without_filters_equals_the_catalog_on_disk() {
    let files = Server::start();
    files.files("/files", sample_dir());
    let items = sample_items(&files.url("/files"));
    let server = StacServer::start(items.clone());
    let landing = read_json_over_http(&format!("{}/", server.url));
    let declared: Vec<&str> = landing["conformsTo"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(declared.contains(&ITEM_SEARCH), "{declared:?}");
    assert!(
        !declared.iter().any(|c| c.contains("filter") || c.contains("query")),
        "{declared:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(&dir.path().join("out"), &dir.path().join("cache"));
    let api = StacApi::new(&server.url, COLLECTION, Provider::Plain, http());
    let reader = GdalReader::new(quick_retry(), 10).unwrap();
    let summary = scan::run(&config, &api, &reader, &Silent).unwrap();
    let demo = demo_scan();
    assert!(demo.summary.scenes_used > 0);
    assert_eq!(summary.scenes_used, demo.summary.scenes_used);
    assert_eq!(features(&summary.report), features(&demo.summary.report));
    let source = &read_json(&summary.report)["compound_watch"]["source"];
    assert!(
        source.as_str().unwrap().contains("cloud cover filtered here"),
        "{source}"
    );

    // The server was asked without a filter it would not understand, and paged through its items.
    let bodies = server.bodies();
    eprintln!("stac-server search bodies: {bodies:#?}");
    assert!(bodies.len() >= 2, "100 a page: {bodies:?}");
    for body in &bodies {
        assert!(body.get("filter").is_none() && body.get("query").is_none(), "{body}");
        assert_eq!(body["collections"], json!([COLLECTION]));
    }
    // Items over the limit came back and were left out here.
    let in_period_over_limit = items
        .iter()
        .filter(|i| i["properties"]["datetime"].as_str().unwrap() < "2023-07")
        .filter(|i| i["properties"]["eo:cloud_cover"].as_f64().unwrap() > config.max_cloud_cover)
        .count();
    assert!(
        in_period_over_limit > 0,
        "the limit must matter for this test to mean anything"
    );
}

fn read_json_over_http(url: &str) -> Value {
    http().get_json(url).unwrap()
}

#[test]
fn a_real_stac_server_and_the_catalog_on_disk_find_the_same_scenes_under_a_cloud_limit() {
    let files = Server::start();
    let server = StacServer::start(sample_items(&files.url("/files")));
    let api = StacApi::new(&server.url, COLLECTION, Provider::Plain, http());
    let q = cloudy_query();
    let expected = scene_ids(&catalog_on_disk(), &q);
    assert!(!expected.is_empty());
    assert_eq!(scene_ids(&api, &q), expected);
    assert!(api.describe().contains("filtered here"), "{}", api.describe());
    eprintln!("stac-server search bodies: {:#}", json!(server.bodies()));

    // Why: the same search with a CQL2 filter is answered with nothing by this server.
    let mut with_filter = server.bodies()[0].clone();
    with_filter["filter-lang"] = json!("cql2-json");
    with_filter["filter"] = json!({"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30.0]});
    let answer = http()
        .post_json(&format!("{}/search", server.url), &with_filter)
        .unwrap();
    assert_eq!(
        answer["features"],
        json!([]),
        "stac-server now filters: CQL2 could be sent to it"
    );
}

/// A strict STAC API on the loopback server: its landing page declares `classes`; `/search`
/// answers with the items matching the box, months and the cloud limit sent in the form it
/// declared, refuses a filter or query it did not declare with 400 as a strict server does, and
/// pages by `skip` in a POST `next` link. Returns the bodies it was sent and the number of items it
/// answered with.
fn declaring_api(server: &Server, classes: &[&str]) -> (Arc<Mutex<Vec<Value>>>, Arc<Mutex<usize>>) {
    declaring_api_with(server, classes, true)
}

/// [`declaring_api`], its classes on the landing page or only on its `/conformance` page.
fn declaring_api_with(
    server: &Server,
    classes: &[&str],
    on_landing_page: bool,
) -> (Arc<Mutex<Vec<Value>>>, Arc<Mutex<usize>>) {
    let items = sample_items(&server.url("/files"));
    let declared: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let answered: Arc<Mutex<usize>> = Arc::default();
    let (log, count) = (bodies.clone(), answered.clone());
    let search_url = server.url("/api/search");
    let cql2 = declared.iter().any(|c| c == FILTER);
    let query = declared.iter().any(|c| c == QUERY);
    server.route("/api/search", move |req, _| {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        log.lock().unwrap().push(body.clone());
        let limit = if (body.get("filter").is_some() && !cql2) || (body.get("query").is_some() && !query) {
            return Reply::Body {
                status: 400,
                content_type: "application/json",
                body: Arc::new(br#"{"code": "BadRequest", "description": "not supported"}"#.to_vec()),
                headers: vec![],
            };
        } else if cql2 && body.get("filter").is_some() {
            assert_eq!(body["filter-lang"], "cql2-json");
            assert_eq!(body["filter"]["op"], "<=");
            assert_eq!(body["filter"]["args"][0], json!({"property": "eo:cloud_cover"}));
            body["filter"]["args"][1].as_f64().unwrap()
        } else if query && body.get("query").is_some() {
            body["query"]["eo:cloud_cover"]["lte"].as_f64().unwrap()
        } else {
            f64::INFINITY
        };
        let (from, to) = body["datetime"].as_str().unwrap().split_once('/').unwrap();
        let skip = body["skip"].as_u64().unwrap_or(0) as usize;
        let page_size = body["limit"].as_u64().unwrap() as usize;
        let matching: Vec<&Value> = items
            .iter()
            .filter(|i| {
                let d = i["properties"]["datetime"].as_str().unwrap();
                d >= from && d <= to && i["properties"]["eo:cloud_cover"].as_f64().unwrap() <= limit
            })
            .collect();
        let page: Vec<&Value> = matching.iter().skip(skip).take(page_size).copied().collect();
        *count.lock().unwrap() += page.len();
        let mut links = vec![];
        if skip + page_size < matching.len() {
            let mut next = body.clone();
            next["skip"] = json!(skip + page_size);
            links.push(json!({"rel": "next", "method": "POST", "href": search_url, "body": next}));
        }
        Reply::json(&json!({"type": "FeatureCollection", "features": page, "links": links}))
    });
    let mut landing = json!({
        "type": "Catalog", "id": "loopback", "description": "a loopback STAC API", "stac_version": "1.0.0",
        "links": [{"rel": "conformance", "href": server.url("/api/conformance")}],
    });
    if on_landing_page {
        landing["conformsTo"] = json!(declared);
    }
    server.route("/api", move |_, rest| match rest {
        "" | "/" => Reply::json(&landing),
        "/conformance" => Reply::json(&json!({ "conformsTo": declared })),
        _ => Reply::NotFound,
    });
    server.files("/files", sample_dir());
    (bodies, answered)
}

fn loopback_api(server: &Server) -> StacApi {
    StacApi::new(&server.url("/api"), COLLECTION, Provider::Plain, http()).with_page_size(40)
}

#[test]
fn an_api_declaring_the_filter_extension_gets_a_cql2_filter() {
    let server = Server::start();
    let (bodies, answered) = declaring_api(&server, &[ITEM_SEARCH, FILTER, QUERY]);
    let q = cloudy_query();
    let api = loopback_api(&server);
    let expected = scene_ids(&catalog_on_disk(), &q);
    assert_eq!(scene_ids(&api, &q), expected);
    let bodies = bodies.lock().unwrap();
    eprintln!("filter-mode search bodies: {bodies:#?}");
    assert_eq!(
        bodies[0]["filter"],
        json!({"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30.0]})
    );
    assert_eq!(bodies[0]["filter-lang"], "cql2-json");
    assert!(bodies[0].get("query").is_none());
    // The server did the filtering: it answered with exactly the scenes kept.
    assert_eq!(*answered.lock().unwrap(), expected.len());
    assert!(api.describe().contains("CQL2 filter"), "{}", api.describe());
}

#[test]
fn an_api_declaring_only_the_query_extension_gets_a_query() {
    let server = Server::start();
    let (bodies, answered) = declaring_api(&server, &[ITEM_SEARCH, QUERY]);
    let q = cloudy_query();
    let api = loopback_api(&server);
    let expected = scene_ids(&catalog_on_disk(), &q);
    assert_eq!(scene_ids(&api, &q), expected);
    let bodies = bodies.lock().unwrap();
    eprintln!("query-mode search bodies: {bodies:#?}");
    assert!(bodies.len() >= 2, "paged: {bodies:?}");
    for body in bodies.iter() {
        assert_eq!(body["query"], json!({"eo:cloud_cover": {"lte": 30.0}}));
        assert!(body.get("filter").is_none() && body.get("filter-lang").is_none());
    }
    assert_eq!(*answered.lock().unwrap(), expected.len());
    assert!(api.describe().contains("query extension"), "{}", api.describe());
}

#[test]
fn an_api_declaring_neither_gets_neither_and_is_filtered_here() {
    let server = Server::start();
    let (bodies, answered) = declaring_api(&server, &[ITEM_SEARCH]);
    let q = cloudy_query();
    let api = loopback_api(&server);
    let expected = scene_ids(&catalog_on_disk(), &q);
    assert_eq!(scene_ids(&api, &q), expected);
    let bodies = bodies.lock().unwrap();
    assert!(bodies
        .iter()
        .all(|b| b.get("filter").is_none() && b.get("query").is_none()));
    // Every item of the months came back; the cloudy ones were left out here.
    assert!(*answered.lock().unwrap() > expected.len());
}

#[test]
fn the_landing_page_is_read_once_per_api() {
    let server = Server::start();
    declaring_api(&server, &[ITEM_SEARCH, FILTER]);
    let api = loopback_api(&server);
    assert_eq!(
        api.describe(),
        format!("STAC API {} collection {COLLECTION}", server.url("/api"))
    );
    api.search(&cloudy_query()).unwrap();
    api.search(&cloudy_query()).unwrap();
    assert_eq!(server.count("/api/"), 1);
}

#[test]
fn conformance_classes_are_also_found_through_the_conformance_link() {
    let server = Server::start();
    let (bodies, _) = declaring_api_with(&server, &[ITEM_SEARCH, QUERY], false);
    scene_ids(&loopback_api(&server), &cloudy_query());
    assert_eq!(server.count("/api/conformance"), 1);
    assert!(bodies.lock().unwrap()[0].get("query").is_some());
}

#[test]
fn a_server_without_item_search_is_refused_with_the_fix() {
    let server = Server::start();
    declaring_api(
        &server,
        &[
            "https://api.stacspec.org/v1.0.0/core",
            "https://api.stacspec.org/v1.0.0/collections",
        ],
    );
    let err = loopback_api(&server).search(&cloudy_query()).unwrap_err().to_string();
    assert!(err.contains(&server.url("/api/")), "{err}");
    assert!(
        err.contains("no STAC item search") && err.contains("catalog.json"),
        "{err}"
    );
    assert_eq!(server.count("/api/search"), 0);
}

#[test]
fn a_static_catalog_over_http_is_refused_with_the_fix() {
    let server = Server::start();
    server.files("/sample", sample_dir());
    // Its directory: no landing page there.
    let err = StacApi::new(&server.url("/sample"), COLLECTION, Provider::Plain, http())
        .search(&cloudy_query())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("HTTP 404") && err.contains("landing page") && err.contains("catalog.json"),
        "{err}"
    );
    // Its catalog.json given as the API's URL: a static catalog, not an API.
    let catalog = server.url("/sample/catalog.json");
    let err = source::open(&catalog, None, http()).err().unwrap().to_string();
    assert!(
        err.contains(&catalog) && err.contains("download it") && err.contains("landing page"),
        "{err}"
    );
    assert_eq!(
        server.requests.lock().unwrap().len(),
        1,
        "the catalog.json URL is refused without a request"
    );
}

#[test]
fn a_static_catalog_served_as_a_landing_page_is_named_as_such() {
    let server = Server::start();
    let catalog = read_json(&sample_dir().join("catalog.json"));
    server.route("/static/", move |_, _| Reply::json(&catalog));
    let err = StacApi::new(&server.url("/static"), COLLECTION, Provider::Plain, http())
        .search(&cloudy_query())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is a static STAC catalog") && err.contains("catalog.json"),
        "{err}"
    );
}

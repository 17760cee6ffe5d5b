//! Real STAC API responses recorded from Earth Search and Planetary Computer (in ../shared),
//! served from a loopback server with their hrefs rewritten to it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use compound_watch::source::{Provider, SceneSearch, SearchQuery, StacApi};
use compound_watch::{Http, RetryPolicy};
use serde_json::{json, Value};

use crate::common::server::{Reply, Server};
use crate::common::{serve_landing_page, shared, ITEM_SEARCH_WITH_FILTER};

fn cassette(name: &str) -> Option<Vec<(Value, Value)>> {
    let shared = shared()?;
    let path: PathBuf = shared.join("data/stac").join(name);
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let interactions = doc["interactions"].as_sequence().unwrap();
    Some(
        interactions
            .iter()
            .map(|i| {
                let body = i["request"]["body"]
                    .as_str()
                    .map(|b| serde_json::from_str(b).unwrap())
                    .unwrap_or(Value::Null);
                let response = serde_json::from_str(i["response"]["body"]["string"].as_str().unwrap()).unwrap();
                (body, response)
            })
            .collect(),
    )
}

fn rewrite(value: &Value, from: &str, to: &str) -> Value {
    serde_json::from_str(&value.to_string().replace(from, to)).unwrap()
}

fn http() -> Http {
    Http::new(
        Duration::from_secs(10),
        RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        },
    )
}

fn everywhere(month: &str) -> SearchQuery {
    SearchQuery {
        bbox: [-180.0, -90.0, 180.0, 90.0],
        geometry: None,
        from: month.parse().unwrap(),
        to: month.parse().unwrap(),
        max_cloud_cover: 100.0,
    }
}

#[test]
fn earth_search_pages_are_followed_through_their_post_next_tokens() {
    let Some(interactions) = cassette("earth-search-v1-search-paginated.cassette.yaml") else {
        return;
    };
    let server = Server::start();
    let base = server.url("/es/v1");
    let pages: Vec<(Value, Value)> = interactions
        .into_iter()
        .filter(|(_, r)| r["type"] == "FeatureCollection")
        .map(|(req, resp)| (req, rewrite(&resp, "https://earth-search.aws.element84.com/v1", &base)))
        .collect();
    let expected: usize = pages
        .iter()
        .flat_map(|(_, r)| r["features"].as_array().unwrap())
        .filter(|f| f["collection"] == "sentinel-2-l2a")
        .count();
    assert!(expected > 0);
    let pages = Arc::new(pages);
    let served = pages.clone();
    server.route("/es/v1/search", move |req, _| {
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        let page = match body.get("next") {
            Some(token) => served
                .iter()
                .find(|(r, _)| r.get("next") == Some(token))
                .map(|(_, p)| p.clone()),
            None => served.first().map(|(_, p)| p.clone()),
        };
        // The recording stops after two pages: past it, an empty last page.
        Reply::json(&page.unwrap_or_else(|| json!({"type": "FeatureCollection", "features": [], "links": []})))
    });
    serve_landing_page(&server, "/es/v1", &ITEM_SEARCH_WITH_FILTER);
    let api = StacApi::new(&base, "sentinel-2-l2a", Provider::Plain, http());
    let found = api.search(&everywhere("2025-07")).unwrap();
    assert_eq!(found.scenes.len(), expected, "rejected: {:?}", found.rejected);
    assert_eq!(
        server.count("/es/v1/search"),
        3,
        "page 1, page 2 by its token, and the empty page 3"
    );
    // Every band's href is the recorded asset's, untouched: the public COG on sentinel-cogs.
    for s in &found.scenes {
        let recorded = pages
            .iter()
            .flat_map(|(_, r)| r["features"].as_array().unwrap())
            .find(|f| f["id"] == s.id.as_str())
            .unwrap();
        let assets: Vec<&str> = recorded["assets"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|a| a["href"].as_str())
            .collect();
        assert_eq!(s.hrefs.len(), 7, "{}: {:?}", s.id, s.hrefs);
        for href in s.hrefs.values() {
            assert!(
                href.starts_with("https://sentinel-cogs.s3.us-west-2.amazonaws.com/") && href.ends_with(".tif"),
                "{}: {href}",
                s.id
            );
            assert!(
                assets.contains(&href.as_str()),
                "{}: {href} is not a recorded asset",
                s.id
            );
        }
    }
    let s = &found.scenes[0];
    assert!(
        s.processing_baseline.is_some() && s.boa_offset_applied.is_some() && s.epsg.is_some(),
        "{s:?}"
    );
    assert!(api.describe().contains("sentinel-2-l2a"));
}

#[test]
fn planetary_computer_hrefs_are_signed_with_one_cached_token() {
    let Some(interactions) = cassette("planetary-computer-search.cassette.yaml") else {
        return;
    };
    let server = Server::start();
    let page = interactions[0].1.clone();
    let n = page["features"].as_array().unwrap().len();
    server.route("/pc/api/stac/v1/search", move |_, _| Reply::json(&page));
    serve_landing_page(&server, "/pc/api/stac/v1", &ITEM_SEARCH_WITH_FILTER);
    let expiry = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    server.route("/pc/api/sas/v1/token/sentinel-2-l2a", move |_, _| {
        Reply::json(&json!({"msft:expiry": expiry, "token": "sv=2021&sig=test"}))
    });
    let api = StacApi::new(
        &server.url("/pc/api/stac/v1"),
        "sentinel-2-l2a",
        Provider::PlanetaryComputer {
            sas_url: server.url("/pc/api/sas/v1"),
        },
        http(),
    );
    let found = api.search(&everywhere("2019-01")).unwrap();
    assert_eq!(found.scenes.len() + found.rejected.len(), n);
    assert!(found.scenes.len() >= n - 2, "rejected: {:?}", found.rejected);
    for s in &found.scenes {
        // B02.. keys mapped to the same bands, every href signed.
        assert_eq!(s.hrefs.len(), 7);
        assert!(
            s.hrefs.values().all(|h| h.ends_with("?sv=2021&sig=test")),
            "{:?}",
            s.hrefs
        );
        assert_eq!(s.processing_baseline.as_deref(), Some("02.12"));
    }
    assert_eq!(
        server.count("/pc/api/sas/v1/token/sentinel-2-l2a"),
        1,
        "the token is cached until it expires"
    );
}

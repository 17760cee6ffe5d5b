//! One page of STAC API search results (an ItemCollection): `StacApi::read_page`, on the JSON that
//! `Http` parses from the answer, after a POST whose body a `merge: true` next link extends.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use compound_watch::http::{Http, RetryPolicy};
use compound_watch::source::{Band, Found, Provider, StacApi};
use serde_json::{json, Value};

fn main() {
    let query = compound_watch_fuzz::query();
    // Plain hrefs: signing would ask a token service over HTTP, which a fuzz target must not.
    // The closure only reads it; AFL restarts the process after a panic anyway.
    let api = AssertUnwindSafe(StacApi::new(
        "http://127.0.0.1:9/v1",
        "sentinel-2-l2a",
        Provider::Plain,
        Http::new(Duration::from_secs(1), RetryPolicy::default()),
    ));
    let request = json!({"collections": ["sentinel-2-l2a"], "limit": 100, "token": "t1"});
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = compound_watch_fuzz::text(data) else {
            return;
        };
        let Ok(doc) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let (mut ids, mut found) = (HashSet::new(), Found::default());
        let url = "http://127.0.0.1:9/v1/search";
        if api
            .read_page(url, Some(&request), &doc, &query, &mut ids, &mut found)
            .is_ok()
        {
            for scene in &found.scenes {
                assert!(Band::ALL.iter().all(|b| scene.hrefs.contains_key(b)), "{scene:?}");
            }
            // Each id is read once per search, however often a page repeats it.
            assert!(found.scenes.len() <= ids.len());
        }
    });
}

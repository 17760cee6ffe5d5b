//! A static catalog's documents: the links of a catalog or collection (`StaticCatalog::links`) and
//! an item file turned into a scene (`StaticCatalog::read_item`, over `source::scene_from_item`),
//! both as `StaticCatalog::search` reads them from `serde_json::from_str` of the file.

use std::path::Path;

use compound_watch::source::{Band, StaticCatalog};
use serde_json::Value;

fn main() {
    let query = compound_watch_fuzz::query();
    let path = Path::new("catalog/items/item.json");
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = compound_watch_fuzz::text(data) else {
            return;
        };
        let Ok(doc) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let _ = StaticCatalog::links(&doc, path);
        if let Ok(Some(Ok(scene))) = StaticCatalog::read_item(doc, path, "catalog", &query) {
            // A scene has a file for every band it reads.
            assert!(Band::ALL.iter().all(|b| scene.hrefs.contains_key(b)), "{scene:?}");
        }
    });
}

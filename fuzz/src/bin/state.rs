//! The scan state reader: `state::parse`, which `state::load` calls on `.compound-watch/state.json`.

use std::path::Path;

use compound_watch::state;

fn main() {
    let path = Path::new("out/.compound-watch/state.json");
    afl::fuzz!(|data: &[u8]| {
        let Some(text) = compound_watch_fuzz::text(data) else {
            return;
        };
        if let Ok(state) = state::parse(text, path) {
            // What was read can be saved and read back: `state::save` writes it with serde_json.
            let saved = serde_json::to_string(&state).expect("a read state serializes");
            let again = state::parse(&saved, path).expect("a saved state reads back");
            assert_eq!(serde_json::to_string(&again).unwrap(), saved);
        }
    });
}

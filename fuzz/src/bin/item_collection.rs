//! The `item_collection` fuzz target for afl-fuzz: its body is `targets::item_collection` (src/targets.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| compound_watch_fuzz::targets::item_collection(data));
}

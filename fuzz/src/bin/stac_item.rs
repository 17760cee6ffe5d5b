//! The `stac_item` fuzz target for afl-fuzz: its body is `targets::stac_item` (src/targets.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| compound_watch_fuzz::targets::stac_item(data));
}

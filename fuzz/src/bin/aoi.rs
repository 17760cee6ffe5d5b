//! The `aoi` fuzz target for afl-fuzz: its body is `targets::aoi` (src/targets.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| compound_watch_fuzz::targets::aoi(data));
}

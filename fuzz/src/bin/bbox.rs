//! The `bbox` fuzz target for afl-fuzz: its body is `targets::bbox` (src/targets.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| compound_watch_fuzz::targets::bbox(data));
}

//! The `report` fuzz target for afl-fuzz: its body is `targets::report` (src/targets.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| compound_watch_fuzz::targets::report(data));
}

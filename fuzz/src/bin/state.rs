//! The `state` fuzz target for afl-fuzz: its body is `targets::state` (src/targets.rs).

fn main() {
    afl::fuzz!(|data: &[u8]| compound_watch_fuzz::targets::state(data));
}

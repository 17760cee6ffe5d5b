#!/bin/sh
# Measures compound-watch on the testbed's independent scenarios: builds compound-watch (dev
# profile) in the repository root, builds the testbed, then generates each scenario of splits.json
# (once, into runs/scenarios/), scans it, scores the report and writes RESULTS.md.
# Arguments are passed to `testbed run` (e.g. --only tuning, --jobs 2, --keep-cache).
# COMPOUND_WATCH_BIN=path measures that binary instead of building one.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
CARGO=${CARGO:-cargo}
bin=${COMPOUND_WATCH_BIN:-}
if [ -z "$bin" ]; then
  (cd "$root" && $CARGO build --quiet --bin compound-watch)
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/compound-watch"
fi
cd "$here"
# The testbed builds in its own target/ (it shares nothing with the main package).
env -u CARGO_TARGET_DIR $CARGO run --quiet -- run --bin "$bin" "$@"

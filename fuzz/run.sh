#!/bin/sh
# Runs one fuzz target with afl-fuzz, from its committed corpus, and fails if it found a crash or a hang.
#   fuzz/run.sh TARGET -E 1000000    # about a million executions
#   fuzz/run.sh TARGET -V 5          # five seconds
# Findings go to fuzz/out/TARGET/default/{crashes,hangs}; the run's figures to .../fuzzer_stats.
# Build first: `make fuzz-build` (cargo afl build --release in fuzz/).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=$1
shift
bin="$here/target/release/$target"
[ -x "$bin" ] || { echo "$bin is not built: run make fuzz-build" >&2; exit 1; }
out="$here/out/$target"
rm -rf "$out"
mkdir -p "$out"
# No UI (make's output is a log), no CPU pinning (the machine is shared), no core_pattern fuss;
# -t: an input running longer than 1 s is a hang.
AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
AFL_QUIET=1 \
  nice -n 19 cargo afl fuzz -i "$here/corpus/$target" -o "$out" -x "$here/json.dict" -t 1000 "$@" -- "$bin" \
  >"$out/afl.log" 2>&1 || { tail -n 30 "$out/afl.log" >&2; exit 1; }
stats="$out/default/fuzzer_stats"
value() { sed -n "s/^$1 *: *//p" "$stats"; }
crashes=$(value saved_crashes)
hangs=$(value saved_hangs)
echo "fuzz $target: $(value execs_done) executions in $(value run_time) s, $(value corpus_count) corpus entries, $crashes crashes, $hangs hangs"
if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
  echo "fuzz $target: findings in $out/default/crashes and $out/default/hangs; reproduce with" >&2
  echo "  $bin < FILE" >&2
  exit 1
fi

#!/bin/bash
# Submit a watch list to Slurm: a plan job that measures the region statistics of every site scanned
# in tiles (`compound-watch run LIST --plan`), an array job of N shards (each
# `compound-watch run LIST --shard I/N` with I = $SLURM_ARRAY_TASK_ID) that starts once the plan has
# ended, and a gather job that runs once the shards have all ended, whether they succeeded or not
# (--dependency=afterany), merges each tiled site's tiles and writes run.json, run.md, across.* and
# the alerts. The units shared out are whole sites and the tiles of tiled sites, balanced by area x
# months, so a region-wide site is spread over the shards.
#
#   deploy/slurm/submit.sh WATCHLIST [SHARDS] [-- more `run` flags, e.g. --out /scratch/w --exit-code]
#
# Environment (defaults in brackets):
#   COMPOUND_WATCH  the binary [compound-watch on PATH]; it must be reachable from every node
#   CPUS_PER_TASK   cores per shard [4]: one shard scans its sites and tiles with this many threads
#   MEM             memory per shard [8G]: a 25 km² site over 2.5 years needs about 1 GB, a tile of
#                   250 km² (the default tile) about 2.2 GB; raise it with `parallel` > 1
#   GATHER_MEM      memory of the plan and the gather [MEM]: the plan reads each tiled region once,
#                   the gather rescans polygons cut by the tiles' margins (up to 4 tiles' pixels)
#   PARTITION, TIME, ACCOUNT   passed to sbatch as --partition, --time, --account when set
#   LOG_DIR         where the jobs' logs go [slurm-logs]
#   WAIT=1          wait for the gather to end and exit with its exit code (sbatch --wait)
# The output root (the list's `out`, or --out) and the cache must be on a filesystem every node
# sees. The shards start after the plan whatever its outcome (afterany): a shard measures the
# statistics the plan could not, so the plan saves work but is never a precondition. A failed
# shard can be rerun alone: `compound-watch run LIST --shard I/N`, then `--gather` (which names the
# missing shards, their sites and tiles, and the command for each).
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
list=$1
shift
shards=4
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  shards=$1
  shift
fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
case $shards in
  '' | *[!0-9]* | 0) echo "submit.sh: SHARDS must be a whole number above 0, not '$shards'" >&2; exit 2 ;;
esac
[ -f "$list" ] || { echo "submit.sh: watch list $list not found" >&2; exit 2; }
bin=${COMPOUND_WATCH:-$(command -v compound-watch || true)}
[ -n "$bin" ] || { echo "submit.sh: compound-watch is not on PATH; set COMPOUND_WATCH=/path/to/compound-watch" >&2; exit 2; }
cpus=${CPUS_PER_TASK:-4}
logs=${LOG_DIR:-slurm-logs}
mkdir -p "$logs"

common=()
[ -n "${PARTITION:-}" ] && common+=(--partition="$PARTITION")
[ -n "${TIME:-}" ] && common+=(--time="$TIME")
[ -n "${ACCOUNT:-}" ] && common+=(--account="$ACCOUNT")

run=$(printf '%q ' "$bin" run "$list")
extra=$(printf '%q ' "$@")
[ $# -eq 0 ] && extra=""

gather_mem=${GATHER_MEM:-${MEM:-8G}}
plan=$(sbatch --parsable "${common[@]}" --job-name=compound-watch-plan \
  --cpus-per-task="$cpus" --mem="$gather_mem" --output="$logs/plan.log" \
  --wrap "exec $run--plan --jobs $cpus --quiet $extra")
plan=${plan%%;*}
echo "plan: job $plan (region statistics of the tiled sites), log in $logs/plan.log"

array=$(sbatch --parsable "${common[@]}" --job-name=compound-watch-shard --array="0-$((shards - 1))" \
  --dependency="afterany:$plan" \
  --cpus-per-task="$cpus" --mem="${MEM:-8G}" --output="$logs/shard-%a.log" \
  --wrap "exec $run--shard \"\$SLURM_ARRAY_TASK_ID/$shards\" --jobs $cpus --quiet $extra")
array=${array%%;*}
echo "shards: job $array (array 0-$((shards - 1)), $cpus CPUs, ${MEM:-8G} each), logs in $logs/"

wait=()
[ "${WAIT:-}" = 1 ] && wait=(--wait)
status=0
gather=$(sbatch --parsable "${wait[@]}" "${common[@]}" --job-name=compound-watch-gather \
  --dependency="afterany:$array" --cpus-per-task="$cpus" --mem="$gather_mem" --output="$logs/gather.log" \
  --wrap "exec $run--gather --jobs $cpus $extra") || status=$?
gather=${gather%%;*}
echo "gather: job $gather (after every shard has ended), log in $logs/gather.log"
if [ "${WAIT:-}" = 1 ]; then
  echo "gather ended with exit code $status (see compound-watch run --help)"
fi
exit $status

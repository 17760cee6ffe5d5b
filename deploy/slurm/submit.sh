#!/bin/bash
# Submit a watch list to Slurm: an array job of N shards (each `compound-watch run LIST --shard I/N`
# with I = $SLURM_ARRAY_TASK_ID) and a gather job that runs once they have all ended, whether they
# succeeded or not (--dependency=afterany), and writes run.json, run.md, across.* and the alerts.
#
#   deploy/slurm/submit.sh WATCHLIST [SHARDS] [-- more `run` flags, e.g. --out /scratch/w --exit-code]
#
# Environment (defaults in brackets):
#   COMPOUND_WATCH  the binary [compound-watch on PATH]; it must be reachable from every node
#   CPUS_PER_TASK   cores per shard [4]: one shard scans its sites with this many worker threads
#   MEM             memory per shard [8G]: a 25 km² site over 2.5 years needs about 1 GB; raise it for
#                   larger sites or with `parallel` > 1 in the watch list
#   GATHER_MEM      memory of the gather [1G]
#   PARTITION, TIME, ACCOUNT   passed to sbatch as --partition, --time, --account when set
#   LOG_DIR         where the jobs' logs go [slurm-logs]
#   WAIT=1          wait for the gather to end and exit with its exit code (sbatch --wait)
# The output root (the list's `out`, or --out) and the cache must be on a filesystem every node
# sees. A failed shard can be rerun alone: `compound-watch run LIST --shard I/N`, then `--gather`.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
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

array=$(sbatch --parsable "${common[@]}" --job-name=compound-watch-shard --array="0-$((shards - 1))" \
  --cpus-per-task="$cpus" --mem="${MEM:-8G}" --output="$logs/shard-%a.log" \
  --wrap "exec $run--shard \"\$SLURM_ARRAY_TASK_ID/$shards\" --jobs $cpus --quiet $extra")
array=${array%%;*}
echo "shards: job $array (array 0-$((shards - 1)), $cpus CPUs, ${MEM:-8G} each), logs in $logs/"

wait=()
[ "${WAIT:-}" = 1 ] && wait=(--wait)
status=0
gather=$(sbatch --parsable "${wait[@]}" "${common[@]}" --job-name=compound-watch-gather \
  --dependency="afterany:$array" --cpus-per-task=1 --mem="${GATHER_MEM:-1G}" --output="$logs/gather.log" \
  --wrap "exec $run--gather $extra") || status=$?
gather=${gather%%;*}
echo "gather: job $gather (after every shard has ended), log in $logs/gather.log"
if [ "${WAIT:-}" = 1 ]; then
  echo "gather ended with exit code $status (see compound-watch run --help)"
fi
exit $status

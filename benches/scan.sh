#!/usr/bin/env bash
# Whole-scan benchmark (`make bench` runs it after the criterion benches): wall time, throughput
# and peak memory of complete `compound-watch scan` processes on generated SYNTHETIC samples, at two
# sizes, cold (empty window cache: every band read from the sample's COGs through GDAL, warped and
# cached) and warm (every window already cached), with one and two threads. Medians of RUNS runs.
#
#   benches/scan.sh                       # small (300 x 300 px) and large (1200 x 1200 px)
#   RUNS=5 PEER=~/.venvs/peer/bin/python benches/scan.sh    # and the Python peer, alternating
#   SIZES=huge SAMPLE_MONTHS=36 MONTHS=12 benches/scan.sh   # 900 km2 (3000 x 3000 px): memory
#   SIZES=huge SAMPLE_MONTHS=36 MONTHS=36 benches/scan.sh   # over 12 and 36 months of one sample
#
# Throughput is Mpixel-scenes/s: grid pixels x scenes used / wall seconds / 1e6. With PEER set,
# ../shared/peer/peer_scan.py runs on the same sample right after each of our warm runs (2
# threads, its own timings beside ours). Nothing here asserts a speed: compare the figures with
# the README's table and with the previous commit's.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/compound-watch}
WORK=${WORK:-target/bench}
RUNS=${RUNS:-3}
SIZES=${SIZES:-small large}
MONTHS=${MONTHS:-30}
# Months the generated sample covers (its events need at least 14); scans read the first MONTHS.
SAMPLE_MONTHS=${SAMPLE_MONTHS:-$(( MONTHS > 14 ? MONTHS : 14 ))}
PEER_SCRIPT=${PEER_SCRIPT:-../shared/peer/peer_scan.py}
[ -x "$BIN" ] || cargo build --release --quiet
mkdir -p "$WORK"

# Sample boxes near Payathonzu (16.7 N): 0.0094 degrees of longitude and 0.009 of latitude are
# about 1 km. Revisit days keep the large samples' size on disk reasonable.
box() { # size -> "W,S,E,N revisit_days"
  case $1 in
    small) echo "98.500,16.680,98.5282,16.7071 12" ;;
    large) echo "98.500,16.680,98.6128,16.7884 30" ;;
    huge)  echo "98.400,16.600,98.6820,16.8710 20" ;;
    *) echo "unknown size $1 (small, large, huge)" >&2; exit 2 ;;
  esac
}
last_day() { # months from 2021-07 -> the last day of the last month
  python3 -c "import calendar,sys; m=7+int(sys.argv[1])-1; y=2021+(m-1)//12; m=(m-1)%12+1; print(f'{y}-{m:02d}-{calendar.monthrange(y,m)[1]:02d}')" "$1"
}
to_month() { python3 -c "import sys; m=7+int(sys.argv[1])-1; print(f'{2021+(m-1)//12}-{(m-1)%12+1:02d}')" "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-6s %-5s %-4s %7s %9s %13s %8s\n' size mode jobs wall_s "Mpx·sc/s" "peak_RSS_MB" scenes
for size in $SIZES; do
  read -r bbox revisit <<<"$(box "$size")"
  sample="$WORK/$size-$SAMPLE_MONTHS"
  if [ ! -f "$sample/catalog.json" ]; then
    "$BIN" sample --out "$sample" --bbox "$bbox" --seed 11 \
      --first 2021-07-02 --last "$(last_day "$SAMPLE_MONTHS")" --revisit-days "$revisit" >/dev/null
  fi
  # The box as an AOI file, for the peer (the scan takes --bbox).
  python3 -c "
import json,sys
w,s,e,n=map(float,sys.argv[1].split(','))
ring=[[w,s],[e,s],[e,n],[w,n],[w,s]]
json.dump({'type':'FeatureCollection','features':[{'type':'Feature','properties':{'name':'bench'},
  'geometry':{'type':'Polygon','coordinates':[ring]}}]},open(sys.argv[2],'w'))" "$bbox" "$sample/aoi.geojson"
  to=$(to_month "$MONTHS")
  for jobs in 1 2; do
    for mode in cold warm; do
      walls=(); rss=()
      for run in $(seq "$RUNS"); do
        out="$WORK/out-$size"; cache="$WORK/cache-$size"
        if [ "$mode" = cold ]; then rm -rf "$cache"; fi
        if [ "$mode" = warm ] && [ ! -d "$cache" ]; then
          "$BIN" scan -q --bbox "$bbox" --source "$sample/catalog.json" --from 2021-07 --to "$to" \
            --out "$out" --cache "$cache" >/dev/null || true
        fi
        rm -rf "$out"
        /usr/bin/time -f '%e %M' -o "$WORK/time" "$BIN" scan -q --bbox "$bbox" \
          --source "$sample/catalog.json" --from 2021-07 --to "$to" --out "$out" --cache "$cache" \
          --jobs "$jobs" --json >"$WORK/scan.json" || [ $? -eq 3 ]
        read -r wall kb <"$WORK/time"
        walls+=("$wall"); rss+=("$kb")
        if [ -n "${PEER:-}" ] && [ "$mode" = warm ] && [ "$jobs" = 2 ]; then
          /usr/bin/time -f '%e %M' -o "$WORK/peer-time" "$PEER" "$PEER_SCRIPT" \
            --catalog "$sample/catalog.json" --aoi "$sample/aoi.geojson" --from 2021-07 --to "$to" \
            --out "$WORK/peer-out" --threads 2 >/dev/null 2>&1
          cat "$WORK/peer-time" >>"$WORK/peer-$size"
        fi
      done
      wall=$(printf '%s\n' "${walls[@]}" | median)
      kb=$(printf '%s\n' "${rss[@]}" | median)
      read -r pixels scenes < <(python3 -c "
import json,sys
s=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])['summary']
print(s['aoi_pixels'], s['scenes_used'])" "$WORK/scan.json")
      printf '%-6s %-5s %-4s %7.2f %9.1f %13.0f %8s\n' "$size" "$mode" "$jobs" "$wall" \
        "$(python3 -c "print($pixels*$scenes/$wall/1e6)")" "$(python3 -c "print($kb/1024)")" "$scenes"
    done
  done
  if [ -f "$WORK/peer-$size" ]; then
    wall=$(awk '{print $1}' "$WORK/peer-$size" | median)
    kb=$(awk '{print $2}' "$WORK/peer-$size" | median)
    printf '%-6s %-5s %-4s %7.2f %9s %13.0f %8s\n' "$size" peer 2 "$wall" - "$(python3 -c "print($kb/1024)")" -
    rm -f "$WORK/peer-$size"
  fi
done

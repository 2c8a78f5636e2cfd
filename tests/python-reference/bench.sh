#!/bin/bash
# Interleaved timing of leuko analyze (default --parallel, and --parallel 1) against leuko_reference.py on one folder.
# Usage (from the repository root): tests/python-reference/bench.sh [ROUNDS] [INPUT] [WORK]
# With BEFORE=PATH-TO-ANOTHER-leuko (an earlier build) each round runs instead: before, leuko, Python, leuko, before.
# Writes WORK/times.tsv: round, program, load average (1 min) before the run, wall s, user s, sys s, max RSS KiB.
set -euo pipefail
rounds=${1:-3}
input=${2:-../shared/data/bccd/JPEGImages}
work=${3:-/tmp/pyref/bench}
leuko=${LEUKO:-functions/Leuko.Cli/bin/Release/net10.0/leuko}
here=$(dirname "$0")
mkdir -p "$work"
tsv="$work/times.tsv"
[ -f "$tsv" ] || printf 'round\tprogram\tload1\twall_s\tuser_s\tsys_s\tmax_rss_kib\n' > "$tsv"

run() { # round name command...
  local round=$1 name=$2
  shift 2
  local out="$work/out-$name"
  rm -rf "$out"
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  echo "round $round $name: load $load ($(uptime))" >&2
  /usr/bin/time -v -o "$work/time-$name-$round.txt" "$@" --out "$out" > "$work/stdout-$name-$round.txt" 2>&1
  local t="$work/time-$name-$round.txt"
  local wall user sys rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$t")
  user=$(awk -F': ' '/User time/ {print $2}' "$t")
  sys=$(awk -F': ' '/System time/ {print $2}' "$t")
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$t")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$load" "$wall" "$user" "$sys" "$rss" >> "$tsv"
}

for r in $(seq 1 "$rounds"); do
  if [ -n "${BEFORE:-}" ]; then
    run "$r" before "$BEFORE" analyze "$input"
    run "$r" leuko-default "$leuko" analyze "$input"
    run "$r" python /usr/bin/python3 "$here/leuko_reference.py" "$input"
    run "$r" leuko-default "$leuko" analyze "$input"
    run "$r" before "$BEFORE" analyze "$input"
  else
    run "$r" leuko-default "$leuko" analyze "$input"
    run "$r" python /usr/bin/python3 "$here/leuko_reference.py" "$input"
    run "$r" leuko-p1 "$leuko" analyze "$input" --parallel 1
  fi
done
cat "$tsv"

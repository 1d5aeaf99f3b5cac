#!/bin/bash
# Benchmark (issue 15, item 3): libiss's VCDIFF encoder against xdelta3
# on the pairs a 226 delta will serve.
#   bench/vcdiff_encode.sh [SIZE_MIB]     (default 256)
# Builds what it needs (scripts/build.sh if build/ is missing, then
# `make -C build bench/vcdiff_encode`, a helper not built by `make`) and
# makes, one at a time under ${TMPDIR:-/tmp}:
#   (a) a random SIZE_MIB file with 100 bytes changed in the middle;
#   (b) the same file with 1 MiB of random bytes inserted in the middle;
#   (c) the same file with 10% of its 64 KiB blocks rewritten with
#       random bytes (chosen at random, fixed seed);
#   (d) realistic pairs, at their own sizes:
#       sqlite  a SQLite database (sqlite3 CLI; 300,000 rows with even
#               ids, an index) and the same after scattered updates
#               (every 500th row) and inserts (3,000 rows with odd ids
#               spread over the table, page splits included);
#       tar     a GNU tar archive of a tree of text and binary files
#               (about 64 MiB, sorted names, fixed owners and mtimes) and
#               the same tree after its second member grew by 64 KiB;
#       log     a 64 MiB application log and the same log with 4 MiB of
#               lines appended.
# For each pair it runs, each under /usr/bin/time -v (wall time and peak
# RSS):
#   xdelta3 -e -S none -A -D -n -s OLD NEW   (the anchor)
#   build/bench/vcdiff_encode OLD NEW        (libiss, no manifests)
#   build/bench/vcdiff_encode -m OLD NEW     (libiss with both manifests:
#       made first and not timed, as the server keeps them; the target
#       bytes of unchanged chunks are skipped, not read)
# checks that `xdelta3 -d -s OLD` turns each of libiss's deltas into NEW
# exactly (exits 1 if not), and prints a table: delta sizes, libiss /
# xdelta3 ratio, encode times (libiss: the helper's encode_s, from
# create to finish; xdelta3: wall), peak RSS, source bytes read with
# manifests, and PASS/FAIL against the target: libiss's delta at most 2x
# xdelta3's, in both modes.  A missed target does not change the exit
# status.  Needs about 4 x SIZE_MIB MiB + 300 MiB of space, checked
# first, removed on exit.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-256}
case "$size_mib" in
  ''|*[!0-9]*|0) echo "usage: $0 [SIZE_MIB]   (a positive integer, default 256)" >&2; exit 2 ;;
esac
for tool in xdelta3 sqlite3 tar perl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "$0: needs $tool (scripts/deps.sh; apt-get install -y sqlite3 time)" >&2; exit 2; }
done
build=$top/build
[ -f "$build/Makefile" ] || "$top/scripts/build.sh" >&2
make -s -C "$build" bench/vcdiff_encode >&2
enc=$build/bench/vcdiff_encode
. "$top/bench/lib.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/iss-bench-venc.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM HUP
need_kib=$(( (4 * size_mib + 300) * 1024 ))
have_kib=$(df -Pk "$work" | awk 'NR == 2 {print $4}')
[ "$have_kib" -ge "$need_kib" ] || { echo "$0: needs $((need_kib / 1024)) MiB in $work, has $((have_kib / 1024))" >&2; exit 1; }
size=$((size_mib * 1048576))
half=$((size / 2))
commit=$(git -C "$top" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)

# timed NAME CMD...: run CMD under /usr/bin/time -v; sets wall (s) and
# rss (KiB); CMD's stdout in $work/NAME.out.
timed() {
  local name=$1
  shift
  /usr/bin/time -v -o "$work/$name.time" "$@" > "$work/$name.out" \
    || { echo "$0: failed: $*" >&2; cat "$work/$name.time" >&2; exit 1; }
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/$name.time" \
         | awk -F: '{s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.3f", s}')
}
kv() { sed -n "s/^$1=//p" "$work/$2.out"; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

rows=()
fails=0
# measure CASE OLD NEW: the three encoders on one pair.
measure() {
  local c=$1 old=$2 new=$3 xs xw xr ps pt pr ms mt mr mread pf mf verdict
  echo "$c: xdelta3, libiss, libiss with manifests ..." >&2
  timed "$c.x" xdelta3 -e -f -S none -A -D -n -s "$old" "$new" "$work/$c.xd"
  xs=$(stat -c %s "$work/$c.xd") xw=$wall xr=$rss
  timed "$c.p" "$enc" "$old" "$new" "$work/$c.p.vcdiff"
  ps=$(kv delta_bytes "$c.p") pt=$(kv encode_s "$c.p") pr=$rss
  timed "$c.m" "$enc" -m "$old" "$new" "$work/$c.m.vcdiff"
  ms=$(kv delta_bytes "$c.m") mt=$(kv encode_s "$c.m") mr=$rss
  mread=$(kv source_read_bytes "$c.m")
  for d in p m; do
    xdelta3 -d -f -s "$old" "$work/$c.$d.vcdiff" "$work/out"
    cmp -s "$work/out" "$new" || { echo "$0: $c: xdelta3 -d of libiss's delta ($d) differs from the new file" >&2; exit 1; }
  done
  rm -f "$work/out" "$work/$c.xd" "$work/$c.p.vcdiff" "$work/$c.m.vcdiff"
  pf=$(awk -v a="$ps" -v b="$xs" 'BEGIN {printf "%.2f", a / b}')
  mf=$(awk -v a="$ms" -v b="$xs" 'BEGIN {printf "%.2f", a / b}')
  verdict=PASS
  awk -v a="$pf" -v b="$mf" 'BEGIN {exit !(a <= 2 && b <= 2)}' || { verdict=FAIL; fails=$((fails + 1)); }
  rows+=("$(printf '| %s | %s | %s | %s (%s) | %s (%s) | %s / %s / %s | %s / %s / %s | %s | %s |' \
    "$c" "$(mib "$(stat -c %s "$new")")" "$xs" "$ps" "$pf" "$ms" "$mf" \
    "$xw" "$pt" "$mt" "$((xr / 1024))" "$((pr / 1024))" "$((mr / 1024))" \
    "$(mib "$mread")" "$verdict")")
  echo "${rows[-1]}" >&2
}

echo "writing a ${size_mib} MiB file and its versions (a)-(c) ..." >&2
f=$work
head -c "$size" /dev/urandom > "$f/old"

cp "$f/old" "$f/new"
head -c 100 /dev/urandom | dd of="$f/new" bs=1 seek="$half" conv=notrunc status=none
measure "(a) 100 B changed" "$f/old" "$f/new"

{ head -c "$half" "$f/old"; head -c 1048576 /dev/urandom; tail -c +$((half + 1)) "$f/old"; } > "$f/new"
measure "(b) 1 MiB inserted" "$f/old" "$f/new"

cp "$f/old" "$f/new"
bench_rewrite_blocks "$f/new"
measure "(c) 10% of 64 KiB blocks" "$f/old" "$f/new"
rm -f "$f/old" "$f/new"

echo "making a SQLite database and changing it ..." >&2
bench_pair_sqlite "$f/db.old" "$f/db.new"
measure "(d) sqlite" "$f/db.old" "$f/db.new"
rm -f "$f/db.old" "$f/db.new"

echo "making a tar archive, growing an early member ..." >&2
bench_pair_tar "$f/tree" "$f/old.tar" "$f/new.tar"
measure "(d) tar" "$f/old.tar" "$f/new.tar"
rm -f "$f/old.tar" "$f/new.tar"

echo "writing an application log and appending to it ..." >&2
bench_pair_log "$f/old.log" "$f/new.log"
measure "(d) log" "$f/old.log" "$f/new.log"

echo
echo "bench/vcdiff_encode.sh at $commit, ${size_mib} MiB for (a)-(c), $(date -u +%Y-%m-%d)"
echo
echo "| case | new MiB | xdelta3 B | libiss B (ratio) | libiss + manifests B (ratio) | encode s: xdelta3 / libiss / + manifests | peak RSS MiB: xdelta3 / libiss / + manifests | source read with manifests, MiB | at most 2x xdelta3 |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "$fails case(s) above 2x xdelta3's size"

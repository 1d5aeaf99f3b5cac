#!/bin/bash
# Fuzz the parsers of hostile input with libFuzzer under ASan+UBSan for a
# bounded time (part of scripts/test-all.sh):
#   scripts/fuzz.sh [SECONDS]      (default 60, per target)
# Targets: fuzz/fuzz_vcdiff.c (libiss/iss_vcdiff.c), seeded with deltas
# xdelta3 makes here.  Exits non-zero if a target crashes, leaks or trips
# a sanitizer; the crashing input is kept in build-fuzz/ and printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
out="$top/build-fuzz"
mkdir -p "$out"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$top/libiss" $(apr-1-config --includes --cppflags))
libs=($(apr-1-config --link-ld --libs) -lz)

clang "${flags[@]}" -o "$out/fuzz_vcdiff" "$top/fuzz/fuzz_vcdiff.c" \
      "$top/libiss/iss_vcdiff.c" "${libs[@]}"

# Seeds: real deltas (with and without xdelta3's checksum, one and many
# windows); the first byte of each input picks the chunk size.
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
head -c 65536 /dev/urandom > "$seeds/old"
{ head -c 20000 "$seeds/old"; echo inserted; tail -c 30000 "$seeds/old"; } > "$seeds/new"
i=0
for opt in "" "-n" "-W 16384" "-n -W 16384"; do
  # shellcheck disable=SC2086
  xdelta3 -e -f -D -S none -A $opt -s "$seeds/old" "$seeds/new" "$seeds/d"
  { printf '\x07'; cat "$seeds/d"; } > "$seeds/seed$i"; i=$((i + 1))
done
mkdir -p "$out/corpus-vcdiff"
cd "$out"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ./fuzz_vcdiff -max_total_time="$secs" -max_len=65536 -timeout=10 \
  -print_final_stats=1 corpus-vcdiff "$seeds"
echo "fuzz_vcdiff: no crash in ${secs}s"

#!/bin/bash
# Fuzz the parsers of hostile input with libFuzzer under ASan+UBSan for a
# bounded time (part of scripts/test-all.sh):
#   scripts/fuzz.sh [SECONDS]      (default 60, per target)
# Targets: fuzz/fuzz_vcdiff.c (libiss/iss_vcdiff.c), seeded with deltas
# xdelta3 makes here; fuzz/fuzz_manifest.c (manifests and manifest deltas,
# libiss/iss_manifest.c), seeded with what build/tools/iss-chunk makes
# (scripts/build.sh first).  Exits non-zero if a target crashes, leaks or trips
# a sanitizer; the crashing input is kept in build-fuzz/ and printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
out="$top/build-fuzz"
mkdir -p "$out"
flags=(-g -O1 -Wall -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$top/libiss/core" $(apr-1-config --includes --cppflags))
libs=($(apr-1-config --link-ld --libs) -lz)

clang "${flags[@]}" -o "$out/fuzz_vcdiff" "$top/fuzz/fuzz_vcdiff.c" \
      "$top/libiss/core/iss_vcdiff.c" "$top/libiss/core/iss_bytes.c" "${libs[@]}"
clang "${flags[@]}" -o "$out/fuzz_manifest" "$top/fuzz/fuzz_manifest.c" \
      "$top/libiss/core/iss_manifest.c" "$top/libiss/core/iss_cdc.c" "$top/libiss/core/iss_bytes.c" \
      "$top/libiss/core/iss_digest.c" "${libs[@]}" -lcrypto

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

# Manifest seeds: the fuzz target's base (2 KiB of its LCG bytes, chunks
# of 64/256/1024), its manifest, a changed version's, and the delta.
chunk="$top/build/tools/iss-chunk"
perl -e 'use integer; my $x = 12345; for (1 .. 2048) { $x = ($x * 1103515245 + 12345) & 0xffffffff; print chr(($x >> 16) & 0xff) }' > "$seeds/base"
{ head -c 700 "$seeds/base"; echo inserted; tail -c 1000 "$seeds/base"; } > "$seeds/changed"
mkdir -p "$seeds/m"
"$chunk" manifest --params 64,256,1024 "$seeds/base" > "$seeds/m/base.ism"
"$chunk" manifest --params 64,256,1024 "$seeds/changed" > "$seeds/m/changed.ism"
"$chunk" delta "$seeds/m/base.ism" "$seeds/m/changed.ism" > "$seeds/m/changed.isd"
mkdir -p "$out/corpus-manifest"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ./fuzz_manifest -max_total_time="$secs" -max_len=65536 -timeout=10 \
  -print_final_stats=1 corpus-manifest "$seeds/m"
echo "fuzz_manifest: no crash in ${secs}s"

#!/bin/bash
# Fuzz the parsers of hostile input with libFuzzer under ASan+UBSan for a
# bounded time (part of scripts/test-all.sh):
#   scripts/fuzz.sh [SECONDS]      (default 60, per target)
# Targets, each seeded and run for SECONDS:
#   fuzz_vcdiff   fuzz/fuzz_vcdiff.c, the VCDIFF decoder
#                 (libiss/core/iss_vcdiff.c), seeded with deltas xdelta3
#                 makes here;
#   fuzz_manifest fuzz/fuzz_manifest.c, manifests and manifest deltas
#                 (libiss/core/iss_manifest.c), seeded with what
#                 build/tools/iss-chunk makes;
#   fuzz_frames   fuzz/fuzz_frames.c, the chunk-frame parser
#                 (libiss/core/iss_frames.c), seeded with the frames
#                 build/tools/iss-chunk makes;
#   fuzz_ifhdr    fuzz/fuzz_ifhdr.c, the If header, sync tokens, digest fields
#   fuzz_deltaget fuzz/fuzz_deltaget.c, A-IM and the If-None-Match base
#                 of an RFC 3229 delta GET (libiss/core/iss_deltaget.c)
#   fuzz_vcdiff_enc fuzz/fuzz_vcdiff_enc.c, the VCDIFF encoder
#                 (libiss/core/iss_vcdiff_enc.c) checked against the
#                 decoder: source and target come from the input (a
#                 recipe of copies, adds, repeats and runs), every delta
#                 must decode to the target; seeded with a few recipes.
# The seeds need build/tools/iss-chunk: scripts/build.sh first.  Exits
# non-zero if a target crashes, leaks or trips a sanitizer; the crashing
# input is kept in build-fuzz/ and printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
out="$top/build-fuzz"
core="$top/libiss/core"
chunk="$top/build/tools/iss-chunk"
[ -x "$chunk" ] || { echo "no $chunk: run scripts/build.sh first" >&2; exit 2; }
mkdir -p "$out"
flags=(-g -O1 -Wall -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$core" $(apr-1-config --includes --cppflags))
libs=($(apr-1-config --link-ld --libs) -lz)

clang "${flags[@]}" -o "$out/fuzz_vcdiff" "$top/fuzz/fuzz_vcdiff.c" \
      "$core/iss_vcdiff.c" "$core/iss_bytes.c" "${libs[@]}"
clang "${flags[@]}" -o "$out/fuzz_manifest" "$top/fuzz/fuzz_manifest.c" \
      "$core/iss_manifest.c" "$core/iss_cdc.c" "$core/iss_bytes.c" \
      "$core/iss_digest.c" "${libs[@]}" -lcrypto
clang "${flags[@]}" -o "$out/fuzz_frames" "$top/fuzz/fuzz_frames.c" \
      "$core/iss_frames.c" "$core/iss_bytes.c" "$core/iss_digest.c" \
      "${libs[@]}" -lcrypto
clang "${flags[@]}" -o "$out/fuzz_vcdiff_enc" "$top/fuzz/fuzz_vcdiff_enc.c" \
      "$core/iss_vcdiff_enc.c" "$core/iss_vcdiff.c" "$core/iss_manifest.c" \
      "$core/iss_cdc.c" "$core/iss_bytes.c" "$core/iss_digest.c" \
      "${libs[@]}" -lcrypto
clang "${flags[@]}" -o "$out/fuzz_deltaget" "$top/fuzz/fuzz_deltaget.c" \
      "$core/iss_deltaget.c" "$core/iss_digest.c" "$core/iss_bytes.c" \
      "${libs[@]}" -lcrypto
# The If header and sync tokens are the server's (libiss/server), parsed
# without the store: their two files alone, with core's helpers.
server="$top/libiss/server"
clang "${flags[@]}" -I"$server" -o "$out/fuzz_ifhdr" "$top/fuzz/fuzz_ifhdr.c" \
      "$server/iss_ifhdr.c" "$server/iss_sync_token.c" "$core/iss_bytes.c" \
      "$core/iss_digest.c" "${libs[@]}" -lcrypto

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

# run TARGET SEED_DIR: SECONDS of libFuzzer on its own corpus plus seeds.
run() {
  local target=$1 seed_dir=$2
  mkdir -p "$out/corpus-${target#fuzz_}"
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "./$target" -max_total_time="$secs" -max_len=65536 -timeout=10 \
    -print_final_stats=1 "corpus-${target#fuzz_}" "$seed_dir")
  echo "$target: no crash in ${secs}s"
}

# VCDIFF seeds: real deltas (with and without xdelta3's checksum, one and
# many windows); the first byte of each input picks the piece size.
mkdir -p "$seeds/vcdiff"
head -c 65536 /dev/urandom > "$seeds/old"
{ head -c 20000 "$seeds/old"; echo inserted; tail -c 30000 "$seeds/old"; } > "$seeds/new"
i=0
for opt in "" "-n" "-W 16384" "-n -W 16384"; do
  # shellcheck disable=SC2086
  xdelta3 -e -f -D -S none -A $opt -s "$seeds/old" "$seeds/new" "$seeds/d"
  { printf '\x07'; cat "$seeds/d"; } > "$seeds/vcdiff/seed$i"; i=$((i + 1))
done
run fuzz_vcdiff "$seeds/vcdiff"

# Manifest seeds: the fuzz target's base (2 KiB of its LCG bytes, chunks
# of 64/256/1024), its manifest, a changed version's, and the delta.
mkdir -p "$seeds/m"
perl -e 'use integer; my $x = 12345; for (1 .. 2048) { $x = ($x * 1103515245 + 12345) & 0xffffffff; print chr(($x >> 16) & 0xff) }' > "$seeds/base"
{ head -c 700 "$seeds/base"; echo inserted; tail -c 1000 "$seeds/base"; } > "$seeds/changed"
"$chunk" manifest --params 64,256,1024 "$seeds/base" > "$seeds/m/base.ism"
"$chunk" manifest --params 64,256,1024 "$seeds/changed" > "$seeds/m/changed.ism"
"$chunk" delta "$seeds/m/base.ism" "$seeds/m/changed.ism" > "$seeds/m/changed.isd"
run fuzz_manifest "$seeds/m"

# Frame seeds: the frames of both files (every chunk, and the chunks the
# changed version adds), fed in pieces of 1, 8 and 64 bytes (byte 0),
# without and with a refusing callback (byte 1).
mkdir -p "$seeds/f"
"$chunk" frames "$seeds/base" "$seeds/m/base.ism" > "$seeds/base.frames"
"$chunk" frames "$seeds/changed" "$seeds/m/changed.ism" > "$seeds/changed.frames"
"$chunk" ids "$seeds/m/changed.ism" | head -3 | cut -d' ' -f1 > "$seeds/ids"
"$chunk" frames "$seeds/changed" "$seeds/m/changed.ism" "$seeds/ids" > "$seeds/some.frames"
i=0
for ctl in '\x00\x00' '\x07\x00' '\x3f\x00' '\x07\x03' '\x00\x10'; do
  for fr in base changed some; do
    { printf "$ctl"; cat "$seeds/$fr.frames"; } > "$seeds/f/seed$i"; i=$((i + 1))
  done
done
run fuzz_frames "$seeds/f"

# Encoder seeds (layout in fuzz/fuzz_vcdiff_enc.c): byte 0 the ways
# (manifests, checksum, window, index size), byte 1 the piece size, a
# 2-byte source length, the source, then the recipe of the target.
mkdir -p "$seeds/enc"
head -c 3000 /dev/urandom > "$seeds/src"
i=0
for ways in '\x00' '\x01' '\x02' '\x06' '\x18' '\x30' '\x7a' '\xc1'; do
  for piece in '\x00' '\x07'; do
    {
      printf "$ways$piece"'\x0b\xb8'; cat "$seeds/src"
      # COPY 760 bytes from 0, ADD "new data!", COPY 81 from 2000, REPEAT 36
      # from 6 back, a RUN of 33 zeros, COPY 257 from 500
      printf '\xfc\x00\x00\xff\x21new data!\x20\x07\xd0\x10'
      printf '\x22\x05\x13\x00\x40\x01\xf4\x80'
    } > "$seeds/enc/seed$i"; i=$((i + 1))
  done
done
run fuzz_vcdiff_enc "$seeds/enc"

# If header, token and digest seeds (byte 0: 0 If, 1 token, 2 digest
# fields): RFC 4918's and RFC 6578's examples, our token forms, RFC
# 9530's fields and an OC-Checksum.
mkdir -p "$seeds/if"
B=https://mod-iss.org/ns/sync/0123456789abcdef-0123
i=0
for v in \
  '0(<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> ["I am an ETag"]) (["I am another ETag"])' \
  '0(Not <urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> <urn:uuid:58f202ac-22cf-11d1-b12d-002035b29092>)' \
  '0</resource1> (<urn:uuid:181d4fae-7d8c-11d0-a765-00a0c91e6bf2> [W/"A weak ETag"]) (["strong ETag"])' \
  "0<http://127.0.0.1/dav/> (<$B/42>) (Not <DAV:no-lock>)" \
  "0</dav/%2e%2e/%2e%2e/etc/passwd> ([\"x\"]) </dav/a/./b> (<$B/i7/a%20b>)" \
  "1$B/42" "1$B/7.3" "1$B/i10/a%20b/c%25d" "1$B/9/0/bob/b%203.txt" \
  "1$B/b66ed1c7a17b0dbd3a3e21ee0e7e0c2a" "1$B/i0f3d8c0a1b2c3d4e5f60718293a4b5c6/a" \
  '5\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x00\x00\x00\x00\x05' \
  '5\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x07\x01\x83dir/a b' \
  '5\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x02\x02\x41bob/b 3.txt' \
  '2sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:, sha-512=:YQ==:' \
  '2sha-256=5, unixsum=3' \
  '3SHA1:0123456789abcdef0123456789abcdef01234567 MD5:0123456789abcdef0123456789abcdef'; do
  printf '%b' "$v" > "$seeds/if/seed$i"; i=$((i + 1))
done
# the leading digit of each seed is its selector byte: 0x30.. -> 0..3;
# 0x35 (5) makes a token of the position that follows (fuzz_make())
run fuzz_ifhdr "$seeds/if"

# A-IM and If-None-Match seeds: RFC 3229's example, q values, our ETag
# form (strong, weak, with a stray bit), lists and junk.
mkdir -p "$seeds/dg"
i=0
for v in 'vcdiff' 'vdelta, gzip' 'VCDIFF;q=0.5, diffe' 'vcdiff;q=0' 'vcdiff;q=1.000, x;q=0.001' \
  '"pYoT9fpka2BETZime46IPE7x0j-2W8lHitwAFJIJ-KY"' \
  'W/"pYoT9fpka2BETZime46IPE7x0j-2W8lHitwAFJIJ-KY", "EmZ8dJQv3R3a1DJOYyX1w4Ow6ZrKHMa8lU0p0kWv0ZQ"' \
  '"EmZ8dJQv3R3a1DJOYyX1w4Ow6ZrKHMa8lU0p0kWv0ZR", *, "x,y", bogus, "pYoT9fpka2BETZime46IPE7x0j-2W8lHitwAFJIJ-KY"'; do
  printf '%s' "$v" > "$seeds/dg/seed$i"; i=$((i + 1))
done
run fuzz_deltaget "$seeds/dg"

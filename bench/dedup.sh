#!/bin/bash
# Benchmark (issue 5): chunk dedup, its targets measured in one run.
#   bench/dedup.sh [SIZE_MIB [PUT_MIB]]     (defaults 256 and 1024)
# Builds what it needs (scripts/build.sh if build/mod_iss.so or
# build/tools/iss-chunk is missing, then `make -C build bench/cdc_speed`).
#  1. build/bench/cdc_speed 1024 5 (the chunker on one core, in memory,
#     best of 5): chunker alone (target >= 1 GB/s) and chunker + the
#     SHA-256 of every chunk, against `openssl speed -evp sha256 -bytes
#     16384 -seconds 3` run just before (target: ratio >= 0.7).
#  2. A random file ORIG of SIZE_MIB MiB is PUT to /iss/orig (`Dav iss`,
#     default chunking); the client (build/tools/iss-chunk) makes its
#     manifest and uploads it to /iss/copy with If-None-Match: *:
#     PATCH (manifest) [-> 409 -> POST the missing chunks -> PATCH]; must
#     end 201 and /iss/copy must be ORIG (cmp on the server's disk).
#     Target: wire bytes < 1% of SIZE_MIB MiB.
#  3. NEW = ORIG with 1 MiB of random bytes inserted in the middle,
#     uploaded to /iss/orig with If-Match: ORIG's ETag, the same way;
#     must end 204, the file must be NEW.  Target: wire bytes < 2%.  Then
#     ORIG is PUT back and the same upload is made with the manifest
#     delta (iss-chunk delta ORIG.ism NEW.ism, Content-Type
#     application/vnd.mod-iss.manifest-delta): printed, no target.
#  4. A random file of PUT_MIB MiB is PUT (curl -T) to /plain/ (`Dav
#     On`), /iss/ (`Dav iss`: manifest made during the PUT) and /issnc/
#     (`Dav iss` + `ISSChunking Off`: digest only), 3 runs, alternating,
#     the file DELETEd (untimed) and `sync` run before each PUT; each PUT
#     must answer 201 and the file on disk must equal the source.  MB/s =
#     10^6 bytes per second of curl's time_total, median of 3.  Target:
#     iss/plain >= 0.8.  Nothing is dropped from the page cache: the
#     source file is read from memory; the server's disk is the same for
#     the three locations.
# Wire bytes are what curl sends and receives over HTTP: request headers
# (the "> " lines of curl -v, CRLFs included; checked against
# %{size_request}, which curl 7.88 also counts a small body sent with the
# headers in) + request body (%{size_upload}) + response headers
# (%{size_header}, 100 Continue included) + response body
# (%{size_download}), summed over every request of the upload.  TCP/IP
# framing is not counted.  The client's manifests are made locally and
# not fetched (a client that keeps its files' manifests).
# Prints a table and PASS/MISS per target.  Exits 1 if an answer is wrong
# (status, ETag, content), printing curl's -v trace of the request; a
# missed target does not change the exit status.  Needs about
# 4 x SIZE_MIB + 2 x PUT_MIB MiB (+ 256) in ${TMPDIR:-/tmp}, removed on
# exit; the private httpd (127.0.0.1, a free port) is stopped on exit.
# ISS_BENCH_PERF=1 also runs one more PUT to /plain/ and to /iss/ under
# `perf record` (httpd's children) and prints where httpd's CPU went.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-256}
put_mib=${2:-1024}
for v in "$size_mib" "$put_mib"; do
  case "$v" in
    ''|*[!0-9]*|0) echo "usage: $0 [SIZE_MIB [PUT_MIB]]   (positive integers, defaults 256 1024)" >&2; exit 2 ;;
  esac
done
[ "$size_mib" -ge 4 ] || { echo "$0: SIZE_MIB must be at least 4" >&2; exit 2; }
runs=3
build=$top/build
{ [ -f "$build/mod_iss.so" ] && [ -x "$build/tools/iss-chunk" ]; } || "$top/scripts/build.sh" >&2
make -s -C "$build" bench/cdc_speed >&2
chunk=$build/tools/iss-chunk
. "$top/bench/lib.sh"

tmp=${TMPDIR:-/tmp}
need_mib=$((4 * size_mib + 2 * put_mib + 256))
avail_mib=$(df -P -B1M "$tmp" | awk 'NR == 2 {print $4}')
if [ "$avail_mib" -lt "$need_mib" ]; then
  echo "$0: $tmp has $avail_mib MiB free, the benchmark needs about $need_mib MiB" >&2
  exit 1
fi

bench_work iss-bench-dedup
mkdir -p "$work"/{logs,plain,iss,issnc,state-iss,state-issnc,f}
f=$work/f
size=$((size_mib * 1048576))
half=$((size / 2))
put_size=$((put_mib * 1048576))
commit=$(git -C "$top" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)

since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }
pf() { if [ "${1:-0}" = 1 ]; then echo PASS; else echo MISS; fi; }

# ---- 1. the chunker on one core -------------------------------------------
echo "1. openssl speed -evp sha256 -bytes 16384 -seconds 3, then cdc_speed 1024 5 ..." >&2
ossl_k=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '$1 == "sha256" {sub(/k$/, "", $2); print $2}')
[ -n "$ossl_k" ] || { echo "cannot read the output of openssl speed" >&2; exit 1; }
ossl_gbps=$(awk -v k="$ossl_k" 'BEGIN {printf "%.3f", k * 1000 / 1e9}')
cdc_out=$("$build/bench/cdc_speed" 1024 5)
cdc_val() { sed -n "s/^$1=//p" <<<"$cdc_out"; }
cdc_sha=$(cdc_val sha256_gbps)
cdc_alone=$(cdc_val cdc_gbps)
cdc_ids=$(cdc_val cdc_ids_gbps)
cdc_ids_file=$(cdc_val cdc_ids_file_gbps)
cdc_avg=$(cdc_val avg_chunk)
[ -n "$cdc_alone" ] && [ -n "$cdc_ids" ] || { echo "cannot read the output of cdc_speed: $cdc_out" >&2; exit 1; }
ids_ratio=$(awk -v a="$cdc_ids" -v b="$ossl_gbps" 'BEGIN {printf "%.2f", a / b}')

# ---- the files ----------------------------------------------------------------
echo "writing a ${size_mib} MiB file, its new version (1 MiB inserted) and a ${put_mib} MiB file ..." >&2
head -c "$size" /dev/urandom > "$f/orig"
{ head -c "$half" "$f/orig"; head -c 1048576 /dev/urandom; tail -c +$((half + 1)) "$f/orig"; } > "$f/new"
head -c "$put_size" /dev/urandom > "$f/big"
etag_orig=$(etag_of "$f/orig")
etag_big=$(etag_of "$f/big")
t0=$(now); "$chunk" manifest "$f/orig" > "$f/orig.ism"; man_orig_s=$(since "$t0")
t0=$(now); "$chunk" manifest "$f/new" > "$f/new.ism"; man_new_s=$(since "$t0")
t0=$(now); "$chunk" delta "$f/orig.ism" "$f/new.ism" > "$f/new.isd"; delta_s=$(since "$t0")
chunks_orig=$("$chunk" ids "$f/orig.ism" | wc -l)
# The least an upload of NEW must send: its chunks that ORIG lacks.
"$chunk" ids "$f/orig.ism" | cut -d' ' -f1 > "$f/orig.ids"
read -r min_chunks min_bytes < <("$chunk" ids "$f/new.ism" |
  awk 'NR == FNR {have[$1] = 1; next} !($1 in have) && !($1 in seen) {seen[$1] = 1; c++; b += $2}
       END {print c + 0, b + 0}' "$f/orig.ids" -)

# ---- the server -------------------------------------------------------------
port=$(bench_free_port)
{ bench_conf_head "$work" "$port" "$build"; cat <<CONF
LogLevel warn
LimitRequestBody 0
<Location /plain/>
    Dav On
</Location>
<Location /iss/>
    Dav iss
    ISSStateDir "$work/state-iss"
</Location>
<Location /issnc/>
    Dav iss
    ISSStateDir "$work/state-issnc"
    ISSChunking Off
</Location>
CONF
} > "$work/httpd.conf"
if [ "$(id -u)" = 0 ]; then
  chown www-data: "$work"
  chown -R www-data: "$work/logs" "$work/plain" "$work/iss" "$work/issnc" "$work/state-iss" "$work/state-issnc"
fi
/usr/sbin/apache2 -f "$work/httpd.conf" -k start || { cat "$work/logs/error_log" >&2; exit 1; }
started=1
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
base=http://127.0.0.1:$port

# req NAME PATH CURL_ARGS...: one request (bench_curl); sets code, secs,
# wire (request headers + body + response headers + body), resp_etag and
# resp_session; the response body is kept in $work/NAME.body.
req() {
  local name=$1 path=$2
  shift 2
  bench_curl "$name" "$work/$name.body" "$base$path" "$@"
  wire=$((up + down))
  resp_etag=$(bench_header "$name" ETag)
  resp_session=$(bench_header "$name" ISS-Upload-Session)
}
# fail NAME MESSAGE: the wrong answer, with curl's trace of the request.
fail() {
  echo "FAILED: $2" >&2
  echo "---- curl -v of that request ($1) ----" >&2
  cat "$work/$1.trace" >&2
  [ -s "$work/$1.body" ] && { echo "---- response body ----" >&2; head -c 2000 "$work/$1.body" >&2; echo >&2; }
  exit 1
}
# ok_code NAME CODE...: the last request answered one of CODEs.
ok_code() {
  local name=$1 c
  shift
  for c in "$@"; do [ "$code" = "$c" ] && return 0; done
  fail "$name" "$name answered $code, expected $*"
}

# upload NAME PATH CTYPE BODY NEWFILE NEWMANIFEST EXPECT [CURL_ARGS...]:
# an upload by manifest (or delta) BODY: PATCH; on 409 the missing
# chunks (iss-chunk frames NEWFILE NEWMANIFEST IDS) are POSTed to the
# session and the PATCH is sent again with it; the last answer must be
# EXPECT with NEWFILE's ETag.  Sets up_wire (all requests), up_secs,
# up_missing (chunks asked for), up_frames (bytes POSTed), up_steps.
upload() {
  local name=$1 path=$2 ctype=$3 body=$4 file=$5 man=$6 expect=$7 sid
  shift 7
  up_wire=0 up_secs=0 up_missing=0 up_frames=0 up_steps=
  req "$name-patch1" "$path" -X PATCH -H "Content-Type: $ctype" "$@" --data-binary @"$body"
  up_wire=$((up_wire + wire)); up_secs=$(awk -v a="$up_secs" -v b="$secs" 'BEGIN {print a + b}')
  up_steps="PATCH $code ${secs}s"
  if [ "$code" = 409 ]; then
    sid=$resp_session
    [[ "$sid" =~ ^[0-9a-f]{32}$ ]] || fail "$name-patch1" "409 without an upload session"
    grep -o '<I:chunk>[0-9a-f]\{64\}</I:chunk>' "$work/$name-patch1.body" | sed 's/<[^>]*>//g' > "$work/$name.ids" || true
    up_missing=$(wc -l < "$work/$name.ids")
    [ "$up_missing" -gt 0 ] || fail "$name-patch1" "409 without missing chunks"
    "$chunk" frames "$file" "$man" "$work/$name.ids" > "$work/$name.frames"
    up_frames=$(stat -c %s "$work/$name.frames")
    req "$name-post" "$path" -X POST -H 'Content-Type: application/vnd.mod-iss.chunks' \
        -H "ISS-Upload-Session: $sid" --data-binary @"$work/$name.frames"
    ok_code "$name-post" 204
    up_wire=$((up_wire + wire)); up_secs=$(awk -v a="$up_secs" -v b="$secs" 'BEGIN {print a + b}')
    up_steps="$up_steps, POST $code ${secs}s"
    rm -f "$work/$name.frames"
    req "$name-patch2" "$path" -X PATCH -H "Content-Type: $ctype" -H "ISS-Upload-Session: $sid" "$@" \
        --data-binary @"$body"
    up_wire=$((up_wire + wire)); up_secs=$(awk -v a="$up_secs" -v b="$secs" 'BEGIN {print a + b}')
    up_steps="$up_steps, PATCH $code ${secs}s"
    ok_code "$name-patch2" "$expect"
    name=$name-patch2
  else
    ok_code "$name-patch1" "$expect"
    name=$name-patch1
  fi
  [ "$resp_etag" = "$(etag_of "$file")" ] || fail "$name" "ETag '$resp_etag', expected $(etag_of "$file")"
}
# put_file NAME PATH FILE ETAG: a PUT that must create or replace PATH.
put_file() {
  req "$1" "$2" -T "$3"
  ok_code "$1" 201 204
  [ "$resp_etag" = "$4" ] || fail "$1" "PUT: ETag '$resp_etag', expected $4"
}

# ---- 2. a copy by manifest --------------------------------------------------
echo "2. upload of a copy by manifest ..." >&2
put_file put-orig /iss/orig "$f/orig" "$etag_orig"
upload copy /iss/copy application/vnd.mod-iss.manifest "$f/orig.ism" "$f/orig" "$f/orig.ism" 201 \
  -H 'If-None-Match: *'
cmp -s "$work/iss/copy" "$f/orig" || { echo "FAILED: /iss/copy differs from the file uploaded" >&2; exit 1; }
copy_wire=$up_wire copy_secs=$up_secs copy_missing=$up_missing copy_steps=$up_steps

# ---- 3. 1 MiB inserted: a new version by manifest, then by delta -------------
echo "3. a new version (1 MiB inserted) by manifest, then by manifest delta ..." >&2
upload ins /iss/orig application/vnd.mod-iss.manifest "$f/new.ism" "$f/new" "$f/new.ism" 204 \
  -H "If-Match: $etag_orig"
cmp -s "$work/iss/orig" "$f/new" || { echo "FAILED: /iss/orig differs from the new version (manifest)" >&2; exit 1; }
ins_wire=$up_wire ins_secs=$up_secs ins_missing=$up_missing ins_frames=$up_frames ins_steps=$up_steps
put_file put-orig2 /iss/orig "$f/orig" "$etag_orig"
upload insd /iss/orig application/vnd.mod-iss.manifest-delta "$f/new.isd" "$f/new" "$f/new.ism" 204 \
  -H "If-Match: $etag_orig"
cmp -s "$work/iss/orig" "$f/new" || { echo "FAILED: /iss/orig differs from the new version (delta)" >&2; exit 1; }
insd_wire=$up_wire insd_secs=$up_secs insd_missing=$up_missing insd_frames=$up_frames insd_steps=$up_steps

# ---- 4. PUT throughput ------------------------------------------------------
echo "4. PUT of ${put_mib} MiB: plain / iss / iss without chunking, $runs runs alternating ..." >&2
locs="plain iss issnc"
declare -A tput
for loc in $locs; do tput[$loc]=""; done
for run in $(seq $runs); do
  for loc in $locs; do
    sync
    req "put-$loc" "/$loc/big" -T "$f/big"
    ok_code "put-$loc" 201
    if [ "$loc" != plain ]; then
      [ "$resp_etag" = "$etag_big" ] || fail "put-$loc" "PUT: ETag '$resp_etag', expected $etag_big"
    fi
    mbps=$(awk -v n="$put_size" -v s="$secs" 'BEGIN {printf "%.0f", n / s / 1e6}')
    tput[$loc]="${tput[$loc]} $mbps"
    echo "   run $run /$loc/: ${secs} s, $mbps MB/s" >&2
    cmp -s "$work/$loc/big" "$f/big" || { echo "FAILED: /$loc/big differs from the file PUT" >&2; exit 1; }
    req "del-$loc" "/$loc/big" -X DELETE
    ok_code "del-$loc" 204
  done
done
declare -A med
for loc in $locs; do
  # shellcheck disable=SC2086
  med[$loc]=$(median ${tput[$loc]})
done
put_ratio=$(awk -v a="${med[iss]}" -v b="${med[plain]}" 'BEGIN {printf "%.2f", a / b}')
nc_ratio=$(awk -v a="${med[issnc]}" -v b="${med[plain]}" 'BEGIN {printf "%.2f", a / b}')

# perf_put LOC: one more PUT to /LOC/ under `perf record` (DWARF call
# graphs, 1 kHz, the httpd children only); appends to perf_out the CPU
# seconds httpd spent and how much of it went where (inclusive).
perf_out=
perf_put() {
  local loc=$1 pids perf_pid total
  sync
  pids=$(pgrep -d, -P "$(cat "$work/logs/httpd.pid")")
  perf record -q --call-graph dwarf,16384 -F 1000 -o "$work/perf.$loc" -p "$pids" -- sleep 600 >/dev/null 2>&1 &
  perf_pid=$!
  sleep 1
  req "perf-$loc" "/$loc/big" -T "$f/big"
  ok_code "perf-$loc" 201
  kill -INT "$perf_pid"; wait "$perf_pid" || true
  perf report -i "$work/perf.$loc" --children --stdio --sort sym -g none 2>/dev/null > "$work/perf.$loc.txt"
  total=$(awk '/^# Event count/ {printf "%.2f", $NF / 1e9}' "$work/perf.$loc.txt")
  perf_out+="   /$loc/: PUT ${secs} s wall, httpd ${total} s CPU; inclusive share of that CPU:"$'\n'
  perf_out+=$(awk -v t="$total" '
    BEGIN {
      n = split("ap_http_filter:reading the socket (ap_http_filter)|apr_file_write_full:writing the file (apr_file_write_full)|iss_manifest_builder_feed:manifest builder (iss_manifest_builder_feed)|SHA256_Update:  SHA-256, file + chunks (SHA256_Update)|iss_cdc_scan:  chunker (iss_cdc_scan)|iss_sync_log_end:store commit after the body (iss_sync_log_end)|iss_chunkidx_txn_put:  chunk index records (iss_chunkidx_txn_put)|__x64_sys_fsync:fsync (CPU only)", w, "|")
      for (i = 1; i <= n; i++) { split(w[i], kv, ":"); key[i] = kv[1]; label[i] = kv[2] }
    }
    $3 == "[.]" || $3 == "[k]" { pc = $1; sub(/%/, "", pc); if (!($4 in share)) share[$4] = pc }
    END {
      for (i = 1; i <= n; i++)
        if (key[i] in share)
          printf "     %-50s %5.1f%%  %5.2f s\n", label[i], share[key[i]], share[key[i]] * t / 100
    }' "$work/perf.$loc.txt")$'\n'
  req "perf-del-$loc" "/$loc/big" -X DELETE
}
if [ "${ISS_BENCH_PERF:-0}" = 1 ]; then
  echo "perf record of one PUT to /plain/ and one to /iss/ ..." >&2
  perf_put plain
  perf_put iss
fi

# ---- the table --------------------------------------------------------------
pct() { awk -v w="$1" -v n="$size" 'BEGIN {printf "%.3f%%", 100 * w / n}'; }
lt() { awk -v w="$1" -v n="$size" -v p="$2" 'BEGIN {print (100 * w / n < p) ? 1 : 0}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {print (a >= b) ? 1 : 0}'; }
echo
echo "bench/dedup.sh ${size_mib} MiB / PUT ${put_mib} MiB at $commit, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "1. chunker, one core, in memory (cdc_speed 1024 5, best of 5; avg chunk $cdc_avg B):"
printf '   %-40s %8s GB/s\n' "openssl speed -evp sha256 (16 KiB)" "$ossl_gbps" \
  "SHA-256 alone (iss_digest, cdc_speed)" "$cdc_sha" "chunker alone" "$cdc_alone" \
  "chunker + chunk SHA-256s" "$cdc_ids" "chunker + chunk SHA-256s + file SHA-256" "$cdc_ids_file"
echo
echo "2./3. uploads by manifest (client: manifest ${man_orig_s} s / ${man_new_s} s, delta ${delta_s} s; $chunks_orig chunks):"
printf '   %-34s %12s %9s %8s %11s %8s  %s\n' case 'wire B' '/ size' missing 'frames B' 'time s' 'requests'
printf '   %-34s %12d %9s %8d %11d %8.3f  %s\n' \
  "copy to a new path (manifest)" "$copy_wire" "$(pct "$copy_wire")" "$copy_missing" 0 "$copy_secs" "$copy_steps" \
  "1 MiB inserted (manifest)" "$ins_wire" "$(pct "$ins_wire")" "$ins_missing" "$ins_frames" "$ins_secs" "$ins_steps" \
  "1 MiB inserted (manifest delta)" "$insd_wire" "$(pct "$insd_wire")" "$insd_missing" "$insd_frames" "$insd_secs" "$insd_steps"
echo "   (manifest $(stat -c %s "$f/new.ism") B, delta $(stat -c %s "$f/new.isd") B; chunks of the new version"
echo "   the original lacks: $min_chunks, $min_bytes B: the least a client must send)"
echo
echo "4. PUT of ${put_mib} MiB (curl -T, MB/s = 10^6 B/s, runs in order; median):"
for loc in $locs; do
  printf '   %-36s %s  -> %s\n' "$(case $loc in plain) echo "/plain/ Dav On" ;; iss) echo "/iss/ Dav iss" ;; issnc) echo "/issnc/ Dav iss, ISSChunking Off" ;; esac)" \
    "${tput[$loc]# }" "${med[$loc]}"
done
echo
echo "$(pf "$(ge "$cdc_alone" 1)"): chunker alone $cdc_alone GB/s (target >= 1 GB/s)"
echo "$(pf "$(ge "$ids_ratio" 0.7)"): chunker + chunk SHA-256s $cdc_ids GB/s = $ids_ratio x openssl's SHA-256 $ossl_gbps GB/s (target >= 0.7)"
echo "$(pf "$(lt "$copy_wire" 1)"): copy by manifest: $copy_wire B on the wire = $(pct "$copy_wire") of ${size_mib} MiB (target < 1%)"
echo "$(pf "$(lt "$ins_wire" 2)"): 1 MiB inserted by manifest: $ins_wire B = $(pct "$ins_wire") (target < 2%); by delta: $insd_wire B = $(pct "$insd_wire")"
echo "$(pf "$(ge "$put_ratio" 0.8)"): PUT iss/plain ${med[iss]}/${med[plain]} MB/s = $put_ratio (target >= 0.8); ISSChunking Off/plain: $nc_ratio"
if [ -n "$perf_out" ]; then
  echo
  echo "perf (ISS_BENCH_PERF=1), one more PUT of ${put_mib} MiB each:"
  printf '%s' "$perf_out"
fi

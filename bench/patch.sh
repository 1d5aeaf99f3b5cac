#!/bin/bash
# Benchmark (issue 4): what a PATCH with a VCDIFF delta saves against a
# PUT of the whole new file, in the same server and run.
#   bench/patch.sh [SIZE_MIB]     (default 256)
# Builds what it needs (scripts/build.sh if build/mod_iss.so is missing,
# then `make -C build bench/vcdiff_apply`), writes a random file OLD of
# SIZE_MIB MiB and three new versions:
#   (a) 1 byte changed in the middle,
#   (b) 1 MiB of random bytes inserted in the middle,
#   (c) 10% of the 64 KiB blocks rewritten with random bytes (chosen at
#       random, fixed seed, spread over the file),
# and their deltas with `xdelta3 -e -f -D -S none -A -s OLD NEW DELTA`
# (encoding time reported on its own, one run).  A private httpd serves
# a `Dav iss` location; for each case and run it PUTs OLD (ETag from the
# response), times `curl -T NEW` (PUT of the whole file), PUTs OLD again
# and times `curl -X PATCH -H 'Content-Type: application/vcdiff'
# -H 'If-Match: ETAG' --data-binary @DELTA`, which must answer 204 with
# the content-based ETag and Repr-Digest of NEW; a GET must then return
# exactly NEW.  Times are curl's time_total, median of 3 runs; all of it
# once on loopback and once with curl --limit-rate 12500000 on the timed
# PUT and PATCH (a 100 Mbit/s uplink).  Bytes on the wire: request
# headers (the "> " lines of curl -v, CRLFs included; checked against
# %{size_request}, which also counts a small body sent with the headers)
# + body (%{size_upload}), plus response headers + body (%{size_header} +
# %{size_download}).  Also runs
# build/bench/vcdiff_apply (libiss's decoder alone, as the server calls
# it; median of 3) for each case.
# Prints a table and PASS/FAIL against the targets: PATCH wire bytes
# within 1 KiB of the delta; apply >= 500 MB/s for (a) (decoder without
# SHA-256); PATCH (a) >= 20x faster than PUT (for each link).  Exits 1 if
# an answer is wrong (status, ETag, Repr-Digest, content), printing
# curl's -v trace of the failed request; a missed target does not change
# the exit status.  Needs about 6 x SIZE_MIB MiB under /tmp, removed on
# exit.  Run as root (httpd's children run as www-data) or as a user.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-256}
case "$size_mib" in
  ''|*[!0-9]*|0) echo "usage: $0 [SIZE_MIB]   (a positive integer, default 256)" >&2; exit 2 ;;
esac
runs=3
rate=12500000
build=$top/build
[ -f "$build/mod_iss.so" ] || "$top/scripts/build.sh" >&2
make -s -C "$build" bench/vcdiff_apply >&2
apply=$build/bench/vcdiff_apply
. "$top/bench/lib.sh"

bench_work iss-bench-patch
mkdir -p "$work"/{logs,dav,state,f}
f=$work/f
size=$((size_mib * 1048576))
half=$((size / 2))
commit=$(git -C "$top" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)

digest_of() { printf 'sha-256=:%s:' "$(openssl dgst -sha256 -binary "$1" | base64 -w0)"; }

echo "writing a ${size_mib} MiB file, three new versions and their deltas ..." >&2
head -c "$size" /dev/urandom > "$f/old"
cp "$f/old" "$f/a"
perl -e 'my ($p, $at) = @ARGV; open my $fh, "+<:raw", $p or die "$p: $!\n";
  seek $fh, $at, 0; read $fh, my $c, 1; seek $fh, $at, 0;
  print $fh chr(ord($c) ^ 0xff); close $fh or die "$p: $!\n"' "$f/a" "$half"
{ head -c "$half" "$f/old"; head -c 1048576 /dev/urandom; tail -c +$((half + 1)) "$f/old"; } > "$f/b"
cp "$f/old" "$f/c"
perl -e 'my ($p, $n) = @ARGV; my $k = int($n / 10 + 0.5); srand(4);
  my @b = (0 .. $n - 1);
  for my $i (0 .. $k - 1) { my $j = $i + int(rand($n - $i)); @b[$i, $j] = @b[$j, $i]; }
  open my $fh, "+<:raw", $p or die "$p: $!\n";
  open my $r, "<:raw", "/dev/urandom" or die "/dev/urandom: $!\n";
  for my $blk (sort { $a <=> $b } @b[0 .. $k - 1]) {
      read($r, my $buf, 65536) == 65536 or die "/dev/urandom: short read\n";
      seek $fh, $blk * 65536, 0; print $fh $buf;
  }
  close $fh or die "$p: $!\n"' "$f/c" $((size / 65536))
cases="a b c"
declare -A desc=([a]="(a) 1 byte changed" [b]="(b) 1 MiB inserted" [c]="(c) 10% of 64K blocks")
declare -A dsize enc_s etag digest apply_mbps apply_sha_mbps
for c in $cases; do
  t0=$(now)
  xdelta3 -e -f -D -S none -A -s "$f/old" "$f/$c" "$f/$c.vcdiff"
  t1=$(now)
  enc_s[$c]=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  dsize[$c]=$(stat -c %s "$f/$c.vcdiff")
  etag[$c]=$(etag_of "$f/$c")
  digest[$c]=$(digest_of "$f/$c")
done
etag_old=$(etag_of "$f/old")

echo "vcdiff_apply (libiss decoder alone) ..." >&2
for c in $cases; do
  m=() s=()
  for _ in $(seq $runs); do
    out=$("$apply" "$f/old" "$f/$c.vcdiff" "$f/out")
    cmp -s "$f/out" "$f/$c" || { echo "vcdiff_apply: case $c: the result differs from the new file" >&2; exit 1; }
    grep -qxF "repr_digest=${digest[$c]}" <<<"$out" || { echo "vcdiff_apply: case $c: wrong digest: $out" >&2; exit 1; }
    m+=("$(sed -n 's/.* apply_mbps=//p' <<<"$out")")
    s+=("$(sed -n 's/.* apply_sha256_mbps=//p' <<<"$out")")
  done
  apply_mbps[$c]=$(median "${m[@]}")
  apply_sha_mbps[$c]=$(median "${s[@]}")
done
rm -f "$f/out"

port=$(bench_free_port)
{ bench_conf_head "$work" "$port" "$build"; cat <<CONF
LogLevel warn
<Location /dav/>
    Dav iss
    ISSStateDir "$work/state"
    LimitRequestBody 0
</Location>
CONF
} > "$work/httpd.conf"
if [ "$(id -u)" = 0 ]; then
  chown www-data: "$work"
  chown -R www-data: "$work/logs" "$work/dav" "$work/state"
fi
/usr/sbin/apache2 -f "$work/httpd.conf" -k start || { cat "$work/logs/error_log" >&2; exit 1; }
started=1
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
url=http://127.0.0.1:$port/dav/file

# req NAME CURL_ARGS...: one request (bench_curl); sets code, secs, up,
# down, resp_etag and resp_digest.
req() {
  local name=$1
  shift
  bench_curl "$name" "$work/body" "$url" "$@"
  resp_etag=$(bench_header "$name" ETag)
  resp_digest=$(bench_header "$name" Repr-Digest)
}
# fail NAME MESSAGE: the wrong answer, with curl's trace of the request.
fail() {
  echo "FAILED: $2" >&2
  echo "---- curl -v of that request ($1) ----" >&2
  cat "$work/$1.trace" >&2
  [ -s "$work/body" ] && { echo "---- response body ----" >&2; head -c 2000 "$work/body" >&2; echo >&2; }
  exit 1
}
put_old() {
  req restore -T "$f/old"
  case "$code" in 201|204) ;; *) fail restore "PUT of the old file answered $code" ;; esac
  [ "$resp_etag" = "$etag_old" ] || fail restore "PUT of the old file: ETag '$resp_etag', expected $etag_old"
}

declare -A patch_s put_s patch_wire put_wire
for link in loopback 100M; do
  limit=()
  [ "$link" = 100M ] && limit=(--limit-rate "$rate")
  for c in $cases; do
    echo "$link: case $c ..." >&2
    tp=() tu=()
    for _ in $(seq $runs); do
      put_old
      req put "${limit[@]}" -T "$f/$c"
      case "$code" in 201|204) ;; *) fail put "PUT of the new file answered $code" ;; esac
      [ "$resp_etag" = "${etag[$c]}" ] || fail put "PUT of the new file: ETag '$resp_etag', expected ${etag[$c]}"
      tu+=("$secs")
      put_wire[$c]=$((up + down))

      put_old
      req patch "${limit[@]}" -X PATCH -H 'Content-Type: application/vcdiff' \
          -H "If-Match: $resp_etag" --data-binary @"$f/$c.vcdiff"
      [ "$code" = 204 ] || fail patch "PATCH answered $code, not 204"
      [ "$resp_etag" = "${etag[$c]}" ] || fail patch "PATCH: ETag '$resp_etag', expected ${etag[$c]}"
      [ "$resp_digest" = "${digest[$c]}" ] || fail patch "PATCH: Repr-Digest '$resp_digest', expected ${digest[$c]}"
      tp+=("$secs")
      patch_wire[$c]=$((up + down))
      curl -sS -f "$url" | cmp -s - "$f/$c" || fail patch "after the PATCH, GET does not return the new file (case $c)"
    done
    patch_s[$c,$link]=$(median "${tp[@]}")
    put_s[$c,$link]=$(median "${tu[@]}")
  done
done

ratio() { awk -v u="$1" -v p="$2" 'BEGIN {printf "%.1f", (p > 0 ? u / p : 0)}'; }
echo
echo "bench/patch.sh ${size_mib} MiB at $commit, median of $runs; times in seconds (curl time_total)"
printf '%-22s %10s %10s %11s | %-27s | %-27s | %9s %9s\n' '' '' 'PATCH' 'PUT' \
  '        loopback' '       100 Mbit/s' 'apply' 'apply+SHA'
printf '%-22s %10s %10s %11s | %8s %8s %9s | %8s %8s %9s | %9s %9s\n' case 'delta B' 'wire B' 'wire B' \
  'PATCH s' 'PUT s' 'PUT/PATCH' 'PATCH s' 'PUT s' 'PUT/PATCH' 'MB/s' 'MB/s'
for c in $cases; do
  printf '%-22s %10d %10d %11d | %8.4f %8.3f %9s | %8.4f %8.3f %9s | %9s %9s\n' "${desc[$c]}" \
    "${dsize[$c]}" "${patch_wire[$c]}" "${put_wire[$c]}" \
    "${patch_s[$c,loopback]}" "${put_s[$c,loopback]}" "$(ratio "${put_s[$c,loopback]}" "${patch_s[$c,loopback]}")" \
    "${patch_s[$c,100M]}" "${put_s[$c,100M]}" "$(ratio "${put_s[$c,100M]}" "${patch_s[$c,100M]}")" \
    "${apply_mbps[$c]}" "${apply_sha_mbps[$c]}"
done
echo
printf 'xdelta3 -e -f -D -S none -A (one run):'
for c in $cases; do printf '  (%s) %s s' "$c" "${enc_s[$c]}"; done
echo
echo
pf() { if [ "${1:-}" = 1 ]; then echo PASS; else echo FAIL; fi; }
for c in $cases; do
  d=$((patch_wire[$c] - dsize[$c]))
  echo "$(pf "$([ "${d#-}" -le 1024 ] && echo 1)"): PATCH $c on the wire ${patch_wire[$c]} B, delta ${dsize[$c]} B: $d B apart (target: within 1,024)"
done
echo "$(pf "$(awk -v m="${apply_mbps[a]}" 'BEGIN {print (m >= 500)}')"): apply (a) ${apply_mbps[a]} MB/s (target: >= 500; with SHA-256: ${apply_sha_mbps[a]} MB/s)"
for link in loopback 100M; do
  r=$(ratio "${put_s[a,$link]}" "${patch_s[a,$link]}")
  name=$link; [ "$link" = 100M ] && name='100 Mbit/s'
  echo "$(pf "$(awk -v r="$r" 'BEGIN {print (r >= 20)}')"): PATCH (a) ${r}x faster than PUT on $name (target: >= 20x)"
done

#!/bin/bash
# Benchmark (issue 15, item 4): manifest-driven download of a new
# version by a client that holds an older copy, two ways:
#   multi   one GET with all the ranges it lacks and If-Range (Apache's
#           206 multipart/byteranges);
#   single  one GET per range, all over one keep-alive connection (curl
#           --next);
# against a plain GET of the whole file, measured on loopback; times at
# 100 Mbit/s are modelled (loopback time + wire bytes / 12.5 MB/s +
# requests in sequence x RTT, for RTT 0 and 20 ms): curl's --limit-rate
# lets transfers of a few MB through in bursts, so it measures nothing
# at these sizes.
#   bench/range_download.sh [SIZE_MIB [CHANGES]]    (default 256 and 100)
# A random SIZE_MIB file and a new version with CHANGES edits of 100
# bytes at scattered offsets (fixed seed) are made under ${TMPDIR:-/tmp};
# the new one is PUT to a private httpd (`Dav iss`, event MPM, the
# default MaxRanges 200 under /dav/ and MaxRanges 50 under /dav/capped/).
# The client's side: the new file's manifest (GET, Accept:
# application/vnd.mod-iss.manifest), the old file's (build/tools/iss-chunk),
# the chunks of the new one whose ids the old one lacks as ranges
# (neighbours merged).  Each way's result is rebuilt from the old file
# and the ranges received and must hash to the new file's ETag (exit 1
# otherwise).  Wire bytes are request and response headers and bodies
# as curl counts them (the manifest's GET counted separately); times are
# the client's wall time, medians of 5 runs.  Also checked: with more
# ranges than MaxRanges (60 under /dav/capped/'s 50), Apache answers 200
# with the whole file.  Needs about 3 x SIZE_MIB MiB of space.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-256}
nchanges=${2:-100}
case "$size_mib$nchanges" in
  *[!0-9]*) echo "usage: $0 [SIZE_MIB [CHANGES]]   (positive integers, default 256 100)" >&2; exit 2 ;;
esac
runs=5
build=$top/build
[ -f "$build/mod_iss.so" ] || "$top/scripts/build.sh" >&2
chunk=$build/tools/iss-chunk
[ -x "$chunk" ] || { echo "$0: no $chunk: run scripts/build.sh" >&2; exit 2; }
for tool in curl openssl perl; do
  command -v "$tool" >/dev/null || { echo "$0: needs $tool" >&2; exit 2; }
done
. "$top/bench/lib.sh"

bench_work iss-bench-range
mkdir -p "$work"/{logs,dav/capped,state,f}
f=$work/f
size=$((size_mib * 1048576))
commit=$(git -C "$top" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)

echo "writing a ${size_mib} MiB file and a version with $nchanges scattered 100-byte edits ..." >&2
head -c "$size" /dev/urandom > "$f/old"
cp "$f/old" "$f/new"
perl -e 'my ($p, $size, $n) = @ARGV; srand(7);
  open my $fh, "+<:raw", $p or die "$p: $!\n";
  for (1 .. $n) { seek $fh, int(rand($size - 100)), 0; print $fh join "", map { chr int rand 256 } 1 .. 100 }
  close $fh or die "$p: $!\n"' "$f/new" "$size" "$nchanges"
etag_new=$(etag_of "$f/new")

port=$(bench_free_port)
{ bench_conf_head "$work" "$port" "$build"; cat <<CONF
LogLevel warn
KeepAliveTimeout 30
MaxKeepAliveRequests 0
<Location /dav/>
    Dav iss
    ISSStateDir "$work/state"
    LimitRequestBody 0
</Location>
<Location /dav/capped/>
    MaxRanges 50
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
base=http://127.0.0.1:$port/dav

for u in "$base/file" "$base/capped/file"; do
  bench_curl put "$work/body" "$u" -T "$f/new"
  case "$code" in 201|204) ;; *) echo "PUT $u answered $code" >&2; exit 1 ;; esac
done

# The client's side: the new manifest from the server, the old one made
# here, the ranges to fetch.
bench_curl manifest "$f/new.ism" "$base/file" -H 'Accept: application/vnd.mod-iss.manifest'
[ "$code" = 200 ] || { echo "manifest: $code" >&2; exit 1; }
manifest_wire=$((up + down))
"$chunk" manifest "$f/old" > "$f/old.ism"
"$chunk" ids "$f/old.ism" > "$f/old.ids"
"$chunk" ids "$f/new.ism" > "$f/new.ids"
# ranges: "start-end" (inclusive), chunks the old file lacks, neighbours merged
bench_missing_ranges "$f/old.ids" "$f/new.ids" > "$f/ranges"
nranges=$(wc -l < "$f/ranges")
need=$(awk -F- '{n += $2 - $1 + 1} END {print n + 0}' "$f/ranges")
echo "$nranges ranges, $need bytes of $size ($(wc -l < "$f/new.ids") chunks)" >&2
range_list=$(paste -sd, "$f/ranges")

# rebuild KIND: the new file from the old one and what KIND received
# ($f/multi.body: a multipart/byteranges body; $f/single.N: range N),
# checked against the new file's ETag.
rebuild() {
  perl -e 'my ($kind, $dir, $boundary) = @ARGV; my %got;
    if ($kind eq "multi") {
      open my $fh, "<:raw", "$dir/multi.body" or die; local $/; my $b = <$fh>;
      while ($b =~ /--\Q$boundary\E\r\n(.*?)\r\n\r\n/sg) {
        my $h = $1; my ($s, $e) = $h =~ /Content-Range: bytes (\d+)-(\d+)\//i or die "no Content-Range\n";
        $got{$s} = substr($b, pos($b), $e - $s + 1); pos($b) += $e - $s + 1;
      }
    } else {
      open my $r, "<", "$dir/ranges" or die; my $i = 0;
      while (<$r>) { my ($s) = /^(\d+)-/; open my $fh, "<:raw", "$dir/single.$i" or die; local $/; $got{$s} = <$fh>; $i++ }
    }
    my %old; open my $fh, "<", "$dir/old.ids" or die; while (<$fh>) { my ($id, $len, $off) = split; $old{$id} //= $off }
    open my $of, "<:raw", "$dir/old" or die; open my $out, ">:raw", "$dir/rebuilt" or die;
    my @pend = sort { $a <=> $b } keys %got; my ($gs, $gd) = (-1, "");
    open my $nf, "<", "$dir/new.ids" or die;
    while (<$nf>) { my ($id, $len, $off) = split;
      if (defined $old{$id}) { seek $of, $old{$id}, 0; read($of, my $c, $len) == $len or die; print $out $c; next }
      if (!($off >= $gs && $off + $len <= $gs + length $gd)) { ($gs) = grep { $_ <= $off } reverse @pend; defined $gs or die "no range for $off\n"; $gd = $got{$gs} }
      print $out substr($gd, $off - $gs, $len) }
    close $out or die' "$1" "$f" "${2:-}"
  [ "$(etag_of "$f/rebuilt")" = "$etag_new" ] || { echo "$0: $1: the rebuilt file is not the new version" >&2; exit 1; }
  rm -f "$f/rebuilt"
}

# One GET of the whole file; one multi-range GET; one GET per range.
plain() {
  bench_curl plain "$f/plain.body" "$base/file" "$@"
  [ "$code" = 200 ] || { echo "plain GET: $code" >&2; exit 1; }
}
multi() {
  bench_curl multi "$f/multi.body" "$base/file" -H "Range: bytes=$range_list" -H "If-Range: $etag_new" "$@"
  [ "$code" = 206 ] || { echo "multi-range GET: $code" >&2; exit 1; }
}
single() {
  local i=0 r t0 t1 w
  : > "$f/single.cfg"
  while read -r r; do
    [ "$i" -gt 0 ] && echo 'next' >> "$f/single.cfg"
    printf 'url = "%s"\nrange = "%s"\nheader = "If-Range: %s"\noutput = "%s"\nwrite-out = "%%{http_code} %%{size_request} %%{size_header} %%{size_download}\\n"\nsilent\nshow-error\nverbose\n' \
      "$base/file" "$r" "$etag_new" "$f/single.$i" >> "$f/single.cfg"
    i=$((i + 1))
  done < "$f/ranges"
  t0=$(now)
  w=$(curl -K "$f/single.cfg" 2>"$work/single.err") || { cat "$work/single.err" >&2; exit 1; }
  t1=$(now)
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
  awk '$1 != 206 {exit 1}' <<<"$w" || { echo "single-range GETs: not all 206" >&2; exit 1; }
  read -r up down <<<"$(awk '{u += $2; d += $3 + $4} END {print u, d}' <<<"$w")"
  conns=$(grep -c 'Connected to' "$work/single.err" || true)
}

declare -A t_med wire
for way in plain multi single; do
  echo "$way ..." >&2
  ts=()
  for _ in $(seq $runs); do
    "$way"
    ts+=("$secs")
  done
  t_med[$way]=$(median "${ts[@]}")
  wire[$way]=$((up + down))
done
boundary=$(bench_header multi Content-Type | sed -n 's/.*boundary=//p')
rebuild multi "$boundary"
rebuild single
cmp -s "$f/plain.body" "$f/new" || { echo "$0: the plain GET is not the new file" >&2; exit 1; }

# More ranges than MaxRanges: the whole file, 200.
capped_ranges=$(seq 0 59 | awk '{printf "%s%d-%d", (NR > 1 ? "," : ""), $1 * 4096, $1 * 4096 + 99}')
bench_curl capped "$f/capped.body" "$base/capped/file" -H "Range: bytes=$capped_ranges" -H "If-Range: $etag_new"
capped_code=$code capped_down=$down

pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", 100 * a / b}'; }
echo
echo "## bench/range_download.sh: ${size_mib} MiB, $nchanges edits of 100 bytes ($(date -u +%F), commit $commit)"
echo
echo "$nranges ranges ($need bytes, $(pct "$need" "$size")% of the file) from $(wc -l < "$f/new.ids") chunks; the new manifest: $manifest_wire bytes on the wire (not in the rows)."
echo
echo "| way | requests | wire bytes | % of file | loopback s | 100 Mbit/s, RTT 0 (model) s | 100 Mbit/s, RTT 20 ms (model) s |"
echo "|---|---|---|---|---|---|---|"
for way in plain multi single; do
  case $way in plain) n=1 ;; multi) n=1 ;; single) n=$nranges ;; esac
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$way" "$n" "${wire[$way]}" "$(pct "${wire[$way]}" "$size")" \
    "${t_med[$way]}" \
    "$(awk -v t="${t_med[$way]}" -v b="${wire[$way]}" 'BEGIN {printf "%.3f", t + b / 12500000}')" \
    "$(awk -v t="${t_med[$way]}" -v b="${wire[$way]}" -v n="$n" 'BEGIN {printf "%.3f", t + b / 12500000 + (n + 1) * 0.020}')"
done
echo
echo "single: $conns TCP connection(s) opened for its $nranges requests (curl -v); the RTT model counts one round trip for the connection and one per request in sequence."
echo "With 60 ranges under MaxRanges 50 (/dav/capped/): HTTP $capped_code, $capped_down bytes (the whole file when 200)."

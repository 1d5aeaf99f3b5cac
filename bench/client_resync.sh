#!/bin/bash
# Benchmark (issue 12): the re-sync of a large file after a 100-byte edit,
# with iss-sync against `Dav iss`, with rclone against the same server,
# and with rsync over loopback, in one run.
#   bench/client_resync.sh [SIZE_MIB]     (default 256)
# A private httpd serves a `Dav iss` location (/iss/) and a plain `Dav On`
# location (/plain/) and logs every request with mod_logio's %I and %O
# (bytes received and sent on the wire, headers included); an rsync
# daemon serves a module on another loopback port.  A pseudo-random file
# of SIZE_MIB MiB is synced to each; then 100 bytes in its middle change
# and each tool syncs again, timed:
#   - iss-sync LOCAL http://.../iss/x/            (manifest + missing chunks)
#   - iss-sync LOCAL http://.../plain/x/          (whole file: plain WebDAV)
#   - rclone sync LOCAL :webdav:/iss/r            (vendor other: it compares
#     sizes only, so it misses a same-size edit; shown as it is, then with
#     --ignore-times, which uploads the whole file)
#   - rsync -a --no-whole-file LOCAL rsync://...  (rsync's delta transfer;
#     bytes from its --stats "Total bytes sent/received")
# Bytes for the HTTP tools are the sums of %I + %O of the requests of the
# timed run (from the access log); wall time is the tool's own run.  Then
# the other direction for iss-sync: a second folder makes the edit, the
# first downloads it (chunks found locally, the rest by ranged GETs).
# Target (issue 12): iss-sync's bytes at most rsync's.  Needs ~4 x SIZE_MIB
# MiB under /tmp.  Run as root (httpd and rsyncd drop to www-data).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
size_mib=${1:-256}
case "$size_mib" in
  ''|*[!0-9]*|0) echo "usage: $0 [SIZE_MIB]" >&2; exit 2 ;;
esac
build="$top/build"
[ -x "$build/client/iss-sync" ] || bash "$top/scripts/build.sh" normal >/dev/null
sync="$build/client/iss-sync"
command -v rclone >/dev/null && command -v rsync >/dev/null \
  || { echo "needs rclone and rsync (scripts/deps.sh installs them)" >&2; exit 2; }
. "$top/bench/lib.sh"
bench_work iss-bench-resync
rsync_pid=
trap 'test -n "$rsync_pid" && kill "$rsync_pid" 2>/dev/null; bench_cleanup' EXIT
port=$(bench_free_port)
rport=$(bench_free_port)
mkdir -p "$work"/{logs,iss,plain,state,rsync,local,local2,cstate}
{ bench_conf_head "$work" "$port" "$build"; cat <<CONF
LogFormat "%>s %I %O \"%r\"" io
CustomLog logs/io_log io
Alias /iss "$work/iss"
Alias /plain "$work/plain"
<Location /iss/>
    Dav iss
    ISSStateDir "$work/state"
</Location>
<Location /plain/>
    Dav On
</Location>
CONF
} > "$work/httpd.conf"
cat > "$work/rsyncd.conf" <<CONF
pid file = $work/logs/rsyncd.pid
use chroot = no
[bench]
    path = $work/rsync
    read only = no
$([ "$(id -u)" = 0 ] && printf '    uid = www-data\n    gid = www-data\n')
CONF
if [ "$(id -u)" = 0 ]; then chown www-data: "$work"; chown -R www-data: "$work"/{logs,iss,plain,state,rsync}; fi
/usr/sbin/apache2 -f "$work/httpd.conf" -k start
started=1
rsync --daemon --no-detach --address=127.0.0.1 --port="$rport" --config="$work/rsyncd.conf" &
rsync_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/iss/" && break; sleep 0.1; done
sleep 0.3

f="$work/local/big.bin"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$f"
size=$(stat -c %s "$f")
log="$work/logs/io_log"
mark() { wc -l < "$log"; }
wire() { sleep 0.3; awk -v from="$1" 'NR > from { n += $2 + $3 } END { print n + 0 }' "$log"; }
timeit() { local t0; t0=$(now); "$@" > "$work/last.out" 2>&1 || { cat "$work/last.out" >&2; return 1; }; awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
rclone_to() { rclone -q sync "$work/local" ":webdav:$1" --webdav-url "http://127.0.0.1:$port" "${@:2}"; }

echo "== initial copies ($size_mib MiB)"
"$sync" -q --state-dir "$work/cstate/a" "$work/local" "http://127.0.0.1:$port/iss/x/"
"$sync" -q --state-dir "$work/cstate/p" "$work/local" "http://127.0.0.1:$port/plain/x/"
rclone_to /iss/r
rclone_to /iss/r2
rsync -a "$work/local/" "rsync://127.0.0.1:$rport/bench/"

echo "== 100 bytes changed in the middle"
printf '%0100d' 7 | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc status=none

results=()
m=$(mark); t=$(timeit "$sync" --state-dir "$work/cstate/a" "$work/local" "http://127.0.0.1:$port/iss/x/"); b=$(wire "$m")
results+=("iss-sync -> Dav iss|$b|$t")
cmp -s "$f" "$work/iss/x/big.bin" || { echo "iss-sync: the server's copy differs" >&2; exit 1; }
m=$(mark); t=$(timeit "$sync" --state-dir "$work/cstate/p" "$work/local" "http://127.0.0.1:$port/plain/x/"); b=$(wire "$m")
results+=("iss-sync -> Dav On (whole file)|$b|$t")
cmp -s "$f" "$work/plain/x/big.bin" || { echo "iss-sync (plain): the server's copy differs" >&2; exit 1; }
m=$(mark); t=$(timeit rclone_to /iss/r); b=$(wire "$m")
same=$(cmp -s "$f" "$work/iss/r/big.bin" && echo "synced" || echo "edit MISSED")
results+=("rclone sync (default; $same)|$b|$t")
m=$(mark); t=$(timeit rclone_to /iss/r2 --ignore-times); b=$(wire "$m")
results+=("rclone sync --ignore-times|$b|$t")
cmp -s "$f" "$work/iss/r2/big.bin" || { echo "rclone --ignore-times: the server's copy differs" >&2; exit 1; }
t0=$(now)
rsync -a --no-whole-file --stats "$work/local/" "rsync://127.0.0.1:$rport/bench/" > "$work/rsync.out"
t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
b=$(awk -F: '/Total bytes sent|Total bytes received/ { gsub(/[ ,]/, "", $2); n += $2 } END { print n }' "$work/rsync.out")
results+=("rsync over loopback (daemon)|$b|$t")
rsync_bytes=$b
cmp -s "$f" "$work/rsync/big.bin" || { echo "rsync: the copy differs" >&2; exit 1; }

echo "== the other direction: a second folder edits, the first downloads"
"$sync" -q --state-dir "$work/cstate/b" "$work/local2" "http://127.0.0.1:$port/iss/x/"
printf '%0100d' 9 | dd of="$work/local2/big.bin" bs=1 seek=$((size / 3)) conv=notrunc status=none
"$sync" -q --state-dir "$work/cstate/b" "$work/local2" "http://127.0.0.1:$port/iss/x/"
m=$(mark); t=$(timeit "$sync" --state-dir "$work/cstate/a" "$work/local" "http://127.0.0.1:$port/iss/x/"); b=$(wire "$m")
results+=("iss-sync <- Dav iss (download)|$b|$t")
cmp -s "$f" "$work/local2/big.bin" || { echo "iss-sync download: the copies differ" >&2; exit 1; }

echo
printf '%-40s %14s %8s %9s\n' "re-sync after a 100-byte edit" "bytes on wire" "of file" "seconds"
for r in "${results[@]}"; do
  IFS='|' read -r name bytes secs <<<"$r"
  printf '%-40s %14s %7.3f%% %9s\n' "$name" "$bytes" "$(awk -v b="$bytes" -v s="$size" 'BEGIN { print 100 * b / s }')" "$secs"
done
iss_bytes=$(printf '%s\n' "${results[0]}" | cut -d'|' -f2)
echo
if [ "$iss_bytes" -le "$rsync_bytes" ]; then
  echo "PASS iss-sync's bytes ($iss_bytes) at most rsync's ($rsync_bytes)"
else
  echo "FAIL iss-sync's bytes ($iss_bytes) more than rsync's ($rsync_bytes)"
fi

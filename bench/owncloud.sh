#!/bin/bash
# Benchmark: what ISSOwnCloudCompat On (SHA-1 and MD5 computed with the
# SHA-256 of every write) costs a PUT, against the same location without
# it and against plain mod_dav_fs, in one server and run.
#   bench/owncloud.sh [BUILD_DIR] [MIB] [ROUNDS]     (default: build, 256, 3)
# Prints, per location, the median MB/s of a PUT of MIB MiB of random
# bytes (overwriting the same file each round) and the CPU seconds
# httpd's processes spent per GiB (user + system, from /proc), and the
# single-core speed of each hash on this CPU (openssl speed, 64 KiB
# blocks) for comparison.  Run as root (httpd's children run as
# www-data) or as a user.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
mib=${2:-256}
rounds=${3:-3}
[ -f "$build/mod_iss.so" ] || { echo "no $build/mod_iss.so: run scripts/build.sh first" >&2; exit 2; }
. "$top/bench/lib.sh"
bench_work iss-bench-oc
port=$(bench_free_port)
mkdir -p "$work"/{logs,plain,iss,oc,state-iss,state-oc}
{ bench_conf_head "$work" "$port" "$build"; cat <<CONF
LimitRequestBody 0
<Location /plain/>
    Dav On
</Location>
<Location /iss/>
    Dav iss
    ISSStateDir "$work/state-iss"
</Location>
<Location /oc/>
    Dav iss
    ISSStateDir "$work/state-oc"
    ISSOwnCloudCompat On
</Location>
CONF
} > "$work/httpd.conf"
bench_start
head -c "$((mib << 20))" /dev/urandom > "$work/data"

# CPU ticks (user + system) of every process of this httpd.
httpd_ticks() {
  local ppid total=0 pid
  ppid=$(cat "$work/logs/httpd.pid")
  for pid in $ppid $(pgrep -P "$ppid"); do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

printf '%-8s %10s %14s\n' location 'MB/s' 'CPU s / GiB'
for loc in plain iss oc; do
  speeds=() cpus=()
  for r in $(seq "$rounds"); do
    t0=$(httpd_ticks); s0=$(now)
    curl -s -o /dev/null -w '' -T "$work/data" "http://127.0.0.1:$port/$loc/f.bin"
    s1=$(now); t1=$(httpd_ticks)
    speeds+=("$(echo "$mib * 1.048576 / ($s1 - $s0)" | bc -l)")
    cpus+=("$(echo "($t1 - $t0) / $hz * 1024 / $mib" | bc -l)")
  done
  printf '%-8s %10.0f %14.2f\n' "$loc" "$(median "${speeds[@]}")" "$(median "${cpus[@]}")"
done
echo
echo "one core, openssl speed -evp, 64 KiB blocks (MB/s):"
for a in sha256 sha1 md5; do
  openssl speed -seconds 2 -bytes 65536 -evp "$a" 2>/dev/null \
    | awk -v a="$a" '$1 == a { printf "  %-7s %6.0f\n", a, $2 / 1000 }'
done

#!/bin/bash
# Benchmark (issue 13): what two builds of mod_iss cost per small write,
# measured alternately so that the machine's drift falls on both alike.
#   bench/ab_builds.sh OLD_BUILD NEW_BUILD
# For each of ISS_BENCH_RUNS rounds (default 3), first OLD_BUILD, then
# NEW_BUILD: a fresh httpd (3 event children, the default) with /plain/
# (Dav On) and /iss/ (Dav iss, ISSStateSync On) on one new filesystem
# (ext4 with a journal on a loop-mounted sparse image when run as root,
# as bench/small_ops.sh does; a folder under TMPDIR otherwise), and in
# each location, N = ISS_BENCH_N (default 3,000) requests from 8 clients:
# MKCOL of N folders, PUT of N new 4 KiB files, two rounds of N
# overwrites of them, DELETE of them.  It prints, per phase and build,
# the median of httpd's CPU time per request (user + system of all its
# processes) through each location and what /iss/ costs beyond /plain/,
# and the median rate ratio.  This is how a change of a few tens of
# microseconds per write is told from noise: small_ops.sh's single
# phases move by up to 40% from run to run on this 2-core machine, but
# the two builds run minutes apart here, on identical fresh
# filesystems.  Exits 1 if an answer had an unexpected status.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# = 2 ] || { echo "usage: $0 OLD_BUILD NEW_BUILD" >&2; exit 2; }
old=$(cd "$1" && pwd)
new=$(cd "$2" && pwd)
for b in "$old" "$new"; do
  [ -f "$b/mod_iss.so" ] || { echo "no $b/mod_iss.so: build it first (scripts/build.sh)" >&2; exit 2; }
done
n=${ISS_BENCH_N:-3000}
runs=${ISS_BENCH_RUNS:-3}
fs=$([ "$(id -u)" = 0 ] && echo ext4 || echo host)
if [ "$fs" = ext4 ] && ! command -v mkfs.ext4 >/dev/null; then
  apt-get install -y e2fsprogs >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y e2fsprogs >/dev/null; }
fi
make -s -C "$new" bench/http_load >/dev/null
load="$new/bench/http_load"
. "$top/bench/lib.sh"
bench_work iss-ab
port=$(bench_free_port)
results="$work/results"
: > "$results"

hz=$(getconf CLK_TCK)

# phase BUILD LOC NAME METHOD STATUS URL [http_load args]
phase() {
  local b=$1 loc=$2 name=$3 method=$4 status=$5 url=$6 t0 t1 out rate
  shift 6
  t0=$(bench_httpd_ticks)
  out=$("$load" -c 8 -n "$n" -m "$method" -s "$status" "$@" 127.0.0.1 "$port" "$url")
  t1=$(bench_httpd_ticks)
  case "$out" in *" unexpected 0"*) ;; *) echo "$b $loc $name: $out" >&2; exit 1 ;; esac
  rate=$(sed -n 's/.* rate \([0-9.]*\) .*/\1/p' <<<"$out")
  echo "$b $name $loc $rate $(( (t1 - t0) * 1000000 / hz / n ))" >> "$results"
}

server() {   # server BUILD: a fresh filesystem and httpd
  local build=$1
  bench_stop
  if [ "$fs" = ext4 ] && mountpoint -q "$work/fs"; then
    umount "$work/fs"
    bench_mounts=()
  fi
  rm -rf "$work/fs" "$work/fs.img"
  mkdir -p "$work/fs" "$work/logs"
  if [ "$fs" = ext4 ]; then
    truncate -s 4G "$work/fs.img"
    mkfs.ext4 -q -F "$work/fs.img"
    mount -o loop "$work/fs.img" "$work/fs"
    bench_mounts=("$work/fs")
  fi
  mkdir -p "$work/fs/plain" "$work/fs/iss" "$work/fs/state"
  { bench_conf_head "$work" "$port" "$build"; cat <<CONF
Alias /plain/ "$work/fs/plain/"
Alias /iss/ "$work/fs/iss/"
<Directory "$work/fs">
    Require all granted
</Directory>
<Location /plain/>
    Dav On
</Location>
<Location /iss/>
    Dav iss
    ISSStateDir "$work/fs/state"
</Location>
CONF
  } > "$work/httpd.conf"
  bench_start
}

for r in $(seq "$runs"); do
  for b in old new; do
    [ "$b" = old ] && server "$old" || server "$new"
    for loc in plain iss; do
      "$load" -c 1 -n 1 -m MKCOL -s 201 127.0.0.1 "$port" "/$loc/m/" >/dev/null
      "$load" -c 1 -n 1 -m MKCOL -s 201 127.0.0.1 "$port" "/$loc/f/" >/dev/null
      phase $b $loc MKCOL MKCOL 201 "/$loc/m/d%d/"
      phase $b $loc "PUT new" PUT 201 "/$loc/f/f%d" -b 4096
      phase $b $loc "PUT over" PUT 204 "/$loc/f/f%d" -b 4096
      phase $b $loc "PUT over" PUT 204 "/$loc/f/f%d" -b 4096
      phase $b $loc DELETE DELETE 204 "/$loc/f/f%d"
    done
  done
done

echo "httpd CPU us per request (median of $runs rounds; overwrites: of 2x$runs), N=$n, fs=$fs"
echo "iss-plain: the median of each round's difference (the same server and minute)"
printf '%-9s %-4s %8s %8s %9s %10s %9s  %s\n' phase build plain iss "iss-plain" "plain/iss" "rate i/p" "per round: iss-plain"
for ph in MKCOL "PUT new" "PUT over" DELETE; do
  for b in old new; do
    pc=() ic=() rr=() dd=()
    while read -r pr pu ir iu; do
      pc+=("$pu"); ic+=("$iu"); dd+=($((iu - pu)))
      rr+=("$(awk -v a="$ir" -v b="$pr" 'BEGIN { printf "%.3f", a / b }')")
    done < <(paste -d' ' <(awk -v b=$b -v p="$ph" '$1 == b && substr($0, length(b) + 2, length(p)) == p && $(NF - 2) == "plain" {print $(NF - 1), $NF}' "$results") \
                         <(awk -v b=$b -v p="$ph" '$1 == b && substr($0, length(b) + 2, length(p)) == p && $(NF - 2) == "iss" {print $(NF - 1), $NF}' "$results"))
    p=$(median "${pc[@]}") i=$(median "${ic[@]}")
    printf '%-9s %-4s %8s %8s %9s %10s %9s  %s\n' "$ph" "$b" "$p" "$i" "$(median "${dd[@]}")" \
      "$(awk -v a="$p" -v b="$i" 'BEGIN { printf "%.2f", a / b }')" "$(median "${rr[@]}")" "${dd[*]}"
  done
done
echo "(old: $old; new: $new)"

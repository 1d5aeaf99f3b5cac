#!/bin/bash
# Benchmark: what mod_iss's capture point (intent recorded before, settled
# after, in a crash-safe store) costs per write, against plain mod_dav_fs
# in the same server and run.
#   bench/write_overhead.sh [BUILD_DIR] [N]     (default: build, 300)
# Prints requests per second for PUT (new small files), PUT (overwrite),
# DELETE and MKCOL on `Dav On` and `Dav iss` and the ratio iss/plain, for
# each DBM type, and for sdbm with ISSStateSync Off ("nosync").  One
# client, one request at a time (bench/small_ops.sh: 8 clients).  The
# MKCOL rows came with issue 13; the other rows are as before.  Run as root (httpd's children run as www-data) or as a user.
# ISS_BENCH_PRELOAD=/usr/lib/x86_64-linux-gnu/libeatmydata.so (Debian
# package eatmydata) turns fsync into a no-op, to see what it costs.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
n=${2:-300}
[ -f "$build/mod_iss.so" ] || { echo "no $build/mod_iss.so: run scripts/build.sh first" >&2; exit 2; }
work=$(mktemp -d /tmp/iss-bench.XXXXXX)
. "$top/bench/lib.sh"
port=$(bench_free_port)
mkdir -p "$work"/{logs,plain,sdbm,gdbm,db,nosync,state-sdbm,state-gdbm,state-db,state-nosync}
{ bench_conf_head "$work" "$port" "$build"; cat <<CONF
<Location /plain/>
    Dav On
</Location>
CONF
} > "$work/httpd.conf"
for t in sdbm gdbm db; do
  printf '<Location /%s/>\n    Dav iss\n    ISSStateDir "%s/state-%s"\n    ISSDBMType %s\n</Location>\n' "$t" "$work" "$t" "$t" >> "$work/httpd.conf"
done
printf '<Location /nosync/>\n    Dav iss\n    ISSStateDir "%s/state-nosync"\n    ISSStateSync Off\n</Location>\n' "$work" >> "$work/httpd.conf"
[ "$(id -u)" = 0 ] && chown -R www-data: "$work"
${ISS_BENCH_PRELOAD:+env LD_PRELOAD=$ISS_BENCH_PRELOAD} /usr/sbin/apache2 -f "$work/httpd.conf" -k start
trap '/usr/sbin/apache2 -f "$work/httpd.conf" -k stop; sleep 1; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

perl - "$port" "$n" <<'PERL'
use strict; use warnings;
use LWP::UserAgent; use HTTP::Request; use Time::HiRes qw(time);
my ($port, $n) = @ARGV;
my $ua = LWP::UserAgent->new(keep_alive => 1);
sub run {
    my ($loc, $method, $body) = @_;
    my $t0 = time;
    for my $i (1 .. $n) {
        my $r = $ua->request(HTTP::Request->new($method => "http://127.0.0.1:$port/$loc/f$i", [], $body));
        die "$method /$loc/f$i: " . $r->status_line . "\n" unless $r->is_success;
    }
    return $n / (time - $t0);
}
printf "%-8s %-14s %10s %10s %8s\n", 'dbm', 'operation', 'plain/s', 'iss/s', 'iss/plain';
for my $t (qw(sdbm gdbm db nosync)) {
    for my $op (['PUT new', 'PUT', 'x' x 1000], ['PUT overwrite', 'PUT', 'y' x 1000], ['DELETE', 'DELETE', undef],
                ['MKCOL', 'MKCOL', undef]) {
        my $p = run('plain', $op->[1], $op->[2]);
        my $i = run($t, $op->[1], $op->[2]);
        printf "%-8s %-14s %10.0f %10.0f %8.2f\n", $t, $op->[0], $p, $i, $i / $p;
    }
    # MKCOL made f1 .. fN as folders: remove them for the next type.
    run('plain', 'DELETE', undef);
    run($t, 'DELETE', undef);
}
PERL

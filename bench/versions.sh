#!/bin/bash
# Benchmark: what retained versions cost (issue 15 item 1; docs/design.md
# 3e).  One private httpd, three locations that differ only in
# ISSKeepVersions: /off/ (no versions), /on/ (On: packing after the
# response, chunks used in place in the live file) and /nopack/ (On
# pack=off: the data file stays until iss-state gc-versions, which packs
# it without using live files, as before).
#   bench/versions.sh [BUILD_DIR] [N] [MIB]     (default: build, 300, 32)
# Prints (1) the median latency of N overwrites of one 4 KiB file with
# versions off and on (one keep-alive connection each, interleaved), and
# (2) the space a version takes after a 100-byte edit of a MIB MiB file,
# from `iss-state DIR versions`: right after the write and after
# gc-versions, for /on/ and /nopack/; and the time of that PUT and of the
# next request on the same connection (which waits for the packing).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
n=${2:-300}
mib=${3:-32}
[ -f "$build/mod_iss.so" ] || { echo "no $build/mod_iss.so: run scripts/build.sh first" >&2; exit 2; }
. "$top/bench/lib.sh"
bench_work iss-bench-versions
port=$(bench_free_port)
mkdir -p "$work"/{logs,off,on,nopack,state-off,state-on,state-nopack}
{ bench_conf_head "$work" "$port" "$build"
  printf '<Location /off/>\n    Dav iss\n    ISSStateDir "%s/state-off"\n</Location>\n' "$work"
  printf '<Location /on/>\n    Dav iss\n    ISSStateDir "%s/state-on"\n    ISSKeepVersions On\n</Location>\n' "$work"
  printf '<Location /nopack/>\n    Dav iss\n    ISSStateDir "%s/state-nopack"\n    ISSKeepVersions On pack=off\n</Location>\n' "$work"
} > "$work/httpd.conf"
as_httpd=()
if [ "$(id -u)" = 0 ]; then chown -R www-data: "$work"; as_httpd=(runuser -u www-data --); fi
/usr/sbin/apache2 -f "$work/httpd.conf" -k start
started=1
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

perl - "$port" "$n" "$mib" "$work" "$build/tools/iss-state" "${as_httpd[@]}" <<'PERL'
use strict; use warnings;
use LWP::UserAgent; use HTTP::Request; use Time::HiRes qw(time sleep);
my ($port, $n, $mib, $work, $tool, @as) = @ARGV;
my %ua = map { $_ => LWP::UserAgent->new(keep_alive => 1) } qw(off on nopack);
sub put {
    my ($loc, $name, $body) = @_;
    my $t0 = time;
    my $r = $ua{$loc}->request(HTTP::Request->new(PUT => "http://127.0.0.1:$port/$loc/$name", [], $body));
    die "PUT /$loc/$name: " . $r->status_line . "\n" unless $r->is_success;
    return time - $t0;
}
sub median { my @v = sort { $a <=> $b } @_; $v[$#v / 2] }
sub usage {
    my ($loc) = @_;
    my $out = `@as '$tool' '$work/state-$loc' versions`;
    my %u = $out =~ /^([a-z ()]+): (\d+)$/mg;
    return \%u;
}
sub random { open(my $fh, '<:raw', '/dev/urandom') or die; read($fh, my $b, $_[0]); $b }

# (1) latency of 4 KiB overwrites
my (%lat);
for my $loc (qw(off on nopack)) { put($loc, 'small', random(4096)) for 1 .. 5 }   # warm up
for my $i (1 .. $n) {
    for my $loc (qw(off on nopack)) { push @{ $lat{$loc} }, put($loc, 'small', random(4096)) }
}
printf "4 KiB overwrites, %d each, median ms: versions off %.2f, on %.2f (+%.2f), on pack=off %.2f\n", $n,
       1000 * median(@{ $lat{off} }), 1000 * median(@{ $lat{on} }),
       1000 * (median(@{ $lat{on} }) - median(@{ $lat{off} })), 1000 * median(@{ $lat{nopack} });

# (2) space of a 100-byte edit of a MIB MiB file
my $big = random($mib << 20);
for my $loc (qw(on nopack)) {
    put($loc, 'big', $big);
    my $u0 = usage($loc);
    my $edit = $big;
    substr($edit, int(length($big) / 2), 100) = 'E' x 100;
    my $tput = put($loc, 'big', $edit);
    my $t0 = time;
    my $r = $ua{$loc}->get("http://127.0.0.1:$port/$loc/");     # waits for the packing
    my $tnext = time - $t0;
    sleep 0.5;
    my $u1 = usage($loc);
    system("@as '$tool' '$work/state-$loc' gc-versions > /dev/null") == 0 or die "gc-versions\n";
    my $u2 = usage($loc);
    my $sp = sub { my ($u) = @_; ($u->{'data bytes on disk'} - $u0->{'data bytes on disk'})
                                 + ($u->{'chunk bytes on disk'} - $u0->{'chunk bytes on disk'}) };
    printf "/%s/: %d MiB, 100 bytes edited: PUT %.0f ms, next request %.0f ms; the version takes %d bytes "
           . "after the write, %d after gc-versions (%d bytes used in place in the live file)\n",
           $loc, $mib, 1000 * $tput, 1000 * $tnext, $sp->($u1), $sp->($u2), $u2->{'chunk bytes held by live files'};
}
PERL

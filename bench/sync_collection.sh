#!/bin/bash
# Benchmark: what an RFC 6578 sync-collection REPORT saves a client that
# looks for the few files changed in a large tree, against what a client
# does without sync tokens, in the same server and run.
#   bench/sync_collection.sh [BUILD_DIR]     (default: build)
# Creates on disk (not over HTTP) a tree of 100,000 files in 1,000 folders
# (/s/) and one of 1,000 files in 10 folders (/small/), both `Dav iss` with
# their own ISSStateDir and DavDepthInfinity On, takes a sync token with an
# initial sync (empty token), then, each round, PUTs 10 files in 10
# different folders and asks what changed:
#   (a) REPORT sync-collection, sync-level infinite, with the last token;
#   (b) PROPFIND Depth 1 on the root and on every folder (1,001 requests on
#       one keep-alive connection), as clients without tokens do;
#   (c) one PROPFIND Depth infinity on the root.
# All ask for getetag, getcontentlength, getlastmodified and resourcetype.
# Prints wall time and bytes on the wire (requests and responses, headers
# included) of each, the ratios (b)/(a) and (c)/(a) against the targets
# (100x time, 1,000x bytes), and the REPORT time on the small tree against
# the large one (target: within 2x).  (a) is the median of the rounds.
# Exits non-zero if an answer is wrong: (a) must list exactly the 10
# changed files with their new ETags; (b) and (c) must hold those ETags.
# Run as root (httpd's children run as www-data) or as a user.
# Environment: ISS_BENCH_ROUNDS (default 5), ISS_BENCH_FOLDERS and
# ISS_BENCH_FILES (large tree shape, default 1000 and 100),
# ISS_BENCH_DAV=On (plain mod_dav_fs on both trees: only (b) and (c)).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
rounds=${ISS_BENCH_ROUNDS:-5}
folders=${ISS_BENCH_FOLDERS:-1000}
files=${ISS_BENCH_FILES:-100}
dav=${ISS_BENCH_DAV:-iss}
[ -f "$build/mod_iss.so" ] || { echo "no $build/mod_iss.so: run scripts/build.sh first" >&2; exit 2; }
build=$(cd "$build" && pwd)
case "$dav" in iss|On) ;; *) echo "ISS_BENCH_DAV must be iss or On" >&2; exit 2 ;; esac
commit=$(git -C "$top" describe --always --dirty --abbrev=12 2>/dev/null || echo "unknown (no git checkout)")
version=$(sed -n 's/^#define ISS_VERSION "\(.*\)"/\1/p' "$top/libiss/iss_version.h" 2>/dev/null || true)
work=$(mktemp -d /tmp/iss-bench-sync.XXXXXX)
. "$top/bench/lib.sh"
port=$(bench_free_port)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{logs,s,small,state-s,state-small}

echo "creating the trees on disk ..." >&2
perl - "$work/s" "$folders" "$files" "$work/small" 10 100 <<'PERL'
use strict; use warnings;
while (my ($root, $nd, $nf) = splice(@ARGV, 0, 3)) {
    for my $d (0 .. $nd - 1) {
        my $dir = sprintf '%s/d%04d', $root, $d;
        mkdir $dir or die "mkdir $dir: $!\n";
        for my $f (0 .. $nf - 1) {
            my $path = sprintf '%s/f%03d.txt', $dir, $f;
            my $text = sprintf "d%04d/f%03d.txt ", $d, $f;
            open my $fh, '>', $path or die "$path: $!\n";
            print $fh substr($text . ('x' x 100), 0, 99), "\n";
            close $fh or die "$path: $!\n";
        }
    }
}
PERL

loc() {  # loc NAME
  printf '<Location /%s/>\n    Dav %s\n    DavDepthInfinity On\n' "$1" "$dav"
  [ "$dav" = iss ] && printf '    ISSStateDir "%s/state-%s"\n' "$work" "$1"
  printf '</Location>\n'
}
{ bench_conf_head "$work" "$port" "$build"; cat <<CONF
LogLevel warn iss:debug
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60
$(loc s)
$(loc small)
CONF
} > "$work/httpd.conf"
[ "$(id -u)" = 0 ] && chown -R www-data: "$work"
/usr/sbin/apache2 -f "$work/httpd.conf" -k start
trap '/usr/sbin/apache2 -f "$work/httpd.conf" -k stop; sleep 1; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

echo "mod_iss sync-collection benchmark"
echo "machine: $(nproc) CPUs, $(uname -sr), $(uname -m)"
echo "mod_iss: ${version:-?}, commit $commit, build $build"
echo "trees: /s/ $((folders * files)) files in $folders folders; /small/ 1000 files in 10 folders;" \
     "files of 100 bytes; Dav $dav; 10 changes per round, $rounds rounds"
status=0
perl - "$port" "$rounds" "$folders" "$files" "$dav" <<'PERL' || status=$?
use strict; use warnings;
use IO::Socket::INET; use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time);

my ($port, $rounds, $nfolders, $nfiles, $dav) = @ARGV;
my $iss = $dav eq 'iss';
my @fail;
sub fail { push @fail, join('', @_); print STDERR "FAIL: ", @_, "\n"; }
sub note { print STDERR @_, "\n"; }

# --- a minimal HTTP/1.1 client that counts every byte on the wire --------
my ($sock, $rbuf) = (undef, '');
my ($sent, $recv) = (0, 0);    # running totals
sub conn {
    return $sock if $sock;
    $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp')
        or die "connect 127.0.0.1:$port: $!\n";
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    $rbuf = '';
    return $sock;
}
sub more {    # read more bytes into $rbuf; false at EOF
    my $n = sysread($sock, $rbuf, 262144, length $rbuf);
    die "read: $!\n" unless defined $n;
    $recv += $n;
    return $n;
}
sub request {    # request(METHOD, PATH, {headers}, BODY) -> {status, h, body}
    my ($method, $path, $hdrs, $body) = @_;
    $body //= '';
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n";
    $req .= "$_: $hdrs->{$_}\r\n" for sort keys %{ $hdrs || {} };
    $req .= "Content-Length: " . length($body) . "\r\n" if length $body || $method eq 'PUT';
    $req .= "\r\n" . $body;
    for my $try (1, 2) {    # a kept-alive connection the server closed: once more
        conn();
        my $off = 0;
        while ($off < length $req) {
            my $n = syswrite($sock, $req, length($req) - $off, $off);
            die "write: $!\n" unless defined $n;
            $off += $n;
        }
        $sent += length $req;
        my $end;
        while (($end = index($rbuf, "\r\n\r\n")) < 0) {
            last unless more();
        }
        if ($end < 0) {
            die "$method $path: connection closed without an answer\n" if $try == 2 || length $rbuf;
            undef $sock;
            next;
        }
        my @lines = split /\r\n/, substr($rbuf, 0, $end);
        substr($rbuf, 0, $end + 4) = '';
        my ($st) = (shift(@lines) =~ m{^HTTP/1\.\d (\d{3})}) or die "$method $path: bad status line\n";
        my %h;
        for (@lines) { my ($k, $v) = /^([^:]+):\s*(.*)$/ or next; $h{lc $k} = $v; }
        my @parts;
        if ($method eq 'HEAD' || $st =~ /^(1|204|304)/) {
        }
        elsif (($h{'transfer-encoding'} // '') =~ /chunked/i) {
            my $pos = 0;
            while (1) {
                my $eol;
                while (($eol = index($rbuf, "\r\n", $pos)) < 0) {
                    substr($rbuf, 0, $pos) = ''; $pos = 0;
                    more() or die "$method $path: EOF in chunk size\n";
                }
                my $size = hex substr($rbuf, $pos, $eol - $pos);
                $pos = $eol + 2;
                if ($size == 0) {    # no trailers expected: the final CRLF
                    while (length($rbuf) - $pos < 2) { more() or die "EOF after last chunk\n"; }
                    $pos += 2;
                    last;
                }
                while (length($rbuf) - $pos < $size + 2) {
                    substr($rbuf, 0, $pos) = ''; $pos = 0;
                    more() or die "$method $path: EOF in chunk\n";
                }
                push @parts, substr($rbuf, $pos, $size);
                $pos += $size + 2;
            }
            substr($rbuf, 0, $pos) = '';
        }
        elsif (defined $h{'content-length'}) {
            my $len = $h{'content-length'};
            while (length $rbuf < $len) { more() or die "$method $path: EOF in body\n"; }
            push @parts, substr($rbuf, 0, $len, '');
        }
        else {
            1 while more();
            push @parts, $rbuf; $rbuf = '';
            $h{connection} = 'close';
        }
        if (($h{connection} // '') =~ /close/i) { close $sock; undef $sock; }
        return { status => $st, h => \%h, body => join('', @parts) };
    }
}

# --- WebDAV helpers -------------------------------------------------------
my $PROPS = '<D:prop><D:getetag/><D:getcontentlength/><D:getlastmodified/><D:resourcetype/></D:prop>';
my $XML = '<?xml version="1.0" encoding="utf-8"?>' . "\n";
my %XMLH = ('Content-Type' => 'application/xml; charset=utf-8');
sub unesc { my $s = shift; $s =~ s{^https?://[^/]+}{}; $s =~ s/&amp;/&/g; $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; $s }
sub strong { my $e = shift // ''; $e =~ s{^W/}{}; $e }
# responses(BODY) -> list of {href, etag, status (of a response without propstat), coll}
sub responses {
    my $b = shift;
    my @r;
    while ($b =~ m{<(?:[\w.-]+:)?response\b[^>]*>(.*?)</(?:[\w.-]+:)?response>}gs) {
        my $x = $1;
        my %e;
        ($e{href}) = $x =~ m{<(?:[\w.-]+:)?href>([^<]*)</};
        $e{href} = unesc($e{href} // '');
        if ($x =~ m{<(?:[\w.-]+:)?propstat\b}) {
            # getetag of the propstat that is 200
            for my $ps ($x =~ m{<(?:[\w.-]+:)?propstat\b[^>]*>(.*?)</(?:[\w.-]+:)?propstat>}gs) {
                next unless $ps =~ m{<(?:[\w.-]+:)?status>HTTP/1\.\d 200};
                ($e{etag}) = $ps =~ m{<(?:[\w.-]+:)?getetag\b[^>]*>([^<]*)</};
                $e{etag} =~ s/&quot;/"/g if defined $e{etag};
                $e{coll} = 1 if $ps =~ m{<(?:[\w.-]+:)?collection\s*/>};
            }
        }
        else {
            ($e{status}) = $x =~ m{<(?:[\w.-]+:)?status>HTTP/1\.\d (\d{3})};
        }
        push @r, \%e;
    }
    return @r;
}
sub token_of {    # the DAV:sync-token after the responses
    my $b = shift;
    $b =~ s{<(?:[\w.-]+:)?response\b.*</(?:[\w.-]+:)?response>}{}s;
    my ($t) = $b =~ m{<(?:[\w.-]+:)?sync-token>\s*([^<]*?)\s*</};
    return $t;
}
sub xesc { my $s = shift; $s =~ s/&/&amp;/g; $s =~ s/</&lt;/g; $s }
sub report_body {
    my $tok = shift;
    return $XML . '<D:sync-collection xmlns:D="DAV:">'
        . (length $tok ? '<D:sync-token>' . xesc($tok) . '</D:sync-token>' : '<D:sync-token/>')
        . '<D:sync-level>infinite</D:sync-level>' . $PROPS . '</D:sync-collection>';
}
my $PROPFIND = $XML . '<D:propfind xmlns:D="DAV:">' . $PROPS . '</D:propfind>';
sub propfind { my ($path, $depth) = @_; request('PROPFIND', $path, { %XMLH, Depth => $depth }, $PROPFIND) }

# Measure a block: returns (seconds, bytes) of what it sent and received.
sub measure {
    my $code = shift;
    my ($s0, $r0) = ($sent, $recv);
    my $t0 = time;
    my @out = $code->();
    return (time - $t0, $sent - $s0 + $recv - $r0, @out);
}
sub median { my @s = sort { $a <=> $b } @_; @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2 }
sub commas { my $n = sprintf '%.0f', shift; 1 while $n =~ s/^(\d+)(\d{3})/$1,$2/; $n }

# A sync with a token (empty: initial); follows 507 continuations.
# Returns (seconds, bytes, requests, token, [responses]) or dies on a non-207.
sub sync {
    my ($root, $tok) = @_;
    my (@all, $nreq);
    my ($t, $bytes) = measure(sub {
        while (1) {
            $nreq++;
            my $r = request('REPORT', $root, { %XMLH, Depth => 0 }, report_body($tok));
            die "REPORT $root (token '" . ($tok // '') . "'): $r->{status}\n" . substr($r->{body}, 0, 600) . "\n"
                unless $r->{status} == 207;
            my @resp = responses($r->{body});
            $tok = token_of($r->{body});
            die "REPORT $root: no sync-token in the answer\n" unless defined $tok && length $tok;
            my @more = grep { ($_->{status} // 0) == 507 } @resp;
            push @all, grep { ($_->{status} // 0) != 507 } @resp;
            last unless @more;
        }
    });
    return ($t, $bytes, $nreq, $tok, \@all);
}

# Change 10 files of a tree, in 10 different folders; returns {path => etag}.
sub change {
    my ($root, $nd, $nf, $round) = @_;
    my %etag;
    my $step = int($nd / 10) || 1;
    for my $i (0 .. 9) {
        my $d = ($i * $step + ($round - 1) % $step) % $nd;
        my $path = sprintf '%sd%04d/f%03d.txt', $root, $d, ($round - 1) % $nf;
        my $text = substr("round $round change $i " . ('y' x 100), 0, 99) . "\n";
        my $r = request('PUT', $path, { 'Content-Type' => 'text/plain' }, $text);
        die "PUT $path: $r->{status}\n" unless $r->{status} =~ /^20[14]$/;
        my $e = $r->{h}{etag};
        unless (defined $e) {
            my ($x) = responses(propfind($path, 0)->{body});
            $e = $x->{etag};
        }
        $etag{$path} = strong($e);
    }
    return \%etag;
}

sub check_report {
    my ($what, $resp, $expect) = @_;
    my %seen;
    my @bad;
    for my $x (@$resp) {
        my $h = $x->{href};
        push @bad, "$h listed twice" if $seen{$h}++;
        if (!exists $expect->{$h}) { push @bad, "$h is listed but was not changed" . ($x->{status} ? " (status $x->{status})" : ''); }
        elsif (strong($x->{etag}) ne $expect->{$h}) { push @bad, "$h: etag " . ($x->{etag} // 'none') . ", expected $expect->{$h}"; }
    }
    push @bad, "$_ changed but is not listed" for grep { !$seen{$_} } sort keys %$expect;
    if (@bad) {
        fail("$what: the answer is not exactly the 10 changed files (", scalar(@$resp), " responses):");
        fail("  $_") for @bad[0 .. ($#bad < 19 ? $#bad : 19)];
    }
}
sub check_etags {
    my ($what, $resp, $expect) = @_;
    my %e = map { $_->{href} => strong($_->{etag}) } @$resp;
    for my $p (sort keys %$expect) {
        fail("$what: $p has etag ", ($e{$p} // 'none (not listed)'), ", expected $expect->{$p}")
            unless defined $e{$p} && $e{$p} eq $expect->{$p};
    }
}

my %tree = ('/s/' => [$nfolders, $nfiles], '/small/' => [10, 100]);
my (%tok, %init, %rep);
my $last_big;

if ($iss) {
    for my $root ('/s/', '/small/') {
        note("initial sync of $root ...");
        my ($t, $b, $n, $tok, $resp) = sync($root, '');
        my %u = map { $_->{href} => 1 } @$resp;
        my $want = $tree{$root}[0] * (1 + $tree{$root}[1]);
        fail("initial sync of $root: ", scalar(keys %u), " distinct members, expected $want")
            unless keys(%u) == $want;
        $init{$root} = [$t, $b, $n, scalar keys %u];
        $tok{$root} = $tok;
    }
}
for my $round (1 .. $rounds) {
    for my $root ('/small/', '/s/') {
        my $exp = change($root, @{ $tree{$root} }, $round);
        $last_big = $exp if $root eq '/s/';
        next unless $iss;
        my ($t, $b, $n, $tok, $resp) = sync($root, $tok{$root});
        check_report("REPORT $root round $round", $resp, $exp);
        $tok{$root} = $tok;
        push @{ $rep{$root} }, [$t, $b, $n];
    }
}
$last_big //= change('/s/', $nfolders, $nfiles, 1);

note("(b) PROPFIND Depth 1 on the root and every folder ...");
my ($tb, $bb, $nb, @bresp) = measure(sub {
    my $r = propfind('/s/', 1);
    die "PROPFIND /s/: $r->{status}\n" unless $r->{status} == 207;
    my @bodies = ($r->{body});
    my @dirs = grep { $_ ne '/s/' && m{/$} } map { $_->{href} } responses($r->{body});
    for my $d (@dirs) {
        my $x = propfind($d, 1);
        die "PROPFIND $d: $x->{status}\n" unless $x->{status} == 207;
        push @bodies, $x->{body};
    }
    return (1 + @dirs, @bodies);
});
@bresp = map { responses($_) } @bresp;
check_etags('(b)', \@bresp, $last_big);

note("(c) PROPFIND Depth infinity on the root ...");
my ($tc, $bc, $rc) = measure(sub { propfind('/s/', 'infinity') });
fail("(c) PROPFIND Depth infinity: $rc->{status}") unless $rc->{status} == 207;
my @cresp = responses($rc->{body});
check_etags('(c)', \@cresp, $last_big);

# --- the table ------------------------------------------------------------
print "\n";
for my $root (sort keys %init) {
    my ($t, $b, $n, $m) = @{ $init{$root} };
    printf "initial sync (empty token) of %-8s %7s members, %d request(s), %9.1f ms, %s bytes\n",
        $root, commas($m), $n, $t * 1000, commas($b);
}
my ($ta, $ba);
if ($iss) {
    $ta = median(map { $_->[0] } @{ $rep{'/s/'} });
    $ba = median(map { $_->[1] } @{ $rep{'/s/'} });
}
print "\n";
printf "%-52s %8s %12s %14s\n", 'what (tree /s/, after 10 changes)', 'requests', 'time ms', 'bytes';
printf "%-52s %8s %12s %14s\n", "(a) REPORT sync-collection with token (median of $rounds)",
    $iss ? (sort { $b <=> $a } map { $_->[2] } @{ $rep{'/s/'} })[0] : 1,
    $iss ? (sprintf('%.2f', $ta * 1000), commas($ba)) : ('n/a', 'n/a');
printf "%-52s %8d %12.1f %14s\n", '(b) PROPFIND Depth 1, root and every folder', $nb, $tb * 1000, commas($bb);
printf "%-52s %8d %12.1f %14s\n", '(c) PROPFIND Depth infinity, root', 1, $tc * 1000, commas($bc);
printf "responses: (b) %s, (c) %s\n", commas(scalar @bresp), commas(scalar @cresp);
if ($iss) {
    my $pf = sub { $_[0] ? 'PASS' : 'MISS' };
    print "\n";
    printf "%-10s %12s %12s   %s\n", 'ratio', 'time', 'bytes', 'target';
    printf "%-10s %11.0fx %11.0fx   time >= 100x: %s, bytes >= 1000x: %s\n", '(b)/(a)',
        $tb / $ta, $bb / $ba, $pf->($tb / $ta >= 100), $pf->($bb / $ba >= 1000);
    printf "%-10s %11.0fx %11.0fx   (information)\n", '(c)/(a)', $tc / $ta, $bc / $ba;
    my $ts = median(map { $_->[0] } @{ $rep{'/small/'} });
    my $r = $ta > $ts ? $ta / $ts : $ts / $ta;
    print "\n";
    printf "REPORT after 10 changes, median of %d: /small/ (%s files) %.2f ms, /s/ (%s files) %.2f ms;\n",
        $rounds, commas(1000), $ts * 1000, commas($nfolders * $nfiles), $ta * 1000;
    printf "  ratio %.2f, target within 2x: %s\n", $r, $pf->($r <= 2);
    for my $root ('/small/', '/s/') {
        printf "  rounds %-8s %s ms\n", $root, join(' ', map { sprintf '%.2f', $_->[0] * 1000 } @{ $rep{$root} });
    }
}
if (@fail) {
    print "\nFAIL: wrong answers:\n";
    print "  $_\n" for @fail;
    exit 1;
}
PERL
# The first sync of a store runs its baseline scan (logged at debug level).
if [ -f "$work/logs/error_log" ]; then
  sed -n 's/.*\(baseline scan of .*\)/\1/p' "$work/logs/error_log" | sed "s|$work|(tmp)|; s/^/note: /"
fi
if [ "$status" != 0 ] && [ -s "$work/logs/error_log" ]; then
  echo "--- last lines of the server's error_log:" >&2
  tail -n 20 "$work/logs/error_log" >&2
fi
exit $status

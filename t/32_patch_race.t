# PATCH (application/vcdiff) under concurrency and hostile input:
#  - readers GETting a file while it is PATCHed back and forth (2 MiB with
#    64 KiB changed or 1 MiB inserted; and 1000 <-> 4000 bytes, where a
#    GET is short enough to meet a PATCH at any of its stages) see only
#    whole versions, each with its own ETag, never a mix or a truncation;
#  - a PATCH racing a PUT of the same file ends with one of them (204 or
#    412, never a 5xx), and the ETag names what GET returns;
#  - 300 mutated deltas: 204, 400, 409, 413 or 422, never a 5xx or a
#    dropped connection, and every refusal leaves the file and its ETag as
#    they were;
#  - a delta made from another source of the same length: 409.
# Random data and mutations come from one seed, printed (ISS_TEST_SEED).
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use Digest::SHA qw(sha256 sha256_hex);
use MIME::Base64 qw(encode_base64url);
use File::Temp qw(tempdir);
use LWP::UserAgent;
use HTTP::Request;
use Time::HiRes qw(time sleep);
use POSIX ();

my $ROUNDS = 5;          # PATCH racing PUT
my $VARIANTS = 300;      # hostile deltas

plan tests => 1 + 2 * 9 + 5 * $ROUNDS + 12 + 3;

system('xdelta3 -V >/dev/null 2>&1') == 0
    or die "xdelta3 is missing: scripts/deps.sh installs it\n";

my $seed = $ENV{ISS_TEST_SEED} // time() % 100000;
print "# seed $seed (ISS_TEST_SEED=$seed to repeat)\n";
srand($seed);

my $tmp = tempdir(CLEANUP => 1);
my $t_start = time;
sub took { printf "# %s took %.1f s\n", $_[0], time - $t_start; $t_start = time }
my $L = '/patch/race';
my $dir = files_dir() =~ s{files$}{files-patch}r . '/race';

# $n random bytes (from srand's seed), made in small pieces: one list of
# half a million numbers costs seconds when the ASan runtime is preloaded.
sub rnd {
    my ($n) = @_;
    my $s = '';
    $s .= pack 'N*', map { int rand 4294967296 } 1 .. 1024 while length $s < $n;
    return substr($s, 0, $n);
}

sub ua { LWP::UserAgent->new(keep_alive => 0, timeout => 30) }

sub patch_req {
    my ($path, $delta, $etag) = @_;
    return HTTP::Request->new(PATCH => url($path),
        [ 'Content-Type' => 'application/vcdiff', 'If-Match' => $etag ], $delta);
}

sub put {
    my ($path, $body) = @_;
    my $r = dav(PUT => $path, body => $body);
    die "PUT $path: " . $r->status_line . "\n" unless $r->code =~ /^20[14]$/;
    return $r->header('ETag');
}

# What LWP makes of a connection the server dropped: a 500 of its own.
sub dropped { defined $_[0]->header('Client-Warning') || defined $_[0]->header('X-Died') }

ok(dav(MKCOL => "$L/")->code, 201, "MKCOL $L/");

# ---- atomicity: GET never sees a mix -----------------------------------------
# PATCH $path around the cycle of (result, delta) pairs, each with If-Match
# of the current ETag, while $readers forked readers GET it for $secs
# seconds and note the SHA-256 of every body.  9 tests.
sub atomicity {
    my ($what, $path, $versions, $cycle, $secs, $readers) = @_;
    my %name = map { (sha256_hex($versions->{$_}) => $_) } keys %$versions;
    my $etag = put($path, $versions->{A});
    my @pids;
    for my $k (1 .. $readers) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            # A reader: one line per answer.
            open my $out, '>', "$tmp/reader.$k" or POSIX::_exit(1);
            my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 30);
            my $end = time + $secs;
            while (time < $end) {
                my $r = $ua->get(url($path));
                my $body = $r->content // '';
                my $cl = $r->header('Content-Length') // '-';
                printf $out "%d %s %d %s %s %s\n", $r->code, sha256_hex($body), length $body,
                       $cl, $r->header('ETag') // '-',
                       dropped($r) ? 'dropped' : $cl ne length $body ? 'short' : 'ok';
            }
            close $out;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    my (@codes, %rc);
    my $bad_etag = 0;
    my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 30);
    my ($i, $t0, $slowest) = (0, time, 0);
    while (1) {
        for my $pid (grep { !exists $rc{$_} } @pids) {
            $rc{$pid} = $? if waitpid($pid, POSIX::WNOHANG()) == $pid;
        }
        last if keys %rc == @pids && @codes >= 20;
        my ($to, $delta) = @{ $cycle->[$i++ % @$cycle] };
        my $t1 = time;
        my $r = $ua->request(patch_req($path, $delta, $etag));
        $slowest = time - $t1 if time - $t1 > $slowest;
        push @codes, $r->code;
        if ($r->code != 204) {
            print "# PATCH $i: ", $r->status_line, ' ', $r->content, "\n";
            last;
        }
        $bad_etag++ if ($r->header('ETag') // '') ne strong_etag($versions->{$to});
        $etag = $r->header('ETag') // '';
        last if @codes > 5000;
    }
    for my $pid (grep { !exists $rc{$_} } @pids) {
        waitpid($pid, 0);
        $rc{$pid} = $?;
    }
    ok(join(' ', map { $rc{$_} } @pids), join(' ', (0) x @pids), "$what: the readers ran to their end");
    ok(scalar(grep { $_ != 204 } @codes), 0, "$what: every PATCH answered 204 (" . scalar(@codes) . ' PATCHes)');
    ok(@codes >= 20 ? 1 : 0, 1, sprintf("$what: at least 20 PATCHes while the readers read (%d in %.1f s, the slowest %.2f s)",
                                        scalar(@codes), time - $t0, $slowest));
    ok($bad_etag, 0, "$what: each PATCH answered the ETag of its result");

    my (%seen, @mixed, @bad_tag);
    my $reads = 0;
    for my $k (1 .. $readers) {
        open my $in, '<', "$tmp/reader.$k" or die "$tmp/reader.$k: $!";
        while (my $line = <$in>) {
            my ($code, $sha, $len, $cl, $tag, $how) = split ' ', $line;
            $reads++;
            my $v = $name{$sha};
            if ($code != 200 || !$v || $how ne 'ok') {
                my $like = join ', ', map { "ETag of $_" } grep { strong_etag($versions->{$_}) eq $tag } sort keys %$versions;
                push @mixed, "GET $code, $len bytes, Content-Length $cl, $how, ETag $tag"
                           . ($like ? " ($like)" : '') . ", neither " . join(' nor ', sort keys %$versions);
                next;
            }
            $seen{$v}++;
            push @bad_tag, "GET of $v with ETag $tag" if $tag ne strong_etag($versions->{$v});
        }
    }
    print "# $what: $reads GETs saw ", join(', ', map { "$_ x$seen{$_}" } sort keys %seen), "\n";
    ok(scalar(@mixed), 0, "$what: every GET returned exactly one whole version ($reads GETs)")
        or print map { "#   $_\n" } @mixed[0 .. ($#mixed < 9 ? $#mixed : 9)];
    ok(($seen{A} && $seen{B}) ? 1 : 0, 1, "$what: the readers saw both A and B");
    ok(scalar(@bad_tag), 0, "$what: every GET answered the ETag of the body it sent")
        or print map { "#   $_\n" } @bad_tag[0 .. ($#bad_tag < 9 ? $#bad_tag : 9)];
    (my $rel = $path) =~ s{^\Q$L\E/}{};
    my $final = slurp("$dir/$rel");
    my $g = dav(GET => $path);
    ok(($g->content eq $final && ($g->header('ETag') // '') eq strong_etag($final)) ? 1 : 0, 1,
       "$what: afterwards GET gives the file on disk and its ETag");
    opendir(my $dh, $dir) or die "$dir: $!";
    my @left = grep { /^\.davfs\.tmp/ } readdir $dh;
    ok(scalar(@left), 0, "$what: no temporary file left behind");
}

# A 2 MiB file; B changes 64 KiB in the middle, B' inserts 1 MiB there.
my $MiB = 1024 * 1024;
my $A = rnd(2 * $MiB);
my $B = $A;
substr($B, $MiB, 65536) = rnd(65536);
my $B2 = $A;
substr($B2, $MiB, 0) = rnd($MiB);
my @cycle = (['B', xdelta3_delta($A, $B)], ['A', xdelta3_delta($B, $A)], ["B'", xdelta3_delta($A, $B2)], ['A', xdelta3_delta($B2, $A)]);
atomicity('2 MiB', "$L/big.bin", { A => $A, B => $B, "B'" => $B2 }, \@cycle, 3, 1);
took('atomicity, 2 MiB');

# The same with a 1000-byte file growing to 4000 bytes and back: requests
# are short, so a reader meets a PATCH at every stage of its GET.
{
    my $sa = rnd(1000);
    my $sb = $sa;
    substr($sb, 500, 0) = rnd(3000);
    atomicity('1000/4000 bytes', "$L/small.bin", { A => $sa, B => $sb },
              [['B', xdelta3_delta($sa, $sb)], ['A', xdelta3_delta($sb, $sa)]], 1.5, 2);
    took('atomicity, 1000/4000 bytes');
}

# ---- PATCH racing PUT ----------------------------------------------------------
{
    my $C = rnd(2 * $MiB);
    my $dAB = $cycle[0][1];
    my %outcome;
    my @DELAY = (0, 0.005, 0.01, 0.02, 0.04);
    for my $round (1 .. $ROUNDS) {
        my $eA = put("$L/race.bin", $A);
        my $delay = $DELAY[($round - 1) % @DELAY];
        pipe(my $go_r, my $go_w) or die "pipe: $!";
        my @kids;
        for my $who (qw(put patch)) {
            my $pid = fork // die "fork: $!";
            if (!$pid) {
                close $go_w;
                my $ua = ua();
                my $req = $who eq 'put'
                    ? HTTP::Request->new(PUT => url("$L/race.bin"), [], $C)
                    : patch_req("$L/race.bin", $dAB, $eA);
                sysread $go_r, my $x, 1;          # both start when the pipe closes
                sleep $delay if $who eq 'patch';
                my $t0 = time;
                my $r = $ua->request($req);
                my $t1 = time;
                open my $o, '>', "$tmp/$who.$round" or POSIX::_exit(1);
                printf $o "%d %s %.4f %.4f %s", $r->code, (dropped($r) ? 'dropped' : 'ok'),
                       $t0, $t1, $r->content // '';
                close $o;
                POSIX::_exit(0);
            }
            push @kids, $pid;
        }
        close $go_r;
        sleep 0.05;
        close $go_w;
        waitpid($_, 0) for @kids;
        my ($pc, $phow, $p0, $p1) = split ' ', slurp("$tmp/put.$round") // '0 none 0 0';
        my ($xc, $xhow, $x0, $x1, $xbody) = split ' ', slurp("$tmp/patch.$round") // '0 none 0 0', 5;
        printf "# round %d: PUT %.1f-%.1f ms, PATCH %.1f-%.1f ms\n", $round, 0, 1000 * ($p1 - $p0),
               1000 * ($x0 - $p0), 1000 * ($x1 - $p0);
        my $g = dav(GET => "$L/race.bin");
        my $got = $g->content;
        my $what = $got eq $C ? 'C' : $got eq $B ? 'B' : $got eq $A ? 'A' : 'a mix';
        $outcome{"PUT $pc, PATCH $xc: $what"}++;
        ok(($pc =~ /^20[14]$/ && $phow eq 'ok') ? 1 : 0, 1, "round $round: PUT answered $pc");
        ok(($xc =~ /^(204|412)$/ && $xhow eq 'ok') ? 1 : 0, 1, "round $round: PATCH answered $xc (204 or 412)")
            or print "# PATCH: $xc $xhow ", $xbody // '', "\n";
        my %ok = (C => 1, B => 1);
        $ok{A} = 1 if $pc !~ /^20[14]$/;               # only if the PUT failed
        delete $ok{B} if $xc == 412;                   # a refused PATCH wrote nothing
        ok($ok{$what} ? 1 : 0, 1, "round $round: the file is exactly " . join(' or ', sort keys %ok) . " (it is $what)");
        ok(slurp("$dir/race.bin") eq $got ? 1 : 0, 1, "round $round: GET returns the file on disk");
        ok($g->header('ETag') // '<none>', strong_etag($got), "round $round: the GET ETag names what GET returns");
    }
    print "# outcomes: ", join('; ', map { "$_ x$outcome{$_}" } sort keys %outcome), "\n";
    took('PATCH racing PUT');
}

# ---- hostile deltas ------------------------------------------------------------
{
    my $O = rnd(100_000);
    my $N = $O;
    substr($N, 10_000, 500) = rnd(500);
    substr($N, 60_000, 0) = rnd(2000);
    substr($N, 90_000, 300) = '';
    my $good = xdelta3_delta($O, $N);
    my $eO = put("$L/h.bin", $O);
    my $r = dav(PATCH => "$L/h.bin", body => $good,
                headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => $eO });
    ok(($r->code == 204 && slurp("$dir/h.bin") eq $N) ? 1 : 0, 1, 'the unmutated delta applies');
    put("$L/h.bin", $O);

    my (%by_status, %by_kind, @unexpected, @changed, @hdr, $dropped, $refused);
    my $ua = ua();
    for my $i (1 .. $VARIANTS) {
        my $d = $good;
        my $len = length $d;
        my $roll = rand;
        my $kind;
        if ($roll < 0.35) {
            $kind = 'flip';
            for (1 .. 1 + int rand 4) {
                my $at = int rand $len;
                substr($d, $at, 1) = chr(ord(substr($d, $at, 1)) ^ (1 + int rand 255));
            }
        }
        elsif ($roll < 0.60) {
            $kind = 'truncate';
            $d = substr($d, 0, int rand $len);
        }
        elsif ($roll < 0.85) {
            $kind = 'insert';
            substr($d, int rand($len + 1), 0) = rnd(1 + int rand 16);
        }
        elsif ($roll < 0.925) {
            $kind = 'secondary';
            substr($d, 4, 1) = chr(ord(substr($d, 4, 1)) | 1);
        }
        else {
            $kind = 'codetable';
            substr($d, 4, 1) = chr(ord(substr($d, 4, 1)) | 2);
        }
        my $res = $ua->request(patch_req("$L/h.bin", $d, $eO));
        my $st = $res->code;
        my $desc = "variant $i ($kind, " . length($d) . " bytes): " . $res->status_line;
        $by_status{$st}++;
        $by_kind{"$kind $st"}++;
        if (dropped($res)) {
            $dropped++;
            push @unexpected, "$desc, connection dropped";
        }
        elsif ($st !~ /^(204|400|409|413|422)$/) {
            push @unexpected, "$desc " . ($res->content // '');
            spew("$tmp/unexpected.$i", $d);
        }
        push @hdr, $desc if $kind =~ /^(secondary|codetable)$/ && $st != 422;
        if ($st == 204) {
            print "# accepted: $desc, the result has ", length(slurp("$dir/h.bin") // ''), " bytes\n";
            put("$L/h.bin", $O);
            next;
        }
        $refused++;
        my $disk = slurp("$dir/h.bin") // '';
        my $tag = dav(HEAD => "$L/h.bin")->header('ETag') // '<none>';
        push @changed, "$desc: file " . ($disk eq $O ? 'same' : 'CHANGED') . ", ETag $tag"
            if $disk ne $O || $tag ne $eO;
    }
    print "# statuses: ", join(', ', map { "$_ x$by_status{$_}" } sort keys %by_status), "\n";
    print "# by kind: ", join(', ', map { "$_ x$by_kind{$_}" } sort keys %by_kind), "\n";
    ok(scalar(@unexpected), 0, "$VARIANTS mutated deltas: only 204, 400, 409, 413 or 422, never a 5xx")
        or print map { "#   $_\n" } @unexpected[0 .. ($#unexpected < 9 ? $#unexpected : 9)];
    ok($dropped // 0, 0, '... never a dropped connection');
    ok(scalar(@changed), 0, '... after every refusal the file and its ETag are unchanged')
        or print map { "#   $_\n" } @changed[0 .. ($#changed < 9 ? $#changed : 9)];
    ok(scalar(@hdr), 0, '... VCD_DECOMPRESS or VCD_CODETABLE in the header: 422')
        or print map { "#   $_\n" } @hdr[0 .. ($#hdr < 9 ? $#hdr : 9)];
    ok(($refused // 0) >= 0.8 * $VARIANTS ? 1 : 0, 1, '... most are refused (' . ($refused // 0) . " of $VARIANTS)");
    ok(dav(GET => "$L/h.bin")->content eq $O ? 1 : 0, 1, '... and the file still holds the original');

    # A delta from another source of the same length: the window's Adler-32
    # of xdelta3 does not match the result.
    my $other = rnd(100_000);
    my $d = xdelta3_delta($other, substr($other, 0, 50_000) . 'x' x 1000 . substr($other, 50_000));
    my $res = dav(PATCH => "$L/h.bin", body => $d,
                  headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => $eO });
    ok($res->code, 409, 'a delta made from another source of the same length: 409');
    ok($res->content =~ m{<I:delta-conflict\s*/>} && $res->content =~ m{<I:message>[^<]{10,}</I:message>} ? 1 : 0, 1,
       '... the body names <I:delta-conflict/>') or print '# body: ', $res->content, "\n";
    ok(slurp("$dir/h.bin") eq $O ? 1 : 0, 1, '... the file is byte-identical');
    ok(dav(HEAD => "$L/h.bin")->header('ETag') // '<none>', $eO, '... and its ETag unchanged');
    ok(sha256_hex(slurp("$dir/h.bin")) eq sha256_hex($O) ? 1 : 0, 1, 'the original survived every variant');
    took('hostile deltas');
}

# ---- afterwards ------------------------------------------------------------------
{
    opendir(my $dh, $dir) or die "$dir: $!";
    my @left = grep { /^\.davfs\.tmp/ } readdir $dh;
    ok(scalar(@left), 0, 'no temporary file left in the folder');
    my $r = dav(PROPFIND => "$L/", headers => { Depth => '1' });
    ok($r->code, 207, 'the folder still answers PROPFIND');
    ok(dav(GET => "$L/big.bin")->code, 200, 'and GET');
}

# RFC 3229 delta GET (issue 15 item 2): GET with `A-IM: vcdiff` and an
# If-None-Match naming a retained version of the file answers `226 IM
# Used` with a VCDIFF that `xdelta3 -d -s OLD` (run here, at test time:
# a missing xdelta3 fails the test) decodes to the current content, for
# small edits, inserts, deletes, appends; a file emptied or replaced by
# unrelated content gets the plain 200 (a delta would not be smaller).
# Every bad input of the issue gets the plain answer (200, 304, or the
# refusal any GET gets) and changes nothing on disk or in the store:
# unknown, malformed and q=0 A-IM, weak and unknown tags, too many tags
# before the right one, a Range on the same request, HEAD, another
# file's version, versions of files the user may not read (the same
# answer as an unknown ETag).  Location /delta/ (t/conf/extra.conf.in):
# ISSKeepVersions On, users alice and bob as in t/70_leaks.t.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Find ();
use File::Spec;
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(sha256_hex);
use Digest::SHA ();

plan tests => 183;

sub as { my ($user) = @_; ('Authorization' => 'Basic ' . encode_base64("$user:pw-$user", '')) }
my $files = files_dir() =~ s{files$}{files-delta}r;
my $state = File::Spec->catdir(t_dir(), 'dav', 'state-delta');
my $tmp = tempdir(CLEANUP => 1);

# Pseudo-random bytes from a seed: SHA-256 in counter mode.
sub bytes {
    my ($n, $seed) = @_;
    my $s = join '', map { Digest::SHA::sha256(pack 'NN', $seed, $_) } 0 .. int($n / 32);
    return substr $s, 0, $n;
}

sub put {
    my ($user, $path, $body) = @_;
    my $r = dav(PUT => $path, body => $body, headers => { as($user) });
    die "PUT $path: " . $r->status_line unless $r->code =~ /^20[14]$/;
    return strong_etag($body);
}

sub dget {
    my ($user, $path, %h) = @_;
    return dav(GET => $path, headers => { as($user), %h });
}

sub delta_get {
    my ($user, $path, $inm, $aim) = @_;
    return dget($user, $path, 'A-IM' => $aim // 'vcdiff', 'If-None-Match' => $inm);
}

# xdelta3 -d -s OLD DELTA: the decoded bytes, or undef (and why) if it
# refused.  A missing xdelta3 dies: the test fails, it never skips.
my $nd = 0;
sub xdecode {
    my ($old, $delta) = @_;
    my $n = ++$nd;
    spew("$tmp/o$n", $old);
    spew("$tmp/d$n", $delta);
    my $rc = system('xdelta3', '-d', '-f', '-s', "$tmp/o$n", "$tmp/d$n", "$tmp/n$n");
    die "xdelta3 not found: scripts/deps.sh installs it\n" if $rc == -1;
    return $rc == 0 ? slurp("$tmp/n$n") : undef;
}

# What a GET may not change: the files, the versions kept, the store's
# records and its log.
sub snapshot {
    my @f;
    for my $dir ($files, $state) {
        File::Find::find({ no_chdir => 1, wanted => sub {
            return unless -f $_;
            return if m{/(?:log|lock|.*\.lock|.*\.pid)$};
            push @f, $_ . ' ' . (-s $_) . ' ' . ($_ =~ m{^\Q$files\E} || m{/versions/} ? sha256_hex(slurp($_)) : '');
        } }, $dir);
    }
    my (undef, $recs) = iss_state($state, 'list', '');
    my (undef, $log) = iss_state($state, 'log');
    my ($entries) = $log =~ /^(entries: .*)$/m;
    return join "\n", (sort @f), (sort split /\n/, $recs), $entries // 'none';
}

# A 226 answer checked in full; returns the decoded content (or '').
sub check_226 {
    my ($r, $old, $new, $base, $what) = @_;
    ok($r->code, 226, "$what: 226 IM Used");
    ok($r->header('IM') // '', 'vcdiff', "$what: IM: vcdiff");
    ok($r->header('Delta-Base') // '', $base, "$what: Delta-Base names the base");
    ok($r->header('ETag') // '', strong_etag($new), "$what: the current ETag");
    ok(($r->header('Cache-Control') // '') =~ /^no-store,\s*im$/ ? 1 : 0, 1,
       "$what: Cache-Control: no-store, im");
    my $vary = join ',', $r->header('Vary');
    ok(($vary =~ /\bA-IM\b/i && $vary =~ /\bIf-None-Match\b/i) ? 1 : 0, 1,
       "$what: Vary covers A-IM and If-None-Match ($vary)");
    my $d = $r->content // '';
    ok(length($d) < length($new) ? 1 : 0, 1,
       "$what: the delta (" . length($d) . " bytes) is smaller than the file (" . length($new) . ")");
    my $got = xdecode($old, $d) // '';
    ok($got eq $new ? 1 : 0, 1, "$what: xdelta3 -d -s OLD decodes it to the current content");
    return $got;
}

ok(dav(MKCOL => '/delta/pub/', headers => { as('alice') })->code, 201, 'MKCOL /delta/pub/');
ok(dav(MKCOL => '/delta/alice/', headers => { as('alice') })->code, 201, 'MKCOL /delta/alice/');
ok(dav(MKCOL => '/delta/bob/', headers => { as('bob') })->code, 201, 'MKCOL /delta/bob/');
ok(dav(MKCOL => '/delta/drop/', headers => { as('alice') })->code, 201, 'MKCOL /delta/drop/');

# ---- deltas xdelta3 decodes ------------------------------------------------------------
my $v0 = bytes(400_000, 1);
my %case = (
    edit   => sub { my $s = $v0; substr($s, 200_000, 100) = bytes(100, 2); $s },
    insert => sub { my $s = $v0; substr($s, 123_457, 0) = bytes(5000, 3); $s },
    delete => sub { my $s = $v0; substr($s, 50_000, 20_000) = ''; $s },
    append => sub { $v0 . bytes(3000, 4) },
    mixed  => sub { my $s = $v0; substr($s, 1000, 10) = 'x' x 10; substr($s, 300_000, 0) = 'inserted';
                    substr($s, 150_000, 777) = ''; $s . 'tail' },
);
for my $name (sort keys %case) {
    my $path = "/delta/pub/$name.bin";
    my $e0 = put('alice', $path, $v0);
    my $new = $case{$name}->();
    put('alice', $path, $new);
    check_226(delta_get('alice', $path, $e0), $v0, $new, $e0, $name);
}

# Two versions back, and the current one.
my $p = '/delta/pub/chain.bin';
my $c0 = bytes(300_000, 10);
my $c1 = $c0; substr($c1, 10_000, 50) = bytes(50, 11);
my $c2 = $c1; substr($c2, 250_000, 0) = 'and more';
my $ec0 = put('alice', $p, $c0);
my $ec1 = put('alice', $p, $c1);
my $ec2 = put('alice', $p, $c2);
check_226(delta_get('alice', $p, $ec0), $c0, $c2, $ec0, 'two versions back');
my $r = delta_get('alice', $p, $ec2);
ok($r->code, 304, 'the current ETag: 304, as without A-IM');
$r = delta_get('alice', $p, join(', ', strong_etag('never stored'), "W/$ec0", $ec1, $ec0));
check_226($r, $c1, $c2, $ec1, 'an unknown tag, a weak one, then two versions: the first retained');
$r = delta_get('alice', $p, $ec1, 'gzip;q=0.5, VCDIFF;q=0.25');
ok($r->code, 226, 'VCDIFF (any case) with a q above 0, among others: 226');

# Deltas longer than the 1 MiB the server holds to decide 226 or 200
# (mod_iss_get.c): with both manifests the bound lets it stream the
# answer (chunked); without the current file's manifest (written behind
# httpd's back) it measures first, then sends with a Content-Length.
my $big0 = bytes(6 * 1048576, 50);
my $big1 = $big0;
substr($big1, $_ * 250_000 + 7, 48 * 1024) = bytes(48 * 1024, 60 + $_) for 0 .. 23;
$p = '/delta/pub/big-stream.bin';
my $eg0 = put('alice', $p, $big0);
put('alice', $p, $big1);
$r = delta_get('alice', $p, $eg0);
check_226($r, $big0, $big1, $eg0, 'a 1.2 MB delta with manifests');
ok(($r->header('Client-Transfer-Encoding') // '') eq 'chunked' && !defined $r->header('Content-Length') ? 1 : 0, 1,
   '... streamed (chunked, no Content-Length)');
$p = '/delta/pub/big-measured.bin';
$eg0 = put('alice', $p, $big0);
put('alice', $p, $big0 . 'x');
spew("$files/pub/big-measured.bin", $big1);      # behind httpd's back: no manifest
$r = delta_get('alice', $p, $eg0);
check_226($r, $big0, $big1, $eg0, 'a 1.2 MB delta without the current manifest');
ok(($r->header('Content-Length') // -1) == length($r->content) ? 1 : 0, 1,
   '... measured, then sent with its Content-Length');
my $small = $big0; substr($small, 1_000_000, 10) = 'small edit';
spew("$files/pub/big-measured.bin", $small);
check_226(delta_get('alice', $p, $eg0), $big0, $small, $eg0, 'a small delta without the current manifest');

# A file emptied, a file replaced by unrelated content: a delta would not
# be smaller: 200 with the content.
$p = '/delta/pub/emptied.bin';
my $e0 = put('alice', $p, $v0);
put('alice', $p, '');
$r = delta_get('alice', $p, $e0);
ok($r->code, 200, 'file emptied: 200');
ok(length($r->content), 0, 'file emptied: the empty content');
ok($r->header('IM') // 'none', 'none', 'file emptied: no IM header');
$p = '/delta/pub/unrelated.bin';
$e0 = put('alice', $p, $v0);
my $other = bytes(10 * 1048576, 99);      # past the 8 MiB after which the server gives up
put('alice', $p, $other);
$r = delta_get('alice', $p, $e0);
ok($r->code, 200, 'replaced by unrelated content: 200');
ok($r->content eq $other ? 1 : 0, 1, 'replaced by unrelated content (10 MiB): the whole content');
ok($r->header('ETag') // '', strong_etag($other), '... with its ETag');

# An empty version: nothing to copy from, a delta would not be smaller.
$p = '/delta/pub/from-empty.bin';
my $ee = put('alice', $p, '');
my $fe = bytes(50_000, 80);
put('alice', $p, $fe);
$r = delta_get('alice', $p, $ee);
ok($r->code, 200, 'from an empty version: 200');
ok($r->content eq $fe ? 1 : 0, 1, 'from an empty version: the content');

# ---- bad input: the plain answer, nothing changed --------------------------------------
$p = '/delta/pub/bad.bin';
my $b0 = bytes(200_000, 20);
my $b1 = $b0; substr($b1, 100_000, 10) = '0123456789';
my $eb0 = put('alice', $p, $b0);
put('alice', $p, $b1);
my $q0 = '/delta/pub/other.bin';
my $o0 = bytes(200_000, 21);
my $eo0 = put('alice', $q0, $o0);
put('alice', $q0, $o0 . 'changed');
# A control: the right request gets a delta (so that the refusals below
# are refusals of the delta, not of a server that never gives one).
ok(delta_get('alice', $p, $eb0)->code, 226, 'control: the right request gets 226');

my $before = snapshot();
my @plain = (
    [ 'A-IM: gzip (unknown to us for this)', $eb0, 'gzip' ],
    [ 'A-IM: an unknown manipulation', $eb0, 'x-frobnicate' ],
    [ 'A-IM: vcdiff;q=0', $eb0, 'vcdiff;q=0' ],
    [ 'A-IM: vcdiff;q=0.000 with gzip', $eb0, 'gzip, vcdiff;q=0.000' ],
    [ 'A-IM: vcdiff and vcdiff;q=0', $eb0, 'vcdiff, vcdiff;q=0' ],
    [ 'A-IM: malformed (q=1.5)', $eb0, 'vcdiff;q=1.5' ],
    [ 'A-IM: malformed (a parameter we do not know)', $eb0, 'vcdiff;level=9' ],
    [ 'A-IM: malformed (junk)', $eb0, 'vcdiff, @@' ],
    [ 'A-IM: empty', $eb0, '' ],
    [ 'If-None-Match: a weak tag of the version', "W/$eb0", 'vcdiff' ],
    [ 'If-None-Match: an unknown ETag', strong_etag('nobody'), 'vcdiff' ],
    [ 'If-None-Match: not our ETag form', '"abc"', 'vcdiff' ],
    [ 'If-None-Match: another file\'s version', $eo0, 'vcdiff' ],
    [ 'If-None-Match: 16 unknown tags, then the version', join(', ', (map { strong_etag("u$_") } 1 .. 16), $eb0), 'vcdiff' ],
    [ 'If-None-Match: 150 tags (7 KB, under httpd\'s 8 KB a field), then the version', join(',', (map { strong_etag("u$_") } 1 .. 150), $eb0), 'vcdiff' ],
    [ 'If-None-Match: *', '*', 'vcdiff' ],
);
for my $c (@plain) {
    my ($what, $inm, $aim) = @$c;
    $r = delta_get('alice', $p, $inm, $aim);
    my $want = $inm eq '*' ? 304 : 200;
    ok($r->code, $want, "$what: $want");
    ok($want == 304 || ($r->content eq $b1 && !defined $r->header('IM')) ? 1 : 0, 1,
       "$what: the content, no IM");
}
$r = delta_get('alice', $p, join(', ', (map { strong_etag("u$_") } 1 .. 15), $eb0));
ok($r->code, 226, 'If-None-Match: 15 unknown tags, then the version: 226 (the bound is 16)');
$r = dget('alice', $p, 'If-None-Match' => $eb0);
ok($r->code, 200, 'no A-IM: 200');
ok(($r->header('Vary') // '') =~ /A-IM/ ? 1 : 0, 0, 'no A-IM: no Vary on it');
$r = dget('alice', $p, 'A-IM' => 'vcdiff', 'If-None-Match' => $eb0, 'Range' => 'bytes=0-9');
ok($r->code, 206, 'a Range on the same request: the range (206), not a delta');
ok($r->content eq substr($b1, 0, 10) ? 1 : 0, 1, '... of the current content');
$r = dav(HEAD => $p, headers => { as('alice'), 'A-IM' => 'vcdiff', 'If-None-Match' => $eb0 });
ok($r->code, 200, 'HEAD: 200');
ok($r->header('IM') // 'none', 'none', 'HEAD: no IM');
$r = dget('alice', $p, 'A-IM' => 'vcdiff');
ok($r->code, 200, 'A-IM without If-None-Match: 200');
ok(snapshot(), $before, 'nothing changed on disk or in the store by any of them');

# ---- versions of files the user may not read: as an unknown ETag -------------------------
my $s = '/delta/alice/secret.bin';
my $s0 = bytes(150_000, 30);
my $es0 = put('alice', $s, $s0);
put('alice', $s, $s0 . 'v2');
ok(delta_get('alice', $s, $es0)->code, 226, 'alice gets a delta of her file');
my $bf = '/delta/bob/mine.bin';
my $m0 = bytes(150_000, 31);
my $em0 = put('bob', $bf, $m0);
put('bob', $bf, $m0 . 'v2');
ok(delta_get('bob', $bf, $em0)->code, 226, 'bob gets a delta of his file');
my $d = '/delta/drop/box.bin';
my $x0 = bytes(150_000, 32);
my $ex0 = put('bob', $d, $x0);
put('bob', $d, $x0 . 'v2');
ok(delta_get('alice', $d, $ex0)->code, 226, 'alice (who may read the drop box) gets a delta');

$before = snapshot();
my $unknown = strong_etag('a guess');
for my $c ([ 'alice\'s file', $s, $es0 ], [ 'the drop box (bob wrote it, may not read it)', $d, $ex0 ]) {
    my ($what, $path, $etag) = @$c;
    my $a = delta_get('bob', $path, $etag);
    my $b = delta_get('bob', $path, $unknown);
    ok($a->code, $b->code, "bob, $what, a version's ETag: the same status as an unknown ETag (" . $a->code . ')');
    ok($a->code =~ /^40[13]$/ ? 1 : 0, 1, "bob, $what: refused as any GET");
    ok(($a->content // '') eq ($b->content // '') ? 1 : 0, 1, "bob, $what: the same body");
    ok($a->header('IM') // 'none', 'none', "bob, $what: no IM");
}
# His own file, with ETags of versions of files he may not read.
for my $c ([ 'alice\'s file', $es0 ], [ 'the drop box', $ex0 ]) {
    my ($what, $etag) = @$c;
    my $a = delta_get('bob', $bf, $etag);
    ok($a->code, 200, "bob's own file, a version ETag of $what: 200 as unknown");
    ok($a->content eq $m0 . 'v2' ? 1 : 0, 1, "... with the content");
}
ok(snapshot(), $before, 'nothing changed on disk or in the store');

# ---- a location without retained versions: the plain answer -------------------------------
$p = '/chunks/delta-nokeep.bin';
my $n0 = bytes(100_000, 40);
my $en0 = strong_etag($n0);
ok(dav(PUT => $p, body => $n0)->code, 201, 'PUT in /chunks/ (no ISSKeepVersions)');
ok(dav(PUT => $p, body => $n0 . 'x')->code, 204, 'PUT again');
$r = dav(GET => $p, headers => { 'A-IM' => 'vcdiff', 'If-None-Match' => $en0 });
ok($r->code, 200, 'no versions kept there: 200');

# ---- a damaged version: never a wrong delta --------------------------------------------
# Bytes of the retained data changed behind the server's back: the
# version's chunks are checked as they are read, so the delta fails
# before its answer begins, and the answer is the plain 200.  The
# version is packed after the PUT's answer (ISSKeepVersions pack=, the
# default 64M): the chunks it shares with the current file are used in
# place, the changed ones are copied into versions/chunks/; those are the
# ones the delta reads, and the ones damaged here.
$p = '/delta/pub/damaged.bin';
my $g0 = bytes(300_000, 70);
my $g1 = $g0; substr($g1, 150_000, 20) = 'twenty changed bytes';
my $eg = put('alice', $p, $g0);
my %had = map { $_ => 1 } glob("$state/versions/chunks/*");
put('alice', $p, $g1);
ok(delta_get('alice', $p, $eg)->code, 226, 'damaged: the delta before the damage');
my $blob = "$state/versions/data/" . sha256_hex($g0);
for (1 .. 100) { last unless -e $blob; select(undef, undef, undef, 0.05) }
ok(-e $blob ? 0 : 1, 1, 'damaged: the version was packed after the answer') or print "# still $blob\n";
my @copied = grep { !$had{$_} } glob("$state/versions/chunks/*");
ok(@copied ? 1 : 0, 1, 'damaged: its changed chunks are in the chunk store (' . scalar(@copied) . ')');
for my $c (@copied) {
    my $len = -s $c;
    open my $fh, '+<:raw', $c or die "$c: $!";
    print $fh 'x' x $len;             # same length, other bytes
    close $fh or die "$c: $!";
}
my $mark = log_mark();
$r = delta_get('alice', $p, $eg);
ok($r->code, 200, 'damaged: 200');
ok($r->content eq $g1 ? 1 : 0, 1, 'damaged: the current content');
ok($r->header('IM') // 'none', 'none', 'damaged: no IM');
ok(log_since($mark) =~ /ISS01182: cannot make the delta of pub\/damaged\.bin/ ? 1 : 0, 1,
   'damaged: logged (ISS01182)');
unlink @copied;                        # gone altogether: the same
$r = delta_get('alice', $p, $eg);
ok($r->code == 200 && $r->content eq $g1 ? 1 : 0, 1, 'chunks gone: 200 with the content');

# ---- versions packed into the chunk store (iss-state gc-versions) -------------------------
my ($gcode, $gout) = iss_state($state, 'gc-versions');
ok($gcode, 0, 'iss-state gc-versions') or print "# $gout\n";
my (undef, $vout) = iss_state($state, 'versions');
my ($packed) = $vout =~ /^packed contents: (\d+)$/m;
ok(($packed // 0) > 0 ? 1 : 0, 1, 'versions were packed into chunks (' . ($packed // 'none') . ')') or print "# $vout\n";
check_226(delta_get('alice', '/delta/pub/chain.bin', $ec0), $c0, $c2, $ec0, 'from a packed version, two back');
check_226(delta_get('alice', '/delta/pub/chain.bin', $ec1), $c1, $c2, $ec1, 'from a packed version, one back');

# A third-party RFC 6578 client against our sync-collection REPORT: tsdav
# (npm, pinned in t/tsdav/package-lock.json, installed by
# scripts/run-apache-test.sh) through DAVClient.syncCollection, driven by
# t/tsdav/sync.mjs.  What tsdav reports is compared with what the server
# holds (hrefs, and ETags of a GET).  tsdav's request carries no Depth
# header and puts <sync-level> before <sync-token>; it passes syncLevel
# through as given, so both levels are tested.  A missing node or tsdav
# fails this test: it never skips.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use JSON::PP ();
use File::Spec;

plan tests => 70;

my $col = '/iss/tsdav/';
my $dir = File::Spec->catdir(t_dir(), 'tsdav');
my $driver = File::Spec->catfile($dir, 'sync.mjs');
my $base = url('/');
my $TOKEN_RE = qr{^https://mod-iss\.org/ns/sync/\S+$};

# ---- node and tsdav are there, at the pinned version ---------------------
my $node = `node --version 2>&1` // '';
ok($? == 0 && $node =~ /^v(\d+)\./ && $1 >= 18 ? 1 : 0, 1, "node >= 18 on PATH: $node");
my $lock = eval { JSON::PP::decode_json(slurp("$dir/package-lock.json")) } || {};
my $pinned = $lock->{packages}{'node_modules/tsdav'}{version} // 'none';
my $have = eval { JSON::PP::decode_json(slurp("$dir/node_modules/tsdav/package.json"))->{version} } // 'missing';
ok($have, $pinned, 'tsdav installed in t/tsdav/node_modules at the version package-lock.json pins');

# Run tsdav's syncCollection; the driver's JSON, or { error => ... }.
sub tsdav_sync {
    my ($path, $token, $level) = @_;
    # The ASan run preloads the sanitizer runtime for httpd; node needs none.
    local %ENV = %ENV;
    delete $ENV{LD_PRELOAD};
    open(my $fh, '-|', 'node', $driver, $base, $path, $token, $level)
        or return { error => "cannot run node: $!" };
    local $/;
    my $out = <$fh>;
    close $fh;
    my $rc = $? >> 8;
    my $r = eval { JSON::PP::decode_json($out // '') };
    return { error => "driver exit $rc, output: " . ($out // '') } unless $r;
    $r->{error} //= "driver exit $rc" if $rc;
    return $r;
}

# The hrefs tsdav reported, sorted, relative to $col when below it (Test's
# ok() would take an expected value of the form /.../ for a pattern).
sub hrefs { join ' ', sort map { my $x = $_->{href}; $x =~ s{^\Q$col\E}{}; $x } @{ $_[0]{responses} || [] } }
sub by_href { +{ map { $_->{href} => $_ } @{ $_[0]{responses} || [] } } }
sub etag_of { my $res = dav(GET => $_[0]); $res->code == 200 ? $res->header('ETag') : "GET $_[0]: " . $res->code }

# DAV:getetag of a collection (GET does not serve one), by PROPFIND.
sub propfind_etag {
    my $res = dav(PROPFIND => $_[0], headers => { Depth => 0, 'Content-Type' => 'application/xml' },
                  body => '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>');
    return "PROPFIND $_[0]: " . $res->code unless $res->code == 207
        && $res->decoded_content =~ m{<(?:[\w-]+:)?getetag\b[^>]*>([^<]*)</};
    (my $e = $1) =~ s/&quot;/"/g;
    return $e;
}

# mod_dav_fs hands out weak ETags for files changed within the current
# second; let writes age so that the REPORT and a GET see the same strong one.
sub settle { select(undef, undef, undef, 2.1) }

# ---- a fresh collection of our own ----------------------------------------
dav(DELETE => $col);
my @setup = (
    [ MKCOL => $col ],
    [ PUT => "${col}a.txt", 'alpha' ],
    [ PUT => "${col}b.txt", 'bravo' ],
    [ PUT => "${col}c.txt", 'charlie' ],
    [ PUT => "${col}with%20space.txt", 'space' ],
    [ MKCOL => "${col}sub/" ],
    [ PUT => "${col}sub/inner.txt", 'inner' ],
);
my $setup_ok = 1;
for my $s (@setup) {
    my ($m, $p, $body) = @$s;
    my $code = dav($m, $p, defined $body ? (body => $body) : ())->code;
    $setup_ok = 0, print "# $m $p: $code\n" unless $code == 201;
}
ok($setup_ok, 1, 'collection, files and a sub-collection created');
settle();

# ---- 1. initial sync, level 1 ---------------------------------------------
my $r = tsdav_sync($col, '', '1');
ok($r->{error} // '', '', 'initial sync: tsdav returned');
ok(($r->{sent}{method} // '') eq 'REPORT'
   && ($r->{sent}{body} // '') =~ m{<d:sync-collection\b}
   && $r->{sent}{body} =~ m{<d:sync-token/>}
   && $r->{sent}{body} =~ m{<d:sync-level>1</d:sync-level>} ? 1 : 0, 1,
   'tsdav sent a sync-collection REPORT with an empty token and level 1');
ok($r->{status} // 0, 207, 'initial sync: 207');
ok(hrefs($r), join(' ', sort qw(a.txt b.txt c.txt with%20space.txt sub/)),
   'initial sync lists the direct members (files and the sub-collection), not the collection');
my $tok1 = $r->{token} // '';
ok($tok1 =~ $TOKEN_RE ? 1 : 0, 1, "initial sync gives a token: $tok1");
my $h = by_href($r);
for my $f (qw(a.txt b.txt c.txt with%20space.txt)) {
    my $e = $h->{"$col$f"} || {};
    ok(($e->{ok} ? 1 : 0), 1, "initial: $f reported as found");
    ok($e->{etag} // 'none', etag_of("$col$f"), "initial: $f etag as GET's ETag");
}
ok($h->{"${col}a.txt"}{contentlength} // -1, 5, 'initial: getcontentlength of a.txt');
ok(($h->{"${col}sub/"}{ok} ? 1 : 0), 1, 'initial: sub/ reported as found');
ok($h->{"${col}sub/"}{etag} // 'none', propfind_etag("${col}sub/"), "initial: sub/'s etag as PROPFIND's");

# ---- 2. changes since the initial token -----------------------------------
ok(dav(PUT => "${col}d.txt", body => 'delta')->code, 201, 'PUT new d.txt');
ok(dav(PUT => "${col}b.txt", body => 'bravo, changed')->code, 204, 'PUT changed b.txt');
ok(dav(DELETE => "${col}c.txt")->code, 204, 'DELETE c.txt');
settle();
$r = tsdav_sync($col, $tok1, '1');
ok($r->{error} // '', '', 'sync after changes: tsdav returned');
ok(($r->{sent}{body} // '') =~ m{<d:sync-token>\Q$tok1\E</d:sync-token>} ? 1 : 0, 1,
   'tsdav sent the previous token');
ok($r->{status} // 0, 207);
ok(hrefs($r), join(' ', sort qw(b.txt c.txt d.txt)),
   'exactly the new, the changed and the deleted file');
$h = by_href($r);
for my $f (qw(b.txt d.txt)) {
    my $e = $h->{"$col$f"} || {};
    ok(($e->{ok} ? 1 : 0), 1, "$f reported as found");
    ok($e->{etag} // 'none', etag_of("$col$f"), "$f: etag as GET's ETag");
}
ok($h->{"${col}b.txt"}{contentlength} // -1, length('bravo, changed'), 'b.txt: new length');
ok($h->{"${col}c.txt"}{status} // 0, 404, 'deleted c.txt: status 404 in tsdav');
ok(($h->{"${col}c.txt"}{ok} ? 1 : 0), 0, 'deleted c.txt: not ok');
ok($h->{"${col}c.txt"}{etag} // 'none', 'none', 'deleted c.txt: no etag');
ok(dav(GET => "${col}c.txt")->code, 404, 'c.txt is gone on the server too');
my $tok2 = $r->{token} // '';
ok($tok2 =~ $TOKEN_RE ? 1 : 0, 1, "a token after the changes: $tok2");
ok($tok2 ne $tok1 ? 1 : 0, 1, 'the token moved on');

# ---- 3. nothing changed since the newest token ----------------------------
$r = tsdav_sync($col, $tok2, '1');
ok($r->{error} // '', '', 'sync without changes: tsdav returned');
ok($r->{status} // 0, 207);
ok(hrefs($r), '', 'nothing reported');
my $tok3 = $r->{token} // '';
ok($tok3 =~ $TOKEN_RE ? 1 : 0, 1, "still a token: $tok3");
$r = tsdav_sync($col, $tok3, '1');
ok(hrefs($r) . ($r->{error} // ''), '', 'and that token reports nothing either');

# ---- 4. infinite level ------------------------------------------------------
$r = tsdav_sync($col, '', 'infinite');
ok($r->{error} // '', '', 'infinite initial sync: tsdav returned');
ok(($r->{sent}{body} // '') =~ m{<d:sync-level>infinite</d:sync-level>} ? 1 : 0, 1,
   'tsdav sent level infinite');
ok($r->{status} // 0, 207);
ok(hrefs($r), join(' ', sort qw(a.txt b.txt d.txt with%20space.txt sub/ sub/inner.txt)),
   'infinite: the whole subtree');
$h = by_href($r);
ok($h->{"${col}sub/inner.txt"}{etag} // 'none', etag_of("${col}sub/inner.txt"), 'infinite: inner.txt etag as GET');
my $itok = $r->{token} // '';
ok($itok =~ $TOKEN_RE ? 1 : 0, 1, "infinite: a token: $itok");

# A change to a file below sub/ reports that file alone ...
ok(dav(PUT => "${col}sub/inner.txt", body => 'inner, changed')->code, 204, 'PUT changed sub/inner.txt');
settle();
$r = tsdav_sync($col, $itok, 'infinite');
ok($r->{error} // '', '', 'infinite sync after a change below sub/: tsdav returned');
ok($r->{status} // 0, 207);
ok(hrefs($r), 'sub/inner.txt', 'infinite: exactly the changed file below sub/');
ok(by_href($r)->{"${col}sub/inner.txt"}{etag} // 'none', etag_of("${col}sub/inner.txt"),
   'infinite: changed sub/inner.txt etag as GET');
my $itok2 = $r->{token} // '';
ok($itok2 =~ $TOKEN_RE && $itok2 ne $itok ? 1 : 0, 1, "infinite: a new token: $itok2");

# ... a new one also changes sub/ itself (its getetag moved on).
ok(dav(PUT => "${col}sub/new.txt", body => 'new')->code, 201, 'PUT new sub/new.txt');
settle();
$r = tsdav_sync($col, $itok2, 'infinite');
ok($r->{error} // '', '', 'infinite sync after a new file below sub/: tsdav returned');
ok(hrefs($r), 'sub/ sub/new.txt', 'infinite: the new file and its folder');
$h = by_href($r);
ok($h->{"${col}sub/new.txt"}{etag} // 'none', etag_of("${col}sub/new.txt"), 'infinite: sub/new.txt etag as GET');
ok($h->{"${col}sub/"}{etag} // 'none', propfind_etag("${col}sub/"), "infinite: sub/'s etag as PROPFIND's");
my $itok3 = $r->{token} // '';
ok($itok3 =~ $TOKEN_RE && $itok3 ne $itok2 ? 1 : 0, 1, "infinite: a new token: $itok3");
$r = tsdav_sync($col, $itok3, 'infinite');
ok(hrefs($r) . ($r->{error} // ''), '', 'infinite: nothing since the newest token');

# Level 1 from the sub-collection itself.
$r = tsdav_sync("${col}sub/", '', '1');
ok(hrefs($r) . ($r->{error} // ''), 'sub/inner.txt sub/new.txt',
   'level 1 on sub/: its two files');

# ---- 5. bad tokens: tsdav hands back the 403 -------------------------------
for my $bad ('https://mod-iss.org/ns/sync/no-such-store/1', 'not-a-token') {
    $r = tsdav_sync($col, $bad, '1');
    ok($r->{error} // '', '', "bad token $bad: tsdav returned (it does not throw)");
    ok($r->{status} // 0, 403, "bad token $bad: HTTP 403");
    my $e = $r->{responses}[0] || {};
    ok(scalar(@{ $r->{responses} || [] }) == 1 && ($e->{status} // 0) == 403 && !$e->{ok} ? 1 : 0, 1,
       "bad token $bad: tsdav's one result has status 403, ok false");
    ok(($r->{raw} // '') =~ m{valid-sync-token} ? 1 : 0, 1,
       "bad token $bad: the body tsdav keeps names DAV:valid-sync-token");
}

dav(DELETE => $col);

# Content digests (RFC 9530) and strong ETags: the digest of what a PUT
# stores is computed while its body streams in (never by reading the file
# again) and kept in the state store; GET/HEAD send Repr-Digest when asked
# (or always, ISSDigestHeader Always); a PUT with a Repr-Digest or
# Content-Digest that does not match is refused with 400 and stores
# nothing; files changed behind httpd's back get their digest computed
# again; ETags are the same in GET, HEAD, PROPFIND and conditionals.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;

plan tests => 75;

my $dir = files_dir() =~ s{files$}{files-patch}r;
my $base = '/patch/d';
ok(dav(MKCOL => "$base/")->code, 201, 'MKCOL /patch/d/');

# ---- PUT: verified digests -------------------------------------------
my $body = "the first version\n" x 100;
my $r = dav(PUT => "$base/f.txt", body => $body, headers => { 'Repr-Digest' => repr_digest($body) });
ok($r->code, 201, 'PUT with the right Repr-Digest: 201');
ok($r->header('ETag'), strong_etag($body), '... answers the strong ETag');
my $token = sync_token_of('/patch/');

my $other = "another version\n";
for my $h (['Repr-Digest', repr_digest('not the body'), 'I:repr-digest-mismatch'],
           ['Content-Digest', repr_digest('not the body'), 'I:digest-mismatch']) {
    my $mark = log_mark();
    $r = dav(PUT => "$base/f.txt", body => $other, headers => { $h->[0] => $h->[1] });
    ok($r->code, 400, "PUT with a wrong $h->[0]: 400");
    my ($elem, $msg) = error_body($r);
    ok($elem // '', $h->[2], "... an RFC 4918 error body with <$h->[2]/>")
        or print '# ', $r->content, "\n";
    ok(($msg // '') =~ /does not match its \Q$h->[0]\E header: its SHA-256 is sha-256=.*Nothing was stored/ ? 1 : 0, 1,
       '... and an I:message that says why') or print '# ', $r->content, "\n";
    ok(slurp("$dir/d/f.txt"), $body, '... the old file stays as it was');
    my $log = log_since($mark);
    ok($log =~ /\[iss:info\] .*ISS01053: PUT \S+ refused: The body does not match/ ? 1 : 0, 1, '... logged by mod_iss at info')
        or print "# $log\n";
    ok($log =~ /\[dav:|\[\w+:error\]/ ? 1 : 0, 0, '... and nothing else: no mod_dav error line') or print "# $log\n";
}
$r = dav(PUT => "$base/new.txt", body => $other, headers => { 'Repr-Digest' => repr_digest('x') });
ok($r->code, 400, 'PUT of a new file with a wrong digest: 400');
ok((error_body($r))[0] // '', 'I:repr-digest-mismatch', '... with <I:repr-digest-mismatch/>');
ok(-e "$dir/d/new.txt" ? 1 : 0, 0, '... and the file is not created');
$r = dav(PUT => "$base/f.txt", body => $other, headers => { 'Repr-Digest' => 'sha-256=:tooshort:' });
ok($r->code, 400, 'PUT with a malformed Repr-Digest: 400');
ok(join(' ', error_body($r)) =~ /^I:invalid-digest .*Repr-Digest header is malformed/ ? 1 : 0, 1,
   '... <I:invalid-digest/>, and the message says so') or print '# ', $r->content, "\n";
ok(slurp("$dir/d/f.txt"), $body, '... the old file stays as it was');
$r = dav(PUT => "$base/f.txt", body => 'XY', headers => { 'Repr-Digest' => repr_digest('XY'),
                                                           'Content-Range' => 'bytes 0-1/*' });
ok($r->code, 400, 'PUT with Content-Range and a digest: 400 (it could not be checked before writing)');
ok((error_body($r))[0] // '', 'I:digest-with-range', '... with <I:digest-with-range/>');
ok(slurp("$dir/d/f.txt"), $body, '... the old file stays as it was');
ok(sync_token_of('/patch/'), $token, 'no refused PUT entered the change log');
$r = dav(PUT => "$base/f.txt", body => $other, headers => { 'Repr-Digest' => 'md5=:AAAA:, sha-256=' . substr(repr_digest($other), 8) });
ok($r->code, 204, 'a Repr-Digest with other algorithms too: the sha-256 member is checked (204)');

# ---- the digest comes from the body, not from reading the file --------
{
    my $data = join '', map { chr(($_ * 7) % 256) } 1 .. 300_000;
    my $mark = log_mark();
    my $e = dav(PUT => "$base/big.bin", body => $data)->header('ETag');
    ok($e, strong_etag($data), 'PUT of 300 KB: ETag of the content');
    my $g = dav(GET => "$base/big.bin", headers => { 'Want-Repr-Digest' => 'sha-256=1' });
    ok($g->header('Repr-Digest'), repr_digest($data), 'GET with Want-Repr-Digest: Repr-Digest');
    ok($g->header('ETag'), $e, 'GET: the same ETag');
    ok(log_since($mark) =~ /ISS01051/ ? 1 : 0, 0, 'the server never read the file to compute its digest');
    my ($code, $out) = iss_state(File::Spec->catdir(t_dir(), 'dav', 'state-patch'), 'list');
    ok($out =~ m{^d/d/big\.bin\t}m ? 1 : 0, 1, 'the state store holds the digest record') or print "# $out\n";
}

# ---- Want-Repr-Digest, HEAD, ISSDigestHeader Always --------------------
$r = dav(GET => "$base/f.txt");
ok($r->header('Repr-Digest') // 'none', 'none', 'GET without Want-Repr-Digest: no Repr-Digest');
ok($r->header('ETag'), strong_etag($other), 'GET: the strong ETag');
ok(dav(GET => "$base/f.txt", headers => { 'Want-Repr-Digest' => 'sha-256=0' })->header('Repr-Digest') // 'none',
   'none', 'Want-Repr-Digest: sha-256=0 asks for none');
ok(dav(GET => "$base/f.txt", headers => { 'Want-Repr-Digest' => 'sha-512=3, sha-256=10' })->header('Repr-Digest') // '',
   repr_digest($other), 'Want-Repr-Digest with several algorithms: sha-256 given');
$r = dav(HEAD => "$base/f.txt", headers => { 'Want-Repr-Digest' => 'sha-256=1' });
ok($r->header('Repr-Digest') // '', repr_digest($other), 'HEAD with Want-Repr-Digest: Repr-Digest');
ok($r->header('ETag'), strong_etag($other), 'HEAD: the strong ETag');
ok(dav(MKCOL => '/digestall/x/')->code, 201, 'MKCOL /digestall/x/');
dav(PUT => '/digestall/x/a.txt', body => 'always');
ok(dav(GET => '/digestall/x/a.txt')->header('Repr-Digest') // '', repr_digest('always'),
   'ISSDigestHeader Always: Repr-Digest unasked');

# ---- conditionals use the strong ETag ---------------------------------
my $e = strong_etag($other);
ok(dav(GET => "$base/f.txt", headers => { 'If-None-Match' => $e })->code, 304, 'If-None-Match: 304');
ok(dav(GET => "$base/f.txt", headers => { 'If-None-Match' => $e })->header('ETag') // '', $e, '... with the ETag');
ok(dav(GET => "$base/f.txt", headers => { 'If-Match' => '"other"' })->code, 412, 'GET If-Match another: 412');
$r = dav(GET => "$base/f.txt", headers => { Range => 'bytes=0-6', 'If-Range' => $e });
ok($r->code, 206, 'Range with If-Range of the strong ETag: 206');
ok($r->content, substr($other, 0, 7), '... the range');
my $put2 = dav(PUT => "$base/f.txt", body => 'v3', headers => { 'If-Match' => $e });
ok($put2->code, 204, 'PUT with If-Match of the ETag the previous PUT answered (same second): 204');
ok(dav(PUT => "$base/f.txt", body => 'v4', headers => { 'If-Match' => $put2->header('ETag') })->code, 204,
   '... and again with the ETag that one answered');
ok(dav(PUT => "$base/f.txt", body => 'v5', headers => { 'If-Match' => $e })->code, 412,
   'a PUT with an old ETag: 412');
ok(slurp("$dir/d/f.txt"), 'v4', '... and the file is unchanged');
ok(dav(PUT => "$base/f.txt", body => 'v5', headers => { 'If-None-Match' => strong_etag('v4') })->code, 412,
   'PUT with If-None-Match of the current ETag: 412');
ok(dav(DELETE => "$base/f.txt", headers => { 'If-Match' => $e })->code, 412, 'DELETE with an old ETag: 412');
ok(-e "$dir/d/f.txt" ? 1 : 0, 1, '... the file is still there');
$r = dav(PROPPATCH => "$base/f.txt", headers => { 'If-Match' => strong_etag('v4'), 'Content-Type' => 'application/xml' },
         body => '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>1</Z:a></D:prop></D:set></D:propertyupdate>');
ok($r->code, 207, 'PROPPATCH with If-Match of the current ETag: 207');
$r = dav(COPY => "$base/f.txt", headers => { Destination => url("$base/g.txt"), 'If-Match' => strong_etag('v4') });
ok($r->code, 201, 'COPY with If-Match of the current ETag: 201');
ok(dav(HEAD => "$base/g.txt")->header('ETag'), strong_etag('v4'), '... the copy has the same content ETag');
ok(dav(DELETE => "$base/g.txt", headers => { 'If-Match' => strong_etag('v4') })->code, 204,
   'DELETE with If-Match of the current ETag: 204');

# The If header's entity tags compare with the strong ETag too.
ok(dav(PROPPATCH => "$base/f.txt", headers => { If => '(["other"])', 'Content-Type' => 'application/xml' },
       body => '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>2</Z:a></D:prop></D:set></D:propertyupdate>')->code,
   412, 'If: (["another ETag"]): 412');
ok(dav(PROPPATCH => "$base/f.txt", headers => { If => '([' . strong_etag('v4') . '])', 'Content-Type' => 'application/xml' },
       body => '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>2</Z:a></D:prop></D:set></D:propertyupdate>')->code,
   207, 'If: ([strong ETag]): accepted');
ok(dav(PROPPATCH => "$base/f.txt", headers => { If => '<' . url("$base/f.txt") . '> (Not [' . strong_etag('v4') . '])', 'Content-Type' => 'application/xml' },
       body => '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>2</Z:a></D:prop></D:set></D:propertyupdate>')->code,
   412, 'If: <tag> (Not [strong ETag]): 412');

# ---- PROPFIND: DAV:getetag and I:repr-digest ---------------------------
my $pf = dav(PROPFIND => "$base/", headers => { Depth => 1, 'Content-Type' => 'application/xml' },
             body => '<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:I="https://mod-iss.org/ns/iss/1">'
                   . '<D:prop><D:getetag/><I:repr-digest/></D:prop></D:propfind>');
my $ms = parse_multistatus($pf->content);
ok($ms->{members}{"$base/f.txt"}{props}{getetag} // '', strong_etag('v4'), 'PROPFIND getetag of a file: strong');
ok($ms->{members}{"$base/f.txt"}{props}{'repr-digest'} // '', repr_digest('v4'), 'PROPFIND I:repr-digest of a file');
ok(($ms->{members}{"$base/"}{props}{getetag} // '') ne '' ? 1 : 0, 1,
   'PROPFIND getetag of the collection: still there (mod_dav_fs\'s)');
ok(grep({ $_ eq 'repr-digest' } @{ $ms->{members}{"$base/"}{missing} || [] }) ? 1 : 0, 1,
   'a collection has no I:repr-digest (404 in its propstat)');
my $all = dav(PROPFIND => "$base/f.txt", headers => { Depth => 0 })->content;
my @etags = $all =~ m{<\w+:getetag>([^<]*)</}g;
ok(join(' ', @etags), strong_etag('v4'), 'allprop: one getetag, the strong one');

# ... and in a sync-collection answer.
{
    my $p = sync_report('/patch/', token => '', level => 'infinite',
                        raw => '<D:getetag/><I:repr-digest xmlns:I="https://mod-iss.org/ns/iss/1"/>');
    ok($p->{code}, 207, 'sync-collection asking for getetag and I:repr-digest');
    ok($p->{members}{"$base/f.txt"}{props}{'repr-digest'} // '', repr_digest('v4'), '... I:repr-digest of a file');
    ok($p->{members}{"$base/f.txt"}{props}{getetag} // '', strong_etag('v4'), '... and its strong ETag');
}

# ---- files changed behind httpd's back --------------------------------
{
    spew("$dir/d/f.txt", 'changed outside');
    my $mark = log_mark();
    my $g = dav(GET => "$base/f.txt");
    ok($g->header('ETag'), strong_etag('changed outside'), 'a file changed outside httpd: the ETag follows');
    ok(log_since($mark) =~ /ISS01051: computed the digest of \S+f\.txt .*not kept, it changed very recently/ ? 1 : 0,
       1, '... computed again, and not kept while it is that fresh');
    ok(dav(PUT => "$base/f.txt", body => 'late', headers => { 'If-Match' => strong_etag('v4') })->code, 412,
       'a PUT with the ETag from before the outside change: 412');
    sleep 2;
    $mark = log_mark();
    ok(dav(HEAD => "$base/f.txt")->header('ETag'), strong_etag('changed outside'), 'later: the same ETag');
    ok(log_since($mark) =~ /ISS01051.*f\.txt \(15 bytes, changed outside mod_iss\)$/m ? 1 : 0, 1,
       '... computed once more, and kept');
    $mark = log_mark();
    ok(dav(HEAD => "$base/f.txt")->header('ETag'), strong_etag('changed outside'), 'and again');
    ok(log_since($mark) =~ /ISS01051/ ? 1 : 0, 0, '... from the state store this time');
}

# ---- MOVE keeps the content ETag ----------------------------------------
ok(dav(MOVE => "$base/big.bin", headers => { Destination => url("$base/moved.bin") })->code, 201, 'MOVE');
ok(dav(HEAD => "$base/moved.bin")->header('ETag'), strong_etag(join '', map { chr(($_ * 7) % 256) } 1 .. 300_000),
   '... the moved file keeps its content ETag');

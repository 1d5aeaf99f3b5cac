# PATCH with an RFC 3284 VCDIFF delta (application/vcdiff): deltas made by
# xdelta3 at test time apply to the current content; strong ETags chain
# PUT -> PATCH -> PATCH within the same second; every refusal named in the
# issue (428, 412, 415, 404, 405, 400, 409, 413, 422, 423, 507) answers
# with its status and a body that says why, and leaves the file
# byte-identical and the change log untouched; a PATCH enters the log
# exactly like a PUT.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Temp qw(tempdir);
use IO::Socket::INET;

plan tests => 127;


sub rnd { join '', map { chr int rand 256 } 1 .. $_[0] }

sub put {
    my ($path, $body) = @_;
    my $r = dav(PUT => $path, body => $body);
    die "PUT $path: " . $r->status_line unless $r->code =~ /^20[14]$/;
    return $r->header('ETag');
}

sub patch {
    my ($path, $delta, %h) = @_;
    return dav(PATCH => $path, body => $delta,
               headers => { 'Content-Type' => 'application/vcdiff', %h });
}

my $base = '/patch/v';
ok(dav(MKCOL => "$base/")->code, 201, 'MKCOL /patch/v/');
my $disk = sub { slurp(files_dir() =~ s{files$}{files-patch}r . "/v/$_[0]") };

# ---- the ETag chain: PUT, then PATCHes within the same second ----------
srand(42);
my $v0 = rnd(200_000);
my $etag = put("$base/a.bin", $v0);
ok($etag, strong_etag($v0), 'PUT answers the strong ETag of the content');
ok($etag !~ m{^W/} ? 1 : 0, 1, 'not weak, although the file changed this second');
my $head = dav(HEAD => "$base/a.bin");
ok($head->header('ETag'), $etag, 'HEAD gives the same ETag');
my $cur = $v0;
for my $i (1 .. 4) {
    my $new = $cur;
    substr($new, 1000 * $i, 5) = "EDIT$i";
    my $r = patch("$base/a.bin", xdelta3_delta($cur, $new), 'If-Match' => $etag);
    ok($r->code, 204, "PATCH $i right after the previous write: 204");
    ok($r->header('ETag'), strong_etag($new), "PATCH $i: the new strong ETag");
    ok($r->header('Repr-Digest'), repr_digest($new), "PATCH $i: Repr-Digest of the new content");
    ok($disk->('a.bin') eq $new ? 1 : 0, 1, "PATCH $i: the file holds the new content");
    $etag = $r->header('ETag');
    $cur = $new;
}
ok(dav(GET => "$base/a.bin")->content eq $cur ? 1 : 0, 1, 'GET returns the patched content');

# ---- what xdelta3 makes, with and without its checksum ------------------
my @cases = (
    [ 'without -n (Adler-32)', [], 300_000, sub { my $x = shift; substr($x, 150_000, 0) = 'inserted' x 1000; $x } ],
    [ 'with -n', ['-n'], 300_000, sub { my $x = shift; substr($x, 10, 20) = ''; $x } ],
    [ 'many windows (-W 16384)', ['-W', '16384'], 400_000, sub { my $x = shift; substr($x, $_ * 30_000, 3) = 'xyz' for 1 .. 12; $x } ],
    [ 'to an empty file', [], 5000, sub { '' } ],
    [ 'from an empty file', [], 0, sub { rnd(70_000) } ],
    [ 'whole rewrite', [], 50_000, sub { rnd(60_000) } ],
);
for my $c (@cases) {
    my ($name, $flags, $size, $edit) = @$c;
    my $old = rnd($size);
    my $new = $edit->($old);
    my $e = put("$base/c.bin", $old);
    my $d = xdelta3_delta($old, $new, @$flags);
    my $r = patch("$base/c.bin", $d, 'If-Match' => $e);
    ok($r->code, 204, "$name: 204");
    ok($disk->('c.bin') eq $new ? 1 : 0, 1, "$name: exact result (" . length($new) . ' bytes)');
    ok($r->header('ETag'), strong_etag($new), "$name: ETag");
}

# ---- refusals: status, a body that says why, nothing changed ----------
my $old = rnd(100_000);
my $new = $old;
substr($new, 50_000, 100) = 'x' x 100;
my $good = xdelta3_delta($old, $new);
$etag = put("$base/r.bin", $old);

sub refused {
    my ($name, $status, $tag, $r, $file, $content) = @_;
    $file //= 'r.bin';
    $content //= $old;
    ok($r->code, $status, "$name: $status");
    ok($r->content =~ m{<I:\Q$tag\E/>} && $r->content =~ m{<I:message>[^<]{10,}</I:message>} ? 1 : 0, 1,
       "$name: the body names <I:$tag/> and says why") or print '# ', $r->content, "\n";
    ok(($disk->($file) // '<none>') eq $content ? 1 : 0, 1, "$name: the file is byte-identical");
}

my $token = sync_token_of('/patch/');
ok($token ? 1 : 0, 1, 'the location has a sync token');

refused('no If-Match', 428, 'if-match-required', patch("$base/r.bin", $good));
my $r = patch("$base/r.bin", $good, 'If-Match' => '"another"');
ok($r->code, 412, 'If-Match of another version: 412');
ok($disk->('r.bin') eq $old ? 1 : 0, 1, '412: the file is byte-identical');
$r = patch("$base/r.bin", $good, 'If-Match' => '*');
ok($r->code, 204, 'If-Match: * applies to an existing file');
$etag = put("$base/r.bin", $old);
$token = sync_token_of('/patch/');

$r = dav(PATCH => "$base/r.bin", body => $good,
         headers => { 'Content-Type' => 'text/plain', 'If-Match' => $etag });
refused('a format it does not take', 415, 'unsupported-patch-format', $r);
ok(($r->header('Accept-Patch') // '') =~ m{application/vcdiff} ? 1 : 0, 1, '415 says Accept-Patch');
refused('no Content-Type', 415, 'unsupported-patch-format',
        dav(PATCH => "$base/r.bin", body => $good, headers => { 'If-Match' => $etag }));

refused('a missing file', 404, 'not-found', patch("$base/none.bin", $good, 'If-Match' => '*'),
        'none.bin', '<none>');
refused('a collection', 405, 'not-a-file', patch("$base/", $good, 'If-Match' => '*'),
        'r.bin', $old);

refused('not VCDIFF at all', 400, 'invalid-delta', patch("$base/r.bin", "garbage" x 10, 'If-Match' => $etag));
# Cut inside the magic, inside the window header, before the last byte.
# (VCDIFF has no end marker: a delta cut exactly after its header or
# between two windows is a valid delta of a shorter result; Repr-Digest
# catches that, below.)
for my $cut (3, 12, length($good) - 1) {
    refused("a delta cut at byte $cut", 400, 'invalid-delta',
            patch("$base/r.bin", substr($good, 0, $cut), 'If-Match' => $etag));
}
refused('a delta cut after its header, with the Repr-Digest of the whole result', 409,
        'repr-digest-mismatch', patch("$base/r.bin", substr($good, 0, 5), 'If-Match' => $etag,
                                      'Repr-Digest' => repr_digest($new)));
{
    # The connection ends before the Content-Length it announced.
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . Apache::Test::vars('port'))
        or die "connect: $!";
    my $cut = substr($good, 0, int(length($good) / 2));
    print $sock "PATCH $base/r.bin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/vcdiff\r\n"
              . "If-Match: $etag\r\nContent-Length: " . length($good) . "\r\n\r\n$cut";
    shutdown($sock, 1);
    my $answer = join '', <$sock>;
    close $sock;
    ok($answer =~ m{^HTTP/1\.1 400} || $answer eq '' ? 1 : 0, 1, 'a body cut short by the client: 400 or no answer');
    select(undef, undef, undef, 0.2);
    ok($disk->('r.bin') eq $old ? 1 : 0, 1, '... the file is byte-identical');
}
{
    my $other = rnd(100_000);      # same length, other bytes
    my $d = xdelta3_delta($other, $other =~ s/^(.{10})/0123456789/sr);
    refused('a delta made from another version (Adler-32)', 409, 'delta-conflict',
            patch("$base/r.bin", $d, 'If-Match' => $etag));
}
refused('Repr-Digest of another result', 409, 'repr-digest-mismatch',
        patch("$base/r.bin", $good, 'If-Match' => $etag, 'Repr-Digest' => repr_digest('something else')));
refused('a malformed Repr-Digest', 400, 'invalid-digest',
        patch("$base/r.bin", $good, 'If-Match' => $etag, 'Repr-Digest' => 'sha-256=:abc:'));
refused('Content-Digest of another body', 400, 'digest-mismatch',
        patch("$base/r.bin", $good, 'If-Match' => $etag, 'Content-Digest' => repr_digest('other')));
{
    my $sec = $good;
    substr($sec, 4, 1) = chr(ord(substr($sec, 4, 1)) | 1);
    refused('a secondary compressor (VCD_DECOMPRESS)', 422, 'unsupported-delta',
            patch("$base/r.bin", $sec, 'If-Match' => $etag));
    my $tab = $good;
    substr($tab, 4, 1) = chr(ord(substr($tab, 4, 1)) | 2);
    refused('an application-defined code table (VCD_CODETABLE)', 422, 'unsupported-delta',
            patch("$base/r.bin", $tab, 'If-Match' => $etag));
}
ok(sync_token_of('/patch/'), $token, 'no refused PATCH entered the change log');

# The right Repr-Digest and Content-Digest are accepted.
$r = patch("$base/r.bin", $good, 'If-Match' => $etag, 'Repr-Digest' => repr_digest($new),
           'Content-Digest' => repr_digest($good));
ok($r->code, 204, 'matching Repr-Digest and Content-Digest: 204');
ok($disk->('r.bin') eq $new ? 1 : 0, 1, '... applied');

# ---- a PATCH enters the log like a PUT ---------------------------------
{
    my $t0 = sync_token_of('/patch/');
    ok($t0 ne $token ? 1 : 0, 1, 'the successful PATCH moved the token');
    my $p = sync_report('/patch/', token => $token, level => 'infinite');
    my @hrefs = @{ $p->{order} };
    ok(join(' ', @hrefs), '/patch/v/r.bin', 'a sync from before lists the patched file, once');
    ok($p->{members}{'/patch/v/r.bin'}{props}{getetag} // '', strong_etag($new),
       '... with the ETag the PATCH answered');
}

# ---- limits: /patchlim/ (ISSPatchMaxTargetSize 64K, ISSPatchMaxWindow 16K)
ok(dav(MKCOL => '/patchlim/v/')->code, 201, 'MKCOL /patchlim/v/');
my $ldisk = sub { slurp(files_dir() =~ s{files$}{files-patchlim}r . "/v/$_[0]") };
{
    my $small = rnd(3000);
    my $e = put('/patchlim/v/l.bin', $small);
    my $lt0 = sync_token_of('/patchlim/');
    my $big = $small . rnd(70_000);
    my $r = patch('/patchlim/v/l.bin', xdelta3_delta($small, $big, '-W', '16384'), 'If-Match' => $e);
    ok($r->code, 413, 'a result past ISSPatchMaxTargetSize: 413');
    ok($r->content =~ m{<I:patch-too-large/>} ? 1 : 0, 1, '... named patch-too-large');
    ok($ldisk->('l.bin') eq $small ? 1 : 0, 1, '... the file is byte-identical');
    my $wide = rnd(20_000);      # one window of 20000 bytes
    $r = patch('/patchlim/v/l.bin', xdelta3_delta($small, $wide), 'If-Match' => $e);
    ok($r->code, 413, 'a window past ISSPatchMaxWindow: 413');
    ok($ldisk->('l.bin') eq $small ? 1 : 0, 1, '... the file is byte-identical');
    ok(sync_token_of('/patchlim/'), $lt0, 'neither 413 entered the change log');
    my $fits = rnd(20_000);      # windows of 16384 and 3616 bytes
    $r = patch('/patchlim/v/l.bin', xdelta3_delta($small, $fits, '-W', '16384'), 'If-Match' => $e);
    ok($r->code, 204, 'within both limits: 204');
    ok($ldisk->('l.bin') eq $fits ? 1 : 0, 1, '... applied');
}

# ---- locks: a PATCH of a locked file needs the lock token -------------
{
    my $e = put("$base/k.bin", $old);
    my $lock = dav(LOCK => "$base/k.bin", headers => { 'Content-Type' => 'application/xml', Timeout => 'Second-60' },
                   body => '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
                         . '<D:locktype><D:write/></D:locktype></D:lockinfo>');
    ok($lock->code, 200, 'LOCK the file');
    my $lt = $lock->header('Lock-Token') // '';
    my $t0 = sync_token_of('/patch/');
    my $r = patch("$base/k.bin", $good, 'If-Match' => $e);
    ok($r->code, 423, 'PATCH of a locked file without its token: 423');
    ok($disk->('k.bin') eq $old ? 1 : 0, 1, '... the file is byte-identical');
    ok(sync_token_of('/patch/'), $t0, '... and the change log untouched');
    $r = patch("$base/k.bin", $good, 'If-Match' => $e, If => "($lt)");
    ok($r->code, 204, 'with the lock token in If: 204');
    ok($disk->('k.bin') eq $new ? 1 : 0, 1, '... applied');
    ok(dav(UNLOCK => "$base/k.bin", headers => { 'Lock-Token' => $lt })->code, 204, 'UNLOCK');
}

# ---- OPTIONS advertises PATCH ------------------------------------------
{
    my $o = dav(OPTIONS => "$base/r.bin");
    ok(($o->header('Accept-Patch') // ''), 'application/vcdiff, application/x-sabredav-partialupdate, '
       . 'application/vnd.mod-iss.manifest, application/vnd.mod-iss.manifest-delta',
       'OPTIONS: Accept-Patch (the deltas, and the manifests of uploads by manifest)');
    ok(($o->header('Allow') // '') =~ /\bPATCH\b/ ? 1 : 0, 1, 'OPTIONS: PATCH in Allow');
    ok(join(',', $o->header('DAV')) =~ /sabredav-partialupdate/ ? 1 : 0, 1, 'OPTIONS: sabredav-partialupdate in DAV');
    ok(dav(PATCH => '/plain/nothing.txt', body => 'x')->code =~ /^(405|501)$/ ? 1 : 0, 1,
       'Dav On locations do not take PATCH');
}

# ---- no room: a PATCH whose result cannot be written answers 507 -------
{
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/files";
    my $h = own_httpd_start(dir => $dir, max_file_kb => 256,
                            config => iss_s_location($dir));
    ok(!defined $h->{code} ? 1 : 0, 1, 'an httpd whose files may not grow past 256 KiB started')
        or print '# ', $h->{log}->(), "\n";
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
    my $u = "http://127.0.0.1:$h->{port}/s/full.bin";
    my $small = rnd(100_000);
    my $pr = $ua->request(HTTP::Request->new(PUT => $u, [], $small));
    ok($pr->code, 201, 'PUT 100 KB there');
    my $e = $pr->header('ETag');
    my $token = sub {
        my $res = $ua->request(HTTP::Request->new(PROPFIND => "http://127.0.0.1:$h->{port}/s/",
            [ Depth => 0, 'Content-Type' => 'application/xml' ],
            '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>'));
        return ($res->content =~ m{sync-token>([^<]+)<})[0] // 'none';
    };
    my $t0 = $token->();
    my $r = $ua->request(HTTP::Request->new(PATCH => $u,
        [ 'Content-Type' => 'application/vcdiff', 'If-Match' => $e ],
        xdelta3_delta($small, $small . rnd(300_000))));
    ok($r->code, 507, 'a 400 KB result: 507 Insufficient Storage');
    ok($r->content =~ m{<I:insufficient-storage/>} ? 1 : 0, 1, '... named insufficient-storage');
    ok((slurp("$dir/files/full.bin") // '') eq $small ? 1 : 0, 1, '... the file is byte-identical');
    opendir(my $dh, "$dir/files");
    my @left = grep { /^\.davfs\.tmp/ } readdir $dh;
    ok(scalar(@left), 0, '... and no temporary file is left behind');
    ok($token->(), $t0, '... and the change log is untouched');
    own_httpd_stop($h);
}

# Chunk dedup over a real httpd: the store's chunking parameters in
# OPTIONS, manifests on GET (Accept), uploads by manifest (a copy costs no
# data; only missing chunks are sent; resume after a cut connection), the
# manifest delta, the upload log entry, sessions' limits and expiry, and
# every bad input of the issue with its status, element, and nothing
# changed on disk, in the log or in the staging area.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use IO::Socket::INET;
use POSIX ();
use Digest::SHA qw(sha256 sha256_hex);

plan tests => 137;

# Pseudo-random bytes, fast even under the ASan run's preloaded runtime
# (a byte at a time from rand() took minutes there): SHA-256 in counter
# mode, a new stream for every call.
my $rnd_calls = 0;
sub rnd {
    my ($n) = @_;
    my $seed = ++$rnd_calls . '-' . $0;
    return substr(join('', map { Digest::SHA::sha256("$seed-$_") } 0 .. $n / 32), 0, $n);
}

my $files = files_dir();    # (before any map: it reads the config, using $_)
my %dirs = map { $_ => $files =~ s{files$}{files-$_}r } qw(chunks chunklim chunkfile nochunks);
my %state = map { $_ => $files =~ s{files$}{state-$_}r } qw(chunks chunklim chunkfile nochunks);
sub disk { slurp("$dirs{$_[0]}/$_[1]") }
sub sessions { my ($loc) = @_; my @s = grep { !/^\./ } map { s{.*/}{}r } glob("$state{$loc}/uploads/*"); scalar @s }

sub put {
    my ($path, $body) = @_;
    my $r = dav(PUT => $path, body => $body);
    die "PUT $path: " . $r->status_line unless $r->code =~ /^20[14]$/;
    return $r->header('ETag');
}

sub upload {
    my ($path, $manifest, %h) = @_;
    return dav(PATCH => $path, body => $manifest,
               headers => { 'Content-Type' => MANIFEST_TYPE, %h });
}

sub post_chunks {
    my ($path, $session, $body) = @_;
    return dav(POST => $path, body => $body,
               headers => { 'Content-Type' => CHUNKS_TYPE, 'ISS-Upload-Session' => $session });
}

sub token_of { sync_token_of("/$_[0]/") }

sub element { $_[0]->content =~ m{<I:([a-z-]+)/>} ? $1 : '' }


# ---- discovery ------------------------------------------------------------
my $o = dav(OPTIONS => '/chunks/');
ok($o->header('ISS-Chunking'), 'fastcdc;min=16384;avg=65536;max=262144',
   'OPTIONS: the store\'s chunking parameters');
ok(($o->header('Accept-Patch') // '') =~ m{application/vnd\.mod-iss\.manifest,\s*application/vnd\.mod-iss\.manifest-delta} ? 1 : 0, 1,
   'Accept-Patch lists the manifest and the manifest delta');
ok(dav(OPTIONS => '/chunklim/')->header('ISS-Chunking'), 'fastcdc;min=1024;avg=4096;max=16384',
   'ISSChunkSizes shows in OPTIONS');
$o = dav(OPTIONS => '/nochunks/');
ok(defined $o->header('ISS-Chunking') ? 1 : 0, 0, 'ISSChunking Off: no ISS-Chunking');
ok(($o->header('Accept-Patch') // '') =~ /manifest/ ? 1 : 0, 0, 'ISSChunking Off: no manifest in Accept-Patch');

# ---- manifests on GET -------------------------------------------------------
my $a = rnd(1_500_000);
my $etag_a = put('/chunks/a.bin', $a);
my $mark = log_mark();
my $g = dav(GET => '/chunks/a.bin', headers => { Accept => MANIFEST_TYPE });
ok($g->code, 200, 'GET with Accept: manifest');
ok($g->header('Content-Type'), MANIFEST_TYPE, '... of the manifest type');
my $man_a = manifest_of($a);
ok($g->content eq $man_a ? 1 : 0, 1, '... equal to what the client-side chunker makes of the bytes');
ok(manifest_parse($g->content)->{sha} eq sha256($a) ? 1 : 0, 1, '... with the file\'s SHA-256');
ok(scalar @{ manifest_parse($man_a)->{entries} } > 10 ? 1 : 0, 1, '... in many chunks');
ok($g->header('ETag'), substr($etag_a, 0, -1) . '.ism"', '... its own ETag, derived from the file\'s');
ok(($g->header('Vary') // '') =~ /Accept/ ? 1 : 0, 1, '... Vary: Accept');
ok(log_since($mark) =~ /ISS01066/ ? 1 : 0, 0, 'the manifest was made by the PUT, not by reading the file again');
$g = dav(GET => '/chunks/a.bin');
ok($g->content eq $a ? 1 : 0, 1, 'GET without Accept: the content');
ok(($g->header('Vary') // '') =~ /Accept/ ? 1 : 0, 1, '... with Vary: Accept too');
ok(dav(GET => '/chunks/a.bin', headers => { Accept => MANIFEST_TYPE . ';q=0, */*' })->content eq $a ? 1 : 0, 1,
   'q=0 for the manifest: the content');
$g = dav(GET => '/chunks/a.bin', headers => { Accept => MANIFEST_TYPE, 'If-None-Match' => substr($etag_a, 0, -1) . '.ism"' });
ok($g->code, 304, 'If-None-Match with the manifest ETag: 304');

# a file changed behind httpd's back: its manifest is made from its bytes
my $oob = rnd(300_000);
spew("$dirs{chunks}/oob.bin", $oob);
utime time - 10, time - 10, "$dirs{chunks}/oob.bin";
$mark = log_mark();
$g = dav(GET => '/chunks/oob.bin', headers => { Accept => MANIFEST_TYPE });
ok($g->content eq manifest_of($oob) ? 1 : 0, 1, 'out-of-band file: its manifest');
ok(log_since($mark) =~ /ISS01066: made the manifest of oob.bin/ ? 1 : 0, 1, '... made by reading it once');
$mark = log_mark();
dav(GET => '/chunks/oob.bin', headers => { Accept => MANIFEST_TYPE });
ok(log_since($mark) =~ /ISS01066/ ? 1 : 0, 0, '... and kept: not made again');

# ---- chunk download: ranges of the manifest's version ---------------------
{
    my $e = manifest_parse($man_a)->{entries};
    my ($o1, $l1) = ($e->[0][1] + $e->[1][1], $e->[2][1]);        # chunk 2
    my $r = dav(GET => '/chunks/a.bin', headers => { Range => "bytes=$o1-" . ($o1 + $l1 - 1),
                                                      'If-Range' => $etag_a });
    ok($r->code, 206, 'GET of one chunk by Range with If-Range: 206');
    ok(sha256($r->content) eq $e->[2][0] ? 1 : 0, 1, '... its bytes hash to the chunk id');
    $r = dav(GET => '/chunks/a.bin', headers => { Range => "bytes=$o1-" . ($o1 + $l1 - 1),
                                                   'If-Range' => strong_etag('another version') });
    ok($r->code . ' ' . length($r->content), '200 ' . length($a), '... If-Range of another version: the whole file');
}

# an upload over a file changed behind httpd's back reads that file once
# (its manifest gives the digest the conditions need)
{
    my $old = rnd(400_000);
    spew("$dirs{chunks}/oob2.bin", $old);
    utime time - 10, time - 10, "$dirs{chunks}/oob2.bin";
    my $new = $old; substr($new, 200_000, 6) = 'CHANGE';
    my $mark = log_mark();
    my $r = upload('/chunks/oob2.bin', manifest_of($new), 'If-Match' => strong_etag($old));
    my $log = log_since($mark);
    my $reads = () = $log =~ /ISS0105[01]|ISS01066/g;
    ok($r->code . ' ' . $reads, '409 1', 'upload over an out-of-band file: one read of it (conditions and chunks)');
}

# ---- a copy costs no data -------------------------------------------------
my $tok = token_of('chunks');
my $r = upload('/chunks/copy.bin', $man_a, 'If-None-Match' => '*');
ok($r->code, 201, 'upload of a copy by manifest: 201 at once (no chunk to send)');
ok($r->header('ETag'), $etag_a, '... with the content\'s strong ETag');
ok(disk(chunks => 'copy.bin') eq $a ? 1 : 0, 1, '... the file holds the content');
my $rep = sync_report('/chunks/', token => $tok);
ok(join(',', sort keys %{ $rep->{members} }), '/chunks/copy.bin', '... and enters the sync log like a PUT');
ok(upload('/chunks/copy.bin', $man_a, 'If-None-Match' => '*')->code, 412, 'If-None-Match: * on an existing file: 412');

# ---- only missing chunks are sent ------------------------------------------
my $b = substr($a, 0, 700_000) . rnd(100_000) . substr($a, 700_000);
my $man_b = manifest_of($b);
$r = upload('/chunks/b.bin', $man_b);
ok($r->code, 409, 'new content with an insert: 409');
ok(element($r), 'missing-chunks', '... missing-chunks');
my ($sid, @miss) = missing_of($r);
ok($sid && $sid =~ /^[0-9a-f]{32}$/ ? 1 : 0, 1, '... with an upload session');
ok(@miss >= 1 && @miss <= 8 ? 1 : 0, 1, '... asking for the few chunks around the insert (' . scalar(@miss) . ')');
ok(-e "$dirs{chunks}/b.bin" ? 1 : 0, 0, '... nothing written yet');
my $frames = frames_of($b, $man_b, @miss);
ok(length($frames) < 650_000 ? 1 : 0, 1, '... chunks to send: ' . length($frames) . ' bytes of 1.6 MB');
$r = post_chunks('/chunks/b.bin', $sid, $frames);
ok($r->code, 204, 'POST of the missing chunks: 204');
ok($r->header('ISS-Chunks-Stored'), scalar(@miss), '... all stored');
$r = upload('/chunks/b.bin', $man_b, 'ISS-Upload-Session' => $sid);
ok($r->code, 201, 'the manifest again: 201');
ok(disk(chunks => 'b.bin') eq $b ? 1 : 0, 1, '... the file holds the new content');
ok($r->header('ETag'), strong_etag($b), '... its ETag');
ok(-d "$state{chunks}/uploads/$sid" ? 1 : 0, 0, '... and the session is gone');

# ---- resume after a cut connection -----------------------------------------
my $c = rnd(700_000);
my $man_c = manifest_of($c);
$r = upload('/chunks/c.bin', $man_c);
($sid, @miss) = missing_of($r);
my $n_all = @miss;
ok($n_all >= 5 ? 1 : 0, 1, "new content: all $n_all chunks missing");
$frames = frames_of($c, $man_c, @miss);
my $cut = 0;
{   # the first two chunks whole, then half of the third, then the connection dies
    my $off = 0;
    for (1 .. 2) { $off += 36 + unpack('N', substr($frames, $off + 32, 4)) }
    $cut = $off + 36 + 1000;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . Apache::Test::vars('port')) or die;
    print $sock "POST /chunks/c.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " . CHUNKS_TYPE
        . "\r\nISS-Upload-Session: $sid\r\nContent-Length: " . length($frames) . "\r\n\r\n"
        . substr($frames, 0, $cut);
    select undef, undef, undef, 0.3;
    close $sock;
    select undef, undef, undef, 0.3;
}
$r = upload('/chunks/c.bin', $man_c, 'ISS-Upload-Session' => $sid);
my ($sid2, @miss2) = missing_of($r);
ok($r->code, 409, 'after the cut: the manifest again is 409');
ok($sid2, $sid, '... in the same session');
ok(scalar @miss2, $n_all - 2, '... asking only for the chunks that did not arrive whole');
$r = post_chunks('/chunks/c.bin', $sid, frames_of($c, $man_c, @miss2));
ok($r->code, 204, 'the rest: 204');
$r = upload('/chunks/c.bin', $man_c, 'ISS-Upload-Session' => $sid);
ok($r->code, 201, 'resumed upload: 201');
ok(disk(chunks => 'c.bin') eq $c ? 1 : 0, 1, '... the file holds the content');

# ---- the manifest delta -----------------------------------------------------
my $a2 = $a;
substr($a2, 900_000, 10) = 'TEN BYTES!';
my $man_a2 = manifest_of($a2);
my $delta = iss_chunk('delta', \$man_a, \$man_a2);
ok(length($delta) < 1000 ? 1 : 0, 1, 'a delta of a 10-byte edit: ' . length($delta) . ' bytes (the full manifest: ' . length($man_a2) . ')');
$r = dav(PATCH => '/chunks/a.bin', body => $delta, headers => { 'Content-Type' => DELTA_TYPE });
ok($r->code, 428, 'a delta without If-Match: 428');
$r = dav(PATCH => '/chunks/a.bin', body => $delta, headers => { 'Content-Type' => DELTA_TYPE, 'If-Match' => strong_etag('x') });
ok($r->code, 412, 'a delta against another version: 412');
$r = dav(PATCH => '/chunks/a.bin', body => $delta, headers => { 'Content-Type' => DELTA_TYPE, 'If-Match' => $etag_a });
ok($r->code, 409, 'the delta: 409 for the changed chunk');
($sid, @miss) = missing_of($r);
ok(scalar @miss, 1, '... exactly one chunk asked for');
ok(post_chunks('/chunks/a.bin', $sid, frames_of($a2, $man_a2, @miss))->code, 204, '... sent');
$r = dav(PATCH => '/chunks/a.bin', body => $delta,
         headers => { 'Content-Type' => DELTA_TYPE, 'If-Match' => $etag_a, 'ISS-Upload-Session' => $sid });
ok($r->code, 204, 'the delta again: 204');
ok(disk(chunks => 'a.bin') eq $a2 ? 1 : 0, 1, '... the file holds the edited content');
ok(dav(GET => '/chunks/a.bin', headers => { Accept => MANIFEST_TYPE })->content eq $man_a2 ? 1 : 0, 1,
   '... and its manifest is the new one');
my $etag_a2 = $r->header('ETag');
my $bad_delta = iss_chunk('delta', \$man_b, \$man_a2);
$r = dav(PATCH => '/chunks/a.bin', body => $bad_delta, headers => { 'Content-Type' => DELTA_TYPE, 'If-Match' => $etag_a2 });
ok($r->code . ' ' . element($r), '409 manifest-base-mismatch', 'a delta made from another manifest: 409 manifest-base-mismatch');
ok(disk(chunks => 'a.bin') eq $a2 ? 1 : 0, 1, '... the file unchanged');

# ---- a chunk source changed behind httpd's back -----------------------------
{
    my $src = rnd(200_000);
    put('/chunks/src.bin', $src);
    my $man_src = manifest_of($src);
    # same size, same mtime, same inode: only the bytes differ
    my $path = "$dirs{chunks}/src.bin";
    system('touch', '-r', $path, "$path.ref") == 0 or die;
    open my $fh, '+<:raw', $path or die;
    seek $fh, 100_000, 0; print $fh 'X' x 10; close $fh;
    system('touch', '-r', "$path.ref", $path) == 0 or die;   # the exact mtime back
    unlink "$path.ref";
    $r = upload('/chunks/src-copy.bin', $man_src);
    ok($r->code . ' ' . element($r), '409 missing-chunks', 'a copy from a source whose bytes changed: 409');
    ($sid, @miss) = missing_of($r);
    ok(scalar @miss, 1, '... asking for the changed chunk only');
    ok(-e "$dirs{chunks}/src-copy.bin" ? 1 : 0, 0, '... nothing written');
    post_chunks('/chunks/src-copy.bin', $sid, frames_of($src, $man_src, @miss));
    $r = upload('/chunks/src-copy.bin', $man_src, 'ISS-Upload-Session' => $sid);
    ok($r->code, 201, '... then 201');
    ok(disk(chunks => 'src-copy.bin') eq $src ? 1 : 0, 1, '... with the right bytes, never the changed ones');
}

# ---- bad input: status, element, nothing changed -------------------------
my $victim = rnd(100_000);
my $etag_v = put('/chunks/v.bin', $victim);
my $man_v = manifest_of($victim);
my $mv = manifest_parse($man_v);
sub refused {
    my ($what, $r, $status, $elem) = @_;
    my $t0 = token_of('chunks');
    ok($r->code, $status, "$what: $status");
    ok(element($r), $elem, "$what: $elem");
    ok(disk(chunks => 'v.bin') eq $victim ? 1 : 0, 1, "$what: the file unchanged");
}
my $t_before = token_of('chunks');
my $s_before = sessions('chunks');
my %bad;
$bad{garbage} = 'not a manifest at all, just bytes';
$bad{magic} = 'XSM1' . substr($man_v, 4);
$bad{'truncated entry'} = substr($man_v, 0, -5);
$bad{'trailing bytes'} = $man_v . 'x';
{ my %h = %$mv; $h{size} += 1; $bad{'lengths do not add up'} = manifest_pack(\%h) }
{ my %h = %$mv; $h{min} = 1024; $h{avg} = 4096; $h{max} = 16384; $bad{'other chunk sizes'} = manifest_pack(\%h) }
{ my %h = %$mv; my @e = map { [@$_] } @{ $h{entries} }; $e[0][1] -= 20000; $e[1][1] += 20000; $h{entries} = \@e;
  $bad{'entry shorter than min'} = manifest_pack(\%h) if $e[0][1] < 16384 }
{ my %h = %$mv; my @e = map { [@$_] } @{ $h{entries} }; $e[0][1] = 300_000; $h{size} += 300_000 - $mv->{entries}[0][1]; $h{entries} = \@e;
  $bad{'entry longer than max'} = manifest_pack(\%h) }
{ my %h = %$mv; $h{entries} = [ @{ $h{entries} }, [ "\0" x 32, 0 ] ]; $bad{'zero-length entry'} = manifest_pack(\%h) }
for my $what (sort keys %bad) {
    refused("manifest: $what", upload('/chunks/v.bin', $bad{$what}, 'If-Match' => $etag_v), 400, 'invalid-manifest');
}
# ids of the wrong length: a manifest whose entries are 33 bytes apart
{ my $m = substr($man_v, 0, 60) . join('', map { pack 'a33 N', @$_ } @{ $mv->{entries} });
  refused('manifest: ids of 33 bytes', upload('/chunks/v.bin', $m, 'If-Match' => $etag_v), 400, 'invalid-manifest') }
ok(token_of('chunks'), $t_before, 'bad manifests: the sync token did not move');
ok(sessions('chunks'), $s_before, 'bad manifests: no upload session made');

# a commit that references chunks never uploaded: asked for, nothing written
{
    my $new = rnd(50_000);
    my $m = manifest_of($new);
    $r = upload('/chunks/v.bin', $m, 'If-Match' => $etag_v);
    refused('a commit of chunks never uploaded', $r, 409, 'missing-chunks');
    ($sid, @miss) = missing_of($r);
    # a chunk whose bytes do not hash to its id
    my $f = frames_of($new, $m, @miss);
    substr($f, 40, 1) ^= "\x01";
    $r = post_chunks('/chunks/v.bin', $sid, $f);
    refused('a chunk whose bytes do not match its id', $r, 400, 'chunk-digest-mismatch');
    ok(scalar(grep { !/session|manifest/ } glob("$state{chunks}/uploads/$sid/*")), 0, '... it was not staged');
    # a chunk the manifest does not list
    $r = post_chunks('/chunks/v.bin', $sid, frames_of($a2, $man_a2, unpack('H*', manifest_parse($man_a2)->{entries}[0][0])));
    ok($r->code, 400, 'a chunk not in the session\'s manifest: 400');
    $r = post_chunks('/chunks/v.bin', $sid, pack('a32 N', sha256('x'), 1) . 'x');
    ok(element($r), 'chunk-not-in-manifest', '... chunk-not-in-manifest');
    # right id, wrong length
    my $fr = frames_of($new, $m, $miss[0]);
    substr($fr, 32, 4) = pack 'N', unpack('N', substr($fr, 32, 4)) - 1;
    $r = post_chunks('/chunks/v.bin', $sid, substr($fr, 0, -1));
    ok($r->code . ' ' . element($r), '400 chunk-length-mismatch', 'a chunk of the wrong length: 400 chunk-length-mismatch');
    $r = upload('/chunks/v.bin', $m, 'If-Match' => $etag_v, 'ISS-Upload-Session' => $sid);
    refused('the commit after refused chunks', $r, 409, 'missing-chunks');
    # sessions belong to one file
    $r = post_chunks('/chunks/a.bin', $sid, frames_of($new, $m, @miss));
    ok($r->code . ' ' . element($r), '409 unknown-session', 'the session used for another path: 409 unknown-session');
    $r = post_chunks('/chunks/v.bin', '../../../../etc/passwd', 'x');
    ok($r->code . ' ' . element($r), '400 invalid-session', 'a session id that is a path: 400 invalid-session');
    $r = post_chunks('/chunks/v.bin', 'f' x 32, 'x');
    ok($r->code . ' ' . element($r), '409 unknown-session', 'a session that does not exist: 409 unknown-session');
    # a session of /chunks/ used outside it: another location, another store
    $r = post_chunks('/chunklim/v.bin', $sid, frames_of($new, $m, @miss));
    ok($r->code . ' ' . element($r), '409 unknown-session', 'the session used in another location: 409 unknown-session');
    ok(scalar(grep { !m{/(session|manifest)$} } glob("$state{chunks}/uploads/$sid/*")), 0, '... nothing staged in it');
    $r = upload('/chunklim/v.bin', manifest_of($new, params => '1024,4096,16384'), 'ISS-Upload-Session' => $sid);
    ok($r->code . ' ' . element($r), '409 missing-chunks', '... a PATCH there naming it: 409 missing-chunks');
    ok(($r->header('ISS-Upload-Session') // $sid) ne $sid ? 1 : 0, 1, '... with a session of that location, not this one\'s');
    $r = upload('/chunks/v.bin', $m, 'If-Match' => $etag_v, 'ISS-Upload-Session' => '../x');
    refused('PATCH with a session id that is a path', $r, 400, 'invalid-session');
    $r = upload('/chunks/nodir/x.bin', $m);
    ok($r->code . ' ' . element($r), '409 no-parent', 'a new file in a folder that does not exist: 409 no-parent');
    # the manifest's file digest is not the content's
    my %h = %{ manifest_parse($man_a2) };
    $h{sha} = sha256('something else');
    $r = upload('/chunks/v.bin', manifest_pack(\%h), 'If-Match' => $etag_v);
    refused('a manifest whose file digest is wrong', $r, 409, 'repr-digest-mismatch');
}
ok(token_of('chunks'), $t_before, 'all the refusals: the sync token did not move');

# limits: ISSUploadMaxSize 1M, staging 300K, 1K/4K/16K chunks
{
    my $big = rnd(1_200_000);
    my $m = manifest_of($big, params => '1024,4096,16384');
    $r = upload('/chunklim/big.bin', $m);
    ok($r->code . ' ' . element($r), '413 manifest-too-large', 'a manifest of a file over ISSUploadMaxSize: 413');
    ok(-e "$dirs{chunklim}/big.bin" ? 1 : 0, 0, '... nothing written');
    $r = upload('/chunklim/big.bin', 'x' x 400_000);
    ok($r->code . ' ' . element($r), '413 manifest-too-large', 'a body larger than any manifest of the location: 413');
    my $mid = rnd(900_000);
    $m = manifest_of($mid, params => '1024,4096,16384');
    $r = upload('/chunklim/mid.bin', $m);
    ($sid, @miss) = missing_of($r);
    ok($r->code, 409, 'a 900K upload in /chunklim/: 409');
    $r = post_chunks('/chunklim/mid.bin', $sid, frames_of($mid, $m, @miss));
    ok($r->code . ' ' . element($r), '507 insufficient-storage', 'more than ISSUploadStagingLimit staged: 507');
    my $staged = 0;
    $staged += -s $_ for grep { !m{/(session|manifest)$} } glob("$state{chunklim}/uploads/$sid/*");
    ok($staged <= 300 * 1024 ? 1 : 0, 1, "... staging stays within the limit ($staged bytes)");
    # ISSUploadTimeout 2: idle sessions go when the next one is made
    sleep 3;
    my $small = rnd(20_000);
    upload('/chunklim/small.bin', manifest_of($small, params => '1024,4096,16384'));
    ok(-d "$state{chunklim}/uploads/$sid" ? 1 : 0, 0, 'a session idle longer than ISSUploadTimeout is removed');
    $r = post_chunks('/chunklim/mid.bin', $sid, frames_of($mid, $m, $miss[0]));
    ok($r->code . ' ' . element($r), '409 unknown-session', '... and posting to it: 409 unknown-session');
    my ($code, $out) = iss_state($state{chunklim}, 'uploads');
    ok($code == 0 && $out =~ /small\.bin/ ? 1 : 0, 1, 'iss-state uploads lists the live session');
}

# ---- ISSDedupScope File ----------------------------------------------------
{
    my $x = rnd(400_000);
    my $etag = put('/chunkfile/x.bin', $x);
    $r = upload('/chunkfile/y.bin', manifest_of($x));
    ($sid, @miss) = missing_of($r);
    ok(scalar @miss, scalar @{ manifest_parse(manifest_of($x))->{entries} },
       'ISSDedupScope File: a copy of another file asks for every chunk');
    my $x2 = $x; substr($x2, 200_000, 4) = 'EDIT';
    $r = upload('/chunkfile/x.bin', manifest_of($x2), 'If-Match' => $etag);
    ($sid, @miss) = missing_of($r);
    ok(scalar @miss, 1, '... a new version of the same file asks for the changed chunk only');
}

# ---- ISSChunking Off ----------------------------------------------------------
put('/nochunks/n.bin', 'n' x 1000);
$r = upload('/nochunks/n.bin', manifest_of('n' x 1000));
ok($r->code, 415, 'ISSChunking Off: PATCH with a manifest is 415');
ok(dav(GET => '/nochunks/n.bin', headers => { Accept => MANIFEST_TYPE })->content eq 'n' x 1000 ? 1 : 0, 1,
   '... and GET with Accept: manifest gives the content');

# ---- concurrent commits to one path: one wins, the other gets 412 -----------
{
    my $base = rnd(300_000);
    my $e0 = put('/chunks/race.bin', $base);
    my ($wins, $lost, $mixed) = (0, 0, 0);
    for my $round (1 .. 8) {
        my @v = map { my $t = $base; substr($t, 1000 * $round, 8) = "R${round}V$_"; $t } 1 .. 2;
        # make their chunks known first (as other files), so each commit is data-free
        put("/chunks/race-src$_.bin", $v[$_ - 1]) for 1 .. 2;
        my @m = map { manifest_of($_) } @v;
        my @pids;
        for my $i (0, 1) {
            my $pid = fork // die;
            if (!$pid) {
                my $r = upload('/chunks/race.bin', $m[$i], 'If-Match' => $e0);
                POSIX::_exit($r->code == 204 ? 0 : $r->code == 412 ? 1 : 2);
            }
            push @pids, $pid;
        }
        my @codes = map { waitpid($_, 0); $? >> 8 } @pids;
        $wins += grep { $_ == 0 } @codes;
        $lost += grep { $_ == 1 } @codes;
        my $now = disk(chunks => 'race.bin');
        $mixed++ unless grep { $now eq $_ } @v;
        $e0 = strong_etag($now);
    }
    ok($wins, 8, 'concurrent commits against one ETag: one wins each time');
    ok($lost, 8, '... the other gets 412');
    ok($mixed, 0, '... and the file is always one whole version');
}

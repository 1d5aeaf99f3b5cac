# Bounds and refusals found by the adversarial review of issue 16 (items 6
# to 9), on an httpd of the test's own (small limits, its own lock
# database):
#  - a VCDIFF COPY running from the source segment into the target
#    window (RFC 3284 section 3): 400, nothing changed;
#  - upload by manifest into a collection under a depth-infinity lock,
#    without its token: 423 as for PUT, for an empty manifest, a copy of
#    a known file, new content (no upload session made); with the token:
#    created, and the new member inherits the lock;
#  - bounded work and storage (item 7), see the sections below.
# Every refusal checks the answer AND that nothing changed: the files on
# disk, the sync token of the location, the upload sessions.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use Digest::SHA qw(sha256);
use File::Temp qw(tempdir);
use LWP::UserAgent;
use HTTP::Request;

plan tests => 32;

my $rnd_calls = 0;
sub rnd {
    my ($n) = @_;
    my $seed = ++$rnd_calls . '-' . $0;
    return substr(join('', map { Digest::SHA::sha256("$seed-$_") } 0 .. $n / 32), 0, $n);
}

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/files";
mkdir "$dir/files/v";
my $h = own_httpd_start(dir => $dir, config => <<"CONF");
Alias /b "$dir/files"
<Location /b/>
    Dav iss
    ISSStateDir "$dir/state"
</Location>
CONF
ok(!defined $h->{code} ? 1 : 0, 1, 'an httpd of the test\'s own started')
    or print '# ', $h->{log}->(), "\n";
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
sub req {
    my ($method, $path, %o) = @_;
    my %hd = %{ $o{headers} || {} };
    return $ua->request(HTTP::Request->new($method => "http://127.0.0.1:$h->{port}$path",
                                           [ %hd ], $o{body}));
}
sub disk { slurp("$dir/files/$_[0]") }
sub token {
    my $res = req(PROPFIND => '/b/', headers => { Depth => 0, 'Content-Type' => 'application/xml' },
                  body => '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
    return ($res->content =~ m{sync-token>([^<]+)<})[0] // 'none';
}
sub sessions { scalar grep { !m{/\.[^/]*$} } glob("$dir/state/uploads/*") }
sub tmpfiles { my ($d) = @_; opendir(my $dh, "$dir/files/$d") or return -1; scalar grep { /^\.davfs\.tmp/ } readdir $dh }
sub element { $_[0]->content =~ m{<I:([a-z-]+)/>} ? $1 : '' }

# ---- item 8: a COPY across the end of the source segment ---------------
# VCDIFF by hand: one window, VCD_SOURCE over the whole 16-byte file, a
# target of 20 bytes made by one COPY of 20 from address 8: bytes 8..15
# of the source, then 12 bytes of the target window itself.  RFC 3284
# section 3 forbids a COPY spanning both; xdelta3 refuses it.
{
    my $old = '0123456789abcdef';
    my $r = req(PUT => '/b/v/x.bin', body => $old);
    ok($r->code, 201, 'PUT a 16-byte file');
    my $etag = $r->header('ETag');
    my $t0 = token();
    my $inst = chr(19) . chr(20);          # COPY, size 20 follows, mode 0 (SELF)
    my $addr = chr(8);
    my $enc = chr(20) . chr(0) . chr(0) . chr(length $inst) . chr(length $addr) . $inst . $addr;
    my $delta = "\xd6\xc3\xc4\x00\x00" . chr(0x01) . chr(16) . chr(0) . chr(length $enc) . $enc;
    $r = req(PATCH => '/b/v/x.bin', body => $delta,
             headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => $etag });
    ok($r->code, 400, 'a COPY from the source segment into the target window: 400');
    ok(element($r), 'invalid-delta', '... named invalid-delta');
    ok($r->content =~ /into the target window/ ? 1 : 0, 1, '... and the message says why')
        or print '# ', $r->content, "\n";
    ok(disk('v/x.bin'), $old, '... the file is byte-identical');
    ok(token(), $t0, '... the change log is untouched');
    ok(tmpfiles('v'), 0, '... no temporary file left');
    # the same bytes in two COPYs, one per segment, are a valid delta
    $inst = chr(19) . chr(8) . chr(19) . chr(12);
    $addr = chr(8) . chr(16);
    $enc = chr(20) . chr(0) . chr(0) . chr(length $inst) . chr(length $addr) . $inst . $addr;
    $delta = "\xd6\xc3\xc4\x00\x00" . chr(0x01) . chr(16) . chr(0) . chr(length $enc) . $enc;
    $r = req(PATCH => '/b/v/x.bin', body => $delta,
             headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => $etag });
    ok($r->code, 204, 'the same as two COPYs, one from each segment: 204');
    ok(disk('v/x.bin'), '89abcdef89abcdef89ab', '... applied');
}

# ---- item 6: upload by manifest under a lock on the parent ---------------
{
    ok(req(MKCOL => '/b/locked/')->code, 201, 'MKCOL /b/locked/');
    my $known = rnd(100_000);
    ok(req(PUT => '/b/v/known.bin', body => $known)->code, 201, 'PUT a known file elsewhere');
    my $lock = req(LOCK => '/b/locked/', headers => { 'Content-Type' => 'application/xml', Timeout => 'Second-600',
                                                      Depth => 'infinity' },
                   body => '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
                         . '<D:locktype><D:write/></D:locktype></D:lockinfo>');
    ok($lock->code, 200, 'LOCK /b/locked/ depth infinity');
    my $lt = $lock->header('Lock-Token') // '';
    my $put = req(PUT => '/b/locked/p.bin', body => 'x');
    ok($put->code . ($put->content =~ m{HTTP/1\.1 423 Locked} ? ' 423' : ''), '207 423',
       'a PUT of a new member without the token: mod_dav answers 207 naming the collection, 423 Locked');
    my $t0 = token();
    my $s0 = sessions();
    my $empty = manifest_pack({ min => 16384, avg => 65536, max => 262144, size => 0,
                                sha => sha256(''), entries => [] });
    my $fresh = rnd(300_000);
    my %cases = (
        'an empty manifest' => $empty,
        'the manifest of a known file' => manifest_of($known),
        'the manifest of new content' => manifest_of($fresh),
    );
    for my $name (sort keys %cases) {
        my $r = req(PATCH => '/b/locked/m.bin', body => $cases{$name},
                    headers => { 'Content-Type' => MANIFEST_TYPE });
        ok($r->code . ($r->content =~ m{HTTP/1\.1 423 Locked} ? ' 423' : ''), '207 423',
           "upload by manifest of a new member, $name, without the token: as PUT, 207 with 423 Locked")
            or print '# ', $r->content, "\n";
        ok(defined disk('locked/m.bin') ? 1 : 0, 0, '... no file made');
    }
    ok(token(), $t0, 'the change log is untouched by the three');
    ok(sessions(), $s0, 'no upload session was made');
    ok(tmpfiles('locked'), 0, 'no temporary file left');
    # with the token: created, and the member inherits the lock
    my $r = req(PATCH => '/b/locked/m.bin', body => manifest_of($known),
                headers => { 'Content-Type' => MANIFEST_TYPE, If => "<http://127.0.0.1:$h->{port}/b/locked/> ($lt)" });
    ok($r->code, 201, 'with the lock token in If: 201') or print '# ', $r->content, "\n";
    ok(req(PUT => '/b/locked/q.bin', body => 'x', headers => { If => "<http://127.0.0.1:$h->{port}/b/locked/> ($lt)" })->code,
       201, '(as a PUT of a new member with the token, tagged to the collection, is)');
    ok(disk('locked/m.bin') eq $known ? 1 : 0, 1, '... the file is made');
    $r = req(PUT => '/b/locked/m.bin', body => 'overwritten');
    ok($r->code, 423, 'a PUT of the new member without the token: 423 (it inherited the lock)');
    ok(disk('locked/m.bin') eq $known ? 1 : 0, 1, '... the file is unchanged');
    $r = req(PATCH => '/b/locked/e.bin', body => $empty,
             headers => { 'Content-Type' => MANIFEST_TYPE, If => "<http://127.0.0.1:$h->{port}/b/locked/> ($lt)" });
    ok($r->code, 201, 'an empty manifest with the token: 201');
    ok(req(UNLOCK => '/b/locked/', headers => { 'Lock-Token' => $lt })->code, 204, 'UNLOCK');
    ok(req(PUT => '/b/locked/m.bin', body => 'now')->code, 204, 'after UNLOCK a PUT of the member: 204');
}

ok(own_httpd_stop($h), 0, 'httpd stopped cleanly');

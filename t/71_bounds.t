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
use IO::Socket::INET;
use MIME::Base64 ();

plan tests => 86;

my $rnd_calls = 0;
sub rnd {
    my ($n) = @_;
    my $seed = ++$rnd_calls . '-' . $0;
    return substr(join('', map { Digest::SHA::sha256("$seed-$_") } 0 .. $n / 32), 0, $n);
}

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/$_" for qw(files files/v files-s files-big state-s state-big);
my $h = own_httpd_start(dir => $dir, config => <<"CONF");
Alias /b "$dir/files"
<Location /b/>
    Dav iss
    ISSStateDir "$dir/state"
</Location>
# a small staging area
Alias /s "$dir/files-s"
<Directory "$dir/files-s">
    Require all granted
</Directory>
<Location /s/>
    Dav iss
    ISSStateDir "$dir/state-s"
    ISSUploadStagingLimit 64K
</Location>
# growth unbounded: the admin raised it
Alias /big "$dir/files-big"
<Directory "$dir/files-big">
    Require all granted
</Directory>
<Location /big/>
    Dav iss
    ISSStateDir "$dir/state-big"
    ISSPatchMaxGrowth 0
</Location>
CONF
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
# own_httpd_start waits 10 s at most: a cold start under ASan can take
# longer, so wait here until it answers (LWP's own 500 is no answer).
sub answering {
    my ($port) = @_;
    for (1 .. 600) {
        my $r = $ua->request(HTTP::Request->new(OPTIONS => "http://127.0.0.1:$port/"));
        return 1 unless ($r->header('Client-Warning') // '') eq 'Internal response';
        select(undef, undef, undef, 0.1);
    }
    return 0;
}
ok(!defined $h->{code} && answering($h->{port}) ? 1 : 0, 1, 'an httpd of the test\'s own started and answers')
    or print '# ', $h->{log}->(), "\n";
sub req {
    my ($method, $path, %o) = @_;
    my %hd = %{ $o{headers} || {} };
    return $ua->request(HTTP::Request->new($method => "http://127.0.0.1:$h->{port}$path",
                                           [ %hd ], $o{body}));
}
sub disk { slurp("$dir/files/$_[0]") }
sub token {
    my $res = req(PROPFIND => $_[0] // '/b/', headers => { Depth => 0, 'Content-Type' => 'application/xml' },
                  body => '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
    return ($res->content =~ m{sync-token>([^<]+)<})[0] // 'none';
}
sub sessions { my $st = $_[0] // 'state'; scalar grep { !m{/\.[^/]*$} } glob("$dir/$st/uploads/*") }
sub tmpfiles { my ($d) = @_; opendir(my $dh, "$dir/$d") or return -1; scalar grep { /^\.davfs\.tmp/ } readdir $dh }
sub element { $_[0]->content =~ m{<I:([a-z-]+)/>} ? $1 : '' }

# ---- item 8: a COPY across the end of the source segment ---------------
# VCDIFF by hand: one window, VCD_SOURCE over the whole 16-byte file, a
# target of 20 bytes made by one COPY of 20 from address 8: bytes 8..15
# of the source, then 12 bytes of the target window itself.  RFC 3284
# section 3 forbids a COPY spanning both; xdelta3 refuses it.
{
    my $old = '0123456789abcdef';
    my $r = req(PUT => '/b/v/x.bin', body => $old);
    ok($r->code, 201, 'PUT a 16-byte file')
        or print '# ', $r->status_line, ' ', $r->content, "\n# ", $h->{log}->(), "\n";
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
    ok(tmpfiles('files/v'), 0, '... no temporary file left');
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
    ok(tmpfiles('files/locked'), 0, 'no temporary file left');
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

# ---- item 7: growth past the old content, bounded by the request ------
# VCDIFF windows of one RUN each: 14 bytes of delta make 8 MiB.
sub run_delta {
    my ($windows, $tlen) = @_;
    my $inst = "\0" . pack('w', $tlen);            # RUN, size follows
    my $enc = pack('w', $tlen) . "\0" . pack('w', 1) . pack('w', length $inst) . pack('w', 0) . 'z' . $inst;
    return "\xd6\xc3\xc4\x00\x00" . ("\0" . pack('w', length $enc) . $enc) x $windows;
}
{
    my $old = rnd(10_000);
    my $r = req(PUT => '/b/v/g.bin', body => $old);
    my $etag = $r->header('ETag');
    my $t0 = token();
    my $delta = run_delta(16, 8 << 20);
    ok(length($delta) < 300 ? 1 : 0, 1, 'a delta of ' . length($delta) . ' bytes making 128 MiB of RUNs');
    $r = req(PATCH => '/b/v/g.bin', body => $delta,
             headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => $etag });
    ok($r->code, 413, '... refused with 413 (ISSPatchMaxGrowth, default 1024 per byte + 1M)');
    ok(element($r), 'growth-too-large', '... named growth-too-large') or print '# ', $r->content, "\n";
    ok(disk('v/g.bin') eq $old ? 1 : 0, 1, '... the file is byte-identical');
    $r = req(PATCH => '/b/v/g.bin', body => 'x',
             headers => { 'Content-Type' => 'application/x-sabredav-partialupdate',
                          'X-Update-Range' => 'bytes=67108864-' });
    ok($r->code, 413, 'a 1-byte SabreDAV update at 64 MiB: 413');
    ok(element($r), 'growth-too-large', '... named growth-too-large');
    ok(disk('v/g.bin') eq $old ? 1 : 0, 1, '... the file is byte-identical');
    ok(token(), $t0, 'neither entered the change log');
    ok(tmpfiles('files/v'), 0, 'no temporary file left');
    # proportionate requests pass: growth within the allowance, or carried by the body
    $r = req(PATCH => '/b/v/g.bin', body => 'x',
             headers => { 'Content-Type' => 'application/x-sabredav-partialupdate',
                          'X-Update-Range' => 'bytes=20000-' });
    ok($r->code, 204, 'a 1-byte update 10 KB past the end (within the 1M allowance): 204');
    ok(length(disk('v/g.bin')), 20_001, '... applied');
    $old = disk('v/g.bin');
    my $new = $old . rnd(300_000);
    $r = req(PATCH => '/b/v/g.bin', body => xdelta3_delta($old, $new),
             headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => strong_etag($old) });
    ok($r->code, 204, 'an xdelta3 delta adding 300 KB of new bytes: 204');
    $r = req(PATCH => '/b/v/g.bin', body => run_delta(1, 3 << 20),
             headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => strong_etag($new) });
    ok($r->code, 413, 'a 3 MiB RUN from 20 bytes of delta: 413');
}

# ---- item 7: the client has gone: the work stops ------------------------
{
    ok(req(PUT => '/big/f.bin', body => 'old')->code, 201, 'PUT /big/f.bin (ISSPatchMaxGrowth 0)');
    my $ok = req(PATCH => '/big/f.bin', body => run_delta(2, 1 << 20),
                 headers => { 'Content-Type' => 'application/vcdiff', 'If-Match' => strong_etag('old') });
    ok($ok->code, 204, 'there, a 2 MiB RUN from a tiny delta is applied');
    my $cur = slurp("$dir/files-big/f.bin");
    my $delta = run_delta(32, 8 << 20);         # 256 MiB
    my $log0 = length($h->{log}->());
    my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$h->{port}") or die "connect: $!";
    print $sock "PATCH /big/f.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/vcdiff\r\n"
              . 'If-Match: ' . strong_etag($cur) . "\r\nContent-Length: " . length($delta) . "\r\n\r\n$delta";
    close $sock;
    my $msg;
    for (1 .. 600) {
        ($msg) = substr($h->{log}->(), $log0) =~ /(ISS01141: .*)/;
        last if $msg;
        select(undef, undef, undef, 0.05);
    }
    ok(defined $msg ? 1 : 0, 1, 'a 256 MiB PATCH whose client left at once: stopped (ISS01141)')
        or print '# ', substr($h->{log}->(), $log0), "\n";
    my ($n) = ($msg // '') =~ /after (\d+) bytes/;
    ok(defined $n && $n < 64 << 20 ? 1 : 0, 1, '... after ' . ($n // '?') . ' bytes, far from 256 MiB');
    select(undef, undef, undef, 0.3);
    ok(slurp("$dir/files-big/f.bin") eq $cur ? 1 : 0, 1, '... the file is byte-identical');
    ok(tmpfiles('files-big'), 0, '... no temporary file left');
}

# ---- item 7: manifests of upload sessions count in the staging limit ---
{
    my $t0 = token('/s/');
    my $m = sub {
        my ($n) = @_;
        manifest_pack({ min => 16384, avg => 65536, max => 262144, size => 65536 * $n,
                        sha => rnd(32), entries => [ map { [ rnd(32), 65536 ] } 1 .. $n ] });
    };
    my $r = req(PATCH => '/s/huge.bin', body => $m->(2000),
                headers => { 'Content-Type' => MANIFEST_TYPE });
    ok($r->code, 507, 'a manifest of 2000 unknown chunks (72 KB) past ISSUploadStagingLimit 64K: 507');
    ok(element($r), 'insufficient-storage', '... named insufficient-storage')
        or print '# ', $r->content, "\n";
    ok(sessions('state-s'), 0, '... no upload session kept');
    my ($n409, $code) = (0, 0);
    for my $i (1 .. 12) {
        $code = req(PATCH => "/s/f$i.bin", body => $m->(5), headers => { 'Content-Type' => MANIFEST_TYPE })->code;
        last if $code != 409;
        $n409++;
    }
    ok($code, 507, "small manifests: $n409 sessions, then 507");
    ok($n409 >= 1 && $n409 <= 8 ? 1 : 0, 1, '... at most 64K / 8K sessions (each counts 8 KiB and its manifest)');
    ok(sessions('state-s'), $n409, '... the 507 kept no session');
    ok(scalar(grep { -e "$dir/files-s/f$_.bin" } 1 .. 12), 0, 'no file made');
    ok(token('/s/'), $t0, 'the change log is untouched');
}

# ---- item 7: sync-token conditions in one If header are bounded ---------
{
    my $t = token();
    my $put = sub { req(PUT => '/b/v/if.bin', body => $_[0], headers => { If => join(' ', ("(<$t>)") x $_[1]) }) };
    ok(req(PUT => '/b/v/if.bin', body => 'first')->code, 201, 'PUT /b/v/if.bin');
    $t = token();
    my $r = $put->('second', 8);
    ok($r->code, 204, 'a PUT with 8 sync-token conditions (ISSIfMaxSyncTokens default): evaluated, 204');
    $t = token();
    $r = $put->('third', 9);
    ok($r->code, 400, 'with 9: 400');
    ok(element($r), 'too-many-sync-tokens', '... named too-many-sync-tokens') or print '# ', $r->content, "\n";
    ok(disk('v/if.bin'), 'second', '... the file is unchanged');
    ok(token(), $t, '... the change log is untouched');
}

ok(own_httpd_stop($h), 0, 'httpd stopped cleanly');
ok($h->{log}->() =~ /AddressSanitizer|runtime error:|Segmentation fault|exit signal/ ? 1 : 0, 0,
   'its error log has no sanitizer report and no crashed child');

# ---- item 9: a Dropship probe costs the same work either way -----------
# On the suite's server (/dedup/alice/: Require user alice, /dedup/bob/:
# bob; iss:trace2 logs each dedup access check, "may USER read PATH").
# bob sends a one-chunk manifest naming a chunk of alice's file, and one
# naming a chunk nobody has: both 409 listing the chunk, and both make
# exactly one access check (a sub-request, authentication included: the
# cost that told them apart, ~7 ms against ~4.5 ms; bench/dedup_timing.pl
# measures it).
{
    my %as = map { $_ => { Authorization => 'Basic ' . MIME::Base64::encode_base64("$_:pw-$_", '') } } qw(alice bob);
    for my $u (qw(alice bob)) {
        my $c = dav(MKCOL => "/dedup/$u/", headers => $as{$u})->code;
        ok($c == 201 || $c == 405 ? 1 : 0, 1, "/dedup/$u/ exists");
    }
    my $secret = rnd(300_000);
    ok(dav(PUT => '/dedup/alice/i9.bin', body => $secret, headers => $as{alice})->code, 201, 'alice stores a file');
    my $man = manifest_parse(manifest_of($secret));
    my ($id, $len) = @{ $man->{entries}[0] };
    my %probe = (known => $id, unknown => sha256("nobody has $id"));
    my %checks;
    for my $k (sort keys %probe) {
        my $mark = log_mark();
        my $r = dav(PATCH => "/dedup/bob/i9-$k.bin",
                    body => manifest_pack({ %$man, size => $len, sha => sha256($k), entries => [[ $probe{$k}, $len ]] }),
                    headers => { %{ $as{bob} }, 'Content-Type' => MANIFEST_TYPE });
        ok($r->code . ' ' . scalar(() = $r->content =~ m{<I:chunk>}g), '409 1', "the $k chunk: 409 asking for it");
        $checks{$k} = () = log_since($mark) =~ /dedup: may bob read /g;
        ok(-e files_dir() =~ s{files$}{files-dedup}r . "/bob/i9-$k.bin" ? 1 : 0, 0, '... no file made');
    }
    ok("$checks{known} $checks{unknown}", '1 1', 'one access check for each: the same work');
}

# ---- the new directives refuse bad values at startup --------------------
for my $bad ('ISSPatchMaxGrowth x', 'ISSPatchMaxGrowth 10 1Q', 'ISSIfMaxSyncTokens -1') {
    my ($code, $out) = own_httpd_configtest(config => "<Location /x/>\n    Dav iss\n    $bad\n</Location>\n");
    my ($name) = $bad =~ /^(\S+)/;
    ok($code != 0 && $out =~ /\Q$name\E: '/ ? 1 : 0, 1, "'$bad' stops httpd -t with a message") or print "# $out\n";
}

# ---- item 7: temporary files left by kill -9, collected by iss-state ----
{
    my $d2 = tempdir(CLEANUP => 1);
    mkdir "$d2/files";
    my $k = own_httpd_start(dir => $d2, config => <<"CONF");
Alias /k "$d2/files"
<Location /k/>
    Dav iss
    ISSStateDir "$d2/state"
</Location>
CONF
    ok(!defined $k->{code} && answering($k->{port}) ? 1 : 0, 1, 'a second httpd started and answers');
    my $kreq = sub {
        LWP::UserAgent->new(keep_alive => 0, timeout => 30)->request(
            HTTP::Request->new($_[0] => "http://127.0.0.1:$k->{port}$_[1]", [], $_[2]));
    };
    ok($kreq->(PUT => '/k/f.bin', 'content')->code, 201, 'PUT /k/f.bin');
    my @socks;
    for my $what (["PUT /k/new.bin", ''],
                  ["PATCH /k/f.bin", "Content-Type: application/x-sabredav-partialupdate\r\nX-Update-Range: append\r\n"]) {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$k->{port}") or die "connect: $!";
        print $s "$what->[0] HTTP/1.1\r\nHost: 127.0.0.1\r\n$what->[1]Content-Length: 1000000\r\n\r\n" . ('y' x 70_000);
        push @socks, $s;
    }
    my @tmp;
    for (1 .. 200) {
        opendir(my $dh, "$d2/files");
        @tmp = grep { /^\.davfs\.tmp/ } readdir $dh;
        last if @tmp >= 2;
        select(undef, undef, undef, 0.05);
    }
    ok(scalar @tmp, 2, 'a PUT and a PATCH under way have their temporary files');
    own_httpd_kill9($k);
    close $_ for @socks;
    opendir(my $dh, "$d2/files");
    ok(scalar(grep { /^\.davfs\.tmp/ } readdir $dh), 2, 'kill -9: both are left behind');
    spew("$d2/files/notes.davfs.tmpABCDEF", 'a user file');
    spew("$d2/files/.davfs.tmp-notes.txt", 'another');
    utime(time - 7200, time - 7200, "$d2/files/notes.davfs.tmpABCDEF", "$d2/files/.davfs.tmp-notes.txt");
    my $tool = $ENV{ISS_STATE_TOOL};
    my $out = `'$tool' '$d2/state' gc-tmp '$d2/files' 3600 2>&1`;
    ok($out =~ /removed 0 temporary files/ ? 1 : 0, 1, 'iss-state gc-tmp 3600: the fresh ones are kept') or print "# $out\n";
    utime(time - 7200, time - 7200, map { "$d2/files/$_" } @tmp);
    $out = `'$tool' '$d2/state' gc-tmp '$d2/files' 3600 2>&1`;
    ok($? >> 8, 0, 'iss-state gc-tmp exits 0');
    ok($out =~ /removed 2 temporary files/ ? 1 : 0, 1, '... once two hours old, both removed') or print "# $out\n";
    opendir($dh, "$d2/files");
    ok(join(' ', sort grep { !/^\.\.?$/ } readdir $dh), '.davfs.tmp-notes.txt f.bin notes.davfs.tmpABCDEF',
       '... and nothing else: the files and names not of the pattern stay');
    ok(slurp("$d2/files/f.bin"), 'content', '... f.bin unchanged');
}

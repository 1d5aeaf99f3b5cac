# ownCloud/Nextcloud compatibility (ISSOwnCloudCompat On, /oc): the
# oc:checksums property (SHA-1 and MD5, computed in the same pass as the
# SHA-256 and kept with it), OC-Checksum verified on PUT, X-OC-Mtime
# honoured; and the real rclone (Debian's package, vendor=owncloud)
# syncing against it: nothing uploaded twice, a same-size edit found and
# uploaded, its hashes equal to sha1sum's.  rclone comes from
# scripts/deps.sh; without it this test fails, it never skips.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;
use File::Temp qw(tempdir);
use File::Path qw(make_path);
use Digest::SHA qw(sha1_hex);
use Digest::MD5 qw(md5_hex);
use POSIX ();

plan tests => 73;

my $files = File::Spec->catdir(t_dir(), 'dav', 'files-oc');
my $state = File::Spec->catdir(t_dir(), 'dav', 'state-oc');
my $OC = 'http://owncloud.org/ns';

sub sums_text { 'SHA1:' . sha1_hex($_[0]) . ' MD5:' . md5_hex($_[0]) }

# oc:checksums of the members of a PROPFIND (Depth 0 or 1): { href => text }.
sub checksums {
    my ($path, %o) = @_;
    my $res = dav(PROPFIND => $path, headers => { Depth => $o{depth} // '0', 'Content-Type' => 'application/xml',
                                                  %{ $o{headers} || {} } },
                  body => qq{<D:propfind xmlns:D="DAV:" xmlns:oc="$OC"><D:prop><D:getetag/><oc:checksums/></D:prop></D:propfind>});
    my $ms = parse_multistatus($res->content);
    my %c;
    for my $href (keys %{ $ms->{members} }) {
        my $v = $ms->{members}{$href}{props}{checksums};
        $c{$href} = defined $v && $v =~ m{<(\w+):checksum>([^<]*)</\1:checksum>} ? $2 : undef;
    }
    return \%c;
}

sub reads_since { my @n = log_since($_[0]) =~ /ISS01051: computed the digest/g; scalar @n }

# ---- oc:checksums ------------------------------------------------------------
my $v1 = "version one\n" x 50;
my $mark = log_mark();
my $r = dav(PUT => '/oc/a.txt', body => $v1);
ok($r->code, 201, 'PUT /oc/a.txt: 201');
my $c = checksums('/oc/a.txt');
ok($c->{'/oc/a.txt'} // '', sums_text($v1), 'PROPFIND oc:checksums: SHA1 and MD5 of the content, as ownCloud writes them');
ok(reads_since($mark), 0, '... computed while the PUT streamed, never by reading the file');
# (iss-state lists sizes: a version 1 record is about 80 bytes, one with
# the 40 + 32 hex digits of SHA-1 and MD5 about 150.)
sub record_size { my ($name) = @_; my (undef, $l) = iss_state($state, 'list', "d/$name"); $l =~ m{^d/\Q$name\E\t(\d+)$}m ? $1 : 0 }
# A record a read made is kept when that request's pool goes, which can
# be after its answer reached us: whether one with the checksums (version
# 2) is there within 10 s.
sub record_kept {
    my ($name) = @_;
    for (1 .. 100) { return 1 if record_size($name) > 140; select(undef, undef, undef, 0.1) }
    return 0;
}
ok(record_size('a.txt') > 140 ? 1 : 0, 1, '... and kept in the digest record (version 2, with both)');
ok(dav(MKCOL => '/oc/dir/')->code, 201, 'MKCOL /oc/dir/');
$c = checksums('/oc/', depth => 1);
ok(exists $c->{'/oc/dir/'} && !defined $c->{'/oc/dir/'} ? 1 : 0, 1, 'a collection has no oc:checksums (404 in its propstat)');

# sync-collection answers carry it too.
my $sync = sync_report('/oc/', token => '', level => 1, raw => qq{<D:getetag/><oc:checksums xmlns:oc="$OC"/>});
ok($sync->{code}, 207, 'sync-collection asking for oc:checksums: 207');
my $sv = $sync->{members}{'/oc/a.txt'}{props}{checksums} // '';
ok($sv =~ m{<(\w+):checksum>\Q${\ sums_text($v1)}\E</\1:checksum>} ? 1 : 0, 1, '... with the checksums of each file')
    or print "# $sv\n";

# PATCH (SabreDAV's partial update): the new content's checksums, from
# the same pass.
$mark = log_mark();
$r = dav(PATCH => '/oc/a.txt', headers => { 'Content-Type' => 'application/x-sabredav-partialupdate',
                                            'X-Update-Range' => 'bytes=0-6' }, body => 'VERSION');
ok($r->code, 204, 'PATCH /oc/a.txt: 204');
(my $v1p = $v1) =~ s/^version/VERSION/;
ok(checksums('/oc/a.txt')->{'/oc/a.txt'} // '', sums_text($v1p), '... oc:checksums of the patched content');
ok(reads_since($mark), 0, '... computed while it was written');

# An upload by manifest (with a chunk sent by POST, and a copy of a file
# whose chunks are all here): checksums from the assembly's one pass.
{
    my $big = join('', map { pack('N', $_ * 2654435761 % 4294967291) } 1 .. 100_000);   # 400 KB
    ok(dav(PUT => '/oc/big.bin', body => $big)->code, 201, 'PUT /oc/big.bin');
    my $new = substr($big, 0, 200_000) . ('n' x 1000) . substr($big, 200_000);
    my $man = manifest_of($new);
    $mark = log_mark();
    my $r = dav(PATCH => '/oc/big2.bin', body => $man, headers => { 'Content-Type' => MANIFEST_TYPE });
    my ($sid, @miss) = missing_of($r);
    ok($r->code == 409 && @miss ? 1 : 0, 1, 'an upload by manifest asks for the changed chunks');
    dav(POST => '/oc/big2.bin', body => frames_of($new, $man, @miss),
        headers => { 'Content-Type' => CHUNKS_TYPE, 'ISS-Upload-Session' => $sid });
    $r = dav(PATCH => '/oc/big2.bin', body => $man, headers => { 'Content-Type' => MANIFEST_TYPE, 'ISS-Upload-Session' => $sid });
    ok($r->code, 201, '... and, with them, makes the file');
    $r = dav(PATCH => '/oc/big3.bin', body => manifest_of($big), headers => { 'Content-Type' => MANIFEST_TYPE });
    ok($r->code, 201, 'a copy by manifest: 201 at once');
    $c = checksums('/oc/', depth => 1);
    ok(($c->{'/oc/big2.bin'} // '') . '|' . ($c->{'/oc/big3.bin'} // ''), sums_text($new) . '|' . sums_text($big),
       '... oc:checksums of both');
    ok(reads_since($mark), 0, '... computed as they were assembled');
}

# A file changed behind httpd's back: read once, with its digest.
spew("$files/outside.txt", 'written outside');
utime(time - 100, time - 100, "$files/outside.txt");
$mark = log_mark();
ok(checksums('/oc/outside.txt')->{'/oc/outside.txt'} // '', sums_text('written outside'),
   'a file written outside httpd: its checksums');
ok(record_kept('outside.txt'), 1, '... kept in a record (with the checksums)');
ok(checksums('/oc/outside.txt')->{'/oc/outside.txt'} // '', sums_text('written outside'), '... again');
ok(reads_since($mark), 1, '... the file was read once, and its record kept');

# A record written without the checksums (ISSOwnCloudCompat Off then):
# version 1, upgraded when first asked for.
my $v0 = 'written while compat was off';
ok(dav(PUT => '/oc/old.txt', body => $v0, headers => { 'X-Test-OC' => 'off' })->code, 201, 'PUT with compat off');
ok(record_size('old.txt') < 110 ? 1 : 0, 1, '... a version 1 record, without checksums');
ok(exists checksums('/oc/old.txt', headers => { 'X-Test-OC' => 'off' })->{'/oc/old.txt'}
   && !defined checksums('/oc/old.txt', headers => { 'X-Test-OC' => 'off' })->{'/oc/old.txt'} ? 1 : 0, 1,
   '... where compat is off, no oc:checksums (an unknown property)');
utime(time - 100, time - 100, "$files/old.txt");
$mark = log_mark();
ok(checksums('/oc/old.txt')->{'/oc/old.txt'} // '', sums_text($v0), 'asked with compat on: the checksums');
ok(reads_since($mark), 1, '... computed by one read');
ok(record_kept('old.txt'), 1, '... and the record now has them (version 2)');

# ---- OC-Checksum on PUT ----------------------------------------------------------
my $tok = sync_token_of('/oc/');
my $v2 = "version two\n" x 50;
for my $bad (['SHA1:' . sha1_hex('other'), 'SHA1'], ['MD5:' . md5_hex('other'), 'MD5'],
             ['ADLER32:00000001', 'ADLER32'], ['SHA256:' . Digest::SHA::sha256_hex('other'), 'SHA256']) {
    $mark = log_mark();
    $r = dav(PUT => '/oc/a.txt', body => $v2, headers => { 'OC-Checksum' => $bad->[0] });
    ok($r->code, 400, "PUT with a wrong OC-Checksum $bad->[1]: 400");
    my ($elem, $msg) = error_body($r);
    ok(($elem // '') eq 'I:checksum-mismatch' && ($msg // '') =~ /OC-Checksum.*\Q$bad->[1]\E.*Nothing was stored/ ? 1 : 0, 1,
       '... <I:checksum-mismatch/> and a message that says which') or print '# ', $r->content, "\n";
    ok(slurp("$files/a.txt"), $v1p, '... the file stays as it was');
    ok(log_since($mark) =~ /\[iss:info\] .*ISS01053: PUT \/oc\/a\.txt refused/ ? 1 : 0, 1, '... logged at info');
}
$r = dav(PUT => '/oc/a.txt', body => $v2, headers => { 'OC-Checksum' => 'SHA1 abc' });
ok($r->code, 400, 'a malformed OC-Checksum: 400');
ok((error_body($r))[0] // '', 'I:invalid-checksum', '... <I:invalid-checksum/>');
$r = dav(PUT => '/oc/new.txt', body => $v2, headers => { 'OC-Checksum' => 'SHA1:' . sha1_hex('x') });
ok($r->code == 400 && !-e "$files/new.txt" ? 1 : 0, 1, 'a new file with a wrong OC-Checksum is not created');
ok(sync_token_of('/oc/'), $tok, 'no refused PUT entered the change log');
for my $good ('SHA1:' . uc sha1_hex($v2), 'MD5:' . md5_hex($v2),
              sprintf('ADLER32:%08x', adler32($v2)), 'SHA256:' . Digest::SHA::sha256_hex($v2)) {
    my ($type) = $good =~ /^(\w+)/;
    $r = dav(PUT => '/oc/a.txt', body => $v2, headers => { 'OC-Checksum' => $good });
    ok($r->code, 204, "PUT with the right OC-Checksum $type: 204");
}
ok(checksums('/oc/a.txt')->{'/oc/a.txt'} // '', sums_text($v2), 'oc:checksums of what was stored');

# ---- X-OC-Mtime ----------------------------------------------------------------------
my $when = 1577934245;                       # 2020-01-02 03:04:05 UTC
$r = dav(PUT => '/oc/m.txt', body => 'mtime', headers => { 'X-OC-Mtime' => $when });
ok($r->code, 201, 'PUT with X-OC-Mtime: 201');
ok($r->header('X-OC-MTime') // '', 'accepted', '... X-OC-MTime: accepted');
ok((stat "$files/m.txt")[9], $when, '... the file has that modification time');
my $pf = dav(PROPFIND => '/oc/m.txt', headers => { Depth => 0 });
ok($pf->content =~ /getlastmodified>Thu, 02 Jan 2020 03:04:05 GMT</ ? 1 : 0, 1, '... and so has DAV:getlastmodified');
$mark = log_mark();
ok(checksums('/oc/m.txt')->{'/oc/m.txt'} // '', sums_text('mtime'), '... its record names the file as it is now');
ok(reads_since($mark), 0, '... (not read again)');
$r = dav(PUT => '/oc/m.txt', body => 'overwrite', headers => { 'X-OC-Mtime' => "$when.5" });
ok($r->code == 204 && ($r->header('X-OC-MTime') // '') eq 'accepted' ? 1 : 0, 1, 'an overwrite with a fractional X-OC-Mtime: 204, accepted');
$r = dav(PUT => '/oc/m.txt', body => 'bad mtime', headers => { 'X-OC-Mtime' => 'yesterday' });
ok($r->code, 400, 'a malformed X-OC-Mtime: 400');
ok((error_body($r))[0] // '', 'I:invalid-mtime', '... <I:invalid-mtime/>');
ok(slurp("$files/m.txt"), 'overwrite', '... nothing stored');
$r = dav(PUT => '/patch/m.txt', body => 'x', headers => { 'X-OC-Mtime' => $when, 'OC-Checksum' => 'SHA1:00' });
ok($r->code == 201 && !defined $r->header('X-OC-MTime') ? 1 : 0, 1,
   'where ISSOwnCloudCompat is off, OC-Checksum and X-OC-Mtime are ignored (as before)');

# ---- rclone, vendor=owncloud ---------------------------------------------------------------
my $home = tempdir(CLEANUP => 1);
my $src = "$home/src";
make_path("$src/sub");
for my $i (1 .. 4) {
    spew("$src/f$i.bin", join('', map { chr(($i * 31 + $_ * 7) % 256) } 1 .. 20000));
}
spew("$src/sub/notes.txt", "notes\n" x 100);
utime(1577934245, 1577934245, "$src/f1.bin");
my $url = url('/oc');
# The remote "iss:", from the environment (rclone's RCLONE_CONFIG_<NAME>_*).
my %env = (RCLONE_CONFIG => "$home/rclone.conf", RCLONE_CONFIG_ISS_TYPE => 'webdav',
           RCLONE_CONFIG_ISS_URL => $url, RCLONE_CONFIG_ISS_VENDOR => 'owncloud');
spew("$home/rclone.conf", '');
sub rclone {
    my (@args) = @_;
    local @ENV{keys %env} = values %env;
    my $code = real_client($home, join(' ', 'rclone', map { "'$_'" } @args));
    return ($code >> 8, slurp("$home/client.out") // '');
}
my $access = File::Spec->catfile(t_dir(), 'logs', 'access_log');
sub access_since { my $m = shift; my $a = slurp($access) // ''; substr($a, $m) }
sub puts { my @p = $_[0] =~ m{"PUT (/oc/rc/\S+) HTTP}g; return @p }
my $R = 'iss:rc';

my ($code, $out) = rclone('sync', $src, $R);
ok($code, 0, 'rclone sync to /oc/rc: exit 0') or print "# rclone (scripts/deps.sh installs it): $out\n";
ok(slurp("$files/rc/sub/notes.txt") // '', "notes\n" x 100, '... the files are there');
ok((stat "$files/rc/f1.bin")[9] // 0, 1577934245, '... with their modification times (X-OC-Mtime)');
my $amark = -s $access;
($code, $out) = rclone('sync', $src, $R);
my @p = puts(access_since($amark));
ok($code == 0 && @p == 0 ? 1 : 0, 1, 'a second rclone sync with nothing changed uploads nothing')
    or print "# exit $code, PUTs: @p\n# $out\n";
($code, $out) = rclone('check', $src, $R);
ok($code == 0 && $out =~ /0 differences found/ && $out !~ /could not be checked/ ? 1 : 0, 1,
   'rclone check: 0 differences, every hash checked') or print "# $out\n";

# A same-size edit, keeping the modification time: only the hashes tell.
my $f2 = slurp("$src/f2.bin");
my @st = stat "$src/f2.bin";
substr($f2, 5000, 1) = chr((ord(substr($f2, 5000, 1)) + 1) % 256);
spew("$src/f2.bin", $f2);
utime($st[8], $st[9], "$src/f2.bin");
($code, $out) = rclone('check', $src, $R);
ok($code != 0 && $out =~ /f2\.bin: (?:md5|sha1) differ/ && $out =~ /1 differences found/ ? 1 : 0, 1,
   'rclone check finds the same-size edit by its hash') or print "# exit $code: $out\n";
utime($st[8], $st[9] + 100, "$src/f2.bin");     # edited later, as editors do
$amark = -s $access;
($code, $out) = rclone('sync', $src, $R);
@p = puts(access_since($amark));
ok($code == 0 && "@p" eq '/oc/rc/f2.bin' ? 1 : 0, 1, 'rclone sync uploads that file, and only that one')
    or print "# exit $code, PUTs: @p\n# $out\n";
ok(slurp("$files/rc/f2.bin") eq $f2 ? 1 : 0, 1, '... the server has the edit');
($code, $out) = rclone('check', $src, $R);
ok($code == 0 && $out =~ /0 differences found/ ? 1 : 0, 1, 'rclone check: in sync again') or print "# $out\n";
($code, $out) = rclone('hashsum', 'sha1', $R);
my %remote = map { /^([0-9a-f]{40})\s+(\S+)$/ ? ($2 => $1) : () } split /\n/, $out;
my %local = map { my $f = $_; ($f => sha1_hex(slurp("$src/$f"))) } qw(f1.bin f2.bin f3.bin f4.bin sub/notes.txt);
ok(join(',', map { "$_=" . ($remote{$_} // '') } sort keys %local),
   join(',', map { "$_=$local{$_}" } sort keys %local), 'rclone hashsum sha1 equals sha1sum of every file');

# Adler-32 (zlib's), for the OC-Checksum test above.
sub adler32 {
    my ($a, $b) = (1, 0);
    for my $c (unpack 'C*', $_[0]) { $a = ($a + $c) % 65521; $b = ($b + $a) % 65521 }
    return ($b << 16) | $a;
}

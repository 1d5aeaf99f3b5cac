# Retained versions (issue 15 item 1): a file overwritten by PUT, PATCH
# (partial update, upload by manifest), COPY or MOVE onto it, or deleted
# keeps its previous content as a version, listed at <file>?iss-versions
# and fetched byte for byte at <file>?iss-version=<entity tag>; limits
# (count per file, size in all, age); garbage collection beside
# concurrent writers; a deleted file restored; a user who may not read
# the file gets one answer whatever the version; bad queries change
# nothing; ISSKeepVersions mistakes stop httpd at startup.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use MIME::Base64 qw(encode_base64);
use Digest::SHA qw(sha256_hex);
use File::Find ();
use POSIX ();
use File::Temp ();
use LWP::UserAgent ();
use HTTP::Request ();

plan tests => 100 + 18;

my $state = t_dir() . '/dav/state-versions';
my $files = t_dir() . '/dav/files-versions';
my $limstate = t_dir() . '/dav/state-versionslim';

sub as { my ($user) = @_; ('Authorization' => 'Basic ' . encode_base64("$user:pw-$user", '')) }
sub req {
    my ($method, $path, %o) = @_;
    return dav($method => $path, body => $o{body},
               headers => { as($o{user} // 'alice'), %{ $o{headers} || {} } });
}
sub put {
    my ($path, $body, %h) = @_;
    my $r = req(PUT => $path, body => $body, headers => \%h);
    die "PUT $path: " . $r->status_line . "\n" unless $r->code =~ /^20[14]$/;
    return $r;
}
sub tag_of { my $e = strong_etag($_[0]); $e =~ tr/"//d; $e }
# [ [href, etag, length, replaced], ... ] newest first
sub versions {
    my ($path, %o) = @_;
    my $r = req(GET => "$path?iss-versions", %o);
    return [] unless $r->code == 200;
    return [ map { [ m{<D:href>([^<]*)</D:href>}, m{<D:getetag>([^<]*)</D:getetag>},
                     m{<D:getcontentlength>(\d+)</D:getcontentlength>},
                     m{<I:replaced>([^<]*)</I:replaced>} ] }
             $r->content =~ m{<I:version>(.*?)</I:version>}gs ];
}
sub etags { [ map { $_->[1] } @{ versions(@_) } ] }
sub fetch { my ($path, $content, %o) = @_; req(GET => "$path?iss-version=" . tag_of($content), %o) }
sub show { join(' ', map { my $x = $_; $x =~ s/^"(.{6}).*/$1/; $x } @{ $_[0] }) }
# Everything under the files and the state's versions area: what a
# refused request must leave as it was.
sub snapshot {
    my %s;
    for my $d ($files, "$state/versions") {
        File::Find::find({ no_chdir => 1, wanted => sub {
            $s{$_} = -f $_ ? sha256_hex(slurp($_) // '') : 'dir' } }, $d) if -d $d;
    }
    my (undef, $v) = iss_state($state, 'versions');
    return join("\n", map { "$_ $s{$_}" } sort keys %s) . "\n$v";
}

# ---- configuration mistakes stop httpd ----------------------------------
{
    my $d = File::Temp::tempdir(CLEANUP => 1);
    for my $bad (['ISSKeepVersions count=0', qr/ISSKeepVersions: 'count=0' is not a positive count/],
                 ['ISSKeepVersions size=12X', qr/ISSKeepVersions: 'size=12X' is not a positive size/],
                 ['ISSKeepVersions age=5x', qr/ISSKeepVersions: unknown unit in 'age=5x'/],
                 ['ISSKeepVersions keep=all', qr/ISSKeepVersions: 'keep=all': expected On, Off, count=/]) {
        my $h = own_httpd_start(config => "<Location /s/>\nDav iss\nISSStateDir $d\n$bad->[0]\n</Location>");
        my $started = !defined $h->{code};
        own_httpd_stop($h);
        ok(!$started && $h->{log}->() =~ $bad->[1] ? 1 : 0, 1, "$bad->[0]: httpd does not start, and says why")
            or print "# ", $h->{log}->(), "\n";
    }
}

# ---- off by default ---------------------------------------------------------
{
    my $r = dav(GET => '/chunks/anything?iss-versions');
    ok($r->code, 404, 'a location without ISSKeepVersions: 404');
    ok((error_body($r))[0] // '', 'I:versions-off', '... versions-off') or print "# ", $r->content, "\n";
}

# ---- PUT, PATCH (partial update, upload by manifest), then the count ----
put('/versions/a.txt', "one\n");
ok(show(etags('/versions/a.txt')), '', 'a new file has no versions');
put('/versions/a.txt', "two\n");
my $v = versions('/versions/a.txt');
ok(scalar @$v, 1, 'PUT over it: one version');
ok($v->[0][1], strong_etag("one\n"), '... its ETag is the old content\'s');
ok($v->[0][2], 4, '... its length');
ok($v->[0][0], '/versions/a.txt?iss-version=' . tag_of("one\n"), '... its URL');
ok($v->[0][3] =~ /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/ ? 1 : 0, 1, '... when it was replaced');
{
    my $r = fetch('/versions/a.txt', "one\n");
    ok($r->code, 200, 'GET ?iss-version=: 200');
    ok($r->content, "one\n", '... the old bytes exactly');
    ok($r->header('ETag'), strong_etag("one\n"), '... with their ETag');
}
{
    my $r = req(PATCH => '/versions/a.txt', body => 'TWO',
                headers => { 'Content-Type' => 'application/x-sabredav-partialupdate',
                             'X-Update-Range' => 'bytes=0-2' });
    ok($r->code, 204, 'PATCH (partial update)');
}
ok(show(etags('/versions/a.txt')), show([strong_etag("two\n"), strong_etag("one\n")]),
   'PATCH kept the content it replaced');
{
    my $big = join('', map { sprintf "%07d\n", $_ } 1 .. 20000);
    put('/versions/big.bin', $big);
    my $cur = req(GET => '/versions/a.txt')->header('ETag');
    my $r = req(PATCH => '/versions/a.txt', body => manifest_of($big),
                headers => { 'Content-Type' => MANIFEST_TYPE, 'If-Match' => $cur });
    ok($r->code, 204, 'upload by manifest onto a.txt (chunks found in big.bin)');
    ok(show(etags('/versions/a.txt')),
       show([strong_etag("TWO\n"), strong_etag("two\n"), strong_etag("one\n")]),
       'the upload by manifest kept the content it replaced');
    put('/versions/a.txt', "five\n");
    ok(show(etags('/versions/a.txt')),
       show([strong_etag($big), strong_etag("TWO\n"), strong_etag("two\n")]),
       'count=3: the oldest went first');
    ok(fetch('/versions/a.txt', "one\n")->code, 404, '... and is no longer served');
    my $r2 = fetch('/versions/a.txt', $big);
    ok($r2->code == 200 && $r2->content eq $big ? 1 : 0, 1, 'a 160 KB version reads back byte for byte');
}
{
    my $n = @{ versions('/versions/a.txt') };
    my $r = req(PUT => '/versions/a.txt', body => 'nope', headers => { 'If-Match' => strong_etag('other') });
    ok($r->code, 412, 'a refused PUT (412)');
    put('/versions/a.txt', "five\n");
    ok(show(etags('/versions/a.txt')),
       show([strong_etag(slurp_version_big()), strong_etag("TWO\n"), strong_etag("two\n")]),
       'neither a refused PUT nor one with the same bytes makes a version');
}
sub slurp_version_big { join('', map { sprintf "%07d\n", $_ } 1 .. 20000) }

# ---- COPY and MOVE onto a file; MOVE away keeps nothing -----------------
put('/versions/m-dst.txt', "dst old\n");
put('/versions/m-src.txt', "src\n");
{
    my $r = req(MOVE => '/versions/m-src.txt',
                headers => { Destination => url('/versions/m-dst.txt'), Overwrite => 'T' });
    ok($r->code, 204, 'MOVE onto an existing file');
    ok(show(etags('/versions/m-dst.txt')), show([strong_etag("dst old\n")]), 'the overwritten content is a version');
    ok(show(etags('/versions/m-src.txt')), '', 'the moved file left none behind (it lives on)');
    put('/versions/c-dst.txt', "copy old\n");
    $r = req(COPY => '/versions/m-dst.txt',
             headers => { Destination => url('/versions/c-dst.txt'), Overwrite => 'T' });
    ok($r->code, 204, 'COPY onto an existing file');
    ok(show(etags('/versions/c-dst.txt')), show([strong_etag("copy old\n")]), 'the overwritten content is a version');
}

# ---- DELETE, and a restore ------------------------------------------------
{
    put('/versions/d.txt', "precious\n");
    ok(req(DELETE => '/versions/d.txt')->code, 204, 'DELETE');
    ok(req(GET => '/versions/d.txt')->code, 404, 'the file is gone');
    ok(show(etags('/versions/d.txt')), show([strong_etag("precious\n")]), 'its content is listed');
    my $r = fetch('/versions/d.txt', "precious\n");
    ok($r->code == 200 && $r->content eq "precious\n" ? 1 : 0, 1, 'and fetched');
    put('/versions/d.txt', $r->content);
    ok(req(GET => '/versions/d.txt')->content, "precious\n", 'PUT back: restored');

    ok(req(MKCOL => '/versions/dir/')->code, 201, 'MKCOL dir');
    put('/versions/dir/f1', "in a folder\n");
    ok(req(DELETE => '/versions/dir/')->code, 204, 'DELETE of the folder');
    $r = fetch('/versions/dir/f1', "in a folder\n");
    ok($r->code == 200 && $r->content eq "in a folder\n" ? 1 : 0, 1,
       'a file of a deleted folder is kept too, at its old URL') or print "# ", $r->status_line, "\n";
    my ($code, $out) = iss_state($state, 'forget-versions', 'dir/f1');
    ok($code == 0 && $out =~ /dropped 1 versions of dir\/f1/ ? 1 : 0, 1, 'iss-state forget-versions dir/f1')
        or print "# $out\n";
    ok(fetch('/versions/dir/f1', "in a folder\n")->code, 404, 'erased: no longer served');
}

# ---- who may not read the file learns nothing ---------------------------
{
    ok(req(MKCOL => '/versions/private/')->code, 201, 'MKCOL private');
    put('/versions/private/s.txt', "secret 1\n");
    put('/versions/private/s.txt', "secret 2\n");
    ok(fetch('/versions/private/s.txt', "secret 1\n")->code, 200, 'alice reads her version');
    my @answers = map { my $r = $_; [ $r->code, $r->content ] }
        fetch('/versions/private/s.txt', "secret 1\n", user => 'bob'),
        fetch('/versions/private/s.txt', "never written\n", user => 'bob'),
        req(GET => '/versions/private/nothing.txt?iss-version=' . tag_of("secret 1\n"), user => 'bob'),
        req(GET => '/versions/private/s.txt?iss-versions', user => 'bob');
    ok($answers[0][0] =~ /^40[13]$/ ? 1 : 0, 1, "bob may not: $answers[0][0]");
    ok(join('|', map { "$_->[0] " . sha256_hex($_->[1]) } @answers[1 .. 3]),
       join('|', ("$answers[0][0] " . sha256_hex($answers[0][1])) x 3),
       'a retained version, an unknown one, another path, the list: one answer');
    # A writer who may not read overwrites: the version is kept, unseen.
    ok(req(PUT => '/versions/private/s.txt', body => "bob's\n", user => 'bob')->code, 204, 'bob may write');
    ok(fetch('/versions/private/s.txt', "secret 2\n", user => 'bob')->code, $answers[0][0], 'still no answer for him');
    ok(fetch('/versions/private/s.txt', "secret 2\n")->content, "secret 2\n", 'alice has it');
}

# ---- bad input: a clear error, nothing changed ----------------------------
{
    my $before = snapshot();
    my %cases = ('../../../../etc/passwd'   => 400,
                 ''                         => 400,
                 '%22' . tag_of("two\n") . '%22' => 400,
                 substr(tag_of("two\n"), 1) => 400,
                 tag_of("two\n") . '&x=1'  => 400,
                 tag_of("never\n")          => 404,
                 tag_of("dst old\n")        => 404);   # another file's version
    for my $q (sort keys %cases) {
        my $r = req(GET => "/versions/a.txt?iss-version=$q");
        ok($r->code, $cases{$q}, "iss-version=$q: $cases{$q}");
    }
    ok(req(GET => '/versions/a.txt?iss-versions=1')->code, 400, 'iss-versions=1: 400');
    ok((error_body(req(GET => '/versions/a.txt?iss-version=x')))[0] // '',
       'I:bad-version-query', '... with a condition saying why');
    ok(req(GET => '/versions/dir%2f..%2fa.txt?iss-versions')->code, 404, 'an encoded slash: 404 (httpd)');
    my $r = req(GET => '/versions/%2e%2e/%2e%2e/etc/passwd?iss-versions');
    ok($r->code =~ /^40[04]$/ && $r->content !~ /root:/ ? 1 : 0, 1, 'dot segments: refused, nothing read');
    ok(snapshot(), $before, 'nothing changed on disk or in the store');
}

# ---- limits: size in all, age ----------------------------------------------
{
    my @c = map { ($_ x 4096) } qw(a b c d e);
    dav(PUT => "/versionslim/s.bin", body => $_) for @c;
    my $lv = versions('/versionslim/s.bin');
    my $sum = 0;
    $sum += $_->[2] for @$lv;
    ok($sum <= 10240 && @$lv == 2 ? 1 : 0, 1, "size=10K: the two newest kept ($sum bytes in " . scalar(@$lv) . ')');
    ok(show([ map { $_->[1] } @$lv ]), show([strong_etag($c[3]), strong_etag($c[2])]), '... newest first');
    dav(PUT => '/versionslim/old.txt', body => 'o1');
    dav(PUT => '/versionslim/old.txt', body => 'o2');
    dav(PUT => '/versionslim/y.txt', body => 'y1');
    dav(PUT => '/versionslim/y.txt', body => 'y2');
    ok(scalar @{ versions('/versionslim/y.txt') }, 1, 'y.txt has a version');
    select(undef, undef, undef, 3.3);
    dav(PUT => '/versionslim/old.txt', body => 'o3');
    ok(show([ map { $_->[1] } @{ versions('/versionslim/old.txt') } ]), show([strong_etag('o2')]),
       'age=3s: a version replaced 3.3 s ago went at the next write of its file');
    my ($code, $out) = iss_state($limstate, 'gc-versions', 'age=3s');
    ok($code, 0, 'iss-state gc-versions age=3s') or print "# $out\n";
    ok(scalar @{ versions('/versionslim/y.txt') }, 0, 'it dropped the expired version of a file not written since');
    ok(scalar @{ versions('/versionslim/old.txt') }, 1, 'and kept the fresh one');
    ($code, $out) = iss_state($limstate, 'gc-versions', 'size=12X');
    ok($code, 2, 'gc-versions with a bad limit: usage error') or print "# $out\n";
}

# ---- collection beside concurrent uploads ---------------------------------
{
    ok(req(MKCOL => '/versions/gc/')->code, 201, 'MKCOL gc');
    # 200 KB contents that share all chunks but the one holding their tag:
    # collections pack them into the chunk store while writers write.
    srand(72);
    my $base = join('', map { chr(97 + int(rand(26))) } 1 .. 200_000);
    my $content = sub { my $c = $base; substr($c, 90_000, 16) = sprintf('<<content %04d>>', $_[0]); $c };
    my @kids;
    for my $k (0 .. 2) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $bad = 0;
            for my $i (0 .. 14) {
                # Contents shared across writers: retention dedups them.
                my $r = req(PUT => "/versions/gc/w$k", body => $content->(($i * 7 + $k) % 6));
                $bad++ unless $r->code =~ /^20[14]$/;
            }
            POSIX::_exit($bad ? 1 : 0);
        }
        push @kids, $pid;
    }
    my $gcs = 0;
    while (grep { waitpid($_, POSIX::WNOHANG()) == 0 } @kids) {
        my ($code) = iss_state($state, 'gc-versions');
        $gcs++ if $code == 0;
        last if $gcs > 40;
    }
    waitpid($_, 0) for @kids;
    ok($gcs > 0 ? 1 : 0, 1, "$gcs collections ran during 45 PUTs");
    my ($bad, $n) = (0, 0);
    for my $k (0 .. 2) {
        for my $e (@{ versions("/versions/gc/w$k") }) {
            $n++;
            my $r = req(GET => $e->[0]);
            $bad++ unless $r->code == 200 && strong_etag($r->content) eq $e->[1];
        }
    }
    ok("$n versions, $bad bad", "$n versions, 0 bad", 'every retained version reads back with its digest');
    ok($n >= 6 ? 1 : 0, 1, 'versions were retained');
    my ($code, $out) = iss_state($state, 'gc-versions');
    ($code, $out) = iss_state($state, 'versions');
    my %u = $out =~ /^([a-z ()]+): (\d+)$/mg;
    ok($code == 0 && $u{'data files'} + $u{'packed contents'} == $u{'distinct contents'}
       && $u{'pending (writes under way)'} == 0 ? 1 : 0, 1,
       'iss-state versions: every content a data file or packed, once; none pending') or print "# $out\n";
    # Each content has one chunk of its own (about 64 KiB) and shares the
    # rest: well under the sum of their sizes.
    ok($u{'packed contents'} >= 6 && $u{'chunk bytes on disk'} < 0.75 * $u{bytes} ? 1 : 0, 1,
       "the chunk store holds $u{'packed contents'} contents ($u{bytes} bytes) in $u{'chunk bytes on disk'} bytes")
        or print "# $out\n";
    # The writers' files are live: their versions may use chunks in them
    # (unless a collection packed a content first: it copies then), and
    # the collections beside the writers moved or kept those (read above).
    ok($u{'live links whose file is gone'} == 0 ? 1 : 0, 1,
       "no link of a gone file left ($u{'chunks held by live files'} chunks used in place in the live files)")
        or print "# $out\n";
}

# ---- chunks a live file holds are not copied (issue 15 item 1) ----------
# A 100-byte edit of an 4 MiB file: the version is packed right after the
# response, its chunks used in place in the new file; the live file
# replaced, moved, deleted, versions pruned and forgotten: every version
# reads back byte for byte.
{
    sub usage_of {
        my ($code, $out) = iss_state($state, 'versions');
        my %u = $out =~ /^([a-z ()]+): (\d+)$/mg;
        return \%u;
    }
    # The work after the response may still run when the client has its
    # answer: wait until it is done (the packed count moved).
    sub wait_packed {
        my ($before) = @_;
        my $u;
        for (1 .. 50) {
            $u = usage_of();
            last if $u->{'packed contents'} > $before;
            select(undef, undef, undef, 0.1);
        }
        return $u;
    }
    sub reads_back {
        my ($path, @contents) = @_;
        my $bad = 0;
        for my $c (@contents) {
            my $r = fetch($path, $c);
            $bad++ unless $r->code == 200 && $r->content eq $c;
        }
        return $bad;
    }
    sub urandom { open(my $fh, '<:raw', '/dev/urandom') or die; read($fh, my $b, $_[0]) == $_[0] or die; $b }
    sub edit { my ($c, $at, $ch) = @_; substr($c, $at, 100) = $ch x 100; $c }
    my $n = 4 << 20;
    my $two = 2 * 256 * 1024;            # two chunks at most (ISS_CDC_MAX)
    req(MKCOL => '/versions/live/');
    my $a = urandom($n);
    put('/versions/live/big.bin', $a);
    my $u0 = usage_of();
    my $b = edit($a, 4_000_000, 'B');
    put('/versions/live/big.bin', $b);
    my $u1 = wait_packed($u0->{'packed contents'});
    my $cost = $u1->{'chunk bytes on disk'} - $u0->{'chunk bytes on disk'};
    ok($cost > 0 && $cost <= $two && $u1->{'data files'} == $u0->{'data files'} ? 1 : 0, 1,
       "a 100-byte edit of 4 MiB: the version costs $cost bytes of chunk store, no data file")
        or print "# before: @{[ %$u0 ]}\n# after: @{[ %$u1 ]}\n";
    ok($u1->{'chunk bytes held by live files'} >= $n - $two ? 1 : 0, 1,
       "the rest ($u1->{'chunk bytes held by live files'} bytes) is used in place in the live file");
    ok(reads_back('/versions/live/big.bin', $a), 0, 'the version reads back byte-exact (its ETag)');
    my $c = edit($b, 1_000_000, 'C');
    put('/versions/live/big.bin', $c);
    my $u2 = wait_packed($u1->{'packed contents'});
    $cost = $u2->{'chunk bytes on disk'} - $u0->{'chunk bytes on disk'};
    ok($cost <= 2 * $two && $u2->{'live links whose file is gone'} == 0 ? 1 : 0, 1,
       "replaced again: two versions cost $cost bytes, the old live inode released");
    ok(reads_back('/versions/live/big.bin', $a, $b), 0, 'both versions read back after the replace');
    my $r = req(MOVE => '/versions/live/big.bin',
                headers => { Destination => url('/versions/live/moved.bin') });
    ok($r->code, 201, 'the live file moved');
    ok(reads_back('/versions/live/big.bin', $a, $b), 0, 'both versions read back after the move');
    my ($code, $out) = iss_state($state, 'gc-versions');
    ok(reads_back('/versions/live/big.bin', $a, $b), 0, '... and after gc-versions');
    my $pk = usage_of()->{'packed contents'};
    $r = req(DELETE => '/versions/live/moved.bin');
    ok($r->code, 204, 'the moved live file deleted');
    wait_packed($pk);
    ok(reads_back('/versions/live/big.bin', $a, $b) + reads_back('/versions/live/moved.bin', $c), 0,
       'every version reads back after the delete (its chunks copied out)');
    ($code, $out) = iss_state($state, 'gc-versions');
    my $u3 = usage_of();
    ok($code == 0 && $u3->{'live links whose file is gone'} == 0 ? 1 : 0, 1,
       'gc-versions: no live link of a gone file left') or print "# $out\n";
    ok(reads_back('/versions/live/big.bin', $a, $b) + reads_back('/versions/live/moved.bin', $c), 0,
       '... every version still reads back');
    # count=3 prunes; forget-versions erases: the rest still reads.
    my $p = urandom(2 << 20);
    my @p = ($p);
    put('/versions/live/p.bin', $p);
    for my $i (1 .. 4) {
        push @p, edit($p[-1], $i * 300_000, chr(64 + $i));
        put('/versions/live/p.bin', $p[-1]);
    }
    my $l = etags('/versions/live/p.bin');
    ok(scalar(@$l), 3, 'count=3: three versions of p.bin kept');
    ok(reads_back('/versions/live/p.bin', @p[1 .. 3]), 0, 'the kept ones read back after the prune');
    ok(fetch('/versions/live/p.bin', $p[0])->code, 404, 'the pruned one is gone');
    my $lf = usage_of()->{'live files linked'};
    ($code, $out) = iss_state($state, 'forget-versions', 'live/p.bin');
    my $u4 = usage_of();
    ok($code == 0 && $u4->{'live files linked'} < $lf ? 1 : 0, 1,
       "forget-versions p.bin: its live link released ($lf -> $u4->{'live files linked'})") or print "# $out\n";
    ok(req(GET => '/versions/live/p.bin')->content eq $p[-1] ? 1 : 0, 1, 'the live file itself is intact');
    ok(reads_back('/versions/live/big.bin', $a, $b) + reads_back('/versions/live/moved.bin', $c), 0,
       'the other files\' versions still read back');
    # A live file written in place outside httpd: the version whose chunks
    # it held fails cleanly (500, ISS01167), nothing else breaks.
    my $o = urandom(1 << 20);
    put('/versions/outside.bin', $o);
    $pk = usage_of()->{'packed contents'};
    my $o2 = edit($o, 900_000, 'O');
    put('/versions/outside.bin', $o2);
    wait_packed($pk);
    ok(reads_back('/versions/outside.bin', $o), 0, 'outside.bin: the version reads');
    open(my $fh, '+<:raw', "$files/outside.bin") or die "$files/outside.bin: $!";
    seek($fh, 10, 0); print $fh 'Z'; close $fh;
    $r = fetch('/versions/outside.bin', $o);
    ok($r->code, 500, 'changed behind httpd\'s back: the version read fails (500), no wrong byte');
    ok(req(GET => '/versions/outside.bin?iss-versions')->code, 200, 'the list still answers');
    my $o3 = urandom(1 << 20);
    put('/versions/outside.bin', $o3);
    (my $o2z = $o2) =~ s/^(.{10})./$1Z/s;     # what the file held then
    ok(reads_back('/versions/outside.bin', $o2z) + reads_back('/versions/live/big.bin', $a, $b), 0,
       'a later write keeps what the file held as a version; other versions read');

    # Chunks another live file holds (found through the chunk index): B
    # is a copy of A plus an edit, A is overwritten by unrelated bytes, so
    # A's old version uses B's chunks in place.  Then B moved and deleted,
    # or overwritten, or changed outside httpd: A's version reads back, or
    # fails cleanly where B changed; gc-versions leaves nothing stale.
    my $m = 1536 << 10;
    my $pair = sub {
        my ($x) = @_;
        my $xa = urandom($m);
        my $xb = edit($xa, 700_000, 'E');
        put("/versions/live/${x}a.bin", $xa);
        put("/versions/live/${x}b.bin", $xb);
        my $v0 = usage_of();
        put("/versions/live/${x}a.bin", urandom($m));
        my $v1 = wait_packed($v0->{'packed contents'});
        my $cost = $v1->{'chunk bytes on disk'} - $v0->{'chunk bytes on disk'};
        my $in = $v1->{'chunk bytes held by live files'} - $v0->{'chunk bytes held by live files'};
        ok($cost > 0 && $cost <= $two && $in >= $m - $two
           && $v1->{'live files linked'} == $v0->{'live files linked'} + 1 ? 1 : 0, 1,
           "${x}a's old version costs $cost bytes of chunk store: $in bytes used in place in ${x}b, another live file")
            or print "# before: @{[ %$v0 ]}\n# after: @{[ %$v1 ]}\n";
        ok(reads_back("/versions/live/${x}a.bin", $xa), 0, "${x}a's version reads back byte-exact (its ETag)");
        return ($xa, $xb, $v0);
    };
    # The step after the response moves chunks out after it packed: wait
    # until the live links are back to where they were.
    my $unlinked = sub {
        my ($want) = @_;
        my $u;
        for (1 .. 50) {
            $u = usage_of();
            last if $u->{'live files linked'} == $want && $u->{'live links whose file is gone'} == 0;
            select(undef, undef, undef, 0.1);
        }
        return $u;
    };
    iss_state($state, 'gc-versions');    # outside.bin's link released
    my ($xa, $xb, $v0) = $pair->('o');
    $r = req(MOVE => '/versions/live/ob.bin', headers => { Destination => url('/versions/live/oc.bin') });
    ok($r->code, 201, 'ob.bin moved to oc.bin');
    ok(reads_back('/versions/live/oa.bin', $xa), 0, "oa's version reads back after the move");
    $pk = usage_of()->{'packed contents'};
    $r = req(DELETE => '/versions/live/oc.bin');
    ok($r->code, 204, 'oc.bin (ob\'s inode) deleted');
    wait_packed($pk);
    my $v2 = $unlinked->($v0->{'live files linked'});
    ok($v2->{'live files linked'} == $v0->{'live files linked'} && $v2->{'live links whose file is gone'} == 0 ? 1 : 0, 1,
       'its link released right after the delete (the chunks moved out)') or print "# @{[ %$v2 ]}\n";
    ok(reads_back('/versions/live/oa.bin', $xa) + reads_back('/versions/live/oc.bin', $xb), 0,
       "oa's and oc's versions read back byte-exact after the delete");
    my ($ya, $yb) = $pair->('q');
    $pk = usage_of()->{'packed contents'};
    put('/versions/live/qb.bin', urandom($m));
    wait_packed($pk);
    $v2 = $unlinked->($v0->{'live files linked'});
    ok($v2->{'live files linked'} == $v0->{'live files linked'} && $v2->{'live links whose file is gone'} == 0 ? 1 : 0, 1,
       'qb.bin overwritten: its link released right after') or print "# @{[ %$v2 ]}\n";
    ok(reads_back('/versions/live/qa.bin', $ya) + reads_back('/versions/live/qb.bin', $yb), 0,
       "qa's and qb's versions read back byte-exact after the overwrite");
    my ($za) = $pair->('z');
    open($fh, '+<:raw', "$files/live/zb.bin") or die "$files/live/zb.bin: $!";
    seek($fh, 10, 0); print $fh 'Z'; close $fh;
    ok(fetch('/versions/live/za.bin', $za)->code, 500, 'zb.bin changed outside httpd: the read of za\'s version fails (500), no wrong byte');
    ok(req(DELETE => '/versions/live/zb.bin')->code, 204, 'zb.bin deleted');
    ($code, $out) = iss_state($state, 'gc-versions');
    $v2 = usage_of();
    ok($code == 0 && $v2->{'live files linked'} == $v0->{'live files linked'} && $v2->{'live links whose file is gone'} == 0
       && $v2->{'pending (writes under way)'} == 0 ? 1 : 0, 1, 'gc-versions: nothing stale left') or print "# $out\n";
    ($code, $out) = iss_state($state, 'gc-versions');
    ok($code == 0 && $out =~ /released 0 live files/ ? 1 : 0, 1, '... a second run finds nothing to do') or print "# $out\n";
    ok(reads_back('/versions/live/oa.bin', $xa) + reads_back('/versions/live/qa.bin', $ya)
       + reads_back('/versions/live/qb.bin', $yb) + reads_back('/versions/live/big.bin', $a, $b), 0,
       'every other version still reads back byte-exact');
}

# ---- kill -9 during overwrites: leftovers collected, versions intact ------
{
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(files files/s state logs);
    my $conf = "<Location /s/>\nDav iss\nISSStateDir $dir/state\nISSKeepVersions count=4\n</Location>";
    my $h = own_httpd_start(dir => $dir, config => $conf);
    my $port = $h->{port};
    # 120 KB the same in every content: the step after each response
    # packs the version with chunks used in place in the new file, and
    # moves chunks out of the replaced one, when the kill comes.
    my $tail = join('', map { chr(97 + int(rand(26))) } 1 .. 120_000);
    my @kids;
    for my $k (0 .. 1) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 10);
            for my $i (1 .. 100000) {
                my $r = $ua->request(HTTP::Request->new(PUT => "http://127.0.0.1:$port/s/f$k", [],
                                                        sprintf("%06d %d\n", $i, $k) x 3000 . $tail));
                last if $r->code >= 500 || $r->code == 0;
            }
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    select(undef, undef, undef, 1.5);
    own_httpd_kill9($h);
    waitpid($_, 0) for @kids;
    my ($c1, $o1) = iss_state("$dir/state", 'recover');
    my ($c2, $o2) = iss_state("$dir/state", 'gc-versions');
    ok("$c1 $c2", '0 0', 'after kill -9: iss-state recover and gc-versions') or print "# $o1$o2\n";
    print "# $o2";
    my ($c3, $o3) = iss_state("$dir/state", 'versions');
    my %u = $o3 =~ /^([a-z ()]+): (\d+)$/mg;
    ok($u{'pending (writes under way)'} == 0 && $u{'data files'} + $u{'packed contents'} == $u{'distinct contents'}
       && $u{'live links whose file is gone'} == 0 ? 1 : 0, 1,
       "no pending link left, every content stored once, no link of a gone file ($u{'chunks held by live files'} chunks used in place)")
        or print "# $o3\n";
    ok((iss_state("$dir/state", 'verify'))[0], 0, 'the store verifies');
    $h = own_httpd_start(dir => $dir, config => $conf);
    my ($n, $bad) = (0, 0);
    my $ua = LWP::UserAgent->new(timeout => 10);
    for my $k (0 .. 1) {
        my $l = $ua->get("http://127.0.0.1:$h->{port}/s/f$k?iss-versions");
        for my $href ($l->content =~ m{<D:href>([^<]*)</D:href>}g) {
            my ($tag) = $href =~ /iss-version=(.*)/;
            my $r = $ua->get("http://127.0.0.1:$h->{port}$href");
            $n++;
            $bad++ unless $r->code == 200 && strong_etag($r->content) eq qq{"$tag"};
        }
    }
    own_httpd_stop($h);
    ok($n >= 2 ? 1 : 0, 1, "versions were retained before the kill ($n)");
    ok($bad, 0, 'every one reads back with its digest after the restart');
}


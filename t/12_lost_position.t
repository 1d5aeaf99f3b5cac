# A state store that lost its log position never takes old tokens again,
# and a store whose DBM files were truncated refuses writes.
#
#  - Both copies of the DBM truncated alike (every record lost, the store
#    still consistent: `iss-state verify` says ok): the log starts a new
#    numbering under a new id, so a token of the old one is refused, also
#    once the new log has passed its position (before: refused at first,
#    then accepted with an answer that left out the changes in between).
#  - One copy truncated (verify says damaged): writes are refused with 503
#    and change nothing, on disk or in the state; reads go on; moving the
#    state aside brings writes back, and old tokens stay refused.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);

plan tests => 28;

my $dir = tempdir(CLEANUP => 1);
my $config = iss_s_location($dir);
# Every commit checkpointed at once: the DBM holds the whole state.
local $ENV{ISS_STORE_CHECKPOINT_BYTES} = 0;
my $ua = LWP::UserAgent->new(timeout => 20);
my $h;

sub req {
    my ($method, $path, $hdr, $body) = @_;
    return $ua->request(HTTP::Request->new($method => "http://127.0.0.1:$h->{port}$path",
                                           $hdr || [], $body));
}

sub token {
    my $r = req(PROPFIND => '/s/', [ Depth => 0, 'Content-Type' => 'application/xml' ],
        '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
    return $r->code == 207 && $r->content =~ m{<[\w-]+:sync-token>([^<]+)</} ? $1 : undef;
}

sub sync_from {
    my ($tok) = @_;
    my $r = req(REPORT => '/s/', [ Depth => 0, 'Content-Type' => 'application/xml' ],
                sync_body(token => $tok, level => 'infinite'));
    return $r;
}

# The DBM files of the current generation: (primary files, mirror files).
sub dbm_files {
    opendir my $dh, "$dir/state" or die $!;
    my @f = sort grep { /^iss-store\.g\d+/ } readdir $dh;
    return ([ map { "$dir/state/$_" } grep { !/\.mirror/ } @f ],
            [ map { "$dir/state/$_" } grep { /\.mirror/ } @f ]);
}

# A token's position, read with the state's key by the admin tool
# (tokens are sealed: their text tells no number).
sub position {
    my ($t) = @_;
    my ($c, $out) = iss_state("$dir/state", 'token', $t // '');
    return $c == 0 && $out =~ /^position: (\d+)$/m ? $1 : undef;
}

sub state_listing {
    opendir my $dh, "$dir/state" or die $!;
    return join ' ', map { "$_=" . (-s "$dir/state/$_" // 0) } sort grep { !/^\./ } readdir $dh;
}

# ---- both copies truncated alike -------------------------------------------
$h = own_httpd_start(dir => $dir, config => $config);
ok(!defined $h->{code} ? 1 : 0, 1, 'httpd started') or print "# ", $h->{log}->(), "\n";
req(PUT => "/s/f$_.txt", [], "file $_") for 1 .. 5;
my $tok = token();
my $pos = position($tok);
ok(($pos // 0) >= 5 ? 1 : 0, 1, "a token after five writes (position " . ($pos // '?') . ")");
own_httpd_stop($h);
my ($prim, $mirr) = dbm_files();
ok(scalar(@$prim) && scalar(@$prim) == scalar(@$mirr) ? 1 : 0, 1, 'DBM files: ' . join(' ', @$prim, @$mirr));
truncate($_, 0) or die "$_: $!" for grep { /\.pag$/ || !/\.dir$/ } @$prim, @$mirr;
my ($rc, $out) = iss_state("$dir/state", 'verify');
ok($rc, 0, 'both copies truncated alike: the store is consistent (verify ok)') or print "# $out\n";

$h = own_httpd_start(dir => $dir, config => $config);
ok(req(PUT => '/s/after-loss.txt', [], 'new')->code, 201, 'a write after the loss');
my $r = sync_from($tok);
ok($r->code, 403, 'the old token is refused');
ok($r->content =~ /valid-sync-token/ ? 1 : 0, 1, '... with DAV:valid-sync-token');
# The new log passes the old position, with changes the old token's
# answer would have to name.
req(PUT => "/s/n$_.txt", [], "new $_") for 1 .. $pos + 2;
my $new = token();
my $npos = position($new);
ok(($npos // 0) > $pos ? 1 : 0, 1, "the new log is past the old position ($npos > $pos)");
$r = sync_from($tok);
ok($r->code, 403, 'the old token is still refused once the new log passed it (never accepted again)')
    or print "# ", substr($r->content, 0, 300), "\n";
ok(sync_from($new)->code, 207, 'a token of the new log works');
(my $oid = $tok) =~ s{/[0-9a-f]{32}$}{};
(my $nid = $new) =~ s{/[0-9a-f]{32}$}{};
ok($oid ne $nid ? 1 : 0, 1, 'the new log has a new id in its tokens');
own_httpd_stop($h);

# ---- one copy truncated: damaged, writes refused ---------------------------
($prim, $mirr) = dbm_files();
my ($pag) = grep { /\.pag$/ || !/\.dir$/ } @$prim;
truncate($pag, int((-s $pag) / 2)) or die "$pag: $!";
($rc, $out) = iss_state("$dir/state", 'verify');
ok($rc, 1, 'one copy truncated: verify says damaged') or print "# $out\n";
my $before = state_listing();
$h = own_httpd_start(dir => $dir, config => $config);
my $mark = -s "$dir/logs/error_log";
$r = req(PUT => '/s/refused.txt', [], 'no');
ok($r->code, 503, 'a PUT is refused (503)');
ok(-e "$dir/files/refused.txt" ? 1 : 0, 0, '... and no file was created');
ok(req(DELETE => '/s/f1.txt')->code, 503, 'a DELETE is refused');
ok(-e "$dir/files/f1.txt" ? 1 : 0, 1, '... and the file is still there');
ok(req(GET => '/s/f2.txt')->content, 'file 2', 'reads go on');
ok(sync_from($new)->code, 503, 'a sync needs the state: 503');
ok(state_listing(), $before, 'nothing in the state changed');
ok(substr(slurp("$dir/logs/error_log") // '', $mark) =~ /ISS01024: .*differ/ ? 1 : 0, 1,
   'the error log says the state is damaged and why');
own_httpd_stop($h);

# ---- the repair: move it aside ----------------------------------------------
system('mv', "$dir/state", "$dir/state.damaged") == 0 or die;
mkdir "$dir/state";
$h = own_httpd_start(dir => $dir, config => $config);
ok(req(PUT => '/s/refused.txt', [], 'yes')->code, 201, 'with the state moved aside writes work');
ok(sync_from($new)->code, 403, 'and tokens of the damaged state are refused');

# ---- one copy truncated while httpd runs ------------------------------------
# The next checkpoint (every commit makes one here) finds the copies
# differ and every writer refuses from then on.
req(PUT => "/s/run$_.txt", [], "run $_") for 1 .. 3;
my $rtok = token();
($prim) = dbm_files();
($pag) = grep { /\.pag$/ || !/\.dir$/ } @$prim;
truncate($pag, int((-s $pag) / 2)) or die "$pag: $!";
$mark = -s "$dir/logs/error_log";
my (@codes, $refused);
for my $i (1 .. 4) {
    my $c = req(PUT => "/s/live$i.txt", [], "live $i")->code;
    push @codes, $c;
    if ($c == 503) { $refused = "live$i.txt"; last }
}
ok(defined $refused ? 1 : 0, 1, 'truncated under a running httpd: writes are refused after the next checkpoint (' . join(' ', @codes) . ')');
ok(defined $refused && -e "$dir/files/$refused" ? 1 : 0, 0, '... and the refused PUT created no file');
ok(substr(slurp("$dir/logs/error_log") // '', $mark) =~ /copies of the DBM differ|copies differ/ ? 1 : 0, 1,
   'the error log says why');
$r = sync_from($rtok);
my @live = map { "live$_.txt" } grep { $codes[$_ - 1] == 201 } 1 .. scalar(@codes);
ok($r->code == 503 || ($r->code == 207 && !grep { $r->content !~ m{/s/\Q$_\E<} } @live) ? 1 : 0, 1,
   'a sync from before: refused, or names every write that answered 201 (' . $r->code . ')');
ok(req(GET => '/s/run1.txt')->content, 'run 1', 'reads go on');
own_httpd_stop($h);
($rc, $out) = iss_state("$dir/state", 'verify');
ok($rc, 1, 'and verify says damaged') or print "# $out\n";

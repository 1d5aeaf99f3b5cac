# A write whose file is in place but whose settlement fails (a full file
# system: ENOSPC, ISS01033) is still reported: its intent, claimed by the
# request until it settles, is recovered by the next sync although the
# process that made it lives on.  Files and state share one small tmpfs
# that scripts/run-apache-test.sh mounts (as root) and passes as
# ISS_SMALL_FS; without it this test fails, it never skips.
#
# How the failure is reached for real: the file system is filled with
# one-page files, then empty PUTs with long names follow, each an intent
# (about one name long) and a settlement (about four names long) appended
# to the tail page of the write-ahead log.  A PUT whose intent fits the
# tail but whose settlement does not answers 201 and logs ISS01033; one
# whose intent does not fit answers 503 and changes nothing, and a page is
# freed for the next try.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);

plan tests => 12;

my $fs = $ENV{ISS_SMALL_FS};
my $mounted = defined $fs && -d $fs && system('mountpoint', '-q', $fs) == 0;
ok($mounted ? 1 : 0, 1, 'a small file system for files and state (ISS_SMALL_FS, '
   . 'mounted by scripts/run-apache-test.sh as root)')
    or print "# ISS_SMALL_FS=", $fs // '(unset)', ": not a mount point\n";
if (!$mounted) {
    ok(0, 1, 'cannot run without the small file system') for 2 .. 12;
    exit 0;
}
system('rm', '-rf', "$fs/files", "$fs/state", "$fs/fill");
mkdir "$fs/$_" or die "$fs/$_: $!" for qw(files state fill);

my $dir = tempdir(CLEANUP => 1);
my $h = own_httpd_start(dir => $dir, config => <<"CONF");
Alias /s "$fs/files"
<Directory "$fs/files">
    Require all granted
</Directory>
<Location /s/>
    Dav iss
    ISSStateDir "$fs/state"
</Location>
CONF
ok(!defined $h->{code} ? 1 : 0, 1, 'httpd started') or print "# ", $h->{log}->(), "\n";
my $base = "http://127.0.0.1:$h->{port}";
my $ua = LWP::UserAgent->new(timeout => 20);

sub req {
    my ($method, $path, $hdr, $body) = @_;
    return $ua->request(HTTP::Request->new($method => "$base$path", $hdr || [], $body));
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
    return ($r->code, $r->code == 207 ? parse_multistatus($r->content) : undef);
}

ok(req(PUT => '/s/before.txt', [], 'before')->code, 201, 'a first PUT makes the store');
my $tok = token();
ok(defined $tok ? 1 : 0, 1, 'a sync token before the disk fills');

# Fill the file system with one-page files until it refuses one.
my @fill;
for my $i (1 .. 100000) {
    my $f = "$fs/fill/$i";
    open my $fh, '>', $f or last;
    my $w = syswrite($fh, 'x' x 4096);
    my $closed = close $fh;
    if (!defined $w || $w != 4096 || !$closed) { unlink $f; last }
    push @fill, $f;
}
ok(@fill > 10 ? 1 : 0, 1, 'the file system is full (' . scalar(@fill) . ' pages of filler)');

# Empty PUTs with long names until one answers 201 and its settlement fails.
my ($hit, $tries, @bad) = (undef, 0);
my $long = 'n' x 200;
for my $i (1 .. 60) {
    $tries = $i;
    my $mark = -s "$dir/logs/error_log";
    my $name = sprintf('%s-%03d', $long, $i);
    my $r = req(PUT => "/s/$name", [ 'Content-Length' => 0 ], '');
    my $log = substr(slurp("$dir/logs/error_log") // '', $mark);
    if ($r->code == 503) {
        push @bad, "$name: 503 but the file exists" if -e "$fs/files/$name";
        unlink pop @fill if @fill;          # room for the next intent
        next;
    }
    if ($r->code != 201) {
        push @bad, "$name: " . $r->code;
        next;
    }
    if ($log =~ /ISS01033/) { $hit = $name; last }
}
ok(join('; ', @bad), '', 'every PUT answered 201, or 503 with nothing changed');
ok(defined $hit ? 1 : 0, 1, "a PUT answered 201 and its settlement failed (ISS01033) after $tries tries")
    or print "# ", $h->{log}->(), "\n";
$hit //= 'none';
ok(-e "$fs/files/$hit" ? 1 : 0, 1, 'its file is in place');

# While the disk is full a sync may be refused, never answered without it.
my ($code, $p) = sync_from($tok);
print "# a sync while the disk is full: $code\n";
ok($code == 207 ? ($p->{members}{"/s/$hit"} ? 1 : 0) : ($code >= 500 ? 1 : 0), 1,
   "a sync while the disk is full: refused or names the file ($code)");

# Room again: the sync from the old token names the file.
unlink @fill;
($code, $p) = sync_from($tok);
ok($code, 207, 'a sync once there is room again');
ok($p && $p->{members}{"/s/$hit"} ? 1 : 0, 1,
   'it names the file whose 201 was never settled (recovered in a live process)');

own_httpd_stop($h);
my ($rc, $out) = iss_state("$fs/state", 'verify');
ok($rc, 0, 'the store verifies') or print "# $out\n";
system('rm', '-rf', "$fs/files", "$fs/state", "$fs/fill");

# kill -9 of the whole httpd (parent and every child) in the middle of a
# stream of writes: no half-written file is visible, the state store
# opens and verifies afterwards, and the restarted server writes again.
# With ISSStateSync On (fsync) and Off: surviving process death needs no
# fsync, only surviving power loss does.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);
use POSIX ();

my $ROUNDS = 3;
my @modes = qw(On Off);
plan tests => (3 * $ROUNDS + 2) * @modes;

# Each writer PUTs files whose bodies are one repeated byte, so a torn
# file shows as a mix; it stops when the server goes away.
sub writer {
    my ($port, $n) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 10);
    for my $i (1 .. 100000) {
        my $c = chr(ord('a') + ($i % 26));
        my $r = $ua->request(HTTP::Request->new(
            PUT => "http://127.0.0.1:$port/s/w$n-" . ($i % 7), [], $c x (20000 + 997 * ($i % 50))));
        last if $r->code >= 500;
    }
    POSIX::_exit(0);
}

for my $sync (@modes) {
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/files";
    my $config = <<"CONF";
StartServers 2
ThreadsPerChild 4
MaxRequestWorkers 8
Alias /s "$dir/files"
<Location /s/>
    Dav iss
    ISSStateDir "$dir/state"
    ISSStateSync $sync
</Location>
CONF
    my $mode = "ISSStateSync $sync";
    my ($rc, $out);

    for my $round (1 .. $ROUNDS) {
        my $h = own_httpd_start(dir => $dir, config => $config);
        ok(!defined $h->{code} ? 1 : 0, 1, "$mode, round $round: httpd started")
            or print "# ", $h->{log}->(), "\n";
        my @pids = map { my $p = fork // die; $p or writer($h->{port}, $_); $p } 1 .. 4;
        select(undef, undef, undef, 0.6 + 0.4 * $round);
        own_httpd_kill9($h);
        kill 'KILL', @pids;
        waitpid($_, 0) for @pids;

        # Files are whole: every byte of each file is the same letter.
        opendir my $dh, "$dir/files" or die $!;
        my @torn = grep { my $d = slurp("$dir/files/$_"); length($d) && $d !~ /^(.)\1*$/s }
                   grep { /^w\d-\d$/ } readdir $dh;
        ok(join(' ', @torn), '', "$mode, round $round: no torn file visible after kill -9");
        ($rc, $out) = iss_state("$dir/state", 'verify');
        ok($rc, 0, "$mode, round $round: the state store opens and verifies") or print "# $out\n";
    }

    # Restart on the same state: writes work, and the store still verifies.
    my $h = own_httpd_start(dir => $dir, config => $config);
    my $ua = LWP::UserAgent->new(timeout => 10);
    my $r = $ua->request(HTTP::Request->new(PUT => "http://127.0.0.1:$h->{port}/s/after", [], 'fine'));
    ok($r->code, 201, "$mode: after the crashes, writes work");
    own_httpd_stop($h);
    ($rc, $out) = iss_state("$dir/state", 'verify');
    ok($rc, 0, "$mode: and the store verifies") or print "# $out\n";
}

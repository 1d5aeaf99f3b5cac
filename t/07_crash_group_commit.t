# kill -9 of the whole httpd while writers wait on group commits
# (ISSStateSync Full, where each write's intent is made durable before the
# write; with On, the default, writers do not wait and
# t/07_crash_power.t covers what a power loss takes back): with
# the test hook ISS_TEST_SYNC_DELAY_MS every fsync of the write-ahead log
# takes 100 ms longer, so at any moment several writers wait on the one
# fsync under way (their intents appended, not yet durable) when the kill
# lands.  After a restart, from every token a client was handed during
# the writes:
#  - the sync names every file whose PUT answered 2xx to a request sent
#    after that token arrived: no token skips a write a client saw done;
#  - and every file that differs on disk from what was there when the
#    token came (a write in flight at the kill included);
# and the store verifies.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);
use Time::HiRes ();
use POSIX ();

my $ROUNDS = 2;
my $WRITERS = 8;
my $DELAY_MS = 100;
plan tests => 7 * $ROUNDS + 1;

my $dir = tempdir(CLEANUP => !$ENV{ISS_T_KEEP}); print "# dir $dir\n";
mkdir "$dir/files";
# Threads to spare: requests that wait 100 ms keep workers busy, and the
# MPM adds processes only once a second.
my $config = <<"CONF";
StartServers 3
ThreadsPerChild 16
MinSpareThreads 1
MaxSpareThreads 64
MaxRequestWorkers 48
@{[iss_s_location($dir, 'ISSSyncMaxResults 0', 'ISSStateSync Full')]}
CONF
for my $round (1 .. $ROUNDS) {
    my $h = do {
        local $ENV{ISS_TEST_SYNC_DELAY_MS} = $DELAY_MS;
        own_httpd_start(dir => $dir, config => $config);
    };
    ok(!defined $h->{code} ? 1 : 0, 1, "round $round: httpd started (group commits slowed by $DELAY_MS ms)")
        or print "# ", $h->{log}->(), "\n";
    # Warm up: LWP loads the rest of itself on its first request, which
    # takes a forked client long on a busy machine: load it here, once,
    # before forking; and let httpd's processes open the store.
    LWP::UserAgent->new(timeout => 20)->get("http://127.0.0.1:$h->{port}/s/");
    my @warm = map { my $n = $_; my $p = fork // die;
        if (!$p) {
            my $ua = LWP::UserAgent->new(timeout => 20);
            $ua->request(HTTP::Request->new(PUT => "http://127.0.0.1:$h->{port}/s/warm$round-$n", [], 'warm'));
            POSIX::_exit(0);
        }
        $p } 1 .. 16;
    waitpid($_, 0) for @warm;
    my @pids = do { my $p = fork // die; $p or crash_sampler($h->{port}, $dir, "$dir/samples$round", 0); $p };
    for (1 .. 100) { last if -s "$dir/samples$round"; Time::HiRes::sleep(0.05) }
    my $t0 = Time::HiRes::time();
    push @pids, map { my $n = $_; my $p = fork // die; $p or crash_writer($h->{port}, $n, "$dir/w$round-$n", 50); $p } 1 .. $WRITERS;
    Time::HiRes::sleep(1.0 + 0.5 * $round);
    own_httpd_kill9($h);
    my $elapsed = Time::HiRes::time() - $t0;
    kill 'KILL', @pids;
    waitpid($_, 0) for @pids;

    # What the clients saw.
    my @done;
    for my $n (1 .. $WRITERS) {
        open my $fh, '<', "$dir/w$round-$n" or next;
        while (<$fh>) {
            my ($sent, $recv, $path, $code) = /^(\S+) (\S+) (\S+) (\d+)$/ or next;
            push @done, [$sent, $path] if $code =~ /^2/;
        }
    }
    # The group commit's counters (shared by the processes, kept across
    # the kill): many commits waited, few fsyncs served them.
    my ($rc, $out) = iss_state("$dir/state", 'info');
    my ($waits, $syncs) = $out =~ /group commit: (\d+) commits waited for (\d+) fsyncs/;
    ok(($syncs // 0) > 0 && $waits >= 2 * $syncs ? 1 : 0, 1,
       sprintf("round %d: %d PUTs done in %.1f s; %s commits waited for %s fsyncs: writers shared them",
               $round, scalar(@done), $elapsed, $waits // '?', $syncs // '?'))
        or print "# $out\n";
    ($rc, $out) = iss_state("$dir/state", 'log', 999999999);
    my ($pending) = $out =~ /^pending: (.*)$/m;
    my $waiting = () = ($pending // '') =~ /\S+/g;
    ok($waiting >= 2 ? 1 : 0, 1, "round $round: $waiting writes in flight at the kill (intents not settled)");

    # Restart without the hook; a sync from each token.
    my $c = own_httpd_start(dir => $dir, config => $config);
    ok(!defined $c->{code} ? 1 : 0, 1, "round $round: httpd restarts") or print "# ", $c->{log}->(), "\n";
    my $ua = LWP::UserAgent->new(timeout => 60);
    opendir my $dh, "$dir/files" or die $!;
    my %now = map { $_ => 1 } grep { /^w\d+-\d+$/ && -s "$dir/files/$_" } readdir $dh;
    my ($samples, @skipped, @missed) = (0);
    open my $in, '<', "$dir/samples$round" or die $!;
    while (my $line = <$in>) {
        my ($when, $tok, $files) = $line =~ /^(\S+) (\S+) ?(.*)$/ or next;
        my %then = map { $_ => 1 } split /,/, $files;
        my $r = $ua->request(HTTP::Request->new(REPORT => "http://127.0.0.1:$c->{port}/s/",
            [ Depth => 0, 'Content-Type' => 'application/xml' ],
            sync_body(token => $tok, level => 1)));
        if ($r->code != 207) { push @skipped, "$tok: " . $r->code; next }
        my $p = parse_multistatus($r->content);
        for my $d (@done) {
            push @skipped, "$d->[1] since $tok" if $d->[0] > $when && !$p->{members}{ $d->[1] };
        }
        for my $f (grep { !$then{$_} } sort keys %now) {
            push @missed, "$f since $tok" unless $p->{members}{"/s/$f"};
        }
        $samples++;
    }
    own_httpd_stop($c);
    ok($samples > 2 ? 1 : 0, 1, "round $round: tokens handed out during the writes ($samples)");
    ok(join('; ', @skipped[0 .. ($#skipped < 5 ? $#skipped : 5)]), '',
       "round $round: no token skips a PUT whose 2xx a client received after it");
    ok(join('; ', @missed[0 .. ($#missed < 5 ? $#missed : 5)]), '',
       "round $round: nor a file that appeared on disk after it (writes in flight at the kill included)");
}
my ($rc, $out) = iss_state("$dir/state", 'verify');
ok($rc, 0, 'the store verifies after the kills') or print "# $out\n";

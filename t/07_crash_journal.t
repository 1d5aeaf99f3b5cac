# kill -9 of the whole httpd while a checkpoint is writing the DBM
# (design.md 4.1, 4.2): with ISS_STORE_CHECKPOINT_BYTES small,
# checkpoints run all the time beside the writers, and the test hook
# ISS_TEST_JOURNAL_DELAY_MS makes each step of a checkpoint take longer.
# The kill is sent the moment a mark is seen in the state directory:
# round 1 while `iss-store.journal` exists (the log being applied to the
# primary copy), round 2 while `iss-store.journal.mirror` exists (the
# primary being copied to the mirror); that the mark is still there after
# the kill proves the kill landed inside that step.  After a restart
# without the hook, from every token a client was handed:
#  - the sync names every file whose PUT answered 2xx to a request sent
#    after that token arrived (no token skips a write a client saw done);
#  - and every file that appeared on disk after it;
# the store verifies, and writes work.  (That the recovery of a torn
# primary and of a half-made mirror is needed, and done, is shown by
# unit/test_store.c, which tears them itself: a kill here rarely lands
# between the two write()s of one page split.)
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);
use Time::HiRes ();
use POSIX ();

my @ROUNDS = ('iss-store.journal', 'iss-store.journal.mirror');
my $WRITERS = 4;
plan tests => 8 * @ROUNDS + 1;

my $dir = tempdir(CLEANUP => !$ENV{ISS_T_KEEP}); print "# dir $dir\n";
mkdir "$dir/files";
my $config = <<"CONF";
StartServers 2
ThreadsPerChild 8
MaxRequestWorkers 16
@{[iss_s_location($dir, 'ISSSyncMaxResults 0')]}
CONF
my $round = 0;
for my $journal (@ROUNDS) {
    $round++;
    my $h = do {
        local $ENV{ISS_STORE_CHECKPOINT_BYTES} = 4096;
        local $ENV{ISS_TEST_JOURNAL_DELAY_MS} = 40;
        own_httpd_start(dir => $dir, config => $config);
    };
    ok(!defined $h->{code} ? 1 : 0, 1, "round $round: httpd started (journal commits slowed)")
        or print "# ", $h->{log}->(), "\n";
    LWP::UserAgent->new(timeout => 20)->get("http://127.0.0.1:$h->{port}/s/");
    my @pids = do { my $p = fork // die; $p or crash_sampler($h->{port}, $dir, "$dir/samples$round", 0.05); $p };
    for (1 .. 100) { last if -s "$dir/samples$round"; Time::HiRes::sleep(0.05) }
    push @pids, map { my $n = $_; my $p = fork // die; $p or crash_writer($h->{port}, $n, "$dir/w$round-$n", 100); $p } 1 .. $WRITERS;
    # Let writes and checkpoints run, then kill the moment the journal
    # of the step this round aims at exists.
    Time::HiRes::sleep(1.0);
    my $seen = 0;
    for (1 .. 2000) {
        if (-e "$dir/state/$journal") { $seen = 1; last }
        Time::HiRes::sleep(0.002);
    }
    own_httpd_kill9($h);
    kill 'KILL', @pids;
    waitpid($_, 0) for @pids;
    ok($seen && -e "$dir/state/$journal" ? 1 : 0, 1,
       "round $round: the kill landed inside a journal commit ($journal left behind)");

    my @done;
    for my $n (1 .. $WRITERS) {
        open my $fh, '<', "$dir/w$round-$n" or next;
        while (<$fh>) {
            my ($sent, $recv, $path, $code) = /^(\S+) (\S+) (\S+) (\d+)$/ or next;
            push @done, [$sent, $path] if $code =~ /^2/;
        }
    }
    ok(@done > 0 ? 1 : 0, 1, "round $round: " . scalar(@done) . " PUTs answered 2xx before the kill");

    # Restart without the hooks; a sync from each token.
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
    my $w = $ua->request(HTTP::Request->new(PUT => "http://127.0.0.1:$c->{port}/s/after$round", [], 'fine'));
    own_httpd_stop($c);
    ok($samples > 2 ? 1 : 0, 1, "round $round: tokens handed out during the writes ($samples)");
    ok(join('; ', @skipped[0 .. ($#skipped < 5 ? $#skipped : 5)]), '',
       "round $round: no token skips a PUT whose 2xx a client received after it");
    ok(join('; ', @missed[0 .. ($#missed < 5 ? $#missed : 5)]), '',
       "round $round: nor a file that appeared on disk after it");
    ok($w->code, 201, "round $round: after the restart, writes work");
}
my ($rc, $out) = iss_state("$dir/state", 'verify');
ok($rc, 0, 'the store verifies after the kills') or print "# $out\n";

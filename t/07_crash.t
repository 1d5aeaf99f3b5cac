# kill -9 of the whole httpd (parent and every child) in the middle of a
# stream of writes: no half-written file is visible, the state store
# opens and verifies afterwards, and the restarted server writes again.
# With ISSStateSync On (fsync) and Off: surviving process death needs no
# fsync, only surviving power loss does.
#
# And no sync answer misses a change: during the writes a sampler takes
# sync tokens and, right after each, notes what every file holds on disk.
# After the crash and a restart, a sync from each sampled token must name
# every file whose content differs from what was on disk then (writes in
# flight when httpd died included: their intents are recovered).
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);
use File::Find ();
use POSIX ();

my $ROUNDS = 3;
my @modes = qw(On Off);
plan tests => (5 * $ROUNDS + 2) * @modes;

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

# What a file holds, in short: its letter and length ('' if absent).
sub sig {
    my ($file) = @_;
    my $d = slurp($file);
    return defined $d ? substr($d, 0, 1) . length($d) : '';
}

# Every file under files/ (the copies included) and what it holds.
sub snapshot {
    my ($dir) = @_;
    my @out;
    File::Find::find({ no_chdir => 1, wanted => sub {
        if (-d $_ && m{/\.DAV$}) { $File::Find::prune = 1; return }
        return unless -f $_ && !m{/\.davfs\.tmp[^/]*$};   # mod_dav_fs's temp files
        (my $rel = $_) =~ s{^\Q$dir\E/files/}{};
        push @out, "$rel=" . sig($_);
    } }, "$dir/files");
    return join ',', @out;
}

# A fifth writer COPYes a folder of 100 files again and again: a COPY
# takes long enough that the kill often lands in the middle of one, with
# some copies on disk and its intent not yet settled.
sub copier {
    my ($port) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 10);
    for my $i (1 .. 100000) {
        my $r = $ua->request(HTTP::Request->new(COPY => "http://127.0.0.1:$port/s/src/",
            [ Destination => "http://127.0.0.1:$port/s/cp$i-$$/" ]));
        last if $r->code >= 500;
    }
    POSIX::_exit(0);
}

sub token_of {
    my ($ua, $port) = @_;
    my $r = $ua->request(HTTP::Request->new(PROPFIND => "http://127.0.0.1:$port/s/",
        [ Depth => 0, 'Content-Type' => 'application/xml' ],
        '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>'));
    return $r->code == 207 && $r->content =~ m{<[\w-]+:sync-token>([^<]+)</} ? $1 : undef;
}

# Token, then snapshot, until the server dies: one line per sample.
sub sampler {
    my ($port, $dir) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 10);
    open my $out, '>>', "$dir/samples" or die $!;
    $out->autoflush(1);
    for (;;) {
        # A keep-alive connection that httpd closed (a child stopped as
        # spare threads are trimmed) fails the next request at once
        # ("Server closed connection without sending any data back"):
        # once more on a new connection before taking the server for
        # gone.
        my $t = token_of($ua, $port)
                // token_of(LWP::UserAgent->new(timeout => 10), $port);
        last unless defined $t;
        print $out "$t ", snapshot($dir), "\n";
        select(undef, undef, undef, 0.05);
    }
    POSIX::_exit(0);
}

for my $sync (@modes) {
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/files";
    mkdir "$dir/files/src";
    spew("$dir/files/src/f$_", "source $_") for 1 .. 100;
    my $config = <<"CONF";
StartServers 2
ThreadsPerChild 4
MaxRequestWorkers 8
@{[iss_s_location($dir, "ISSStateSync $sync", 'ISSSyncMaxResults 0')]}
CONF
    my $mode = "ISSStateSync $sync";
    my ($rc, $out);

    for my $round (1 .. $ROUNDS) {
        my $h = own_httpd_start(dir => $dir, config => $config);
        ok(!defined $h->{code} ? 1 : 0, 1, "$mode, round $round: httpd started")
            or print "# ", $h->{log}->(), "\n";
        unlink "$dir/samples";
        # The sampler's first token comes before any write (under a load of
        # fsyncing writers its requests queue for the state's lock).
        my @pids = do { my $p = fork // die; $p or sampler($h->{port}, $dir); $p };
        for (1 .. 200) { last if -s "$dir/samples"; select(undef, undef, undef, 0.05) }
        push @pids, map { my $p = fork // die; $p or writer($h->{port}, $_); $p } 1 .. 4;
        push @pids, do { my $p = fork // die; $p or copier($h->{port}); $p };
        select(undef, undef, undef, 0.6 + 0.4 * $round);
        # The kill comes after a token taken during the writes (a slow
        # ASan httpd on a loaded machine may not have answered one yet).
        for (1 .. 200) {
            last if (() = (slurp("$dir/samples") // '') =~ /\n/g) >= 2;
            select(undef, undef, undef, 0.05);
        }
        own_httpd_kill9($h);
        kill 'KILL', @pids;
        waitpid($_, 0) for @pids;

        # Files are whole: every byte of each file is the same letter.
        opendir my $dh, "$dir/files" or die $!;
        my @torn = grep { my $d = slurp("$dir/files/$_"); length($d) && $d ne substr($d, 0, 1) x length($d) }
                   grep { /^w\d-\d$/ } readdir $dh;
        ok(join(' ', @torn), '', "$mode, round $round: no torn file visible after kill -9");
        ($rc, $out) = iss_state("$dir/state", 'verify');
        ok($rc, 0, "$mode, round $round: the state store opens and verifies") or print "# $out\n";
        ($rc, $out) = iss_state("$dir/state", 'log', 999999999);
        my ($pending) = $out =~ /^pending: (.*)$/m;
        print "# $mode, round $round: ", scalar(split ' ', $pending // ''), " write(s) in flight at the kill\n";

        # Restart; from every sampled token, every file that differs now.
        my $c = own_httpd_start(dir => $dir, config => $config);
        my $ua = LWP::UserAgent->new(timeout => 30);
        my ($samples, @missed) = (0);
        open my $in, '<', "$dir/samples" or die $!;
        my @lines = <$in>;
        my %now = map { split /=/, $_, 2 } split /,/, snapshot($dir);
        for my $line (@lines) {
            my ($tok, $snap) = $line =~ /^(\S+) (.*)$/ or next;
            my %then = map { split /=/, $_, 2 } split /,/, $snap;
            my $r = $ua->request(HTTP::Request->new(REPORT => "http://127.0.0.1:$c->{port}/s/",
                [ Depth => 0, 'Content-Type' => 'application/xml' ],
                sync_body(token => $tok, level => 'infinite')));
            if ($r->code != 207) { push @missed, "$tok: " . $r->code; next }
            my $p = parse_multistatus($r->content);
            for my $f (sort keys %{ { %then, %now } }) {
                next if ($now{$f} // '') eq ($then{$f} // '');
                push @missed, "$f since $tok" unless $p->{members}{"/s/$f"};
            }
            $samples++;
        }
        own_httpd_stop($c);
        ok($samples > 1 ? 1 : 0, 1, "$mode, round $round: tokens sampled before and during the writes ($samples)");
        ok(join('; ', @missed[0 .. ($#missed < 5 ? $#missed : 5)]), '',
           "$mode, round $round: a sync from each names every file changed since");
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

# kill -9 of iss-sync at random points of a run with 200 changes (uploads,
# downloads, deletes, edits on both sides; some files over 1 MiB, so that
# chunk uploads and their sessions are under way when it dies), 10 times,
# then a normal run: both trees converge to what was written, nothing is
# lost, and at no point is a partial file under a final name (every file's
# bytes are one of the versions the test wrote for that name), on `Dav iss`
# (/ciss/) and plain `Dav On` (/cplain/).
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use ISSClient;
use Digest::SHA qw(sha256_hex);
use Time::HiRes ();

my $CYCLES = 10;
my $PER_LOC = 2 * $CYCLES + 9;
plan tests => $PER_LOC * 2;

sub synced_trees {
    my ($c, $want, $name) = @_;
    ok_tree(local_tree($c), $want, "$name: the local tree");
    ok_tree(server_tree($c), $want, "$name: the server tree");
}

# Every file of TREE (but temporary files) holds one of the
# versions written for its name: the names that do not.
sub torn {
    my ($tree, $versions) = @_;
    my @bad;
    for my $rel (sort keys %$tree) {
        # temporary names (the client's; mod_dav_fs's and mod_iss's while
        # a request is under way) are not final names
        next if $tree->{$rel} eq '/' || $rel =~ m{(?:^|/)\.(?:iss-sync-tmp|davfs\.tmp)[^/]*$};
        push @bad, $rel unless grep { $_ eq $tree->{$rel} } @{ $versions->{$rel} || [] };
    }
    return join ', ', @bad;
}

my $seed = 53;
for my $loc (LOCATIONS) {
    my $L = $loc eq 'ciss' ? 'Dav iss' : 'Dav On';
    srand($seed++);
    my $c = new_case('kill', $loc);

    # the last sync: 70 files (3 of them over 1 MiB) in 4 folders
    my %base;
    for my $i (0 .. 69) {
        my $size = $i < 3 ? 1_100_000 + 1000 * $i : 200 + 97 * $i;
        $base{ sprintf('d%d/base-%02d.bin', $i % 4, $i) } = rnd_bytes($size, "base-$loc-$i");
    }
    lfill($c, %base);
    my $r = run_sync($c, timeout => 120);
    ok_run($r, 0, "$L: the initial sync");

    # 200 changes: 70 new files here (1 over 1 MiB), 25 edits here (2 of
    # the big ones by 100 bytes), 12 deletes here; 60 new files on the
    # server (1 over 1 MiB), 20 edits there (1 big), 13 deletes there.
    my @names = sort keys %base;
    my (%want, %versions) = (%base);
    push @{ $versions{$_} }, ISSClient::sha12($base{$_}) for keys %base;
    my $n = 0;
    my $change = sub {
        my ($rel, $data) = @_;
        if (defined $data) { $want{$rel} = $data; push @{ $versions{$rel} }, ISSClient::sha12($data) }
        else { delete $want{$rel} }
        $n++;
    };
    for my $i (0 .. 69) {
        my $rel = sprintf('new-here/%s/n%02d.dat', $i % 3 ? 'a' : 'b/c', $i);
        my $d = rnd_bytes($i < 1 ? 1_100_000 : 100 + 31 * $i, "lnew-$loc-$i");
        lput($c, $rel, $d); $change->($rel, $d);
    }
    my @big = ('d0/base-00.bin', 'd1/base-01.bin', 'd2/base-02.bin');
    my %isbig = map { $_ => 1 } @big;
    my @small = grep { !$isbig{$_} } @names;        # 67
    for my $i (0 .. 24) {        # the big 0 and 1, small 0..22
        my $rel = $i < 2 ? $big[$i] : $small[$i - 2];
        my $d = $base{$rel};
        if ($i < 2) { substr($d, 500_000, 100) = 'L' x 100 } else { $d = "edited here $i\n" . $d }
        lput($c, $rel, $d); $change->($rel, $d);
    }
    for my $i (23 .. 34) { ldel($c, $small[$i]); $change->($small[$i], undef) }
    for my $i (0 .. 59) {
        my $rel = sprintf('d%d/new-there-%02d.dat', $i % 4, $i);
        my $d = rnd_bytes($i < 1 ? 1_100_000 : 150 + 29 * $i, "snew-$loc-$i");
        srv_put($c, $rel, $d); $change->($rel, $d);
    }
    for my $i (0 .. 19) {        # the big 2, small 35..53
        my $rel = $i ? $small[34 + $i] : $big[2];
        my $d = $base{$rel};
        if ($i == 0) { substr($d, 300_000, 100) = 'S' x 100 } else { $d .= "edited there $i\n" }
        srv_put($c, $rel, $d); $change->($rel, $d);
    }
    for my $i (54 .. 66) { srv_delete($c, $small[$i]); $change->($small[$i], undef) }
    die "$n changes, not 200" unless $n == 200;

    # 10 runs killed after 10 to 400 ms
    my ($killed, @delays) = (0);
    for my $cycle (1 .. $CYCLES) {
        my $ms = 10 + int(rand(391));
        push @delays, $ms;
        my $h = start_sync($c);
        Time::HiRes::sleep($ms / 1000);
        kill 'KILL', $h->{pid};
        my $k = wait_sync($h);
        $killed++ if $k->{code} == -9;
        ok(torn(local_tree($c), \%versions), '', "$L, kill $cycle after $ms ms: every local file is a whole version");
        ok(torn(server_tree($c), \%versions), '', "$L, kill $cycle: every server file is a whole version");
    }
    print "# $L: delays @delays ms; $killed run(s) killed before their end\n";
    ok($killed > 0 ? 1 : 0, 1, "$L: kills landed in runs under way ($killed of $CYCLES)");

    $r = run_sync($c, timeout => 120);
    ok_run($r, 0, "$L: a normal run after the kills: exit 0");
    synced_trees($c, expect_tree(%want), "$L, after the kills: every change is in place on both sides");
    ok(temp_leftovers($c->{local}), '', "$L: no temporary file left here");
    ok(join(', ', grep { m{(?:^|/)\.davfs\.tmp} } keys %{ server_tree($c) }), '', "$L: no temporary file left on the server");
    $r = run_sync($c);
    ok_run($r, 0, "$L: and the next run: exit 0");
    ok(action_lines($r), '', "$L: ... with nothing to do");
}

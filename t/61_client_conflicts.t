# iss-sync's conflict rules (docs/client.md, "Decisions" and "Conflicts")
# against a real httpd, on `Dav iss` (/ciss/) and plain `Dav On` (/cplain/):
# both edited differently (a conflict copy on both sides, exit 1), both
# edited alike (no conflict), deleted here + edited there and the reverse
# (the edit wins), a folder deleted on one side with a new file inside on
# the other (the folder survives), changes made while a run is under way
# (ISS_SYNC_TEST_PAUSE: between the decisions and the transfers) on either
# side, and two clients of one collection converging.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use ISSClient;
use Sys::Hostname ();
use Time::Local ();
use Digest::SHA qw(sha256_hex);

my $PER_LOC = 88;
plan tests => $PER_LOC * 2;

my $HOST = Sys::Hostname::hostname();

# A conflict copy's name for REL (docs/client.md): NAME (conflict
# YYYY-MM-DD HHMMSS HOST).EXT, in REL's folder; made within the last
# minutes by this host.
sub conflict_re {
    my ($rel) = @_;
    my ($dir, $stem, $ext) = $rel =~ m{^(.*/)?([^/]+?)(\.[^./]*)?$};
    return qr{^\Q${\($dir // '')}$stem\E \(conflict (\d{4})-(\d\d)-(\d\d) (\d\d)(\d\d)(\d\d) \Q$HOST\E\)\Q${\($ext // '')}\E$};
}

# The conflict copies of REL in a tree, and whether each names this
# minute's time.
sub conflict_copies {
    my ($tree, $rel) = @_;
    my $re = conflict_re($rel);
    return grep { my @t = $_ =~ $re;
                  @t && abs(Time::Local::timelocal($t[5], $t[4], $t[3], $t[2], $t[1] - 1, $t[0]) - time) < 600 }
           sort keys %$tree;
}

sub synced {
    my ($c, $want, $name, $code, %o) = @_;
    my $r = run_sync($c, %o);
    ok_run($r, $code // 0, "$name: exit code");
    ok_tree(local_tree($c), $want, "$name: the local tree");
    ok_tree(server_tree($c), $want, "$name: the server tree");
    return $r;
}

# Run with ISS_SYNC_TEST_PAUSE; CHANGE runs while the client waits between
# its decisions and the transfers.  -> (paused?, result)
sub paused_run {
    my ($c, $change, %o) = @_;
    my $pause = "$c->{tmp}/pause";
    unlink $pause;
    my $h = start_sync($c, env => { ISS_SYNC_TEST_PAUSE => $pause }, %o);
    my $paused = pause_wait($h, $pause, 60);
    $change->() if $paused;
    unlink $pause;
    return ($paused, wait_sync($h));
}

# A filler file: the deletes of a case stay under the mass-delete guard.
my %filler = ('filler/f.txt' => "filler\n");

for my $loc (LOCATIONS) {
    my $L = $loc eq 'ciss' ? 'Dav iss' : 'Dav On';

    # ---- both edited, differently: a conflict, both versions kept ----------
    {
        my $c = new_case('both-edit', $loc);
        my %f = ('doc.txt' => "base\n", 'sub/notes.md' => "base notes\n", 'NOEXT' => "base, no extension\n",
                 'big.bin' => rnd_bytes(300_000, 'big'));
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, both edited: initial sync");
        my $big_l = $f{'big.bin'}; substr($big_l, 1000, 5) = 'LOCAL';
        my $big_s = $f{'big.bin'}; substr($big_s, 2000, 6) = 'SERVER';
        my %l = ('doc.txt' => "local edit\n", 'sub/notes.md' => "local notes\n", 'NOEXT' => "local\n", 'big.bin' => $big_l);
        my %s = ('doc.txt' => "server edit, longer\n", 'sub/notes.md' => "server notes\n", 'NOEXT' => "server\n", 'big.bin' => $big_s);
        lput($c, $_, $l{$_}) for keys %l;
        srv_put($c, $_, $s{$_}) for keys %s;
        my $r = run_sync($c);
        ok_run($r, 1, "$L, both edited differently: exit 1");
        my ($lt, $st) = (local_tree($c), server_tree($c));
        my %want = (%s);
        my @copies;
        for my $rel (sort keys %l) {
            my @cl = conflict_copies($lt, $rel);
            ok(scalar(@cl), 1, "$L, both edited ($rel): one conflict copy here, named NAME (conflict DATE TIME $HOST).EXT")
                or print "# local: ", join(', ', sort keys %$lt), "\n";
            $want{ $cl[0] // "$rel (conflict copy missing)" } = $l{$rel};
            push @copies, $cl[0] // '';
        }
        ok_tree($lt, expect_tree(%want), "$L, both edited: here, the server's version under the name, ours in the copy");
        ok_tree($st, expect_tree(%want), "$L, both edited: the server has both too");
        my $acts = action_lines($r);
        ok(join(', ', grep { index("\n$acts", "\nconflict $_ (local version kept as \"") < 0 } sort keys %l), '',
           "$L, both edited: a 'conflict NAME (local version kept as \"...\")' line each");
        synced($c, expect_tree(%want), "$L, both edited: the next run", 0);
    }

    # ---- both edited to the same content: no conflict ------------------------
    {
        my $c = new_case('same-edit', $loc);
        my %f = ('a.txt' => "base a\n", 'b.bin' => rnd_bytes(150_000, 'same-b'));
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, same edits: initial sync");
        my %n = ('a.txt' => "edited alike\n", 'b.bin' => rnd_bytes(160_000, 'same-b2'));
        lput($c, $_, $n{$_}) for keys %n;
        srv_put($c, $_, $n{$_}) for keys %n;
        my $r = synced($c, expect_tree(%n), "$L, both edited to the same content", 0);
        ok(action_lines($r) =~ /^conflict /m ? 1 : 0, 0, "$L, same content: no conflict reported");
    }

    # ---- deleted here, edited there; edited here, deleted there --------------
    {
        my $c = new_case('edit-delete', $loc);
        my %f = ('del-here.txt' => "v1 a\n", 'del-there.txt' => "v1 b\n", 'd1/in.txt' => "v1 c\n");
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, edit vs delete: initial sync");
        ldel($c, 'del-here.txt');
        srv_put($c, 'del-here.txt', "edited on the server\n");
        lput($c, 'del-there.txt', "edited here\n");
        srv_delete($c, 'del-there.txt');
        my %g = (%f, 'del-here.txt' => "edited on the server\n", 'del-there.txt' => "edited here\n");
        my $r = synced($c, expect_tree(%g), "$L, deleted here + edited there, edited here + deleted there");
        my $acts = action_lines($r);
        ok(join(',', grep { $acts =~ /^$_$/m } 'download del-here.txt', 'upload del-there.txt'),
           'download del-here.txt,upload del-there.txt', "$L, the edits win: the server's comes here, ours goes back");
    }

    # ---- a file that became a folder here, a folder that became a file there --
    {
        my $c = new_case('type-change', $loc);
        my %f = ('x' => "x was a file\n", 'y/in.txt' => "y was a folder\n", 'keep1.txt' => "k1\n", 'keep2.txt' => "k2\n");
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, type changes: initial sync");
        ldel($c, 'x');
        lput($c, 'x/inside.txt', "x is a folder now\n");
        srv_delete($c, 'y/');
        srv_put($c, 'y', "y is a file now\n");
        my %g = ('x/inside.txt' => "x is a folder now\n", 'y' => "y is a file now\n", 'keep1.txt' => "k1\n", 'keep2.txt' => "k2\n");
        my $r = synced($c, expect_tree(%g), "$L, a change of kind on one side only is carried over, no conflict", 0);
    }

    # ---- a folder deleted on one side, a new file in it on the other ----------
    {
        my $c = new_case('folder-delete', $loc);
        my %f = ('ldel/old1.txt' => "o1\n", 'ldel/old2.txt' => "o2\n", 'sdel/old3.txt' => "o3\n",
                 'sdel/deeper/old4.txt' => "o4\n", %filler);
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, folder delete: initial sync");
        ldel($c, 'ldel');
        srv_put($c, 'ldel/new-there.txt', "new on the server\n");
        srv_delete($c, 'sdel/');
        lput($c, 'sdel/deeper/new-here.txt', "new here\n");
        my %g = (%filler, 'ldel/new-there.txt' => "new on the server\n", 'sdel/deeper/new-here.txt' => "new here\n");
        synced($c, expect_tree(%g), "$L, folders deleted on one side with a new file inside on the other: they survive");
        synced($c, expect_tree(%g), "$L, folder delete: the next run", 0);
    }

    # ---- a local file changed between the scan and the upload -----------------
    for my $how ('rewritten', 'edited in place') {
        my $c = new_case('race-local', $loc);
        my $v1 = rnd_bytes(600_000, "race-$how");
        my %f = ('race.bin' => $v1);
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, changed during the run ($how): initial sync");
        my $v2 = $v1; substr($v2, 100_000, 10) = 'VERSION 2!';
        my $v3 = $how eq 'rewritten' ? $v2 . 'and longer: version 3' : do { my $x = $v2; substr($x, 400_000, 10) = 'VERSION 3!'; $x };
        lput($c, 'race.bin', $v2);
        my ($paused, $r) = paused_run($c, sub {
            if ($how eq 'rewritten') { lput($c, 'race.bin', $v3) }
            else {
                open my $fh, '+<:raw', "$c->{local}/race.bin" or die $!;
                seek $fh, 400_000, 0; print $fh 'VERSION 3!'; close $fh or die $!;
            }
        });
        ok($paused, 1, "$L, ($how): the run paused between its decisions and the transfers");
        my $srv = slurp("$c->{srv}/race.bin") // '';
        ok(slurp("$c->{local}/race.bin") eq $v3 ? 1 : 0, 1, "$L, ($how): the new local content is not lost");
        ok($srv eq $v2 ? 'v2' : $srv eq $v3 ? 'v3' : $srv eq $v1 ? 'v1' : 'a mix (' . length($srv) . ' bytes)',
           $srv eq $v1 ? 'v1' : $srv eq $v2 ? 'v2' : 'v3', "$L, ($how): the server holds one whole version, never a mix")
            or print "# exit $r->{code}; stderr: $r->{err}\n";
        ok($r->{code} >= 0 && $r->{code} <= 2 ? 1 : 0, 1, "$L, ($how): exit 0, 1 or 2 (got $r->{code})");
        my $r2 = synced($c, expect_tree(%f, 'race.bin' => $v3), "$L, ($how): the next run brings it to the server", 0);
    }

    # ---- a local file changed before the client overwrites or deletes it ------
    {
        my $c = new_case('race-overwrite', $loc);
        my %f = ('dl.txt' => "base dl\n", 'rm.txt' => "base rm\n");
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, local change before an overwrite: initial sync");
        srv_put($c, 'dl.txt', "server edit\n");
        srv_delete($c, 'rm.txt');
        my ($paused, $r) = paused_run($c, sub {
            lput($c, 'dl.txt', "local edit during the run\n");
            lput($c, 'rm.txt', "local edit of a file deleted on the server\n");
        });
        ok($paused, 1, "$L, overwrite/delete race: the run paused");
        ok(slurp("$c->{local}/dl.txt") // '', "local edit during the run\n",
           "$L, a download does not overwrite a file changed during the run");
        ok(slurp("$c->{local}/rm.txt") // '', "local edit of a file deleted on the server\n",
           "$L, a delete does not remove a file changed during the run");
        ok($r->{code}, 2, "$L, overwrite/delete race: exit 2 (left for the next run)");
        $r = run_sync($c);
        ok_run($r, 1, "$L, overwrite/delete race, next run: exit 1 (dl.txt is a conflict)");
        my $lt = local_tree($c);
        my @cl = conflict_copies($lt, 'dl.txt');
        my %g = ('dl.txt' => "server edit\n", 'rm.txt' => "local edit of a file deleted on the server\n",
                 ($cl[0] // 'dl (conflict copy missing).txt') => "local edit during the run\n");
        ok_tree($lt, expect_tree(%g), "$L, overwrite/delete race, next run: both versions of dl.txt, rm.txt back (here)");
        ok_tree(server_tree($c), expect_tree(%g), "$L, overwrite/delete race, next run: (the server)");
    }

    # ---- a server file changed between the listing and the upload: 412 -------
    {
        my $c = new_case('race-server', $loc);
        my %f = ('up.txt' => "base up\n", 'del.txt' => "base del\n", %filler);
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, server change during the run: initial sync");
        lput($c, 'up.txt', "local edit\n");
        ldel($c, 'del.txt');
        my ($paused, $r) = paused_run($c, sub {
            srv_put($c, 'up.txt', "server edit during the run\n");
            srv_put($c, 'del.txt', "server edit of a file deleted here\n");
        });
        ok($paused, 1, "$L, server race: the run paused");
        ok_run($r, 1, "$L, server race: exit 1 (up.txt became a conflict, never an overwrite)");
        my $lt = local_tree($c);
        my @cl = conflict_copies($lt, 'up.txt');
        my %g = (%filler, 'up.txt' => "server edit during the run\n", 'del.txt' => "server edit of a file deleted here\n",
                 ($cl[0] // 'up (conflict copy missing).txt') => "local edit\n");
        ok_tree($lt, expect_tree(%g), "$L, server race: both versions kept, the server's edit beats our delete (here)");
        ok_tree(server_tree($c), expect_tree(%g), "$L, server race: (the server)");
        synced($c, expect_tree(%g), "$L, server race: the next run", 0);
    }

    # ---- two clients of one collection converge ------------------------------------
    {
        my $a = new_case('two-clients', $loc);
        my $b = new_case('two-clients-b', $loc, same_as => $a);
        my %f = (map({ ("f$_.txt" => "v0 $_\n") } 1 .. 12), 'dir/x.txt' => "x0\n", 'dir/sub/y.bin' => rnd_bytes(100_000, 'y'));
        lfill($a, %f);
        my @codes;
        push @codes, run_sync($a)->{code}, run_sync($b)->{code};
        for my $round (1 .. 3) {
            lput($a, "f$round.txt", "A's edit in round $round\n");
            lput($b, "f" . ($round + 4) . ".txt", "B's edit in round $round\n");
            lput($a, "a-new-$round/n.txt", "A new $round\n");
            lput($b, "b-new-$round.txt", "B new $round\n");
            ldel($a, "f" . ($round + 8) . ".txt");
            rename "$b->{local}/f" . ($round + 9) . ".txt", "$b->{local}/renamed-by-b-$round.txt"
                if $round < 3;
            if ($round == 3) {      # both edit one file: a conflict somewhere
                lput($a, 'dir/x.txt', "A's x\n");
                lput($b, 'dir/x.txt', "B's x\n");
            }
            push @codes, run_sync($a)->{code}, run_sync($b)->{code};
        }
        push @codes, run_sync($a)->{code}, run_sync($b)->{code};
        my @last = splice @codes, -2;
        ok(join(' ', @codes), join(' ', (0) x 7, 1), "$L, two clients: exit codes of the rounds (a conflict in the last)");
        ok(join(' ', @last), '0 0', "$L, two clients: a final round of both finds them in sync");
        my ($ta, $tb, $ts) = (local_tree($a), local_tree($b), server_tree($a));
        ok_tree($ta, $ts, "$L, two clients: A's folder equals the server");
        ok_tree($tb, $ts, "$L, two clients: B's folder equals the server");
        my @cx = conflict_copies($ts, 'dir/x.txt');
        my %g = %f;
        delete $g{"f$_.txt"} for 9 .. 11;
        %g = (%g, map({ ("f$_.txt" => "A's edit in round $_\n") } 1 .. 3),
                  map({ ("f" . ($_ + 4) . ".txt" => "B's edit in round $_\n") } 1 .. 3),
                  map({ ("a-new-$_/n.txt" => "A new $_\n", "b-new-$_.txt" => "B new $_\n") } 1 .. 3),
                  'renamed-by-b-1.txt' => "v0 10\n", 'renamed-by-b-2.txt' => "v0 11\n",
                  'f12.txt' => "v0 12\n",
                  'dir/x.txt' => "A's x\n", ($cx[0] // 'dir/x (conflict copy missing).txt') => "B's x\n");
        ok_tree($ts, expect_tree(%g), "$L, two clients: every change of both is on the server (B's x.txt as the conflict copy)");
    }
}

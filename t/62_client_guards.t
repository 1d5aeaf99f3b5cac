# iss-sync's safety guards (docs/client.md, "Safety guards") against a real
# httpd, on `Dav iss` (/ciss/) and plain `Dav On` (/cplain/): an unmounted
# root (the folder missing or empty; the collection emptied or gone), mass
# deletes on either side (and the 50% boundary), symbolic links pointing
# out of the folder (never followed, in either direction), names a FAT
# file system cannot hold or folds together (a FAT image mounted with
# fusefat by scripts/run-apache-test.sh: ISS_FAT_DIR), two runs on one
# folder at once.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use ISSClient;
use File::Path ();

my $PER_LOC = 83;
plan tests => 1 + $PER_LOC * 2 + 11 + 12;

my $FAT = $ENV{ISS_FAT_DIR} // '';
my $fat_ok = $FAT ne '' && -d $FAT && -w $FAT && `stat -f -c %T '$FAT' 2>/dev/null` =~ /fuse/;
ok($fat_ok ? 1 : 0, 1, "a FAT folder mounted by scripts/run-apache-test.sh (ISS_FAT_DIR=$FAT)");

# The methods that write on the server, since MARK.
sub writes {
    my ($mark) = @_;
    return join ' ', map { "$_->{method} $_->{uri}" }
        grep { $_->{method} =~ /^(?:PUT|PATCH|POST|DELETE|MOVE|COPY|MKCOL|PROPPATCH)$/ } @{ access_since($mark) };
}

sub synced {
    my ($c, $want, $name, $code, %o) = @_;
    my $r = run_sync($c, %o);
    ok_run($r, $code // 0, "$name: exit code");
    ok_tree(local_tree($c), $want, "$name: the local tree");
    ok_tree(server_tree($c), $want, "$name: the server tree");
    return $r;
}

# A run the guard stops: exit 3, an error naming WHY, both trees and the
# server untouched.
sub stopped {
    my ($c, $why, $name, %o) = @_;
    my ($lt, $st) = (local_tree($c), server_tree($c));
    my $mark = access_mark();
    my $r = run_sync($c, %o);
    ok_run($r, 3, "$name: exit 3");
    ok($r->{err} =~ $why ? 1 : 0, 1, "$name: the error says why ($why)") or print "# stderr: $r->{err}\n";
    ok(tree_diff(local_tree($c), $lt) . ' | ' . tree_diff(server_tree($c), $st) . ' | ' . writes($mark), ' |  | ',
       "$name: nothing changed on either side, no write request");
    return $r;
}

my %ten = map { ("f$_.txt" => "file $_\n") } 0 .. 9;

for my $loc (LOCATIONS) {
    my $L = $loc eq 'ciss' ? 'Dav iss' : 'Dav On';

    # ---- the folder missing (an unmounted disk) ------------------------------
    {
        my $c = new_case('root-missing', $loc);
        my %f = (%ten, 'd/x.txt' => "x\n");
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, missing root: initial sync");
        rename $c->{local}, "$c->{tmp}/unmounted" or die $!;
        my $r = stopped($c, qr/missing/, "$L, the folder is missing");
        ok(-e $c->{local} ? 1 : 0, 0, "$L, the missing folder is not created again");
        rename "$c->{tmp}/unmounted", $c->{local} or die $!;
        synced($c, expect_tree(%f), "$L, the folder is back: in sync, nothing to do");
    }

    # ---- the folder emptied --------------------------------------------------------
    {
        my $c = new_case('root-empty', $loc);
        my %f = (%ten, 'd/x.txt' => "x\n");
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, empty root: initial sync");
        ldel($c, $_) for keys %f;
        ldel($c, 'd');
        stopped($c, qr/empty/, "$L, the folder is empty");
        synced($c, {}, "$L, --allow-empty-root: the emptiness is synced (deleted on the server)", 0,
               args => ['--allow-empty-root']);
    }

    # ---- the collection emptied, or gone --------------------------------------------
    {
        my $c = new_case('remote-empty', $loc);
        my %f = (%ten);
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, empty collection: initial sync");
        srv_delete($c, $_) for keys %f;
        stopped($c, qr/empty|delete/, "$L, the collection is empty");
        synced($c, {}, "$L, --allow-empty-root: the empty collection is synced (deleted here)", 0,
               args => ['--allow-empty-root']);

        my $g = new_case('remote-gone', $loc);
        lfill($g, %f);
        synced($g, expect_tree(%f), "$L, collection gone: initial sync");
        my $r = ISSClient::dav_req(DELETE => $g->{path});
        die "DELETE $g->{path}: " . $r->status_line unless $r->code == 204;
        my $lt = local_tree($g);
        $r = run_sync($g);
        ok_run($r, 3, "$L, the collection is gone: exit 3");
        ok_tree(local_tree($g), $lt, "$L, the collection is gone: nothing deleted here");
        ok(-d $g->{srv} ? 1 : 0, 0, "$L, the collection is gone: not created again");
    }

    # ---- mass delete ------------------------------------------------------------------
    {
        my $c = new_case('mass-delete', $loc);
        my %f = (%ten);
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, mass delete: initial sync");
        ldel($c, "f$_.txt") for 0 .. 5;                    # 6 of 10
        lput($c, 'new.txt', "a new file, not uploaded either\n");
        stopped($c, qr/delete/, "$L, 6 of 10 files deleted here (more than 50%)");
        my %g = map { ("f$_.txt" => $f{"f$_.txt"}) } 6 .. 9;
        $g{'new.txt'} = "a new file, not uploaded either\n";
        synced($c, expect_tree(%g), "$L, --max-delete 100: the deletes go through", 0, args => ['--max-delete', '100']);

        # the server side, at the boundary: 50% is allowed, more is not
        my $s = new_case('mass-delete-srv', $loc);
        lfill($s, %f);
        synced($s, expect_tree(%f), "$L, server mass delete: initial sync");
        srv_delete($s, "f$_.txt") for 0 .. 5;
        stopped($s, qr/delete/, "$L, 6 of 10 files deleted on the server");
        srv_put($s, 'f0.txt', $f{'f0.txt'});                # now 5 of 10
        my %h = %f; delete $h{"f$_.txt"} for 1 .. 5;
        synced($s, expect_tree(%h), "$L, 5 of 10 deleted on the server (50%, not more): they go", 0);
    }

    # ---- symbolic links pointing out of the folder ----------------------------------------
    {
        my $c = new_case('symlinks', $loc);
        my $out = "$c->{tmp}/outside";
        File::Path::make_path("$out/dir");
        my $secret = "the content of a file outside the folder\n";
        spew("$out/secret.txt", $secret);
        spew("$out/dir/other-secret.txt", $secret . 'too');
        lput($c, 'plain.txt', "an ordinary file\n");
        symlink("$out/secret.txt", "$c->{local}/link-out") or die $!;
        symlink("$out/dir", "$c->{local}/dir-link") or die $!;
        symlink("../../outside/secret.txt", "$c->{local}/rel-link.txt") or die $!;
        my $outside = ISSClient::scan_tree($out);
        my $mark = access_mark();
        my $r = run_sync($c);
        ok_run($r, 2, "$L, symbolic links: exit 2 (skipped items)");
        ok(join(',', map { $r->{err} =~ /skipped \Q$_\E: a symbolic link \(never followed\)/ ? 1 : 0 } qw(link-out dir-link rel-link.txt)),
           '1,1,1', "$L, each link is reported as skipped") or print "# stderr: $r->{err}\n";
        ok_tree(server_tree($c), expect_tree('plain.txt' => "an ordinary file\n"),
            "$L, symbolic links: only the ordinary file reaches the server");
        ok(join(' ', grep { /secret/ } map { "$_->{method} $_->{uri}" } @{ access_since($mark) }), '',
           "$L, nothing was asked about the links' targets");

        # the server holds a folder and a file with the links' names
        srv_mkcol($c, 'dir-link');
        srv_put($c, 'dir-link/planted.txt', "written through a link?\n");
        srv_put($c, 'link-out', "overwrite the link's target?\n");
        srv_put($c, 'rel-link.txt', "overwrite the relative link's target?\n");
        my $lt = local_tree($c);
        $r = run_sync($c);
        ok_run($r, 2, "$L, server names of local links: exit 2 (skipped)");
        ok_tree(ISSClient::scan_tree($out), $outside, "$L, nothing was written through a link (the outside is unchanged)");
        ok_tree(local_tree($c), $lt, "$L, the links are still links, nothing under them");
        ok(join(',', grep { !-l "$c->{local}/$_" } qw(link-out dir-link rel-link.txt)), '',
           "$L, every link is still a symbolic link");
        ok(tree_str(server_tree($c)) =~ /planted\.txt/ && -f "$c->{srv}/link-out" ? 1 : 0, 1,
           "$L, and the server keeps its files (nothing deleted there)");
    }

    # ---- names the local file system cannot hold, or folds together (FAT) -------------------
    {
        my $c = new_case('names', $loc, mkcol => 1, no_local => 1);
        # (no FAT folder: a path whose parent is missing, and the test fails)
        $c->{local} = $fat_ok ? "$FAT/$loc-names" : "$c->{tmp}/no-FAT-folder/$loc-names";
        mkdir $c->{local} if $fat_ok;
        my %ok = ('ok.txt' => "fine\n", 'sub/fine.txt' => "fine too\n");
        my %bad = ('a:b.txt' => "a colon\n", 'Readme.txt' => "one readme\n", 'README.txt' => "ANOTHER README\n",
                   "caf\xc3\xa9.txt" => "non-ASCII: this FAT refuses it\n");
        srv_fill($c, %ok, %bad);
        my $st = server_tree($c);
        my $r = run_sync($c);
        ok_run($r, 2, "$L, FAT: names it cannot hold: exit 2");
        ok(join(',', map { $r->{err} =~ /skipped \Q$_\E\b/ ? 1 : 0 } sort keys %bad), '1,1,1,1',
           "$L, FAT: each name is reported as skipped") or print "# stderr: $r->{err}\n";
        my $lt = $fat_ok ? local_tree($c) : { 'no FAT folder' => '?' };
        ok_tree($lt, expect_tree(%ok), "$L, FAT: the rest is synced, no README merged into the other");
        ok_tree(server_tree($c), $st, "$L, FAT: the server is unchanged");
        lput($c, 'up.txt', "new on FAT\n") if $fat_ok;
        $r = run_sync($c);
        ok_run($r, 2, "$L, FAT, next run: exit 2 (still skipped)");
        ok_tree($fat_ok ? local_tree($c) : {}, expect_tree(%ok, 'up.txt' => "new on FAT\n"),
            "$L, FAT, next run: the local tree");
        ok_tree(server_tree($c), { %$st, %{ expect_tree('up.txt' => "new on FAT\n") } },
            "$L, FAT, next run: the skipped names are not deleted on the server, the new file is up");
        ok(temp_leftovers($c->{local}), '', "$L, FAT: no temporary file left");
    }

    # ---- a server name with the client's own temporary prefix ---------------------------
    {
        my $c = new_case('tmp-names', $loc, mkcol => 1);
        # (with files enough that the mass-delete guard would not save them)
        my %f = (%ten, '.iss-sync-tmp.evil' => "the server's file, not a temporary one\n",
                 'sub/.iss-sync-tmp.x' => "another\n");
        srv_fill($c, %f);
        my $st = server_tree($c);
        my $r1 = run_sync($c);
        my $r2 = run_sync($c);
        ok_tree(server_tree($c), $st, "$L, server names with the client's temporary prefix: never deleted on the server");
        ok_run($r2, 2, "$L, ... they are skipped (exit 2)");
        ok(join(',', map { $r2->{err} =~ /skipped \Q$_\E/ ? 1 : 0 } '.iss-sync-tmp.evil', 'sub/.iss-sync-tmp.x'), '1,1',
           "$L, ... and reported") or print "# stderr: $r2->{err}\n";
        ok_tree(local_tree($c), expect_tree(%ten, 'sub' => undef), "$L, ... the rest is synced");
    }

    # ---- two runs on one folder at once ----------------------------------------------------
    {
        my $c = new_case('lock', $loc);
        my %f = (%ten);
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, lock: initial sync");
        lput($c, 'new.txt', "new\n");
        my $pause = "$c->{tmp}/pause";
        my $h = start_sync($c, env => { ISS_SYNC_TEST_PAUSE => $pause });
        ok(pause_wait($h, $pause, 60), 1, "$L, lock: the first run is under way (paused)");
        my $mark = access_mark();
        my $r2 = run_sync($c);
        ok_run($r2, 3, "$L, a second run on the same folder: exit 3");
        ok($r2->{err} =~ /another iss-sync is running/ ? 1 : 0, 1, "$L, ... saying another run is under way")
            or print "# stderr: $r2->{err}\n";
        ok(writes($mark), '', "$L, ... and wrote nothing to the server");
        # another state directory does not make it a different folder
        my $r3 = run_sync($c, state => "$c->{tmp}/state2");
        ok_run($r3, 3, "$L, a second run on the same folder with another --state-dir: exit 3");
        unlink $pause;
        my $r = wait_sync($h);
        ok_run($r, 0, "$L, lock: the first run completes");
        ok_tree(server_tree($c), expect_tree(%f, 'new.txt' => "new\n"), "$L, lock: the first run's upload is done");
    }
}

# ---- a server that forgot our sync token (Dav iss: /cissret/ keeps 3 log entries) ----
{
    my $c = new_case('forgot', 'cissret');
    my %f = map { ("$_.txt" => "$_ v1\n") } qw(a b c d e f g h);
    lfill($c, %f);
    synced($c, expect_tree(%f), 'forgotten token: initial sync');
    ldel($c, 'a.txt');                       # deleted here
    srv_delete($c, 'b.txt');                 # deleted there
    srv_put($c, 'c.txt', "c v2 (server)\n");
    lput($c, 'd.txt', "d v2 (here)\n");
    srv_put($c, "n$_.txt", "new $_\n") for 1 .. 4;   # the token falls out of the log
    my %g = (%f, 'c.txt' => "c v2 (server)\n", 'd.txt' => "d v2 (here)\n", map { ("n$_.txt" => "new $_\n") } 1 .. 4);
    my $r = synced($c, expect_tree(%g), 'forgotten token: a full compare in which nothing is deleted (a.txt and b.txt come back)');
    ok($r->{err} =~ /no longer knows our sync token/ ? 1 : 0, 1, 'forgotten token: said on stderr') or print "# stderr: $r->{err}\n";
    $r = synced($c, expect_tree(%g), 'forgotten token: the next run');
    ok(action_lines($r), '', 'forgotten token: the next run has nothing to do');
}

# ---- a token of a server before sealed tokens (issue 16 item 1): the old
# decimal form is refused like a forgotten token, and the client recovers ----
{
    my $c = new_case('upgrade', 'ciss');
    my %f = map { ("$_.txt" => "$_ v1\n") } qw(a b c);
    lfill($c, %f);
    synced($c, expect_tree(%f), 'token before the upgrade: initial sync');
    my ($db) = glob("$c->{state}/*.db");
    my $tok = `sqlite3 '$db' "SELECT v FROM meta WHERE k = 'token'"`;
    chomp $tok;
    (my $old = $tok) =~ s{/[0-9a-f]{32}$}{/7};
    system('sqlite3', $db, "UPDATE meta SET v = '$old' WHERE k = 'token'");
    ok(`sqlite3 '$db' "SELECT v FROM meta WHERE k = 'token'"` =~ m{^https://mod-iss\.org/ns/sync/[0-9a-f-]+/7$} ? 1 : 0, 1,
       "token before the upgrade: the client's state holds the old decimal form ($old)");
    srv_put($c, 'n.txt', "new\n");
    lput($c, 'b.txt', "b v2 (here)\n");
    my %g = (%f, 'n.txt' => "new\n", 'b.txt' => "b v2 (here)\n");
    my $r = synced($c, expect_tree(%g), 'token before the upgrade: refused, a full compare brings both sides together');
    ok($r->{err} =~ /no longer knows our sync token/ ? 1 : 0, 1, 'token before the upgrade: said on stderr') or print "# stderr: $r->{err}\n";
    $r = synced($c, expect_tree(%g), 'token before the upgrade: the next run, with a sealed token');
    ok(action_lines($r), '', 'token before the upgrade: the next run has nothing to do');
}

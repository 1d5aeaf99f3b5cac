# iss-sync against a real httpd, the everyday cases, on `Dav iss` (/ciss/)
# and plain `Dav On` (/cplain/): the first sync in each direction and with
# content on both sides (same content recorded without a transfer on Dav
# iss), creates, edits, deletes and renames on each side, nested folders,
# empty files and folders, names with spaces and UTF-8, a run with nothing
# to do, --dry-run (prints what the real run then does, changes nothing,
# not even the state), exit codes 0 and 1.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use ISSClient;
use Digest::SHA qw(sha256_hex);

my $PER_LOC = 55;
plan tests => 1 + $PER_LOC * 2;

ok(defined sync_tool() ? 1 : 0, 1, 'ISS_SYNC_TOOL names the iss-sync binary');

# Names: spaces, UTF-8 (as bytes: what goes on the wire and on disk).
my $SPACE = 'with space.txt';
my $UTF8 = "gr\xc3\xbc\xc3\x9fe \xe2\x82\xac \xe6\x97\xa5\xe6\x9c\xac.txt";   # grüße € 日本.txt

# The methods that write on the server.
sub writes {
    my ($mark) = @_;
    return join ' ', map { "$_->{method} $_->{uri}" }
        grep { $_->{method} =~ /^(?:PUT|PATCH|POST|DELETE|MOVE|COPY|MKCOL|PROPPATCH)$/ } @{ access_since($mark) };
}

# The requests since MARK that name REL (a URL path) with one of METHODS.
sub requests_of {
    my ($mark, $uri, @methods) = @_;
    my %m = map { $_ => 1 } @methods;
    return join ' ', map { "$_->{method} $_->{uri}" }
        grep { $m{ $_->{method} } && $_->{uri} eq $uri } @{ access_since($mark) };
}

# The state's databases and their bytes (a dry run must not touch them):
# each .db with what its write-ahead log holds (an empty log, or none, is
# no change; the -shm index is not state).
sub state_sig {
    my ($c) = @_;
    opendir my $d, $c->{state} or return '';
    return join ',', map { "$_=" . sha256_hex(slurp("$c->{state}/$_") // '')
                               . '+wal=' . sha256_hex(slurp("$c->{state}/$_-wal") // '') }
        sort grep { /\.db$/ } readdir $d;
}

# A run that must leave both sides equal to WANT.
sub synced {
    my ($c, $want, $name, $code, %o) = @_;
    my $r = run_sync($c, %o);
    ok_run($r, $code // 0, "$name: exit code");
    ok_tree(local_tree($c), $want, "$name: the local tree");
    ok_tree(server_tree($c), $want, "$name: the server tree");
    return $r;
}

my %base = (
    'top.txt'              => "top level\n",
    'empty.txt'            => '',
    $SPACE                 => "a name with a space\n",
    $UTF8                  => "UTF-8 name\n",
    'a/one.txt'            => "level one\n",
    'a/b/two.txt'          => "level two\n",
    'a/b/c/three.txt'      => "level three\n",
    'a/b/c/empty'          => '',
    'emptydir'             => undef,
    "dir $UTF8/inner.bin"  => rnd_bytes(70_000, 'inner'),
);

for my $loc (LOCATIONS) {
    my $L = $loc eq 'ciss' ? 'Dav iss' : 'Dav On';

    # ---- first sync: local -> a collection that does not exist yet --------
    {
        my $c = new_case('up', $loc);
        lfill($c, %base);
        my $r = synced($c, expect_tree(%base), "$L, first sync up");
        my @up = sort grep { defined $base{$_} } keys %base;
        ok(join("\n", grep { /^upload / } split /\n/, action_lines($r)),
           join("\n", map { "upload $_" } @up), "$L, first sync up: an upload line per file");

        # nothing changed: nothing is done, nothing written
        my $mark = access_mark();
        $r = synced($c, expect_tree(%base), "$L, second run, nothing changed");
        ok(action_lines($r), '', "$L, second run: no action");
        ok(writes($mark), '', "$L, second run: no write request to the server");
    }

    # ---- first sync: server -> a local folder that does not exist yet -----
    {
        my $c = new_case('down', $loc, mkcol => 1, no_local => 1);
        srv_fill($c, %base);
        my $r = synced($c, expect_tree(%base), "$L, first sync down");
        ok(join("\n", grep { /^download / } split /\n/, action_lines($r)),
           join("\n", map { "download $_" } sort grep { defined $base{$_} } keys %base),
           "$L, first sync down: a download line per file");
        my $mark = access_mark();
        $r = synced($c, expect_tree(%base), "$L, first sync down, run again");
        ok(action_lines($r) . writes($mark), '', "$L, run again: nothing done");
    }

    # ---- first sync with content on both sides ------------------------------
    {
        my $c = new_case('both', $loc, mkcol => 1);
        my %same = ('same.txt' => "same on both sides\n", 'd/same2.bin' => rnd_bytes(200_000, 'same2'));
        my %lonly = ('local-only.txt' => "only here\n", 'd/lonly.txt' => 'l');
        my %sonly = ('server-only.txt' => "only there\n", 'd/sonly.txt' => 's', 'sdir/x' => 'x');
        srv_mkcol($c, 'd'); srv_mkcol($c, 'sdir');
        srv_put($c, $_, $same{$_}) for keys %same;
        srv_put($c, $_, $sonly{$_}) for keys %sonly;
        lput($c, $_, $same{$_}) for keys %same;
        lput($c, $_, $lonly{$_}) for keys %lonly;
        my $mark = access_mark();
        my $r = synced($c, expect_tree(%same, %lonly, %sonly), "$L, first sync, both sides");
        ok(action_lines($r), join("\n", sort(map({ "download $_" } keys %sonly), map({ "upload $_" } keys %lonly),
                                             'mkdir-local sdir')),
           "$L, first sync, both sides: the one-sided files move, the same ones do not");
        if ($loc eq 'ciss') {
            ok(join(' ', grep { length } map { requests_of($mark, "/$loc/$c->{name}/$_", qw(GET PUT PATCH POST)) } sort keys %same), '',
               "$L: same-content files recorded without a transfer");
        }
        else {
            # plain WebDAV names no digest: downloaded once to compare, never uploaded
            ok(join(' ', grep { length } map { requests_of($mark, "/$loc/$c->{name}/$_", qw(PUT PATCH POST)) } sort keys %same), '',
               "$L: same-content files never uploaded");
        }
        $r = synced($c, expect_tree(%same, %lonly, %sonly), "$L, both sides, run again");
        ok(action_lines($r), '', "$L, both sides, run again: nothing to do");
    }

    # ---- changes on each side -------------------------------------------------
    {
        my $c = new_case('changes', $loc);
        my %f = (%base, 'l-edit.txt' => "old local\n", 'l-del.txt' => "delete me here\n",
                 'l-ren.txt' => "rename me here\n", 's-edit.txt' => "old server\n",
                 's-del.txt' => "delete me there\n", 's-ren.bin' => rnd_bytes(90_000, 'sren'),
                 'ldir/x/y.txt' => 'in a folder deleted here', 'sdir/x/y.txt' => 'in a folder deleted there',
                 'lmv/one.txt' => 'folder renamed here 1', 'lmv/sub/two.txt' => 'folder renamed here 2',
                 'smv/one.txt' => 'folder renamed there 1', 'smv/sub/two.bin' => rnd_bytes(50_000, 'smv2'));
        lfill($c, %f);
        synced($c, expect_tree(%f), "$L, changes: initial sync");

        # local side
        lput($c, 'l-new.txt', "new here\n");
        lput($c, 'l-new/deep/er/file.txt', "new here, 3 levels\n");
        lput($c, 'l-edit.txt', "new local content, longer than before\n");
        ldel($c, 'l-del.txt');
        rename "$c->{local}/l-ren.txt", "$c->{local}/l-renamed.txt" or die;
        ldel($c, 'ldir');
        rename "$c->{local}/lmv", "$c->{local}/lmv-renamed" or die;
        lput($c, "new $UTF8", '');
        # server side
        srv_put($c, 's-new.txt', "new there\n");
        srv_mkcol($c, 's-new'); srv_mkcol($c, 's-new/deep'); srv_mkcol($c, 's-new/deep/er');
        srv_put($c, 's-new/deep/er/file.txt', "new there, 3 levels\n");
        srv_put($c, 's-edit.txt', "new server content\n");
        srv_delete($c, 's-del.txt');
        srv_move($c, 's-ren.bin', 's-renamed.bin');
        srv_delete($c, 'sdir/');
        srv_move($c, 'smv/', 'smv-renamed/');
        srv_put($c, "s-new $SPACE", '');

        my %g = %f;
        delete @g{qw(l-del.txt l-ren.txt s-del.txt s-ren.bin ldir/x/y.txt sdir/x/y.txt)};
        for my $k (grep { m{^[ls]mv/} } keys %g) { $g{ $k =~ s{^([ls]mv)/}{$1-renamed/}r } = delete $g{$k} }
        %g = (%g, 'l-new.txt' => "new here\n", 'l-new/deep/er/file.txt' => "new here, 3 levels\n",
              'l-edit.txt' => "new local content, longer than before\n", 'l-renamed.txt' => $f{'l-ren.txt'},
              "new $UTF8" => '', 's-new.txt' => "new there\n", 's-new/deep/er/file.txt' => "new there, 3 levels\n",
              's-edit.txt' => "new server content\n", 's-renamed.bin' => $f{'s-ren.bin'}, "s-new $SPACE" => '');
        my $mark = access_mark();
        my $r = synced($c, expect_tree(%g), "$L, changes on both sides");
        my $acts = action_lines($r);
        my @want = ('upload l-new.txt', 'upload l-new/deep/er/file.txt', 'upload l-edit.txt', "upload new $UTF8",
                    'delete-remote l-del.txt', 'move-remote l-ren.txt -> l-renamed.txt',
                    'download s-new.txt', 'download s-new/deep/er/file.txt', 'download s-edit.txt',
                    "download s-new $SPACE", 'delete-local s-del.txt', 'download s-renamed.bin',
                    'delete-local s-ren.bin');
        ok(join(', ', grep { index("\n$acts\n", "\n$_\n") < 0 } @want), '',
           "$L, changes: the action lines name each change");
        ok(requests_of($mark, "/$loc/$c->{name}/l-renamed.txt", qw(PUT PATCH POST)), '',
           "$L, a local rename is not uploaded again (a MOVE)");
        if ($loc eq 'ciss') {
            ok(requests_of($mark, "/$loc/$c->{name}/s-renamed.bin", 'GET'), '',
               "$L, a server rename is not downloaded (its content is here)");
        }
        else {
            # no digest in plain WebDAV: a download of the new name
            ok(requests_of($mark, "/$loc/$c->{name}/s-renamed.bin", 'GET') ne '' ? 1 : 0, 1,
               "$L, a server rename is downloaded (plain WebDAV names no digest)");
        }
        my $mark2 = access_mark();
        $r = synced($c, expect_tree(%g), "$L, changes, run again");
        ok(action_lines($r) . writes($mark2), '', "$L, changes, run again: nothing done");
    }

    # ---- --dry-run ------------------------------------------------------------
    {
        my $c = new_case('dry', $loc);
        my %f = ('keep.txt' => 'keep', 'edit-l.txt' => 'e1', 'edit-s.txt' => 's1', 'del-l.txt' => 'd',
                 'del-s.txt' => 'd2', 'dir/in.txt' => 'in', 'gone-dir/x.txt' => 'x',
                 'ren.txt' => 'rename me please', 'kind' => 'a file, to become a folder');
        for my $k (keys %f) { lput($c, $k, $f{$k}) }
        synced($c, expect_tree(%f), "$L, dry run: initial sync");
        lput($c, 'new-l.txt', 'new local');
        lput($c, 'new-l-dir/sub/n.txt', 'new local deep');
        lput($c, 'edit-l.txt', 'e2 local');
        ldel($c, 'del-l.txt');
        rename "$c->{local}/ren.txt", "$c->{local}/renamed.txt" or die;
        srv_put($c, 'new-s.txt', 'new server');
        srv_mkcol($c, 'new-s-dir');
        srv_put($c, 'edit-s.txt', 's2 server');
        srv_delete($c, 'del-s.txt');
        srv_delete($c, 'gone-dir/');
        ldel($c, 'kind');
        lput($c, 'kind/in.txt', 'kind is a folder now');
        lput($c, 'both.txt', 'both, local');
        srv_put($c, 'both.txt', 'both, server');
        my ($lt, $st, $sig) = (local_tree($c), server_tree($c), state_sig($c));
        my $mark = access_mark();
        my $dry = run_sync($c, args => ['--dry-run']);
        # the exit code it would have (1: a conflict would be kept)
        ok_run($dry, 1, "$L, --dry-run: exit 1, as the run it shows");
        my @want = ('upload new-l.txt', 'mkdir-remote new-l-dir', 'mkdir-remote new-l-dir/sub',
                    'upload new-l-dir/sub/n.txt', 'upload edit-l.txt', 'delete-remote del-l.txt',
                    'move-remote ren.txt -> renamed.txt', 'download new-s.txt', 'mkdir-local new-s-dir',
                    'download edit-s.txt', 'delete-local del-s.txt', 'delete-local gone-dir/x.txt',
                    'rmdir-local gone-dir', 'conflict both.txt', 'replace-remote kind', 'upload kind/in.txt');
        # VERB PATH, without a trailing remark in parentheses ("(local
        # version kept as ...)", "(a folder now)"): the action itself
        my $bare = sub { join "\n", map { s/ \((?:[^"()]|"[^"]*")*\)$//r } split /\n/, $_[0] };
        my $dacts = $bare->(action_lines($dry));
        ok($dacts, join("\n", sort @want), "$L, --dry-run: one documented line per action");
        ok_tree(local_tree($c), $lt, "$L, --dry-run: the local tree is unchanged");
        ok_tree(server_tree($c), $st, "$L, --dry-run: the server tree is unchanged");
        ok(writes($mark), '', "$L, --dry-run: no write request to the server");
        ok(state_sig($c), $sig, "$L, --dry-run: the state is unchanged");
        my $dry2 = run_sync($c, args => ['--dry-run']);
        my $dacts2 = $bare->(action_lines($dry2));
        ok($dacts2, $dacts, "$L, --dry-run again: the same lines (nothing was recorded)");

        my $r = run_sync($c);
        ok_run($r, 1, "$L, the real run after it: exit 1 (a conflict kept)");
        my $acts = $bare->(action_lines($r));
        ok($acts, $dacts, "$L, the real run does what the dry run said");
        my $lt2 = local_tree($c);
        my ($cname) = grep { /^both \(conflict \d{4}-\d\d-\d\d \d{6} [^)]+\)\.txt$/ } keys %$lt2;
        my %g = (%f, 'new-l.txt' => 'new local', 'new-l-dir/sub/n.txt' => 'new local deep',
                 'edit-l.txt' => 'e2 local', 'renamed.txt' => 'rename me please', 'new-s.txt' => 'new server',
                 'new-s-dir' => undef, 'edit-s.txt' => 's2 server', 'both.txt' => 'both, server',
                 ($cname // 'both (conflict copy missing).txt') => 'both, local', 'kind/in.txt' => 'kind is a folder now');
        delete @g{qw(del-l.txt del-s.txt gone-dir/x.txt ren.txt kind)};
        ok_tree($lt2, expect_tree(%g), "$L, after the real run: the local tree");
        ok_tree(server_tree($c), expect_tree(%g), "$L, after the real run: the server tree");
        $r = run_sync($c);
        ok_run($r, 0, "$L, and a run after that: exit 0 (in sync, the conflict is over)");
        ok(action_lines($r), '', "$L, ... with nothing to do");
    }
}

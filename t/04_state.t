# The state store of each `Dav iss` location: created on first write in
# ISSStateDir, with the configured DBM type; damaged state (or state of
# another DBM type) refuses writes with 503 and changes nothing, while
# reads go on; moving the damaged state aside brings writes back.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;

plan tests => 43;

my $state = sub { File::Spec->catdir(t_dir(), 'dav', @_) };

# A write creates the store; its meta file names the DBM type.
ok(dav(PUT => '/iss/state-probe.txt', body => 's')->code =~ /^20[14]$/ ? 1 : 0, 1);
my $meta = slurp($state->('state', 'iss-store.meta')) // '';
ok($meta =~ /sdbm/ ? 1 : 0, 1, 'default DBM type is sdbm');

# gdbm and Berkeley DB, the drivers Debian's APR-util ships.
for my $type (qw(gdbm db)) {
    my $p = "/$type/";
    ok(dav(MKCOL => "${p}dir/")->code, 201, "$type: MKCOL");
    ok(dav(PUT => "${p}dir/f.txt", body => $type)->code, 201, "$type: PUT");
    ok(dav(COPY => "${p}dir/", headers => { Destination => url("${p}dir2/") })->code, 201, "$type: COPY");
    ok(dav(DELETE => "${p}dir/")->code, 204, "$type: DELETE");
    ok(slurp($state->("state-dbm-$type", 'iss-store.meta')) =~ /\b$type\b/ ? 1 : 0, 1, "$type: store made with $type");
}

# Realistic paths on every DBM type: over 1,000 bytes, spaces, UTF-8.
for my $loc (qw(iss gdbm db)) {
    my $seg = "dir with spaces \x{fc}\x{f1} \x{65e5}\x{672c}\x{8a9e} " . ('x' x 150);
    utf8::encode($seg);
    (my $esc = $seg) =~ s/([^A-Za-z0-9\-_.~])/sprintf('%%%02X', ord $1)/ge;
    my $path = "/$loc/long";
    dav(MKCOL => "$path/");
    my $bad = 0;
    for (1 .. 5) { $path .= "/$esc$_"; $bad++ if dav(MKCOL => "$path/")->code != 201 }
    my $mark = log_mark();
    my $res = dav(PUT => "$path/f\x{e9}.txt" =~ s/\x{e9}/%C3%A9/r, body => 'deep');
    my @c = captures(log_since($mark));
    ok($bad == 0 && $res->code == 201 ? 1 : 0, 1, "$loc: MKCOL and PUT at a path of " . length($path) . " bytes");
    ok(scalar(@c) == 2 && $c[1]{status} == 201 && length($c[0]{uri}) > 1000 ? 1 : 0, 1,
       "$loc: the long UTF-8 path was captured and its intent stored and settled");
}

# Damaged state: garbage instead of the meta file.
my $area = files_dir('broken-area');
spew("$area/existing.txt", "keep me\n");
ok(dav(PUT => '/broken/first.txt', body => '1')->code, 201, 'healthy store accepts writes');
my $old_token = sync_token_of('/broken/');
ok(($old_token // '') =~ m{^https://} ? 1 : 0, 1, 'a sync token of the healthy store');
my $sdir = $state->('state-broken');
opendir my $dh, $sdir or die $!;
my @files = grep { !/^\./ } readdir $dh;
ok(scalar(@files) > 0 ? 1 : 0, 1, 'state files exist: ' . join(' ', @files));
spew("$sdir/iss-store.meta", "\x00\xffthis is not a mod_iss store\n");

my $mark = log_mark();
my $res = dav(PUT => '/broken/new.txt', body => 'n');
ok($res->code, 503, 'PUT refused on damaged state');
ok(join(' ', error_body($res)) =~ /^I:state-unavailable .*damaged/ ? 1 : 0, 1,
   '... with an error body: <I:state-unavailable/> and a message') or print '# ', $res->content, "\n";
ok(-e "$area/new.txt" ? 1 : 0, 0, 'and no file was created');
ok(dav(DELETE => '/broken/existing.txt')->code, 503, 'DELETE refused');
ok(slurp("$area/existing.txt"), "keep me\n", 'and the file is still there');
ok(dav(MKCOL => '/broken/newdir/')->code, 503, 'MKCOL refused');
ok(-e "$area/newdir" ? 1 : 0, 0);
ok(dav(MOVE => '/broken/existing.txt', headers => { Destination => url('/broken/moved.txt') })->code, 503, 'MOVE refused');
ok(-e "$area/existing.txt" && !-e "$area/moved.txt" ? 1 : 0, 1);
ok(dav(GET => '/broken/existing.txt')->content, "keep me\n", 'GET still works');
ok(dav(PROPFIND => '/broken/', headers => { Depth => 1 })->code, 207, 'PROPFIND still works');
$res = sync_report('/broken/', token => $old_token, level => 1);
ok($res->{code}, 503, 'a sync needs the state: 503 while it is damaged');
ok((error_body($res->{res}))[0] // '', 'I:state-unavailable', '... with <I:state-unavailable/>');
my $log = log_since($mark);
ok($log =~ /ISS01024: the mod_iss state in \S*state-broken is damaged/ ? 1 : 0, 1,
   'the error log names the damaged state directory');
ok($log =~ /\[dav:error\]/ ? 1 : 0, 0, '... mod_iss does, mod_dav adds no line of its own') or print "# $log\n";

# State of another DBM type: refused, and the log says which types.
unlink glob("$sdir/*");
ok(dav(PUT => '/gdbm/typed.txt', body => 't')->code =~ /^20[14]$/ ? 1 : 0, 1);
spew("$sdir/iss-store.meta", slurp($state->('state-dbm-gdbm', 'iss-store.meta')));
$mark = log_mark();
ok(dav(PUT => '/broken/new.txt', body => 'n')->code, 503, 'state of another DBM type: refused');
ok(-e "$area/new.txt" ? 1 : 0, 0);
$log = log_since($mark);
ok($log =~ /gdbm/ && $log =~ /sdbm/ ? 1 : 0, 1, 'the log names both DBM types');

# The repair: move the state aside; a new store starts.
unlink glob("$sdir/*");
ok(dav(PUT => '/broken/new.txt', body => 'n')->code, 201, 'writes work again after the state is moved aside');
my $r = sync_report('/broken/', token => $old_token, level => 1);
ok($r->{code}, 403, 'a token of the old state is refused by the new one');
ok($r->{res}->content =~ /valid-sync-token/ ? 1 : 0, 1, '... with DAV:valid-sync-token');

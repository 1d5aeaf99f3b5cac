# The admin path: the example location works as shipped (on /dav, with
# the server's own lock database), and a real desktop client, GNOME's
# gio/gvfs, can use it: it asks `OPTIONS /dav` without the slash first.
# gio comes from scripts/deps.sh (libglib2.0-bin, gvfs-backends,
# dbus-daemon); without it this test fails, it never skips.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;
use File::Temp qw(tempdir);

plan tests => 19;

my $example = File::Spec->catdir(t_dir(), 'example');
my $conf = slurp(File::Spec->catfile(t_dir(), '..', 'conf', 'iss-example-location.conf'));

# ---- the example, as written ------------------------------------------------
ok($conf =~ /^\s*<Location \/dav>/m ? 1 : 0, 1, 'the example is <Location /dav>, no trailing slash');
ok($conf =~ /^\s*DavLockDB/mi ? 1 : 0, 0, 'the example sets no DavLockDB (the server-wide one stays)');
ok($conf =~ /^#\s+install -d -o www-data -g www-data -m 0750 \/srv\/iss\/files \/srv\/iss\/state$/m ? 1 : 0, 1,
   'the example says how to make its folders, in one command');

my $r = dav(OPTIONS => '/dav');
ok($r->code, 200, 'OPTIONS /dav (no slash): 200');
ok(($r->header('DAV') // '') =~ m{<https://mod-iss\.org/ns/iss/1>} ? 1 : 0, 1, '... from Dav iss')
    or print "# DAV: ", ($r->header('DAV') // ''), "\n";

$r = dav(PUT => '/dav/admin.txt', body => 'as written');
ok($r->code, 201, 'PUT in the example location: 201');
ok(slurp("$example/files/admin.txt"), 'as written', '... stored in its files folder');
$r = dav(LOCK => '/dav/admin.txt', headers => { 'Content-Type' => 'application/xml', Timeout => 'Second-60' },
         body => '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
               . '<D:locktype><D:write/></D:locktype><D:owner>admin</D:owner></D:lockinfo>');
ok($r->code, 200, 'LOCK in the example location: 200 (the server-wide lock database)');
my $token = $r->header('Lock-Token') // '';
ok(dav(PUT => '/dav/admin.txt', body => 'no token')->code, 423, '... and the lock holds');
ok(dav(UNLOCK => '/dav/admin.txt', headers => { 'Lock-Token' => $token })->code, 204, 'UNLOCK: 204');
ok(dav(DELETE => '/dav/admin.txt')->code, 204, 'DELETE: 204');

# ---- gio / gvfs -------------------------------------------------------------------
# gvfs needs a D-Bus session bus: dbus-run-session gives the commands one
# of their own.  HOME and XDG_RUNTIME_DIR: the test user has no home.
my $home = tempdir(CLEANUP => 1);
my $url = url('/dav');
$url =~ s{^http://}{dav://};
my $src = "$home/from-gio.txt";
spew($src, "written by gio\n");
my $mark = log_mark();
my $script = join(' && ',
    "gio mount '$url/' </dev/null",
    "gio copy '$src' '$url/from-gio.txt'",
    "echo LIST; gio list '$url/'",
    "echo CAT; gio cat '$url/from-gio.txt'",
    "gio remove '$url/from-gio.txt'",
    "echo DONE") . "; gio mount -u '$url/' >/dev/null 2>&1";
my $code = real_client($home, "dbus-run-session -- sh -c \"$script\"");
my $out = slurp("$home/client.out") // '';
ok($code == 0 && $out =~ /DONE/ ? 1 : 0, 1, 'gio mounts /dav, copies a file up, lists, reads and removes it')
    or print "# gio (exit $code; scripts/deps.sh installs gio, gvfs-backends, dbus-daemon):\n# ",
             join("\n# ", split /\n/, $out), "\n";
ok($out =~ /LIST\n(?:.*\n)*?from-gio\.txt\n/ ? 1 : 0, 1, 'gio list shows the file');
ok($out =~ /CAT\nwritten by gio\n/ ? 1 : 0, 1, 'gio cat reads it back');
ok(-e "$example/files/from-gio.txt" ? 1 : 0, 0, 'gio remove deleted it on the server');
my $access = slurp(File::Spec->catfile(t_dir(), 'logs', 'access_log')) // '';
ok($access =~ m{"OPTIONS /dav HTTP/1\.1" 200} ? 1 : 0, 1, 'gio asked OPTIONS /dav without the slash, and got 200');
ok($access =~ m{"PUT /dav/from-gio\.txt HTTP/1\.1" 201} ? 1 : 0, 1, 'gio PUT the file: 201');
ok($access =~ m{"DELETE /dav/from-gio\.txt HTTP/1\.1" 204} ? 1 : 0, 1, 'gio DELETEd it: 204');
my $log = log_since($mark);
ok($log =~ /\[(?:\w+:)?(?:error|crit|alert|emerg)\]/ ? 1 : 0, 0, 'no error in the error log meanwhile')
    or print "# $log\n";

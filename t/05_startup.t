# Bad configuration stops httpd at startup with a message that names the
# directive and the path, instead of failing at the first request.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();

plan tests => 14;

my $httpd = Apache::Test::vars('httpd');
my $mods = '/usr/lib/apache2/modules';

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0)
        or die "no port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# Start httpd with a <Location> body; return (exit code, error log text).
sub start_with {
    my ($location_body, %opt) = @_;
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(logs files);
    my $port = free_port();
    my $module = $ENV{ISS_MODULE_PATH};
    my $conf = "$dir/httpd.conf";
    my $dav_line = $opt{no_dav} ? '' : "LoadModule dav_module $mods/mod_dav.so\n"
                                     . "LoadModule dav_fs_module $mods/mod_dav_fs.so\n";
    spew($conf, <<"CONF");
ServerRoot "$dir"
Listen 127.0.0.1:$port
ServerName 127.0.0.1
PidFile logs/httpd.pid
DefaultRuntimeDir logs
ErrorLog logs/error_log
LoadModule mpm_prefork_module $mods/mod_mpm_prefork.so
LoadModule authz_core_module $mods/mod_authz_core.so
$dav_line
LoadModule iss_module $module
DocumentRoot "$dir/files"
<Location /s/>
$location_body
</Location>
CONF
    my $pid = fork // die;
    if (!$pid) {
        # A session of its own: httpd signals its whole process group
        # when it stops, and that must not include this test.
        POSIX::setsid();
        open STDOUT, '>', "$dir/logs/stdout"; open STDERR, '>&', \*STDOUT;
        exec $httpd, '-f', $conf, '-DFOREGROUND' or exit 127;
    }
    my $code;
    for (1 .. 150) {
        my $w = waitpid($pid, POSIX::WNOHANG());
        if ($w == $pid) { $code = $? >> 8; last }        # refused to start
        if (IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1)) {
            kill 'TERM', $pid; waitpid($pid, 0);         # it started: stop it
            $code = 0;
            last;
        }
        select(undef, undef, undef, 0.1);
    }
    if (!defined $code) { kill 'KILL', $pid; waitpid($pid, 0); $code = -1 }
    my $log = (slurp("$dir/logs/error_log") // '') . (slurp("$dir/logs/stdout") // '');
    return ($code, $log, $dir);
}

my ($code, $log, $dir);

($code, $log) = start_with("Dav iss\nISSStateDir /nonexistent/iss-state");
ok($code != 0 ? 1 : 0, 1, 'missing ISSStateDir: httpd does not start');
ok($log =~ m{ISS01003: ISSStateDir /nonexistent/iss-state \(in <Location /s/> \(\S+ line \d+\)\) does not exist} ? 1 : 0, 1,
   'message names the directive, path and section') or print "# $log\n";

my $file = tempdir(CLEANUP => 1) . '/plain-file';
spew($file, 'x');
($code, $log) = start_with("Dav iss\nISSStateDir $file");
ok($code != 0 ? 1 : 0, 1, 'ISSStateDir names a file: httpd does not start');
ok($log =~ m{ISS01004: ISSStateDir \Q$file\E .* is not a directory} ? 1 : 0, 1) or print "# $log\n";

my $ro = tempdir(CLEANUP => 1);
chmod 0555, $ro;
($code, $log) = start_with("Dav iss\nISSStateDir $ro");
ok($code != 0 ? 1 : 0, 1, 'read-only ISSStateDir: httpd does not start');
ok($log =~ m{ISS01005: ISSStateDir \Q$ro\E .* is not writable} ? 1 : 0, 1) or print "# $log\n";
chmod 0755, $ro;

($code, $log) = start_with("Dav iss");
ok($code != 0 ? 1 : 0, 1, 'Dav iss without ISSStateDir: httpd does not start');
ok($log =~ m{ISS01001: Dav iss in <Location /s/> .* has no ISSStateDir} ? 1 : 0, 1) or print "# $log\n";

($code, $log) = start_with("Dav iss\nISSStateDir $ro\nISSDBMType nosuchdbm");
ok($code != 0 ? 1 : 0, 1, 'unknown ISSDBMType: httpd does not start');
ok($log =~ m{ISSDBMType: unknown or unavailable DBM type 'nosuchdbm'} ? 1 : 0, 1) or print "# $log\n";

($code, $log) = start_with("Dav iss\nISSStateDir $ro", no_dav => 1);
ok($code != 0 ? 1 : 0, 1, 'without mod_dav: httpd does not start');
ok($log =~ /mod_dav|dav_/ ? 1 : 0, 1, 'and says why') or print "# $log\n";

# The good case, for contrast: the same skeleton starts.
($code, $log) = start_with("Dav iss\nISSStateDir $ro");
ok($code, 0, 'a valid configuration starts') or print "# $log\n";
ok($log =~ /mod_iss\/0\.1\.0 configured|resuming normal operations/ ? 1 : 0, 1) or print "# $log\n";

#!/usr/bin/perl
# Benchmark (issue 16 item 9): the timing of a Dropship probe.
#   bench/dedup_timing.pl [BUILD_DIR [ROUNDS [HASH]]]   (build, 300, bcrypt)
# One private httpd (127.0.0.1, a free port), `Dav iss` on /dd/ with the
# default ISSDedupScope Readable, /dd/alice/ readable by alice only,
# /dd/bob/ by bob only (Basic auth; HASH: bcrypt (htpasswd -B, cost 5) or
# sha ({SHA})).  alice stores a 600 KB random file.  bob then sends, in
# turns, ROUNDS times each, a one-chunk manifest naming
#   K: the first chunk of alice's file (known to the store, but in a file
#      bob may not read: the server looks it up, finds alice's file, asks
#      httpd whether bob may read it: no), and
#   U: a random chunk id nobody has,
# each to a file of his own folder, each in its own upload session (sent
# again with ISS-Upload-Session, so both rewrite a manifest, neither
# makes a new session).  Both must answer 409 listing the chunk.  Prints
# the median, the 10th and 90th percentiles of curl-like wall time per
# request (a new connection each: a 409 closes it), the difference of
# the medians, and a two-sided Mann-Whitney z of the two samples (|z| > 3:
# the answers can be told apart).
use strict;
use warnings;
use File::Temp qw(tempdir);
use Digest::SHA qw(sha256);
use IO::Socket::INET;
use LWP::UserAgent;
use HTTP::Request;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use POSIX ();

use File::Spec;
my $build = File::Spec->rel2abs($ARGV[0] // 'build');
my ($rounds, $hash);
$rounds = $ARGV[1] // 300;
$hash = $ARGV[2] // 'bcrypt';
-f "$build/mod_iss.so" or die "no $build/mod_iss.so: run scripts/build.sh first\n";
my $chunk_tool = "$build/tools/iss-chunk";
my $mods = '/usr/lib/apache2/modules';
my $work = tempdir(CLEANUP => 1);
chmod 0755, $work;
mkdir "$work/$_" for qw(logs dd dd/alice dd/bob state);
my $port = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0)->sockport;
my $root = $< == 0;
if ($root) { system('chown', '-R', 'www-data:www-data', "$work/dd", "$work/state", "$work/logs") }
for my $u (qw(alice bob)) {
    if ($hash eq 'bcrypt') {
        system('htpasswd', '-b', '-B', '-C', '5', ($u eq 'alice' ? '-c' : ()), "$work/htpasswd", $u, "pw-$u") == 0
            or die "htpasswd failed\n";
    } else {
        open my $fh, '>>', "$work/htpasswd" or die;
        print $fh "$u:{SHA}" . encode_base64(Digest::SHA::sha1("pw-$u"), '') . "\n";
    }
}
my $user = $root ? "User www-data\nGroup www-data\n" : '';
open my $c, '>', "$work/httpd.conf" or die;
print $c <<"CONF";
ServerRoot "$work"
Listen 127.0.0.1:$port
ServerName 127.0.0.1
PidFile logs/httpd.pid
DefaultRuntimeDir logs
ErrorLog logs/error_log
LogLevel warn
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authn_file_module $mods/mod_authn_file.so
LoadModule auth_basic_module $mods/mod_auth_basic.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule alias_module $mods/mod_alias.so
LoadModule dav_module $mods/mod_dav.so
LoadModule dav_fs_module $mods/mod_dav_fs.so
LoadModule iss_module $build/mod_iss.so
DavLockDB logs/DavLock
DocumentRoot "$work"
<Directory "$work">
    Require all granted
</Directory>
<Location /dd/>
    Dav iss
    ISSStateDir "$work/state"
    AuthType Basic
    AuthName dd
    AuthUserFile "$work/htpasswd"
</Location>
<Location /dd/alice/>
    Require user alice
</Location>
<Location /dd/bob/>
    Require user bob
</Location>
CONF
close $c;
my $pid = fork // die;
if (!$pid) {
    POSIX::setsid();
    exec '/usr/sbin/apache2', '-f', "$work/httpd.conf", '-DFOREGROUND' or POSIX::_exit(127);
}
for (1 .. 100) { last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port"); sleep 0.05 }
sleep 0.3;
END { if ($pid) { kill 'TERM', $pid; waitpid $pid, 0 } }

sub as { ('Authorization' => 'Basic ' . encode_base64("$_[0]:pw-$_[0]", '')) }
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 30);
sub req {
    my ($m, $path, $body, %h) = @_;
    return $ua->request(HTTP::Request->new($m => "http://127.0.0.1:$port$path", [%h], $body));
}
sub rnd { substr(join('', map { sha256("$_[1]-$_") } 0 .. $_[0] / 32), 0, $_[0]) }

my $secret = rnd(600_000, 'secret');
my $r = req(PUT => '/dd/alice/secret.bin', $secret, as('alice'));
die 'PUT: ' . $r->status_line . "\n" unless $r->code == 201;
open my $fh, '>', "$work/secret" or die; print $fh $secret; close $fh;
my $m = `'$chunk_tool' manifest '$work/secret'`;
die "iss-chunk failed\n" if $?;
my ($magic, $min, $avg, $max) = unpack 'a4 N N N', $m;
my ($id, $len) = unpack 'a32 N', substr($m, 60, 36);
sub manifest {
    my ($cid) = @_;
    return pack('a4 N N N Q> a32 N', 'ISM1', $min, $avg, $max, $len, sha256("x$cid"), 1) . pack('a32 N', $cid, $len);
}
my %man = (K => manifest($id), U => manifest(sha256('nobody has this')));
my %sid;
for my $k (qw(K U)) {
    $r = req(PATCH => "/dd/bob/probe$k.bin", $man{$k}, as('bob'), 'Content-Type' => 'application/vnd.mod-iss.manifest');
    die "$k: " . $r->status_line . "\n" unless $r->code == 409;
    $sid{$k} = $r->header('ISS-Upload-Session');
}
my %t = (K => [], U => []);
for my $i (1 .. $rounds) {
    for my $k ($i % 2 ? qw(K U) : qw(U K)) {
        my $t0 = time;
        $r = req(PATCH => "/dd/bob/probe$k.bin", $man{$k}, as('bob'),
                 'Content-Type' => 'application/vnd.mod-iss.manifest', 'ISS-Upload-Session' => $sid{$k});
        my $dt = time - $t0;
        die "$k: " . $r->status_line . "\n" unless $r->code == 409 && $r->content =~ /<I:chunk>/;
        push @{ $t{$k} }, $dt * 1000;
    }
}
sub pct { my ($v, $p) = @_; my @s = sort { $a <=> $b } @$v; $s[int($p * $#s + 0.5)] }
printf "%-45s %8s %8s %8s\n", "$rounds requests each, ms ($hash passwords)", 'p10', 'median', 'p90';
for my $k (qw(K U)) {
    printf "%-45s %8.2f %8.2f %8.2f\n", $k eq 'K' ? 'K: chunk of a file bob may not read' : 'U: chunk nobody has',
        pct($t{$k}, 0.1), pct($t{$k}, 0.5), pct($t{$k}, 0.9);
}
printf "median K - median U: %+.2f ms\n", pct($t{K}, 0.5) - pct($t{U}, 0.5);
# Mann-Whitney U, normal approximation
my @all = sort { $a->[0] <=> $b->[0] } ((map { [$_, 'K'] } @{ $t{K} }), (map { [$_, 'U'] } @{ $t{U} }));
my $rk = 0;
for my $i (0 .. $#all) { $rk += $i + 1 if $all[$i][1] eq 'K' }
my ($n1, $n2) = (scalar @{ $t{K} }, scalar @{ $t{U} });
my $u = $rk - $n1 * ($n1 + 1) / 2;
my $z = ($u - $n1 * $n2 / 2) / sqrt($n1 * $n2 * ($n1 + $n2 + 1) / 12);
printf "Mann-Whitney z: %+.2f (|z| > 3: told apart)\n", $z;

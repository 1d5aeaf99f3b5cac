# httpd stopped while requests are in flight, under prefork: its stop
# destroys each child's pool from the signal handler, in the middle of
# the request, after the child's state store handles are closed.  A
# write in flight then leaves its intent pending (as a kill -9 would: the
# next sync request records it as possibly changed) and a read that
# computed digests keeps none; neither logs an error, uses a closed
# store handle or leaves the store damaged.
#
# CI found this as "ISS01052: cannot keep 3 digest(s) ... (key ... not
# found)" in t/09_writers.t under prefork: the request pool's cleanup
# committed to a store already closed.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Time::HiRes ();

plan tests => 9;

my $dir = tempdir(CLEANUP => 1);
mkdir "$dir/files";
my $conf = <<"CONF";
<IfModule mpm_prefork_module>
    StartServers 3
    MinSpareServers 3
    MaxRequestWorkers 6
</IfModule>
Timeout 60
@{[iss_s_location($dir)]}
CONF
my $h = own_httpd_start(mpm => 'prefork', dir => $dir, config => $conf);
ok(!defined $h->{code} ? 1 : 0, 1, "httpd (prefork) started") or print "# ", $h->{log}->(), "\n";
my $port = $h->{port};
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 30);

# A sync-collection REPORT to our own server.
sub sync_own {
    my ($port, $token) = @_;
    my $r = $ua->request(HTTP::Request->new(REPORT => "http://127.0.0.1:$port/s/",
        [ 'Content-Type' => 'application/xml', Depth => 0 ],
        sync_body(token => $token, level => 1)));
    die "REPORT: " . $r->status_line . "\n" unless $r->code == 207;
    return parse_multistatus($r->content);
}

# The token of a client that synced before all this.
my $token = sync_own($port, '')->{token};

# A large file written outside httpd, old enough for its digest to be
# kept: a GET computes it (for its strong ETag) and keeps it when the
# request ends.
{
    open my $fh, '>', "$dir/files/big" or die $!;
    my $block = join('', map { chr(($_ * 7) & 255) } 0 .. 65535);
    print $fh $block for 1 .. 512;            # 32 MiB
    close $fh;
    my $old = time - 3600;
    utime $old, $old, "$dir/files/big";
}

# A GET whose body the client does not read: the child blocks writing it.
my $get = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 30) or die $!;
print $get "GET /s/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
my $head = '';
while ($head !~ /\r\n\r\n/) {
    my $n = sysread($get, $head, 4096, length $head);
    last unless $n;
}
ok($head =~ m{^HTTP/1\.1 200 .*^ETag: "[^W]}sm ? 1 : 0, 1, "a GET of a file changed outside httpd answered with a strong ETag")
    or print "# $head\n";

# A PUT whose body has not all arrived: the write's intent is recorded.
my $put = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 30) or die $!;
print $put "PUT /s/new HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n", 'x' x 1000;
my $before = 0;
for (1 .. 200) {
    last if $before = (($h->{log}->()) =~ m{ISS01031: capture before PUT /s/new });
    Time::HiRes::sleep(0.05);
}
ok($before ? 1 : 0, 1, "the PUT in flight recorded its intent");

# Stop httpd with both requests in flight.
my $rc = own_httpd_stop($h);
ok($rc, 0, "httpd stopped");
close $get;
close $put;
my $log = $h->{log}->();
my @bad = grep { (/\[(?:\w+:)?(?:warn|error|crit|alert|emerg)\]/ && /ISS\d+/)
                 || /exit signal|AddressSanitizer|runtime error/ } split /\n/, $log;
ok(join("\n", @bad), '', "nothing logged by mod_iss at warn or above, no child crashed");
my ($src, $out) = iss_state("$dir/state", 'verify');
ok($src, 0, "the state store verifies") or print "# $out\n";

# Started again: the PUT that never finished is reported to a client
# syncing from before it (possibly changed: it is not there), once.
$h = own_httpd_start(mpm => 'prefork', dir => $dir, config => $conf);
ok(!defined $h->{code} ? 1 : 0, 1, "httpd started again") or print "# ", $h->{log}->(), "\n";
$port = $h->{port};
my $p = sync_own($port, $token);
my ($new) = grep { m{/s/new$} } @{ $p->{order} };
ok(defined $new ? $p->{members}{$new}{status} : 'not reported', 404,
   "the unfinished PUT is reported as gone to a client syncing from before it");
own_httpd_stop($h);
($src, $out) = iss_state("$dir/state", 'list', 'intent/');
ok($out, '', "no intent left behind after the next sync");

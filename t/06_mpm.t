# Several processes and threads writing at once, under each MPM (event,
# worker, prefork): every write is captured before and after, no intent
# is left behind, and the state store verifies afterwards.  Meanwhile a
# sync client follows the changes token after token; at the end what it
# built must equal a fresh listing: no token skipped a change, and the
# log has exactly one entry per write.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);
use POSIX ();

my @mpms = qw(event worker prefork);
plan tests => 9 * @mpms;

my $CLIENTS = 6;
my $FILES = 25;

sub client {
    my ($port, $n) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
    my $base = "http://127.0.0.1:$port/s";
    my $bad = 0;
    my $req = sub {
        my ($m, $path, $want, %h) = @_;
        my $body = delete $h{body};
        my $r = $ua->request(HTTP::Request->new($m => "$base$path", [%h], $body));
        if ($r->code != $want) { $bad++; print STDERR "# $m $path: ", $r->status_line, "\n" }
    };
    $req->(MKCOL => "/c$n/", 201);
    $req->(PUT => "/c$n/f$_", 201, body => "client $n file $_\n" x $_) for 1 .. $FILES;
    $req->(COPY => "/c$n/", 201, Destination => "$base/c$n-copy/");
    $req->(DELETE => "/c$n-copy/", 204);
    return $bad;
}

# One sync-collection REPORT to our own server.
sub sync_own {
    my ($port, $token) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
    my $r = $ua->request(HTTP::Request->new(REPORT => "http://127.0.0.1:$port/s/",
        [ 'Content-Type' => 'application/xml', Depth => 0 ],
        sync_body(token => $token, level => 'infinite')));
    die "REPORT: " . $r->status_line . "\n" unless $r->code == 207;
    my $p = parse_multistatus($r->content);
    die "REPORT: truncated\n" if $p->{truncated};
    return $p;
}

# Apply an answer to a client's model (href -> etag).
sub apply {
    my ($model, $p) = @_;
    for my $href (@{ $p->{order} }) {
        my $m = $p->{members}{$href};
        if ($m->{status} == 404) {
            delete $model->{$_} for grep { index($_, $href) == 0 } keys %$model;
        }
        else {
            # mod_dav_fs's ETag is weak within the second of a change.
            ($model->{$href} = $m->{props}{getetag} // '') =~ s{^W/}{};
        }
    }
}

for my $mpm (@mpms) {
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/files";
    my $h = own_httpd_start(mpm => $mpm, dir => $dir, config => <<"CONF");
<IfModule mpm_prefork_module>
    StartServers 4
    MaxRequestWorkers 8
</IfModule>
<IfModule !mpm_prefork_module>
    StartServers 2
    ThreadsPerChild 4
    MaxRequestWorkers 8
</IfModule>
@{[iss_s_location($dir)]}
CONF
    ok(!defined $h->{code} ? 1 : 0, 1, "$mpm: httpd started") or print "# ", $h->{log}->(), "\n";

    my %model;
    my $first = sync_own($h->{port}, '');
    apply(\%model, $first);
    my $token = $first->{token};
    my @pids;
    for my $n (1 .. $CLIENTS) {
        my $pid = fork // die;
        if (!$pid) { POSIX::_exit(client($h->{port}, $n) ? 1 : 0) }
        push @pids, $pid;
    }
    my ($failed, $left, $syncs) = (0, scalar @pids, 0);
    while ($left) {
        my $p = sync_own($h->{port}, $token);
        apply(\%model, $p);
        $token = $p->{token};
        $syncs++;
        while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) { $left--; $failed++ if $? }
    }
    apply(\%model, sync_own($h->{port}, $token));
    my $fresh = {};
    apply($fresh, sync_own($h->{port}, ''));
    my %all = (%model, %$fresh);
    my $diff = join ' ', grep { ($model{$_} // '-') ne ($fresh->{$_} // '-') } sort keys %all;
    ok($diff, '', "$mpm: a client following tokens during the writes ($syncs syncs) ends with what a fresh listing shows");
    ok(scalar(keys %model), $CLIENTS * ($FILES + 1), "$mpm: ... every file and collection");
    own_httpd_stop($h);
    my $log = $h->{log}->();
    ok($failed, 0, "$mpm: $CLIENTS concurrent clients got the statuses they expected")
        or print map { "# $_\n" } (grep { /\[(\w+:)?(error|crit|alert|emerg)\]/ } split /\n/, $log)[0 .. 19];

    my $writes = $CLIENTS * ($FILES + 3);
    my $before = () = $log =~ /ISS01031: capture before /g;
    my $after = () = $log =~ /ISS01031: capture after /g;
    ok("$before/$after", "$writes/$writes", "$mpm: every write captured before and after");

    my ($rc, $out) = iss_state("$dir/state", 'log');
    ok($out =~ /^entries: 1 to (\d+)/ ? $1 : $out, $writes, "$mpm: one log entry per write, none lost");
    ($rc, $out) = iss_state("$dir/state", 'verify');
    ok($rc, 0, "$mpm: state store verifies") or print "# $out\n";
    ($rc, $out) = iss_state("$dir/state", 'list', 'intent/');
    ok($out, '', "$mpm: no intent left behind");
    my $files = 0;
    for my $n (1 .. $CLIENTS) { $files += grep { -f "$dir/files/c$n/f$_" } 1 .. $FILES }
    ok($files, $CLIENTS * $FILES, "$mpm: every file is on disk");
}

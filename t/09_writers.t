# 16 concurrent writers on overlapping paths, under each MPM (event,
# worker, prefork), each server with a state store of its own: PUTs,
# DELETEs, COPYs (onto) and MKCOLs of the same few files and folders, and
# writes that fail (412, 404, 405).  Afterwards, from the token taken before:
#  - every write that answered 2xx has exactly one log entry (and no
#    write that failed has one), and the sync answer names the path it
#    changed, exactly once;
#  - no path that only failed writes touched is reported as changed;
#  - every file's ETag (GET and PROPFIND) is the SHA-256 of what is on
#    disk: concurrent PUTs of one path never leave a digest of another
#    write's bytes;
#  - the store verifies and no intent is left behind;
#  - checkpoints ran meanwhile (ISS_STORE_CHECKPOINT_BYTES=16384 in the
#    server's environment: one every few dozen writes), and nothing was
#    logged at warn or worse by mod_iss (no recovery: nothing died).
# (ISS_T09_MPM=worker runs one MPM only; ISS_T_KEEP=1 keeps the folders.)
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use File::Temp qw(tempdir);
use POSIX ();

my @mpms = $ENV{ISS_T09_MPM} ? ($ENV{ISS_T09_MPM}) : qw(event worker prefork);
my $WRITERS = 16;
my $ROUNDS = 30;
plan tests => 11 * @mpms;

# One writer: $ROUNDS random operations; one line per request in $out:
# "METHOD PATH STATUS".  Returns the number of unexpected statuses.
sub writer {
    my ($port, $n, $out) = @_;
    srand($n * 7919 + $$);
    # One connection per request, as in t/06_mpm.t: an MPM short of idle
    # workers closes kept-alive connections, and LWP reports a request
    # sent on one as a 500 "Server closed connection without sending any
    # data back" (seen once in CI on a MKCOL, nothing in the server's log).
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
    my $base = "http://127.0.0.1:$port/s";
    open my $fh, '>', $out or die $!;
    my $bad = 0;
    my $req = sub {
        my ($m, $path, $ok, %h) = @_;
        my $body = delete $h{body};
        my $r = $ua->request(HTTP::Request->new($m => "$base$path", [%h], $body));
        my $dest = $h{Destination} ? ($h{Destination} =~ s{^\Q$base\E}{}r) : '';
        print $fh "$m $path $dest ", $r->code, "\n";
        if (!grep { $_ == $r->code } @$ok) {
            $bad++;
            print STDERR "# writer $n: $m $path: ", $r->status_line, "\n";
        }
    };
    for my $i (1 .. $ROUNDS) {
        my $k = int(rand(6));
        my $op = int(rand(10));
        if ($op < 4) {
            # All of one length: a digest recorded for another write's
            # file would match its size.
            $req->(PUT => "/shared/f$k", [201, 204], body => sprintf("writer %02d round %02d\n", $n, $i) x 40);
        }
        elsif ($op < 5) {
            $req->(DELETE => "/shared/f$k", [204, 404]);
        }
        elsif ($op < 6) {
            # From a file nobody changes: a source deleted under a COPY is
            # mod_dav_fs's 500, with or without mod_iss.  Two COPYs onto
            # one file race in mod_dav's removal of the old one: the loser
            # gets 404 ("Cannot remove already-removed resource").
            $req->(COPY => "/shared/src" . ($k % 3), [201, 204, 404],
                   Destination => "$base/shared/f$k", Overwrite => 'T');
        }
        elsif ($op < 7) {
            $req->(MKCOL => "/shared/d" . ($k % 3) . "/", [201, 405]);
        }
        elsif ($op < 8) {
            $req->(PUT => "/never/x$k", [412], 'If-Match' => '"nope"', body => 'never');
        }
        elsif ($op < 9) {
            $req->(DELETE => "/never/y$k", [404]);
        }
        else {
            $req->(PUT => "/own$n/g$i", [201], body => "own $n $i\n");
        }
    }
    close $fh;
    return $bad;
}

sub propfind_token {
    my ($ua, $port) = @_;
    my $r = $ua->request(HTTP::Request->new(PROPFIND => "http://127.0.0.1:$port/s/",
        [ Depth => 0, 'Content-Type' => 'application/xml' ],
        '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>'));
    return $r->content =~ m{<[\w-]+:sync-token>([^<]+)</} ? $1 : undef;
}

for my $mpm (@mpms) {
    my $dir = tempdir(CLEANUP => !$ENV{ISS_T_KEEP});
    print "# dir $dir\n";
    mkdir "$dir/files";
    mkdir "$dir/files/$_" for 'shared', 'never', map { "own$_" } 1 .. $WRITERS;
    spew("$dir/files/shared/src$_", "source $_\n" x (10 * $_ + 1)) for 0 .. 2;
    local $ENV{ISS_STORE_CHECKPOINT_BYTES} = 16384;
    my $h = own_httpd_start(mpm => $mpm, dir => $dir, config => <<"CONF");
<IfModule mpm_prefork_module>
    StartServers 8
    MinSpareServers 4
    MaxSpareServers 16
    MaxRequestWorkers 20
</IfModule>
<IfModule !mpm_prefork_module>
    StartServers 2
    ThreadsPerChild 10
    MinSpareThreads 10
    MaxSpareThreads 40
    MaxRequestWorkers 40
</IfModule>
@{[iss_s_location($dir, 'ISSSyncMaxResults 0')]}
CONF
    ok(!defined $h->{code} ? 1 : 0, 1, "$mpm: httpd started") or print "# ", $h->{log}->(), "\n";
    my $ua = LWP::UserAgent->new(timeout => 60);
    my $token = propfind_token($ua, $h->{port});
    # The token's position is sealed (issue 16 item 1): the admin tool
    # reads it with the state directory's key.
    my (undef, $decoded) = iss_state("$dir/state", 'token', $token // '');
    my ($since) = ($decoded // '') =~ m{^position: (\d+)$}m;
    ok(defined $since ? 1 : 0, 1, "$mpm: iss-state token reads the position of the token") or print "# $decoded\n";

    my @pids;
    for my $n (1 .. $WRITERS) {
        my $pid = fork // die;
        if (!$pid) { POSIX::_exit(writer($h->{port}, $n, "$dir/w$n") ? 1 : 0) }
        push @pids, $pid;
    }
    my $failed = 0;
    for (@pids) { waitpid($_, 0); $failed++ if $? }
    ok($failed, 0, "$mpm: $WRITERS writers got only the statuses they may get");

    # What the writers did: the 2xx writes and the paths they changed.
    my (@writes, %changed, %failed_only);
    for my $n (1 .. $WRITERS) {
        open my $fh, '<', "$dir/w$n" or die $!;
        while (<$fh>) {
            my ($m, $path, $dest, $code) = /^(\S+) (\S+) (\S*) ?(\d+)$/ or next;
            my $target = $m eq 'COPY' ? $dest : $path;
            $target =~ s{/$}{};
            if ($code =~ /^2/) {
                push @writes, "$m $target";
                $changed{$target} = 1;
            }
            else {
                $failed_only{$target} = 1;
            }
        }
    }
    delete @failed_only{ keys %changed };

    # The log: one entry per 2xx write (its method and the last member).
    my ($rc, $out) = iss_state("$dir/state", 'log', ($since // 0) + 1);
    my @entries;
    for my $e (split /\n(?=\d)/, ($out =~ s/^entries:.*\npending:.*\n//r)) {
        my ($method) = $e =~ /^\d+\t[^\t]*\t(\S+)\t/ or next;
        my @members = $e =~ /^\t\S+ \S+ (.*)$/mg;
        push @entries, "$method /$members[-1]";
    }
    my %want;
    $want{$_}++ for @writes;
    $want{$_}-- for @entries;
    my @off = map { "$_ x" . (-$want{$_}) } grep { $want{$_} } sort keys %want;
    ok(join(', ', @off), '', "$mpm: one log entry per 2xx write (" . scalar(@writes)
       . "), none for a write that failed");

    # The sync from the token before: each changed path once, and nothing
    # only failed writes touched.
    my $r = $ua->request(HTTP::Request->new(REPORT => "http://127.0.0.1:$h->{port}/s/",
        [ Depth => 0, 'Content-Type' => 'application/xml' ],
        sync_body(token => $token // '', level => 'infinite')));
    my $p = $r->code == 207 ? parse_multistatus($r->content) : { order => [], members => {} };
    my %seen;
    $seen{ s{^/s}{}r =~ s{/$}{}r }++ for @{ $p->{order} };
    my @missing = grep { !$seen{$_} } sort keys %changed;
    my @twice = grep { $seen{$_} > 1 } sort keys %seen;
    ok(join(' ', @missing, map { "$_ (twice)" } @twice), '',
       "$mpm: the sync from the token before names each of the " . scalar(keys %changed)
       . " changed paths exactly once");
    ok(join(' ', grep { $seen{$_} } sort keys %failed_only), '',
       "$mpm: no path that only failed writes touched is reported as changed");

    # Digests: every file's ETag is the SHA-256 of its bytes on disk.
    my @wrong;
    for my $k (0 .. 5) {
        my $disk = slurp("$dir/files/shared/f$k");
        next unless defined $disk;
        my $g = $ua->get("http://127.0.0.1:$h->{port}/s/shared/f$k");
        push @wrong, "GET f$k" unless ($g->header('ETag') // '') eq strong_etag($disk)
                                      && $g->content eq $disk;
    }
    my $pf = $ua->request(HTTP::Request->new(PROPFIND => "http://127.0.0.1:$h->{port}/s/shared/",
        [ Depth => 1, 'Content-Type' => 'application/xml' ],
        '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'));
    my $pm = parse_multistatus($pf->content);
    for my $k (0 .. 5) {
        my $disk = slurp("$dir/files/shared/f$k");
        next unless defined $disk;
        my $m = $pm->{members}{"/s/shared/f$k"};
        push @wrong, "PROPFIND f$k" unless $m && ($m->{props}{getetag} // '') eq strong_etag($disk);
    }
    ok(join(' ', @wrong), '', "$mpm: every file's ETag (GET, PROPFIND) is the digest of its bytes on disk");

    own_httpd_stop($h);
    my $log = $h->{log}->();
    ok(join("\n", grep { (/\[(?:\w+:)?(?:error|crit|alert|emerg)\]/ || /\[iss:warn\]/)
                          && !/\[dav:error\].*\[4\d\d, #\d+\]\s*$/ }
            split /\n/, $log), '', "$mpm: nothing unexpected in the error log");
    ($rc, $out) = iss_state("$dir/state", 'info');
    my ($ckpts) = $out =~ /^checkpoints: (\d+)/m;
    ok(($ckpts // 0) > 0 ? 1 : 0, 1, "$mpm: checkpoints ran beside the writers (" . ($ckpts // '?') . ")")
        or print "# $out\n";
    ($rc, $out) = iss_state("$dir/state", 'verify');
    ok($rc, 0, "$mpm: the state store verifies") or print "# $out\n";
    ($rc, $out) = iss_state("$dir/state", 'list', 'intent/');
    ok($out, '', "$mpm: no intent left behind");
}

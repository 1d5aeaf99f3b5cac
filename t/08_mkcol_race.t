# Parallel MKCOLs of one new folder answer as plain mod_dav_fs does: one
# 201, the others 405 (the folder exists), and nothing in the error log.
# (Before issue 13 some got 403 with "Unable to create collection" logged:
# the intent recorded between mod_dav's existence check and mod_dav_fs's
# mkdir widened the race, and the group commit wakes the MKCOLs at once.)
# The losers leave no log entry: a sync from the token before lists each
# folder once, as made by its one 201.
#
# A server of its own, with the test hook ISS_TEST_SYNC_DELAY_MS making
# every group commit take 50 ms longer: parallel MKCOLs then all pass
# mod_dav's check and wait on one commit, which is what made them fail.
# /plain/ serves the same folder with Dav On, for comparison (it races
# too, in a narrower window: an occasional 403 there is mod_dav_fs's).
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use LWP::UserAgent;
use HTTP::Request;
use Time::HiRes ();
use File::Temp ();
use POSIX ();

my $FOLDERS = 12;
my $PARALLEL = 4;
plan tests => 7;

my $dir = File::Temp::tempdir(CLEANUP => 1);
my $h = do {
    local $ENV{ISS_TEST_SYNC_DELAY_MS} = 50;
    own_httpd_start(dir => $dir, config => <<"CONF");
StartServers 2
ThreadsPerChild 8
MinSpareThreads 8
MaxSpareThreads 32
MaxRequestWorkers 32
Alias /iss "$dir/files"
Alias /plain "$dir/files"
<Location /iss/>
    Dav iss
    ISSStateDir "$dir/state"
</Location>
<Location /plain/>
    Dav On
</Location>
CONF
};
my $base = "http://127.0.0.1:$h->{port}";

# $PARALLEL MKCOLs of $uri, started at the same moment; their statuses.
sub race {
    my ($uri) = @_;
    my $start = Time::HiRes::time() + 0.3;
    my @pipes;
    for (1 .. $PARALLEL) {
        pipe(my $rd, my $wr) or die $!;
        my $pid = fork // die;
        if (!$pid) {
            close $rd;
            my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 30);
            my $req = HTTP::Request->new(MKCOL => "$base$uri");
            # Open the connection before the start, then send at once.
            $ua->request(HTTP::Request->new(OPTIONS => "$base/plain/"));
            my $wait = $start - Time::HiRes::time();
            Time::HiRes::sleep($wait) if $wait > 0;
            print $wr $ua->request($req)->code;
            close $wr;
            POSIX::_exit(0);
        }
        close $wr;
        push @pipes, [$pid, $rd];
    }
    my @codes;
    for (@pipes) {
        my ($pid, $rd) = @$_;
        local $/;
        push @codes, scalar(<$rd>) // 'none';
        waitpid($pid, 0);
    }
    return join ' ', sort @codes;
}

ok(!defined $h->{code} ? 1 : 0, 1, 'httpd started') or print "# ", $h->{log}->(), "\n";
my $ua = LWP::UserAgent->new(timeout => 30);
my $res = $ua->request(HTTP::Request->new(PROPFIND => "$base/iss/",
    [ Depth => 0, 'Content-Type' => 'application/xml' ],
    '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>'));
my ($token) = $res->content =~ m{<[\w-]+:sync-token>([^<]*)</}s;
my (@iss, @plain);
push @iss, race("/iss/mkcol-race-$$-$_/") for 1 .. $FOLDERS;
my $iss_log_end = -s "$dir/logs/error_log";
push @plain, race("/plain/mkcol-race-plain-$$-$_/") for 1 .. $FOLDERS;
my $want = join ' ', sort(201, (405) x ($PARALLEL - 1));
my @wrong = grep { $_ ne $want } @iss;
ok(join('; ', @wrong), '', "Dav iss: $FOLDERS x $PARALLEL parallel MKCOLs of one folder: one 201, the others 405 each");
print "# Dav On, the same: ", join('; ', @plain), "\n";
ok(scalar(grep { /\b201\b/ } @plain), $FOLDERS, 'Dav On: one 201 per folder (the baseline)');

my $r = $ua->request(HTTP::Request->new(REPORT => "$base/iss/",
    [ Depth => 0, 'Content-Type' => 'application/xml' ], sync_body(token => $token, level => 1)));
my $p = $r->code == 207 ? parse_multistatus($r->content) : { order => [] };
own_httpd_stop($h);
my $log = substr($h->{log}->(), 0, $iss_log_end);
my @errors = grep { /\[(?:[\w_]+:)?(?:error|crit|alert|emerg)\]/ } split /\n/, $log;
ok(join("\n", @errors), '', 'no error-log line for any of them');
ok(scalar(grep { /mkcol-race-$$-\d+/ && /ISS01031: capture before MKCOL/ } split /\n/, $log), $FOLDERS,
   'one intent recorded per folder: the losers were answered before recording one');

my @listed = grep { m{/mkcol-race-$$-\d+/?$} } @{ $p->{order} };
ok(scalar(@listed), $FOLDERS, 'a sync from the token before lists each folder once');
ok(scalar(grep { -d "$dir/files/mkcol-race-$$-$_" } 1 .. $FOLDERS), $FOLDERS, 'every folder exists');

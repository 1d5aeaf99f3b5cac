package ISSClient;
# Helpers for the iss-sync client tests (t/6x_client_*.t): run the client,
# snapshot local and server trees, change the server through HTTP.
#
# The server side: /ciss/ (`Dav iss`) serves t/dav/files-ciss, /cplain/
# (`Dav On`) serves t/dav/files-cplain (t/conf/extra.conf.in).  Every case
# makes a case of its own (new_case): a sub-collection of one location, a
# local folder and a state directory under a temporary folder.
use strict;
use warnings FATAL => 'all';
use Apache::Test ();
use Apache::TestRequest ();
use ISSTest qw(t_dir url slurp spew);
use LWP::UserAgent ();
use HTTP::Request ();
use File::Spec ();
use File::Temp ();
use File::Find ();
use File::Path ();
use Digest::SHA ();
use Encode ();
use POSIX ();
use Time::HiRes ();
use Exporter 'import';

our @EXPORT = qw(sync_tool new_case run_sync start_sync wait_sync pause_wait
                 local_tree server_tree tree_str tree_diff
                 srv_put srv_delete srv_move srv_mkcol srv_get srv_path srv_fill lfill
                 lput ldel lmkdir access_mark access_since wire_bytes
                 rnd_bytes action_lines temp_leftovers expect_tree
                 ok_run ok_tree LOCATIONS);

use constant LOCATIONS => qw(ciss cplain);

# The iss-sync binary (scripts/run-apache-test.sh exports it); a missing
# one makes every run fail, never skip.
sub sync_tool {
    my $t = $ENV{ISS_SYNC_TOOL} // '';
    return $t if -x $t;
    return undef;
}

# The folder a location serves.
sub loc_dir { File::Spec->catdir(t_dir(), 'dav', "files-$_[0]") }

my $tmp_root;
my %case_seq;

# new_case(NAME, LOC, mkcol => 1) -> { loc, name, path (URL path of the
# collection, with a trailing /), url, local, state, srv (its folder on
# disk), tmp }.  The local folder exists (empty) unless no_local => 1.
sub new_case {
    my ($name, $loc, %o) = @_;
    $tmp_root //= File::Temp::tempdir('iss-client-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $n = ++$case_seq{"$loc/$name"};
    my $id = $name . ($n > 1 ? "-$n" : '');
    my $tmp = "$tmp_root/$loc-$id";
    File::Path::make_path("$tmp/state");
    my $c = { loc => $loc, name => $id, tmp => $tmp,
              path => "/$loc/$id/", url => url("/$loc/$id/"),
              local => "$tmp/local", state => "$tmp/state",
              srv => loc_dir($loc) . "/$id" };
    # another client of the same collection (a folder and state of its own)
    @$c{qw(path url srv)} = @{ $o{same_as} }{qw(path url srv)} if $o{same_as};
    mkdir $c->{local} unless $o{no_local};
    if ($o{mkcol}) {
        my $r = dav_req(MKCOL => $c->{path});
        die "MKCOL $c->{path}: " . $r->status_line unless $r->code == 201;
    }
    return $c;
}

# ---- running the client ----------------------------------------------------

# start_sync(CASE, args => [...], env => {...}, local => DIR, state => DIR)
# -> a handle for wait_sync (the client runs in the background).
sub start_sync {
    my ($c, %o) = @_;
    my $tool = sync_tool();
    my $out = File::Temp->new(DIR => $c->{tmp}, TEMPLATE => 'outXXXXXX');
    my $err = File::Temp->new(DIR => $c->{tmp}, TEMPLATE => 'errXXXXXX');
    my @cmd = ($tool // '/nonexistent/iss-sync (ISS_SYNC_TOOL unset)', '--state-dir', $o{state} // $c->{state},
               @{ $o{args} || [] }, $o{local} // $c->{local}, $o{url} // $c->{url});
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out->filename or POSIX::_exit(126);
        open STDERR, '>', $err->filename or POSIX::_exit(126);
        $ENV{$_} = $o{env}{$_} for keys %{ $o{env} || {} };
        { exec { $cmd[0] } @cmd; }
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    return { pid => $pid, out => $out, err => $err, cmd => \@cmd, start => Time::HiRes::time() };
}

# wait_sync(HANDLE, timeout => S) -> { code (-1: timed out and killed,
# -SIG: killed by SIG), out, err, lines => [stdout lines], secs }
sub wait_sync {
    my ($h, %o) = @_;
    my $deadline = Time::HiRes::time() + ($o{timeout} // 120);
    my $code;
    while (1) {
        my $w = defined $h->{status} ? $h->{pid} : waitpid($h->{pid}, POSIX::WNOHANG());
        if ($w == $h->{pid}) {
            my $st = $h->{status} // $?;
            $code = ($st & 127) ? -($st & 127) : $st >> 8;
            last;
        }
        if (Time::HiRes::time() > $deadline) {
            kill 'KILL', $h->{pid};
            waitpid($h->{pid}, 0);
            $code = -1;
            last;
        }
        Time::HiRes::sleep(0.01);
    }
    my $r = { code => $code, out => slurp($h->{out}->filename) // '',
              err => slurp($h->{err}->filename) // '',
              secs => Time::HiRes::time() - $h->{start}, cmd => $h->{cmd} };
    $r->{lines} = [ split /\n/, $r->{out} ];
    $r->{err} = "TIMED OUT\n$r->{err}" if $code == -1;
    if ($ENV{ISS_CLIENT_TRACE}) {           # the runs, in the test's output
        printf "# \$ %s -> %s (%.2f s)\n", "@{ $r->{cmd} }", $r->{code}, $r->{secs};
        print "# out: $_\n" for @{ $r->{lines} };
        print "# err: $_\n" for split /\n/, $r->{err};
    }
    return $r;
}

# run_sync(CASE, args => [...], env => {...}, timeout => S) -> as wait_sync.
sub run_sync {
    my ($c, %o) = @_;
    return wait_sync(start_sync($c, %o), %o);
}

# The action lines of a run's stdout (docs/client.md: "VERB PATH ...";
# the summary line and anything else left out), sorted.
sub action_lines {
    my ($r) = @_;
    return join "\n", sort grep {
        /^(?:upload|download|delete-local|delete-remote|conflict|mkdir-local|mkdir-remote|rmdir-local|rmdir-remote|replace-local|replace-remote|move-remote) /
    } @{ $r->{lines} };
}

# ---- trees -------------------------------------------------------------------

sub sha12 { substr(Digest::SHA::sha256_hex($_[0]), 0, 16) }

# { relative path => 'sha256 prefix' (files), '/' (folders), '-> TARGET'
# (symbolic links), '?' (others) } of everything under DIR.  The server's
# folders skip mod_dav_fs's .DAV (properties), nothing else.
sub scan_tree {
    my ($dir, %o) = @_;
    my %t;
    return \%t unless -d $dir;
    File::Find::find({ no_chdir => 1, wanted => sub {
        return if $_ eq $dir;
        (my $rel = $_) =~ s{^\Q$dir\E/}{};
        if ($o{server} && m{(?:^|/)\.DAV$} && -d $_) { $File::Find::prune = 1; return }
        if (-l $_) { $t{$rel} = '-> ' . readlink($_) }
        elsif (-d _) { $t{$rel} = '/' }
        elsif (-f _) { $t{$rel} = sha12(slurp($_) // '') }
        else { $t{$rel} = '?' }
    } }, $dir);
    return \%t;
}

sub local_tree { scan_tree($_[0]->{local}, @_[1 .. $#_]) }
sub server_tree { scan_tree($_[0]->{srv}, server => 1) }

# A tree as one comparable string ("path=hash" sorted, ", "-joined).
sub tree_str {
    my ($t) = @_;
    return join ', ', map { "$_=$t->{$_}" } sort keys %$t;
}

# The tree of { rel => bytes (a file) or undef (a folder) }, with every
# folder on the way.
sub expect_tree {
    my (%f) = @_;
    my %t;
    for my $rel (keys %f) {
        $t{$rel} = defined $f{$rel} ? sha12($f{$rel}) : '/';
        my $p = $rel;
        $t{$p} = '/' while $p =~ s{/[^/]*$}{};
    }
    return \%t;
}

# ok() on a run's exit code, with its output on failure.
sub ok_run {
    my ($r, $code, $name) = @_;
    my $ok = Apache::Test::ok($r->{code}, $code, $name);
    if (!$ok) {
        print "# stdout: $_\n" for @{ $r->{lines} };
        print "# stderr: $_\n" for split /\n/, $r->{err};
    }
    return $ok;
}

# ok() on two trees, with what differs on failure.
sub ok_tree {
    my ($got, $want, $name) = @_;
    my $ok = Apache::Test::ok(tree_str($got), tree_str($want), $name);
    print "# differs: ", tree_diff($got, $want), "\n" unless $ok;
    return $ok;
}

# What differs between two trees, in short ('' if nothing).
sub tree_diff {
    my ($a, $b) = @_;
    my @d;
    for my $k (sort keys %{ { %$a, %$b } }) {
        my ($x, $y) = ($a->{$k} // 'none', $b->{$k} // 'none');
        push @d, "$k: $x vs $y" if $x ne $y;
    }
    return join '; ', @d;
}

# Names under DIR left by a run: the client's temporary files.
sub temp_leftovers {
    my ($dir) = @_;
    my @l;
    return '' unless -d $dir;
    File::Find::find({ no_chdir => 1, wanted => sub {
        push @l, $_ =~ s{^\Q$dir\E/}{}r if m{/\.iss-sync-tmp[^/]*$};
    } }, $dir);
    return join ', ', sort @l;
}

# pause_wait(HANDLE, FILE): wait until a run paused by ISS_SYNC_TEST_PAUSE
# created FILE (1), or ended first (0).
sub pause_wait {
    my ($h, $file, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 60);
    while (Time::HiRes::time() < $deadline) {
        return 1 if -e $file;
        return 0 if waitpid($h->{pid}, POSIX::WNOHANG()) == $h->{pid} && do { $h->{status} = $?; 1 };
        Time::HiRes::sleep(0.01);
    }
    return 0;
}

# ---- local changes --------------------------------------------------------------

sub lput {
    my ($c, $rel, $data) = @_;
    my $f = "$c->{local}/$rel";
    (my $d = $f) =~ s{/[^/]*$}{};
    File::Path::make_path($d);
    spew($f, $data);
}
sub ldel { my ($c, $rel) = @_; my $f = "$c->{local}/$rel"; -d $f && !-l $f ? File::Path::remove_tree($f) : unlink $f }
sub lmkdir { my ($c, $rel) = @_; File::Path::make_path("$c->{local}/$rel") }

# ---- server changes, through HTTP (sync tokens only see those) -----------

sub dav_req {
    my ($method, $path, %opt) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
    my $u = $path =~ m{^https?://} ? $path : url($path);
    return $ua->request(HTTP::Request->new($method => $u, [ %{ $opt{headers} || {} } ], $opt{body}));
}

# The URL path of REL (UTF-8 bytes or characters) in CASE, %-encoded.
sub srv_path {
    my ($c, $rel) = @_;
    $rel = Encode::encode('UTF-8', $rel) if utf8::is_utf8($rel);
    my $enc = join '/', map { s/([^A-Za-z0-9._~!\$&'()*+,;=:@-])/sprintf('%%%02X', ord $1)/ger } split m{/}, $rel, -1;
    return $c->{path} . $enc;
}

sub srv_put {
    my ($c, $rel, $data) = @_;
    my $r = dav_req(PUT => srv_path($c, $rel), body => $data);
    die "PUT $rel: " . $r->status_line . "\n" unless $r->code =~ /^20[14]$/;
    return $r;
}
sub srv_delete {
    my ($c, $rel) = @_;
    my $r = dav_req(DELETE => srv_path($c, $rel));
    die "DELETE $rel: " . $r->status_line . "\n" unless $r->code =~ /^20[04]$/;
    return $r;
}
sub srv_mkcol {
    my ($c, $rel) = @_;
    my $r = dav_req(MKCOL => srv_path($c, $rel) . '/');
    die "MKCOL $rel: " . $r->status_line . "\n" unless $r->code == 201;
    return $r;
}
sub srv_move {
    my ($c, $from, $to) = @_;
    my $r = dav_req(MOVE => srv_path($c, $from),
                    headers => { Destination => url(srv_path($c, $to)), Overwrite => 'F' });
    die "MOVE $from: " . $r->status_line . "\n" unless $r->code =~ /^20[14]$/;
    return $r;
}
# srv_fill(CASE, rel => bytes | undef (a folder), ...): folders first.
sub srv_fill {
    my ($c, %f) = @_;
    my %dirs;
    for my $rel (keys %f) {
        $dirs{$rel} = 1 unless defined $f{$rel};
        my $p = $rel;
        $dirs{$p} = 1 while $p =~ s{/[^/]*$}{};
    }
    srv_mkcol($c, $_) for sort { ($a =~ tr{/}{}) <=> ($b =~ tr{/}{}) || $a cmp $b } keys %dirs;
    srv_put($c, $_, $f{$_}) for grep { defined $f{$_} } sort keys %f;
}

# lfill(CASE, rel => bytes | undef (a folder), ...)
sub lfill {
    my ($c, %f) = @_;
    for my $k (keys %f) { defined $f{$k} ? lput($c, $k, $f{$k}) : lmkdir($c, $k) }
}

sub srv_get { my ($c, $rel) = @_; dav_req(GET => srv_path($c, $rel)) }

# ---- bytes on the wire (logs/client_access_log: "%I %O %>s %m %U") --------

sub access_log { File::Spec->catfile(t_dir(), 'logs', 'client_access_log') }

# The end of the access log now (lines of requests that are over).
sub access_mark {
    my $last = -1;
    for (1 .. 40) {                      # let lines of finished requests land
        my $size = -s access_log() || 0;
        return $size if $size == $last;
        $last = $size;
        Time::HiRes::sleep(0.05);
    }
    return $last;
}

# The request lines since MARK: [{ in, out, status, method, uri }].
sub access_since {
    my ($mark) = @_;
    access_mark();
    open my $fh, '<:raw', access_log() or return [];
    seek $fh, $mark, 0;
    my @r;
    while (my $l = <$fh>) {
        chomp $l;
        my ($i, $o, $s, $m, $u) = split / /, $l, 5;
        push @r, { in => $i, out => $o, status => $s, method => $m, uri => $u };
    }
    return \@r;
}

# (received, sent) by the server for the requests since MARK.
sub wire_bytes {
    my ($mark) = @_;
    my ($in, $out) = (0, 0);
    for (@{ access_since($mark) }) { $in += $_->{in}; $out += $_->{out} }
    return ($in, $out);
}

# Pseudo-random bytes (SHA-256 in counter mode: fast under ASan too), a
# stream per SEED.
sub rnd_bytes {
    my ($n, $seed) = @_;
    my $s = join '', map { Digest::SHA::sha256("$seed-$_") } 0 .. int($n / 32);
    return substr($s, 0, $n);
}

1;

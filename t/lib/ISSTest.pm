package ISSTest;
# Shared helpers for the mod_iss Apache::Test suite.
use Time::HiRes ();
use strict;
use warnings FATAL => 'all';
use Apache::Test ();
use Apache::TestRequest ();
use LWP::UserAgent ();
use HTTP::Request ();
use File::Spec ();
use Exporter 'import';

our @EXPORT = qw(crash_writer crash_sampler seal_sync_token dav url t_dir files_dir slurp spew log_mark log_since
                 captures own_httpd_start own_httpd_stop own_httpd_kill9 iss_s_location
                 own_httpd_configtest error_body real_client
                 iss_state sync_report sync_body parse_multistatus
                 sync_token_of strong_etag repr_digest xdelta3_delta
                 iss_chunk manifest_of frames_of manifest_parse
                 manifest_pack missing_of MANIFEST_TYPE DELTA_TYPE
                 CHUNKS_TYPE);

sub url { Apache::TestRequest::resolve_url($_[0]) }

sub t_dir { Apache::Test::vars('t_dir') }

sub files_dir { File::Spec->catdir(t_dir(), 'dav', 'files', @_) }

# dav(METHOD, PATH, headers => {...}, body => BYTES) -> HTTP::Response
sub dav {
    my ($method, $path, %opt) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
    my %h = %{ $opt{headers} || {} };
    delete $h{$_} for grep { !defined $h{$_} } keys %h;   # undef: not sent
    my $req = HTTP::Request->new($method => url($path), [ %h ],
                                 $opt{body});
    return $ua->request($req);
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or return undef;
    local $/;
    return scalar <$fh>;
}

sub spew {
    my ($file, $data) = @_;
    open my $fh, '>:raw', $file or die "$file: $!";
    print $fh $data;
    close $fh or die "$file: $!";
}

sub error_log { File::Spec->catfile(t_dir(), 'logs', 'error_log') }

# Byte offset of the end of the error log, to read what follows later.
sub log_mark { -s error_log() || 0 }

# What the server logged since log_mark() returned $mark.  Log lines of a
# request can trail its response by a moment: wait for them to settle.
sub log_since {
    my ($mark) = @_;
    my $last = -1;
    for (1 .. 20) {
        my $size = -s error_log() || 0;
        last if $size == $last;
        $last = $size;
        select(undef, undef, undef, 0.05);
    }
    open my $fh, '<:raw', error_log() or return '';
    seek $fh, $mark, 0;
    local $/;
    return scalar(<$fh>) // '';
}

# Parse the capture point's trace lines (ISS01031/ISS01032) from a log
# excerpt: a list of { when, method, uri, status, members, changes => [...] }.
sub captures {
    my ($text) = @_;
    my (@caps, %open);
    for my $line (split /\n/, $text) {
        if ($line =~ /ISS01031: capture (before|after) (\S+) (.+?) status=(\d+) members=(\d+)$/) {
            my $c = { when => $1, method => $2, uri => $3, status => $4,
                      members => $5, changes => [] };
            push @caps, $c;
            $open{"$1 $2"} = $c;
        }
        elsif ($line =~ /ISS01032: capture (before|after) (\S+) member (\S+) (\S+) (.*)$/) {
            my $c = $open{"$1 $2"} or next;
            push @{ $c->{changes} }, "$3 $4 $5";
        }
    }
    return @caps;
}

# The body of a refusal by mod_iss (RFC 4918 section 16): its condition
# element ("I:name" or "D:name") and its I:message; () if the response is
# not such a body (an HTML error page, say).
sub error_body {
    my ($res) = @_;
    my $c = $res->content // '';
    return () unless ($res->header('Content-Type') // '') =~ m{^application/xml}
        && $c =~ m{<D:error xmlns:D="DAV:"[^>]*>\s*<(\w+):([\w-]+)(?:\s[^>]*)?/>.*?<I:message>([^<]+)</I:message>\s*</D:error>}s;
    return ("$1:$2", $3);
}

# ---- sync-collection (RFC 6578) ------------------------------------------

# The body of a sync-collection REPORT.  token => '' (initial) or TOKEN,
# level => '1' | 'infinite' | undef (no element), limit => N,
# props => [qw(getetag ...)] (DAV: names) or raw => XML inside DAV:prop.
sub sync_body {
    my (%o) = @_;
    my $props = $o{raw} // join('', map { "<D:$_/>" } @{ $o{props} || ['getetag'] });
    my $level = defined $o{level} ? "<D:sync-level>$o{level}</D:sync-level>" : '';
    my $limit = defined $o{limit} ? "<D:limit><D:nresults>$o{limit}</D:nresults></D:limit>" : '';
    my $tok = $o{token} // '';
    $tok =~ s/&/&amp;/g; $tok =~ s/</&lt;/g;
    return qq{<?xml version="1.0" encoding="utf-8"?>\n}
         . qq{<D:sync-collection xmlns:D="DAV:"><D:sync-token>$tok</D:sync-token>}
         . qq{$level$limit<D:prop>$props</D:prop></D:sync-collection>};
}

# Parse a multistatus: { members => { href => { status, props => {name =>
# value}, missing => [names] } }, order => [hrefs], token, truncated }.
sub parse_multistatus {
    my ($xml) = @_;
    my %r = (members => {}, order => [], truncated => 0);
    while ($xml =~ m{<D:response\b[^>]*>(.*?)</D:response>}sg) {
        my $resp = $1;
        my ($href) = $resp =~ m{<D:href>(.*?)</D:href>}s;
        $href =~ s/&amp;/&/g;
        my %m = (props => {}, missing => []);
        if ($resp =~ m{^\s*<D:href>.*?</D:href>\s*<D:status>HTTP/1\.1 (\d+)}s) {
            $m{status} = $1;
        }
        else {
            $m{status} = 200;
        }
        while ($resp =~ m{<D:propstat>(.*?)</D:propstat>}sg) {
            my $ps = $1;
            my ($st) = $ps =~ m{<D:status>HTTP/1\.1 (\d+)};
            my ($prop) = $ps =~ m{<D:prop>(.*?)</D:prop>}s;
            while ($prop =~ m{<(?:[\w-]+:)?([\w-]+)(?:\s[^>]*)?(?:/>|>(.*?)</(?:[\w-]+:)?\1>)}sg) {
                if ($st == 200) { $m{props}{$1} = $2 // "" }
                else { push @{ $m{missing} }, $1 }
            }
        }
        $r{truncated} = 1 if $m{status} == 507;
        next if $m{status} == 507;
        push @{ $r{order} }, $href;
        $r{members}{$href} = \%m;
    }
    ($r{token}) = $xml =~ m{<D:sync-token>(.*?)</D:sync-token>}s;
    $r{token} =~ s/&amp;/&/g if defined $r{token};
    return \%r;
}

# sync_report(PATH, token => .., level => .., limit => .., props => [..],
#             headers => {..}, body => RAW) -> { code, res, members, ... }
sub sync_report {
    my ($path, %o) = @_;
    my $body = $o{body} // sync_body(%o);
    my $res = dav(REPORT => $path, headers => { 'Content-Type' => 'application/xml',
                                                Depth => '0', %{ $o{headers} || {} } },
                  body => $body);
    my $r = $res->code == 207 ? parse_multistatus($res->content) : { members => {}, order => [] };
    $r->{code} = $res->code;
    $r->{res} = $res;
    return $r;
}

# The DAV:sync-token property of a collection (PROPFIND Depth 0).
sub sync_token_of {
    my ($path) = @_;
    my $res = dav(PROPFIND => $path, headers => { Depth => '0', 'Content-Type' => 'application/xml' },
                  body => '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
    my ($t) = $res->content =~ m{<[\w-]+:sync-token>([^<]*)</}s;
    return $t;
}

# ---- digests, ETags and deltas (issue 4) ----------------------------------

use Digest::SHA ();
use MIME::Base64 ();

# The strong ETag mod_iss gives a file with these bytes.
sub strong_etag { '"' . MIME::Base64::encode_base64url(Digest::SHA::sha256($_[0])) . '"' }

# Their Repr-Digest / Content-Digest field value.
sub repr_digest { 'sha-256=:' . MIME::Base64::encode_base64(Digest::SHA::sha256($_[0]), '') . ':' }

# A VCDIFF delta from OLD to NEW (bytes) made by xdelta3 as the protocol
# says (-D -S none -A), with extra flags (-n, -W 16384, ...).
my ($xd_dir, $xd_n);
sub xdelta3_delta {
    my ($old, $new, @flags) = @_;
    $xd_dir //= File::Temp::tempdir(CLEANUP => 1);
    my $n = ++$xd_n;
    spew("$xd_dir/o$n", $old);
    spew("$xd_dir/n$n", $new);
    system('xdelta3', '-e', '-f', '-D', '-S', 'none', '-A', @flags, '-s',
           "$xd_dir/o$n", "$xd_dir/n$n", "$xd_dir/d$n") == 0
        or die "xdelta3 -e failed ($?): is it installed? scripts/deps.sh installs it\n";
    my $d = slurp("$xd_dir/d$n");
    unlink "$xd_dir/o$n", "$xd_dir/n$n", "$xd_dir/d$n";
    return $d;
}

# ---- httpd servers of a test's own ---------------------------------------
# For what the suite's shared server cannot show: startup failures, other
# MPMs, kill -9.  Each listens on a free port of 127.0.0.1, runs in a
# session of its own (httpd signals its whole process group when it
# stops), and is stopped by the test that started it.

use File::Temp ();
use IO::Socket::INET ();
use POSIX ();

my $MODS = '/usr/lib/apache2/modules';

# Servers started and not yet stopped: pid -> the test process that
# started them.  A test that dies half way (a failed assertion that ends
# it, a die) stops them on its way out, so that no httpd outlives it.
my %OWN_HTTPD;
END {
    local $?;
    for my $pid (keys %OWN_HTTPD) {
        next unless $OWN_HTTPD{$pid} == $$;     # not in forked children
        kill 'TERM', $pid;
        for (1 .. 100) {
            last if waitpid($pid, POSIX::WNOHANG()) == $pid;
            select(undef, undef, undef, 0.05);
        }
        kill 'KILL', -$pid;                     # whatever is left of it
        waitpid($pid, 0);
    }
}

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0) or die "no port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

# own_httpd_start(config => TEXT, mpm => 'event', dir => DIR, no_dav => 1,
#                 max_file_kb => N (ulimit -f: writes past N KiB fail))
# -> { pid, port, dir, code (undef if running), log }
sub own_httpd_start {
    my (%o) = @_;
    my ($dir, $port) = own_httpd_conf(%o);
    # Asked here, not in the child: Apache::Test reads its configuration
    # on first use (about a second), and a child would read it at every
    # start while the parent's copy stays unread.
    my $httpd = Apache::Test::vars('httpd');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        POSIX::setsid();
        open STDOUT, '>', "$dir/logs/stdout";
        open STDERR, '>&', \*STDOUT;
        my @cmd = ($httpd, '-f', "$dir/httpd.conf", '-DFOREGROUND');
        @cmd = ('/bin/sh', '-c', "ulimit -f $o{max_file_kb} && exec \"\$@\"", 'sh', @cmd)
            if $o{max_file_kb};
        exec @cmd or POSIX::_exit(127);
    }
    my $h = { pid => $pid, port => $port, dir => $dir };
    $OWN_HTTPD{$pid} = $$;
    # Generous: an ASan httpd on a loaded 2-core machine has taken more
    # than 10 s to read its configuration; a server that starts (or
    # refuses to) ends the wait at once.
    my $deadline = Time::HiRes::time() + 90;
    while (Time::HiRes::time() < $deadline) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {       # refused to start
            $h->{code} = $? >> 8;
            delete $OWN_HTTPD{$pid};
            last;
        }
        # httpd binds its port before post_config runs, so a connection
        # alone does not prove it started: wait for its "resuming" line.
        # (AH00489 event, AH00292 worker, AH00163 prefork: any MPM)
        last if (slurp("$dir/logs/error_log") // '') =~ /AH\d+: .* resuming normal operations/
                && IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1);
        select(undef, undef, undef, 0.05);
    }
    $h->{log} = sub { (slurp("$dir/logs/error_log") // '') . (slurp("$dir/logs/stdout") // '') };
    return $h;
}

# `httpd -t` (what apache2ctl configtest runs) of the configuration
# own_httpd_start would start: (exit code, what it printed).
sub own_httpd_configtest {
    my (%o) = @_;
    my ($dir) = own_httpd_conf(%o);
    my $httpd = Apache::Test::vars('httpd');
    my $out = `'$httpd' -t -f '$dir/httpd.conf' 2>&1`;
    return ($? >> 8, $out);
}

# Write DIR/httpd.conf for own_httpd_start: (dir, port).
sub own_httpd_conf {
    my (%o) = @_;
    my $dir = $o{dir} || File::Temp::tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(logs files state);
    my $port = free_port();
    my $mpm = $o{mpm} || 'event';
    my $dav = $o{no_dav} ? '' : "LoadModule dav_module $MODS/mod_dav.so\n"
                              . "LoadModule dav_fs_module $MODS/mod_dav_fs.so\n"
                              . "DavLockDB logs/DavLock\n";
    my $dav_fs_only = $o{no_dav_fs} ? "LoadModule dav_module $MODS/mod_dav.so\n" : $dav;
    spew("$dir/httpd.conf", <<"CONF");
ServerRoot "$dir"
Listen 127.0.0.1:$port
ServerName 127.0.0.1
PidFile logs/httpd.pid
DefaultRuntimeDir logs
ErrorLog logs/error_log
LogLevel warn iss:trace1
LoadModule mpm_${mpm}_module $MODS/mod_mpm_${mpm}.so
LoadModule authz_core_module $MODS/mod_authz_core.so
LoadModule alias_module $MODS/mod_alias.so
$dav_fs_only
LoadModule iss_module $ENV{ISS_MODULE_PATH}
DocumentRoot "$dir/files"
<Directory "$dir/files">
    Require all granted
</Directory>
$o{config}
CONF
    return ($dir, $port);
}

# The location most own_httpd_start tests serve: /s/ on DIR/files with
# its state in DIR/state (own_httpd_conf makes both), plus DIRECTIVES
# (one per argument) inside <Location /s/>.
sub iss_s_location {
    my ($dir, @directives) = @_;
    return join '', qq{Alias /s "$dir/files"\n<Location /s/>\n    Dav iss\n},
                    qq{    ISSStateDir "$dir/state"\n},
                    (map { "    $_\n" } @directives), "</Location>\n";
}

# Stop gracefully; returns the exit code.
sub own_httpd_stop {
    my ($h) = @_;
    return $h->{code} if defined $h->{code};
    kill 'TERM', $h->{pid};
    waitpid($h->{pid}, 0);
    delete $OWN_HTTPD{$h->{pid}};
    return $h->{code} = $? >> 8;
}

# For kill -9 tests, in a forked child: PUTs of new files /s/w<n>-<i>
# (@a $lines lines of "w<n>-<i>") until the server goes away; one line
# per answer to $out: "<sent> <received> <path> <status>".  Never returns.
sub crash_writer {
    my ($port, $n, $out, $lines) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 20);
    open my $fh, '>', $out or die $!;
    $fh->autoflush(1);
    for my $i (1 .. 100000) {
        my $path = "/s/w$n-$i";
        my $t0 = Time::HiRes::time();
        my $r = $ua->request(HTTP::Request->new(PUT => "http://127.0.0.1:$port$path", [], "w$n-$i\n" x $lines));
        printf $fh "%.6f %.6f %s %d\n", $t0, Time::HiRes::time(), $path, $r->code;
        last if $r->code >= 500;
    }
    POSIX::_exit(0);
}

# For kill -9 tests, in a forked child: /s/'s DAV:sync-token until the
# server goes away, $pause seconds apart; one line per token to $out:
# "<received> <token> <files w<n>-<i> on disk then>".  Never returns.
sub crash_sampler {
    my ($port, $dir, $out, $pause) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 20);
    open my $fh, '>', $out or die $!;
    $fh->autoflush(1);
    my $req = HTTP::Request->new(PROPFIND => "http://127.0.0.1:$port/s/",
        [ Depth => 0, 'Content-Type' => 'application/xml' ],
        '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
    for (;;) {
        my $r = $ua->request($req);
        # A keep-alive connection httpd closed (a child stopped as spare
        # threads are trimmed) fails at once: once more on a new one
        # before taking the server for gone.
        $r = LWP::UserAgent->new(timeout => 20)->request($req) if $r->code != 207;
        last unless $r->code == 207 && $r->content =~ m{<[\w-]+:sync-token>([^<]+)</};
        my $t = $1;
        opendir my $dh, "$dir/files" or die $!;
        my @files = sort grep { /^w\d+-\d+$/ && -s "$dir/files/$_" } readdir $dh;
        printf $fh "%.6f %s %s\n", Time::HiRes::time(), $t, join(',', @files);
        Time::HiRes::sleep($pause) if $pause;
    }
    POSIX::_exit(0);
}

# kill -9 the parent and every child at once (the whole session).
sub own_httpd_kill9 {
    my ($h) = @_;
    kill 'KILL', -$h->{pid};
    waitpid($h->{pid}, 0);
    delete $OWN_HTTPD{$h->{pid}};
    $h->{code} = -9;
    # children die with the group; give the kernel a moment to reap them
    for (1 .. 100) {
        last unless kill 0, -$h->{pid};
        select(undef, undef, undef, 0.05);
    }
}

# ---- chunk dedup -----------------------------------------------------------

use constant MANIFEST_TYPE => 'application/vnd.mod-iss.manifest';
use constant DELTA_TYPE    => 'application/vnd.mod-iss.manifest-delta';
use constant CHUNKS_TYPE   => 'application/vnd.mod-iss.chunks';

# Run build/tools/iss-chunk with files made of the given byte strings:
# iss_chunk('manifest', \$bytes) -> its stdout (dies if it fails).
sub iss_chunk {
    my ($cmd, @args) = @_;
    my $tool = $ENV{ISS_CHUNK_TOOL} or die "ISS_CHUNK_TOOL not set\n";
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $n = 0;
    my @paths = map {
        my $a = $_;
        if (ref $a eq 'SCALAR') { my $f = "$dir/in" . $n++; spew($f, $$a); $f } else { $a }
    } @args;
    my $out = `'$tool' '$cmd' @{[ map { "'$_'" } @paths ]}`;
    die "iss-chunk $cmd failed ($?)\n" if $?;
    return $out;
}

# The manifest of $bytes (as the store's default chunker, or with
# params => 'MIN,AVG,MAX').
sub manifest_of {
    my ($bytes, %o) = @_;
    return $o{params} ? iss_chunk('manifest', '--params', $o{params}, \$bytes)
                      : iss_chunk('manifest', \$bytes);
}

# The POST body carrying the chunks of $bytes whose hex ids are listed.
sub frames_of {
    my ($bytes, $manifest, @ids) = @_;
    return iss_chunk('frames', \$bytes, \$manifest, \join('', map { "$_\n" } @ids));
}

# { min, avg, max, size, sha, entries => [[id, len], ...] }
sub manifest_parse {
    my ($m) = @_;
    my ($magic, $min, $avg, $max, $size, $sha, $count) = unpack 'a4 N N N Q> a32 N', $m;
    my @e = map { [unpack 'a32 N', substr($m, 60 + 36 * $_, 36)] } 0 .. $count - 1;
    return { magic => $magic, min => $min, avg => $avg, max => $max,
             size => $size, sha => $sha, entries => \@e };
}

sub manifest_pack {
    my ($h) = @_;
    return pack('a4 N N N Q> a32 N', $h->{magic} // 'ISM1', @$h{qw(min avg max size sha)},
                scalar @{ $h->{entries} })
         . join('', map { pack 'a32 N', @$_ } @{ $h->{entries} });
}

# The missing chunk ids (hex) and the session of a 409 missing-chunks.
sub missing_of {
    my ($r) = @_;
    my @ids = $r->content =~ m{<I:chunk>([0-9a-f]{64})</I:chunk>}g;
    return ($r->header('ISS-Upload-Session'), @ids);
}

# Run a real client program (gio, rclone, chromium) by the shell command
# @a cmd, with HOME=$home (the test user has none), at most 120 s; its
# output goes to $home/client.out.  The sanitizer runtime preloaded for
# an ASan httpd is kept away from it.  Whatever it left running (D-Bus
# activated daemons of gvfs, say, which would hold its output open) is
# stopped afterwards: the processes whose HOME is $home.  Returns $?.
sub real_client {
    my ($home, $cmd) = @_;
    local $ENV{HOME} = $home;
    local $ENV{XDG_RUNTIME_DIR} = $home;
    delete local $ENV{LD_PRELOAD};
    delete local $ENV{ASAN_OPTIONS};
    delete local $ENV{UBSAN_OPTIONS};
    system('sh', '-c', "timeout 120 $cmd >'$home/client.out' 2>&1");
    my $code = $?;
    for my $env (glob '/proc/[0-9]*/environ') {
        my ($pid) = $env =~ m{/proc/(\d+)/};
        next if $pid == $$;
        open my $fh, '<', $env or next;
        local $/;
        my $e = <$fh> // '';
        kill 'TERM', $pid if index("\0$e", "\0HOME=$home\0") >= 0;
    }
    return $code;
}

# A sync token sealed as the server seals it (docs/protocol.md, "Sync
# tokens"), with the key in STATE_DIR/iss-token.key, by a second
# implementation (openssl's command line and Digest::SHA): the tests can
# then name positions the server never handed out.  FORM: 'n' (complete:
# N delivered), 'i' (a listing continuation after PATH, changes due after
# N), 'c' (member continuation: entry N, item J, member PATH).  PATH is
# written as it goes in the token (already escaped).
sub seal_sync_token {
    my ($state, $id, $form, $n, %o) = @_;
    open my $fh, '<', "$state/iss-token.key" or die "no key in $state: $!\n";
    my ($key) = (<$fh> // '') =~ /^iss-token-key 1 ([0-9a-f]{32}) / or die "bad key file\n";
    my $block = sub {
        my ($role, $v, $bound) = @_;
        my $check = substr(Digest::SHA::sha256("mod_iss sync token 1\0" . $role . $id . "\0"
                                               . pack('Q>', $bound)), 0, 8);
        my $plain = pack('Q>', $v) . $check;
        my $tmp = File::Temp->new;
        binmode $tmp;
        print $tmp $plain;
        close $tmp;
        my $out = `openssl enc -aes-128-ecb -nopad -K $key -in '$tmp'`;
        die "openssl enc failed\n" unless length($out) == 16;
        return unpack('H*', $out);
    };
    my $b = 'https://mod-iss.org/ns/sync/' . $id . '/';
    return $b . $block->('n', $n, 0) if $form eq 'n';
    return $b . 'i' . $block->('i', $n, 0) . '/' . $o{path} if $form eq 'i';
    return $b . $block->('c', $n, 0) . '/' . $block->('j', $o{j} // 0, $n) . '/' . $o{path};
}

# Run the iss-state admin tool: (exit code, output).
sub iss_state {
    my (@args) = @_;
    my $tool = $ENV{ISS_STATE_TOOL} or die "ISS_STATE_TOOL not set\n";
    my $out = `'$tool' @{[ map { "'$_'" } @args ]} 2>&1`;
    return ($? >> 8, $out);
}

1;

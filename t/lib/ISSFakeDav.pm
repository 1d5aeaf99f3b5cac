package ISSFakeDav;
# A small scripted WebDAV server for the client's bad-server tests
# (t/65_client_badserver.t): 127.0.0.1 on a free port, a process per
# connection (keep-alive), answers from a handler the test gives.
#
#   my $s = ISSFakeDav::start(handler => sub { my ($req, $phase) = @_; ... });
#   $req: { method, path (as sent, %-encoded), headers => { lc name => value }, body }
#   the handler returns { status, headers => [name => value, ...], body }
#   (close_after => N: send the head and N bytes of the body, then close).
#   ISSFakeDav::phase($s, 'bad');      # the handler's second argument
#   ISSFakeDav::requests($s);          # "METHOD PATH" of every request
#   ISSFakeDav::stop($s);
use strict;
use warnings FATAL => 'all';
use IO::Socket::INET ();
use File::Temp ();
use POSIX ();

my %REASON = (200 => 'OK', 201 => 'Created', 204 => 'No Content', 206 => 'Partial Content',
              207 => 'Multi-Status', 400 => 'Bad Request', 403 => 'Forbidden', 404 => 'Not Found',
              405 => 'Method Not Allowed', 412 => 'Precondition Failed', 500 => 'Internal Server Error');

sub slurp_file { open my $fh, '<:raw', $_[0] or return undef; local $/; scalar <$fh> }

sub start {
    my (%o) = @_;
    my $dir = File::Temp::tempdir(CLEANUP => 1);
    my $l = IO::Socket::INET->new(Listen => 16, LocalAddr => '127.0.0.1', LocalPort => 0,
                                  ReuseAddr => 1) or die "listen: $!";
    my $s = { dir => $dir, port => $l->sockport };
    phase($s, $o{phase} // 'good');
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        $SIG{CHLD} = 'IGNORE';
        while (1) {
            my $c = $l->accept or next;
            my $k = fork;
            if (defined $k && !$k) {
                $SIG{CHLD} = 'DEFAULT';
                close $l;
                serve($c, $s, $o{handler});
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    close $l;
    $s->{pid} = $pid;
    $s->{url} = "http://127.0.0.1:$s->{port}";
    return $s;
}

sub phase {
    my ($s, $p) = @_;
    open my $fh, '>', "$s->{dir}/phase.tmp" or die $!;
    print $fh $p;
    close $fh;
    rename "$s->{dir}/phase.tmp", "$s->{dir}/phase" or die $!;
}

sub requests {
    my ($s) = @_;
    return split /\n/, slurp_file("$s->{dir}/requests") // '';
}

# What the handler died of (the test's own mistakes), if anything.
sub errors { slurp_file("$_[0]{dir}/errors") // '' }

sub clear_requests { unlink "$_[0]{dir}/requests" }

sub stop {
    my ($s) = @_;
    kill 'KILL', $s->{pid};
    waitpid($s->{pid}, 0);
}

sub read_line {
    my ($c, $buf) = @_;
    while ($$buf !~ /\n/) {
        my $n = sysread($c, $$buf, 65536, length $$buf);
        return undef unless $n;
    }
    $$buf =~ s/^([^\n]*)\n// or return undef;
    (my $line = $1) =~ s/\r$//;
    return $line;
}

sub read_n {
    my ($c, $buf, $n) = @_;
    while (length($$buf) < $n) {
        my $r = sysread($c, $$buf, 65536, length $$buf);
        return undef unless $r;
    }
    return substr($$buf, 0, $n, '');
}

sub write_all {
    my ($c, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($c, $data, length($data) - $off, $off);
        return unless $n;
        $off += $n;
    }
}

sub serve {
    my ($c, $s, $handler) = @_;
    my $buf = '';
    binmode $c;
    while (1) {
        my $start = read_line($c, \$buf) // return;
        next if $start eq '';
        my ($method, $path) = split / /, $start;
        my %h;
        while (defined(my $l = read_line($c, \$buf))) {
            last if $l eq '';
            my ($k, $v) = $l =~ /^([^:]+):\s*(.*)$/ or next;
            $h{ lc $k } = $v;
        }
        write_all($c, "HTTP/1.1 100 Continue\r\n\r\n") if lc($h{expect} // '') eq '100-continue';
        my $body = '';
        if (defined $h{'content-length'}) {
            $body = read_n($c, \$buf, $h{'content-length'}) // return;
        }
        elsif (lc($h{'transfer-encoding'} // '') eq 'chunked') {
            while (defined(my $l = read_line($c, \$buf))) {
                my $n = hex $l;
                if ($n == 0) { read_line($c, \$buf); last }
                $body .= read_n($c, \$buf, $n) // return;
                read_line($c, \$buf);
            }
        }
        if (open my $log, '>>', "$s->{dir}/requests") {
            print $log "$method $path\n";
            close $log;
        }
        my $phase = slurp_file("$s->{dir}/phase") // '';
        my $res = eval { $handler->({ method => $method, path => $path, headers => \%h, body => $body }, $phase) };
        if ($@ && open my $log, '>>', "$s->{dir}/errors") { print $log "$method $path: $@"; close $log }
        $res ||= { status => 500, body => "no answer scripted for $method $path\n" };
        my $b = $res->{body} // '';
        my @hdr = @{ $res->{headers} || [] };
        my $head = "HTTP/1.1 $res->{status} " . ($REASON{ $res->{status} } // 'Whatever') . "\r\n";
        my %seen;
        while (my ($k, $v) = splice @hdr, 0, 2) { $head .= "$k: $v\r\n"; $seen{ lc $k } = 1 }
        $head .= 'Content-Length: ' . length($b) . "\r\n" unless $seen{'content-length'};
        $head .= "\r\n";
        if (defined $res->{close_after}) {
            write_all($c, $head . ($method eq 'HEAD' ? '' : substr($b, 0, $res->{close_after})));
            return;
        }
        write_all($c, $head . ($method eq 'HEAD' ? '' : $b));
    }
}

1;

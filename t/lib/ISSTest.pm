package ISSTest;
# Shared helpers for the mod_iss Apache::Test suite.
use strict;
use warnings FATAL => 'all';
use Apache::Test ();
use Apache::TestRequest ();
use LWP::UserAgent ();
use HTTP::Request ();
use File::Spec ();
use Exporter 'import';

our @EXPORT = qw(dav url t_dir files_dir slurp spew log_mark log_since
                 captures);

sub url { Apache::TestRequest::resolve_url($_[0]) }

sub t_dir { Apache::Test::vars('t_dir') }

sub files_dir { File::Spec->catdir(t_dir(), 'dav', 'files', @_) }

# dav(METHOD, PATH, headers => {...}, body => BYTES) -> HTTP::Response
sub dav {
    my ($method, $path, %opt) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 60);
    my $req = HTTP::Request->new($method => url($path),
                                 [ %{ $opt{headers} || {} } ],
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
        if ($line =~ /ISS01031: capture (before|after) (\S+) (\S+) status=(\d+) members=(\d+)/) {
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

1;

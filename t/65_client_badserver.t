# iss-sync against servers that answer what cannot be right (a fake WebDAV
# server in Perl, t/lib/ISSFakeDav.pm, scripted per case): malformed XML,
# hrefs outside the collection, with '..' segments (plain or %-encoded),
# with an encoded '/', naming another host, a member listed under the
# wrong folder, a sync answer without a token, a download whose bytes do
# not match the Repr-Digest or the listing's I:repr-digest, a connection
# closed in the middle of a body, manifests that do not add up (bad
# magic, sizes that do not sum), an unreachable server.  Each case, as a
# plain WebDAV server (Depth-1 PROPFIND walk) and as a mod_iss one
# (sync-collection REPORT) where it applies:
#   1. a good first sync (phase v1);
#   2. the server changes (v2) and answers badly: a clear error, exit 5
#      (docs/client.md: "answered something that cannot be right"),
#      nothing changed here (tree before == after, no temporary file),
#      nothing written to the server;
#   3. the server answers well again: the run brings v2 (the bad run did
#      not advance the state past what it had not done).
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use ISSClient;
use ISSFakeDav;
use Digest::SHA qw(sha256_hex);
use File::Path ();
use File::Temp ();
use IO::Socket::INET ();

my $ISS_NS = 'https://mod-iss.org/ns/iss/1';
my $PARAMS = '1024,4096,16384';
my %V1 = ('a.txt' => "alpha, version 1\n", 'sub/b.txt' => "beta\n");
my %V2 = ('a.txt' => rnd_bytes(20_000, 'fake-a2'), 'sub/b.txt' => "beta\n", 'c.txt' => "new in version 2\n");

sub etag { '"' . substr(sha256_hex($_[0]), 0, 24) . '"' }
sub xq { my $s = shift; $s =~ s/&/&amp;/g; $s =~ s/</&lt;/g; $s }

# One DAV:response: a file (content) or a folder (undef).
sub response {
    my ($href, $content) = @_;
    my $props = defined $content
        ? '<D:getetag>' . xq(etag($content)) . '</D:getetag><D:getcontentlength>' . length($content)
          . '</D:getcontentlength><D:resourcetype/><I:repr-digest>' . repr_digest($content) . '</I:repr-digest>'
        : '<D:resourcetype><D:collection/></D:resourcetype>';
    return '<D:response><D:href>' . xq($href) . "</D:href><D:propstat><D:prop>$props</D:prop>"
         . '<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>';
}

sub multistatus {
    my ($token, @responses) = @_;
    return qq{<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:" xmlns:I="$ISS_NS">}
         . join('', @responses) . (defined $token ? '<D:sync-token>' . xq($token) . '</D:sync-token>' : '')
         . '</D:multistatus>';
}

# The folders and files of a version: path => content (undef: a folder).
sub entries {
    my (%f) = @_;
    my %e = %f;
    for my $rel (keys %f) { my $p = $rel; $e{$p} = undef while $p =~ s{/[^/]*$}{} }
    return \%e;
}

# The good server of mode 'plain' or 'iss' for the files of a phase;
# %o: listing => sub (phase, [responses]) -> [responses] (the bad part),
# xml => sub (xml) -> xml, get => sub (req, content) -> answer, chunking.
sub good_answer {
    my ($mode, $req, $files, $token, %o) = @_;
    my $e = entries(%$files);
    my ($m, $p) = ($req->{method}, $req->{path});
    (my $rel = $p) =~ s{^/dav/?}{};
    $rel =~ s{/$}{};
    $rel =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    my $is_coll = $p eq '/dav/' || $p eq '/dav';
    if ($m eq 'OPTIONS') {
        return { status => 200, headers => [ DAV => '1, 2' . ($mode eq 'iss' ? ", <$ISS_NS>" : ''),
                                             Allow => 'OPTIONS, GET, PUT, DELETE, PROPFIND, MKCOL, REPORT',
                                             ($o{chunking} ? ('ISS-Chunking' => 'fastcdc;min=1024;avg=4096;max=16384') : ()) ] };
    }
    my $xml = sub { { status => 207, headers => [ 'Content-Type' => 'application/xml; charset=utf-8' ],
                      body => $o{xml} ? $o{xml}->($_[0]) : $_[0] } };
    if ($m eq 'PROPFIND') {
        my $depth = $req->{headers}{depth} // 'infinity';
        return { status => 404 } unless $is_coll || exists $e->{$rel};
        my $self = $is_coll ? '/dav/' : '/dav/' . join('/', map { s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ger } split m{/}, $rel)
                                     . (defined $e->{$rel} ? '' : '/');
        my @r = (response($self, $is_coll ? undef : $e->{$rel}));
        if ($depth eq '1' && ($is_coll || !defined $e->{$rel})) {
            my $dir = $is_coll ? '' : "$rel/";
            for my $k (sort keys %$e) {
                next unless $k =~ m{^\Q$dir\E[^/]+$};
                push @r, response('/dav/' . join('/', map { s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ger } split m{/}, $k)
                                  . (defined $e->{$k} ? '' : '/'), $e->{$k});
            }
            @r = @{ $o{listing}->($rel, \@r) } if $o{listing} && $mode eq 'plain';
            return $xml->(multistatus(undef, @r));
        }
        return { status => 207, headers => [ 'Content-Type' => 'application/xml; charset=utf-8' ],
                 body => multistatus(undef, @r) };
    }
    if ($m eq 'REPORT' && $mode eq 'iss') {
        my @r = map { response("/dav/$_" . (defined $e->{$_} ? '' : '/'), $e->{$_}) } sort keys %$e;
        @r = @{ $o{listing}->('', \@r) } if $o{listing};
        return $xml->(multistatus($o{no_token} ? undef : $token, @r));
    }
    if ($m eq 'GET' && defined $e->{$rel}) {
        return $o{get}->($req, $e->{$rel}) if $o{get};
        return { status => 200, headers => [ ETag => etag($e->{$rel}), 'Content-Type' => 'application/octet-stream',
                                             'Repr-Digest' => repr_digest($e->{$rel}) ], body => $e->{$rel} };
    }
    return { status => $m eq 'GET' ? 404 : 405 };
}

# The cases: [ name, modes, stderr pattern, options for the bad phase ].
my $listing_plus = sub { my ($href) = @_; sub { my ($dir, $r) = @_; $dir eq '' ? [ @$r, response($href, "x\n") ] : $r } };
my $manifest = sub {
    my ($damage) = @_;
    return (chunking => 1, get => sub {
        my ($req, $content) = @_;
        return { status => 200, headers => [ ETag => etag($content) ], body => $content }
            unless ($req->{headers}{accept} // '') =~ /manifest/;
        my $h = manifest_parse(manifest_of($content, params => $PARAMS));
        my $m = $damage->($h);
        return { status => 200, headers => [ 'Content-Type' => MANIFEST_TYPE, Vary => 'Accept',
                                             ETag => substr(etag($content), 0, -1) . '.ism"' ], body => $m };
    });
};
my @cases = (
    [ 'malformed XML', [qw(plain iss)], qr/well-formed|XML/i,
      xml => sub { substr($_[0], 0, int(length($_[0]) * 2 / 3)) } ],
    [ 'an href outside the collection', [qw(plain iss)], qr/outside/,
      listing => $listing_plus->('/elsewhere/x.txt') ],
    [ "an href with '..' segments", [qw(plain iss)], qr/'\.\.'|segment/,
      listing => $listing_plus->('/dav/sub/../../etc/passwd') ],
    [ "an href with %-encoded '..'", [qw(plain iss)], qr/'\.\.'|segment/,
      listing => $listing_plus->('/dav/%2e%2e/%2E%2E/x.txt') ],
    [ "an href with an encoded '/'", [qw(plain iss)], qr/encoded/,
      listing => $listing_plus->('/dav/a%2Fb.txt') ],
    [ 'an absolute href naming another host', [qw(plain iss)], qr/another server/,
      listing => $listing_plus->('http://evil.example/dav/x.txt') ],
    [ 'a member listed under the wrong folder', [qw(plain)], qr/not a member/,
      listing => sub { my ($dir, $r) = @_; $dir eq 'sub' ? [ @$r, response('/dav/x.txt', "x\n") ] : $r } ],
    [ 'a sync answer without a token', [qw(iss)], qr/token/, no_token => 1 ],
    [ 'bytes that do not match the Repr-Digest', [qw(plain)], qr/match/,
      get => sub { my ($req, $c) = @_; { status => 200, headers => [ ETag => etag($c), 'Repr-Digest' => repr_digest($c) ],
                                         body => 'X' . substr($c, 1) } } ],
    [ "bytes that do not match the listing's I:repr-digest", [qw(iss)], qr/match/,
      get => sub { my ($req, $c) = @_; { status => 200, headers => [ ETag => etag($c) ], body => 'X' . substr($c, 1) } } ],
    [ 'a connection closed in the middle of a body', [qw(plain iss)], qr/stopped answering|closed|transfer/i,
      get => sub { my ($req, $c) = @_; { status => 200, headers => [ ETag => etag($c) ], body => $c,
                                         close_after => int(length($c) / 2) } } ],
    [ 'a manifest with a bad magic', [qw(iss)], qr/manifest/,
      $manifest->(sub { my ($h) = @_; $h->{magic} = 'XXX1'; manifest_pack($h) }) ],
    [ 'a manifest whose sizes do not sum', [qw(iss)], qr/manifest/,
      $manifest->(sub { my ($h) = @_; $h->{entries}[0][1] += 7; manifest_pack($h) }) ],
);
my $n = 0;
$n += @{ $_->[1] } for @cases;
plan tests => 9 * $n + 4;

my $tmp = File::Temp::tempdir(CLEANUP => 1);
my $seq = 0;

for my $case (@cases) {
    my ($name, $modes, $why, %bad) = @$case;
    for my $mode (@$modes) {
        my $L = "$mode server, $name";
        my $dir = "$tmp/" . ++$seq;
        File::Path::make_path("$dir/local", "$dir/state");
        my $c = { tmp => $dir, local => "$dir/local", state => "$dir/state" };
        my $srv = ISSFakeDav::start(phase => 'v1', handler => sub {
            my ($req, $phase) = @_;
            return good_answer($mode, $req, \%V1, 'tok-1') if $phase eq 'v1';
            return good_answer($mode, $req, \%V2, 'tok-2', %bad) if $phase eq 'bad';
            return good_answer($mode, $req, \%V2, 'tok-2');
        });
        $c->{url} = "$srv->{url}/dav/";
        my $r = run_sync($c, timeout => 60);
        ok_run($r, 0, "$L: a good first sync");
        ok_tree(local_tree($c), expect_tree(%V1), "$L: a good first sync: the local tree");

        ISSFakeDav::phase($srv, 'bad');
        ISSFakeDav::clear_requests($srv);
        my $before = local_tree($c);
        $r = run_sync($c, timeout => 60);
        ok_run($r, 5, "$L: exit 5");
        ok($r->{err} =~ /iss-sync: error: .*$why/ ? 1 : 0, 1, "$L: a clear error ($why)")
            or print "# stderr: $r->{err}\n";
        ok_tree(local_tree($c), $before, "$L: nothing changed here");
        ok(temp_leftovers($c->{local}), '', "$L: no temporary file left");
        ok(join(' ', grep { !/^(?:OPTIONS|PROPFIND|REPORT|GET|HEAD) / } ISSFakeDav::requests($srv)), '',
           "$L: nothing written to the server");

        ISSFakeDav::phase($srv, 'v2');
        $r = run_sync($c, timeout => 60);
        ok_run($r, 0, "$L: the server answers well again: exit 0");
        ok_tree(local_tree($c), expect_tree(%V2), "$L: ... and its changes arrive (the state had not moved on)");
        print "# the fake server's handler failed: ", ISSFakeDav::errors($srv) if ISSFakeDav::errors($srv);
        ISSFakeDav::stop($srv);
    }
}

# ---- a server that is not there -------------------------------------------------
{
    my $dir = "$tmp/unreachable";
    File::Path::make_path("$dir/local", "$dir/state");
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0) or die $!;
    my $port = $s->sockport;
    close $s;
    my $c = { tmp => $dir, local => "$dir/local", state => "$dir/state", url => "http://127.0.0.1:$port/dav/" };
    ISSTest::spew("$dir/local/keep.txt", "kept\n");
    my $before = local_tree($c);
    my $r = run_sync($c, timeout => 60);
    ok_run($r, 5, 'an unreachable server: exit 5');
    ok($r->{err} =~ /iss-sync: error: .*reach/ ? 1 : 0, 1, 'an unreachable server: a clear error') or print "# stderr: $r->{err}\n";
    ok_tree(local_tree($c), $before, 'an unreachable server: nothing changed here');
    ok(temp_leftovers($c->{local}), '', 'an unreachable server: no temporary file left');
}

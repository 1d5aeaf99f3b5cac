# SabreDAV's partial update (https://sabre.io/dav/http-patch/): PATCH with
# Content-Type application/x-sabredav-partialupdate and X-Update-Range.
# The table of that page, byte for byte on disk and by GET, with the strong
# ETag of the result (usable in an immediate If-Match); every refusal
# (400, 411, 412, 413, 415, 416, 404, 405) answers with its status and a
# body that names it, and leaves the file byte-identical and the sync token
# where it was; a successful update is exactly one change of the log.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use Digest::SHA qw(sha256);
use MIME::Base64 qw(encode_base64url);
use IO::Socket::INET;
use File::Spec;

my @table = (
    [ 'bytes=0-3',  "----567890" ],
    [ 'bytes=1-4',  "1----67890" ],
    [ 'bytes=0-',   "----567890" ],
    [ 'bytes=-4',   "123456----" ],
    [ 'bytes=-2',   "12345678----" ],
    [ 'bytes=2-',   "12----7890" ],
    [ 'bytes=12-',  "1234567890\0\0----" ],
    [ 'append',     "1234567890----" ],
);
my @bad_ranges = (undef, 'bytes=a-b', 'bytes=', 'lines=1-2', 'bytes=-0');

plan tests => 2 + 13 * @table                     # the table
            + 1 + 5 * @bad_ranges                  # 400
            + 5 * 3                                # 416
            + 5 + 6 + 5 + 5 + 6                    # 411, 415, 412, 404, 405
            + 6                                    # without / with If-Match
            + 6;                                   # /patchlim/ 413

my $L = '/patch/sabre';
my $dir = files_dir() =~ s{files$}{files-patch}r . '/sabre';
my $state = File::Spec->catdir(t_dir(), 'dav', 'state-patch');
my $NS = 'https://mod-iss.org/ns/iss/1';

sub disk { slurp("$dir/$_[0]") }
sub show { my $s = shift; defined $s ? join('', map { $_ eq "\0" ? '\0' : $_ } split //, $s) : '<none>' }

# The last entry of the change log of /patch/ (iss-state DIR log).
sub log_last {
    my (undef, $out) = iss_state($state, 'log');
    return $out =~ /^entries: \d+ to (\d+)/m ? $1 : "none: $out";
}

sub sabre {
    my ($path, $range, $body, %h) = @_;
    return dav(PATCH => $path, body => $body,
               headers => { 'Content-Type' => 'application/x-sabredav-partialupdate',
                            (defined $range ? ('X-Update-Range' => $range) : ()), %h });
}

sub put {
    my ($path, $body) = @_;
    my $r = dav(PUT => $path, body => $body);
    die "PUT $path: " . $r->status_line . "\n" unless $r->code =~ /^20[14]$/;
    return $r->header('ETag');
}

ok(dav(MKCOL => "$L/")->code, 201, "MKCOL $L/");

# ---- the table of sabre.io ------------------------------------------------
my $orig = '1234567890';
ok(put("$L/t.txt", $orig), strong_etag($orig), 'PUT answers the strong ETag of the content');
for my $c (@table) {
    my ($range, $want) = @$c;
    put("$L/t.txt", $orig);
    my $tok = sync_token_of('/patch/');
    my $last = log_last();
    my $r = sabre("$L/t.txt", $range, '----');
    ok($r->code, 204, "$range: 204");
    ok(show(disk('t.txt')), show($want), "$range: the file on disk");
    my $g = dav(GET => "$L/t.txt");
    ok(show($g->content), show($want), "$range: GET");
    ok($r->header('ETag') // '<none>', strong_etag($want), "$range: the ETag of the result");
    ok($g->header('ETag') // '<none>', strong_etag($want), "$range: GET gives the same ETag");
    ok(($r->header('ETag') // '') !~ m{^W/} ? 1 : 0, 1, "$range: a strong ETag");

    # exactly one change in the log, naming the file
    ok(log_last(), $last =~ /^\d+$/ ? $last + 1 : "a number, not $last", "$range: one entry in the change log");
    my $s = sync_report("$L/", token => $tok, level => 1);
    ok($s->{code}, 207, "$range: sync-collection from the token before");
    ok(join(' ', @{ $s->{order} }), "$L/t.txt", "$range: ... lists the file, once");
    ok(($s->{members}{"$L/t.txt"}{props}{getetag} // ''), strong_etag($want), "$range: ... with the new ETag");

    # the ETag works at once in If-Match (a strong comparison)
    my $r2 = sabre("$L/t.txt", 'bytes=0-0', 'Z', 'If-Match' => $r->header('ETag') // '"none"');
    ok($r2->code, 204, "$range: a second PATCH with If-Match of that ETag at once: 204");
    my $want2 = 'Z' . substr($want, 1);
    ok(show(disk('t.txt')), show($want2), "$range: ... applied");
    ok($r2->header('ETag') // '<none>', strong_etag($want2), "$range: ... with its ETag");
}

# ---- refusals ---------------------------------------------------------------
my $E = put("$L/e.txt", $orig);
my $tok = sync_token_of('/patch/');
ok(($tok // '') =~ m{^https://mod-iss\.org/ns/sync/} ? 1 : 0, 1, 'the location has a sync token');
my $last = log_last();

# status, an error body of our namespace with a message, and nothing changed
sub refused {
    my ($name, $status, $tag, $code, $body, %o) = @_;
    my $file = $o{file} // 'e.txt';
    my $content = exists $o{content} ? $o{content} : $orig;
    ok($code, $status, "$name: $status");
    my $re = ref $tag ? $tag : qr/\Q$tag\E/;
    my $named = $body =~ m{xmlns:I="\Q$NS\E"} && $body =~ m{<I:$re\s*/>}
                && $body =~ m{<I:message>[^<]{10,}</I:message>};
    ok($named ? 1 : 0, 1, "$name: the body names " . (ref $tag ? 'an element of ours' : "<I:$tag/>") . ' and says why')
        or print "# body: $body\n";
    ok(show(disk($file)), show($content), "$name: the file is byte-identical");
    ok(sync_token_of('/patch/') // '<none>', $tok, "$name: the sync token did not change");
}
sub refused_res {
    my ($name, $status, $tag, $r, %o) = @_;
    refused($name, $status, $tag, $r->code, $r->content, %o);
    ok(log_last(), $last, "$name: no entry in the change log");
}

for my $range (@bad_ranges) {
    my $name = defined $range ? "X-Update-Range: $range" : 'no X-Update-Range';
    refused_res($name, 400, 'invalid-update-range', sabre("$L/e.txt", $range, '----'));
}
refused_res('bytes=5-3', 416, 'update-range-mismatch', sabre("$L/e.txt", 'bytes=5-3', '----'));
refused_res('bytes=0-9 with 4 bytes', 416, 'update-range-mismatch', sabre("$L/e.txt", 'bytes=0-9', '----'));
refused_res('bytes=-20 of a 10-byte file', 416, 'update-range-mismatch', sabre("$L/e.txt", 'bytes=-20', '----'));

# No Content-Length: a chunked body, sent by hand (LWP always counts).
{
    my ($host, $port) = url('/') =~ m{^http://([^/:]+):(\d+)/} or die 'no url';
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 20)
        or die "connect $host:$port: $!";
    binmode $s;
    print $s "PATCH $L/e.txt HTTP/1.1\r\nHost: $host:$port\r\n"
           . "Content-Type: application/x-sabredav-partialupdate\r\n"
           . "X-Update-Range: bytes=0-3\r\nTransfer-Encoding: chunked\r\n"
           . "Connection: close\r\n\r\n4\r\n----\r\n0\r\n\r\n";
    local $/;
    my $raw = <$s> // '';
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    $body //= '';
    if (($head // '') =~ /^Transfer-Encoding:\s*chunked/mi) {
        my $plain = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $plain .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $plain;
    }
    my ($code) = ($head // '') =~ m{^HTTP/1\.\d (\d{3})};
    refused('chunked, no Content-Length', 411, 'content-length-required', $code // 0, $body);
    ok(log_last(), $last, 'chunked, no Content-Length: no entry in the change log');
}

{
    my $r = dav(PATCH => "$L/e.txt", body => '----',
                headers => { 'Content-Type' => 'text/plain', 'X-Update-Range' => 'bytes=0-3' });
    refused_res('Content-Type text/plain', 415, 'unsupported-patch-format', $r);
    my $ap = $r->header('Accept-Patch') // '';
    ok(($ap =~ m{(^|[\s,])application/vcdiff\s*(,|$)} && $ap =~ m{(^|[\s,])application/x-sabredav-partialupdate\s*(,|$)}) ? 1 : 0,
       1, "415: Accept-Patch lists both formats ($ap)");
}

refused_res('If-Match of another ETag', 412, qr/[\w-]+/, # any element of ours
            sabre("$L/e.txt", 'bytes=0-3', '----', 'If-Match' => strong_etag('something else')));

refused_res('a missing file', 404, 'not-found', sabre("$L/none.txt", 'bytes=0-3', '----'),
            file => 'none.txt', content => undef);

{
    my $r = sabre("$L/", 'bytes=0-3', '----');
    refused_res('a collection', 405, 'not-a-file', $r);
    ok(($r->header('Allow') // '') !~ /\bPATCH\b/ && ($r->header('Allow') // '') =~ /\bGET\b/ ? 1 : 0, 1,
       '405: Allow without PATCH');
}

# ---- success without and with If-Match (SabreDAV does not require it) ---
{
    my $r = sabre("$L/e.txt", 'bytes=0-3', 'abcd');
    ok($r->code, 204, 'no If-Match: 204');
    ok(show(disk('e.txt')), 'abcd567890', '... applied');
    ok($r->header('ETag') // '<none>', strong_etag('abcd567890'), '... with the ETag of the result');
    $r = sabre("$L/e.txt", 'append', 'XY', 'If-Match' => $r->header('ETag') // '"none"');
    ok($r->code, 204, 'the right If-Match: 204');
    ok(show(disk('e.txt')), 'abcd567890XY', '... applied');
    ok(log_last(), $last =~ /^\d+$/ ? $last + 2 : "a number, not $last", 'two updates, two entries in the change log');
}

# ---- /patchlim/: ISSPatchMaxTargetSize 64K --------------------------------
{
    ok(dav(MKCOL => '/patchlim/sabre/')->code, 201, 'MKCOL /patchlim/sabre/');
    my $ldir = files_dir() =~ s{files$}{files-patchlim}r . '/sabre';
    put('/patchlim/sabre/l.txt', $orig);
    my $ltok = sync_token_of('/patchlim/');
    my $r = sabre('/patchlim/sabre/l.txt', 'bytes=70000-', '----');
    ok($r->code, 413, 'bytes=70000- past a limit of 64K: 413');
    ok(($r->content =~ m{<I:patch-too-large\s*/>} && $r->content =~ m{<I:message>[^<]{10,}</I:message>}) ? 1 : 0, 1,
       '... the body names <I:patch-too-large/>') or print '# body: ', $r->content, "\n";
    ok(show(slurp("$ldir/l.txt")), $orig, '... the file is byte-identical');
    ok(sync_token_of('/patchlim/') // '<none>', $ltok, '... the sync token did not change');
    ok(sabre('/patchlim/sabre/l.txt', 'bytes=60000-', '----')->code, 204, 'bytes=60000- within the limit: 204');
}

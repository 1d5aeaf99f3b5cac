# CORS for browser sync apps (ISSCORSAllowOrigin): preflights for every
# method and request header of the protocol, answered before
# authentication; the response headers an app needs exposed; credentials
# only for origins listed by name; nothing where it is not configured.
# Then a real browser, Debian's headless Chromium, runs an app from
# another origin (t/cors/index.html on the second port) against /cors: a
# first sync, a PUT, a SabreDAV partial update, a sync with the token.
# Chromium comes from scripts/deps.sh; without it this test fails, it
# never skips.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);

plan tests => 45;

my $app = "http://127.0.0.1:$ENV{ISS_CORS_PORT}";
my $alice = 'Basic ' . encode_base64('alice:pw-alice', '');
my @methods = qw(GET HEAD PUT DELETE OPTIONS PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK REPORT PATCH POST);
my @req_headers = qw(Authorization Content-Type Depth Destination Overwrite If If-Match If-None-Match
                     If-Range Range Lock-Token Timeout Repr-Digest Content-Digest Want-Repr-Digest
                     X-Update-Range ISS-Upload-Session A-IM OC-Checksum X-OC-Mtime);
my @exposed = qw(ETag Repr-Digest DAV Accept-Patch ISS-Chunking ISS-Upload-Session ISS-Chunks-Stored IM Delta-Base);

sub listed { my ($list, $name) = @_; scalar grep { lc $_ eq lc $name } split /\s*,\s*/, $list // '' }
sub cors_headers { my ($r) = @_; join ' ', sort grep { /^Access-Control-/i } $r->headers->header_field_names }

sub preflight {
    my ($path, $origin, $method) = @_;
    return dav(OPTIONS => $path, headers => { Origin => $origin, 'Access-Control-Request-Method' => $method,
                                             'Access-Control-Request-Headers' => 'authorization,depth,content-type' });
}

# ---- a listed origin ------------------------------------------------------------
my $r = preflight('/cors/', $app, 'REPORT');
ok($r->code, 204, 'preflight from a listed origin: 204, without credentials (it never has any)');
ok($r->header('Access-Control-Allow-Origin') // '', $app, '... Allow-Origin: that origin');
ok($r->header('Access-Control-Allow-Credentials') // '', 'true', '... credentials allowed (listed by name)');
my $am = $r->header('Access-Control-Allow-Methods');
ok(join(' ', grep { !listed($am, $_) } @methods), '', '... every method of the protocol allowed');
my $ah = $r->header('Access-Control-Allow-Headers');
ok(join(' ', grep { !listed($ah, $_) } @req_headers), '', '... every request header of the protocol allowed');
ok(($r->header('Access-Control-Max-Age') // 0) > 0 ? 1 : 0, 1, '... and a Max-Age');
ok(listed(scalar $r->header('Vary'), 'Origin'), 1, '... Vary: Origin');
ok(preflight('/cors/x.txt', 'https://app.example.org', 'PATCH')->header('Access-Control-Allow-Origin') // '',
   'https://app.example.org', 'the other listed origin too');

$r = dav(PROPFIND => '/cors/', headers => { Origin => $app, Authorization => $alice, Depth => 0 });
ok($r->code, 207, 'a request from a listed origin, with credentials: served');
ok($r->header('Access-Control-Allow-Origin') // '', $app, '... Allow-Origin');
ok($r->header('Access-Control-Allow-Credentials') // '', 'true', '... Allow-Credentials');
my $eh = $r->header('Access-Control-Expose-Headers');
ok(join(' ', grep { !listed($eh, $_) } @exposed), '', '... ETag, Repr-Digest, DAV, Accept-Patch and the ISS-* headers exposed');
$r = dav(PROPFIND => '/cors/', headers => { Origin => $app, Depth => 0 });
ok($r->code, 401, 'without credentials: 401');
ok($r->header('Access-Control-Allow-Origin') // '', $app, '... and the refusal is readable by the app (Allow-Origin)');

# ---- an origin not listed -----------------------------------------------------------
$r = preflight('/cors/', 'https://evil.example.net', 'REPORT');
ok(cors_headers($r), '', 'preflight from an origin not listed: no Access-Control-* header');
ok($r->code != 204 ? 1 : 0, 1, '... and not answered as a preflight (' . $r->code . ')');
$r = dav(PROPFIND => '/cors/', headers => { Origin => 'https://evil.example.net', Authorization => $alice, Depth => 0 });
ok(cors_headers($r), '', 'a request from it: no Access-Control-* header');
$r = preflight('/cors/', 'https://app.example.org.evil.net', 'GET');
ok(cors_headers($r), '', 'a look-alike origin is not listed');

# ---- `*`: any origin, never credentials ---------------------------------------------------
$r = preflight('/corsany/', 'https://anyone.example', 'PUT');
ok($r->code, 204, 'ISSCORSAllowOrigin *: preflight from any origin: 204');
ok($r->header('Access-Control-Allow-Origin') // '', '*', '... Allow-Origin: *');
ok(defined $r->header('Access-Control-Allow-Credentials') ? 1 : 0, 0, '... and no credentials, ever');
$r = dav(PUT => '/corsany/any.txt', body => 'any', headers => { Origin => 'https://anyone.example' });
ok($r->code, 201, 'a PUT from any origin: 201');
ok(($r->header('Access-Control-Allow-Origin') // '') eq '*'
   && !defined $r->header('Access-Control-Allow-Credentials') ? 1 : 0, 1, '... Allow-Origin *, no credentials');

# ---- not configured: nothing --------------------------------------------------------------------
$r = preflight('/patch/', $app, 'PUT');
ok(cors_headers($r), '', 'a location without ISSCORSAllowOrigin: a preflight gets no Access-Control-* header');
ok(listed(scalar $r->header('Vary'), 'Origin'), 0, '... and no Vary: Origin');
ok(($r->header('DAV') // '') =~ /mod-iss/ ? 1 : 0, 1, '... it is an ordinary OPTIONS, answered by mod_dav');
$r = dav(GET => '/patch/', headers => { Origin => $app });
ok(cors_headers($r), '', '... nor any other request');

# ---- the directive --------------------------------------------------------------------------------
for my $bad ('app.example.org', 'https://app.example.org/path', 'ftp://x.example', 'https://', 'https://a.example,https://b.example') {
    my ($code, $out) = own_httpd_configtest(config => "<Location /s/>\nISSCORSAllowOrigin $bad\n</Location>");
    ok($code != 0 && $out =~ /ISSCORSAllowOrigin: '\Q$bad\E' is not an origin/ ? 1 : 0, 1,
       "ISSCORSAllowOrigin $bad: refused, with a message") or print "# $out\n";
}

# ---- a real browser ---------------------------------------------------------------------------------
# As the test user (no home): HOME and a profile of its own.  The flags
# keep Chromium off the network it would try to reach at start
# (docs: the machine's notes); --virtual-time-budget lets the page's
# fetches finish before the DOM is dumped.
my $home = tempdir(CLEANUP => 1);
my $dav = 'http://127.0.0.1:' . Apache::Test::vars('port') . '/cors/';
my $page = "$app/cors-page/index.html?dav=$dav&user=alice&pass=pw-alice";
my $t0 = time;
my $code = real_client($home, "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking --disable-component-update --disable-sync --disable-extensions --user-data-dir='$home/profile' --virtual-time-budget=15000 --dump-dom '$page'") >> 8;
my $dom = slurp("$home/client.out");
my ($json) = ($dom // '') =~ m{<pre id="result">(.*?)</pre>}s;
ok(defined $json && $json =~ /"done":true/ ? 1 : 0, 1, 'Chromium ran the app to its end')
    or print "# chromium exit $code (scripts/deps.sh installs chromium)\n# ",
             join("\n# ", split /\n/, $dom // ''), "\n";
$json //= '{}';
$json =~ s/&lt;/</g; $json =~ s/&gt;/>/g; $json =~ s/&quot;/"/g; $json =~ s/&amp;/&/g;
my $seen = eval { require JSON::PP; JSON::PP::decode_json($json) } || {};
# The app's requests, in order: OPTIONS, REPORT, PUT, PATCH, REPORT, GET,
# PATCH (with a stale If-Match).
my @st = map { "$_->{method} " . ($_->{status} // 0) } @{ $seen->{steps} || [] };
ok("@st", 'OPTIONS 200 REPORT 207 PUT 201 PATCH 204 REPORT 207 GET 200 PATCH 412',
   'every request of the app got its answer (the last PATCH, with a stale If-Match, a readable 412)');
ok(($seen->{options}{DAV} // '') =~ m{<https://mod-iss\.org/ns/iss/1>} ? 1 : 0, 1, 'the app read the DAV header of OPTIONS');
ok(($seen->{options}{'Accept-Patch'} // '') =~ m{application/x-sabredav-partialupdate} ? 1 : 0, 1, '... and Accept-Patch');
ok(($seen->{first}{token} // '') =~ m{^https://mod-iss\.org/ns/sync/} ? 1 : 0, 1, 'its first sync gave a sync token');
ok($seen->{put}{ETag} // '', strong_etag('hello from chromium'), 'its PUT: it read the ETag');
ok($seen->{put}{'Repr-Digest'} // '', repr_digest('hello from chromium'), '... and Repr-Digest');
ok($seen->{patch}{ETag} // '', strong_etag('HELLO from chromium'), 'the partial update with the right If-Match: its new ETag');
ok(join(',', sort keys %{ $seen->{next}{members} || {} }), '/cors/app.txt', 'its sync with the token lists the file');
ok($seen->{next}{members}{'/cors/app.txt'} // '', strong_etag('HELLO from chromium'), '... with the new ETag');
ok($seen->{content} // '', 'HELLO from chromium', 'its GET read the patched content');
ok(slurp(File::Spec->catfile(t_dir(), 'dav', 'files-cors', 'app.txt')) // '', 'HELLO from chromium',
   'the server has it on disk');
ok(time - $t0 < 60 ? 1 : 0, 1, 'Chromium took ' . (time - $t0) . ' s');

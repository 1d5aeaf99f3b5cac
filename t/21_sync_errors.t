# Bad sync-collection requests and tokens: each gets its status and error
# element, and leaves the change log exactly as it was.  Also: sync
# tokens in the If header (RFC 6578 section 5) and the retention window.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;
use LWP::UserAgent;
use HTTP::Request;

plan tests => 176;

my $L = '/sync/err';
my $state = File::Spec->catdir(t_dir(), 'dav', 'state-sync');
sub log_dump { (iss_state($state, 'log'))[1] }

ok(dav(MKCOL => "$L/")->code, 201);
ok(dav(PUT => "$L/f.txt", body => 'f')->code, 201);
my $tok = sync_token_of("$L/");
my $before = log_dump();
ok($before =~ /^entries: \d+ to \d+/ ? 1 : 0, 1, 'iss-state log reads the log');

# Send a REPORT; check status, error element and an unchanged log.
sub refused {
    my ($name, $status, $elem, %o) = @_;
    my $ua = LWP::UserAgent->new(keep_alive => 0);
    my %h = ('Content-Type' => 'application/xml', Depth => '0', %{ $o{headers} || {} });
    delete $h{$_} for grep { !defined $h{$_} } keys %h;
    my $req = HTTP::Request->new(REPORT => url($o{path} // "$L/"), [ %h ],
                                 $o{body} // sync_body(token => $o{token} // $tok, level => 1));
    my $res = $ua->request($req);
    ok($res->code, $status, "$name: $status");
    if (defined $elem) {
        ok($res->content =~ m{<(?:\w+:)?\Q$elem\E\b[^>]*/>} ? 1 : 0, 1, "$name: <$elem/>")
            or print STDERR "# body: ", $res->content, "\n";
        ok($res->content =~ m{<I:message[^>]*>[^<]{10,}</I:message>} ? 1 : 0, 1, "$name: a message that says why");
    }
    ok($res->content =~ /\Q$o{says}\E/ ? 1 : 0, 1, "$name: the body says so") if $o{says};
    ok(log_dump(), $before, "$name: the log is unchanged");
    ok(sync_token_of("$L/"), $tok, "$name: the token is unchanged");
}

# ---- the request ------------------------------------------------------------------
refused('Depth infinity', 400, 'invalid-sync-collection', headers => { Depth => 'infinity' });
refused('Depth 2', 400, 'invalid-sync-collection', headers => { Depth => '2' });
refused('Depth one', 400, 'invalid-sync-collection', headers => { Depth => 'one' });

# Depth: 1 (what some client libraries send) and no Depth header are
# answered as Depth: 0, with the same members and token.
{
    my $want = sync_report("$L/", token => '', level => 1);
    ok($want->{code}, 207, 'Depth 0: 207');
    for my $d ('1', undef) {
        my $name = defined $d ? "Depth $d" : 'no Depth header';
        my $got = sync_report("$L/", token => '', level => 1, headers => { Depth => $d });
        ok($got->{code}, 207, "$name: 207, as with Depth 0");
        ok(join(' ', @{ $got->{order} }), join(' ', @{ $want->{order} }), "$name: the same members");
        ok($got->{token}, $want->{token}, "$name: the same token");
    }
    my $mark = log_mark();
    sync_report("$L/", token => '', level => 1, headers => { Depth => 'one' });
    my $log = log_since($mark);
    ok($log =~ /ISS01041: .*Depth/ && $log !~ /\[dav:error\]|AH00580/ ? 1 : 0, 1,
       'a bad Depth is logged by mod_iss at info, not by mod_dav as an error') or print "# $log\n";
}
refused('malformed XML', 400, undef, body => '<D:sync-collection xmlns:D="DAV:"><D:sync-token>', says => 'not well-formed XML');
refused('no body', 400, undef, body => '', says => 'missing');
refused('no DAV:sync-token', 400, 'invalid-sync-collection',
        body => '<D:sync-collection xmlns:D="DAV:"><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>');
refused('no DAV:prop', 400, 'invalid-sync-collection',
        body => '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1</D:sync-level></D:sync-collection>');
refused('two sync-tokens', 400, 'invalid-sync-collection',
        body => '<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-token/><D:sync-level>1</D:sync-level><D:prop/></D:sync-collection>');
refused('sync-level 2', 400, 'invalid-sync-collection', body => sync_body(token => $tok, level => 2));
refused('limit 0', 400, 'invalid-sync-collection', body => sync_body(token => $tok, level => 1, limit => 0));
refused('limit -3', 400, 'invalid-sync-collection', body => sync_body(token => $tok, level => 1, limit => -3));
refused('limit abc', 400, 'invalid-sync-collection', body => sync_body(token => $tok, level => 1, limit => 'abc'));
refused('limit without nresults', 400, 'invalid-sync-collection',
        body => qq{<D:sync-collection xmlns:D="DAV:"><D:sync-token>$tok</D:sync-token><D:sync-level>1</D:sync-level><D:limit/><D:prop/></D:sync-collection>});
refused('on a file', 403, 'supported-report', path => "$L/f.txt");

# ---- the token ---------------------------------------------------------------------
my ($id) = $tok =~ m{/sync/([^/]+)/};
my $other = do { dav(PUT => '/other/o.txt', body => 'o'); sync_token_of('/other/') };
ok(defined $other && $other ne $tok ? 1 : 0, 1, 'another location has another token');
refused('garbage token', 403, 'valid-sync-token', token => 'foo');
refused('a URI of another server', 403, 'valid-sync-token', token => 'http://example.com/ns/sync/1234');
refused('our prefix, bad store id', 403, 'valid-sync-token', token => 'https://mod-iss.org/ns/sync/zz/1');
refused('our prefix, bad number', 403, 'valid-sync-token', token => "https://mod-iss.org/ns/sync/$id/1x");
# Positions are sealed with the location's key (issue 16 item 1): the
# test seals what the server never handed out with that key.
refused('a token from the future', 403, 'valid-sync-token', token => seal_sync_token($state, $id, 'n', 99999999));
refused('a token of another location', 403, 'valid-sync-token', token => $other);
refused('a listing continuation from the future', 403, 'valid-sync-token', token => seal_sync_token($state, $id, 'i', 99999999, path => 'a'));
refused('a member continuation from the future', 403, 'valid-sync-token', token => seal_sync_token($state, $id, 'c', 99999999, j => 0, path => 'f.txt'));
my ($dc, $decoded) = iss_state($state, 'token', $tok);
my ($pos) = $decoded =~ /^position: (\d+)$/m;
ok($dc == 0 && defined $pos ? 1 : 0, 1, 'iss-state token reads the position of a token') or print "# $decoded\n";
ok(seal_sync_token($state, $id, 'n', $pos), $tok, '... and the test seals that position into the same token (the format of docs/protocol.md)');
my ($last_now) = log_dump() =~ /^entries: \d+ to (\d+)/;
ok($pos, $last_now, '... which is the last entry of the log');
# The old decimal forms name a position anyone can choose: refused, even
# the one that was current, so that no answer tells where the log is.
refused('the old decimal form of the current position', 403, 'valid-sync-token', token => "https://mod-iss.org/ns/sync/$id/$pos");
refused('the old decimal form of position 0', 403, 'valid-sync-token', token => "https://mod-iss.org/ns/sync/$id/0");
refused('the old listing continuation', 403, 'valid-sync-token', token => "https://mod-iss.org/ns/sync/$id/i0/a");
refused('another location\'s block under this store id', 403, 'valid-sync-token',
        token => "https://mod-iss.org/ns/sync/$id/" . ($other =~ m{/([0-9a-f]{32})$})[0]);
(my $flipped = $tok) =~ s{([0-9a-f])$}{$1 eq '0' ? '1' : '0'}e;
refused('one digit of the block changed', 403, 'valid-sync-token', token => $flipped);
($dc, $decoded) = iss_state($state, 'token', $flipped);
ok($dc, 1, 'iss-state token refuses it too');

# ---- retention: ISSSyncRetention count=3 on /syncret/ -----------------------------------
dav(PUT => '/syncret/r0.txt', body => 'r');
my $old = sync_token_of('/syncret/');
dav(PUT => "/syncret/r$_.txt", body => 'r') for 1 .. 5;
my $r = sync_report('/syncret/', token => $old, level => 1);
ok($r->{code}, 403, 'a token older than the retention window: 403');
ok($r->{res}->content =~ m{valid-sync-token} ? 1 : 0, 1, '... valid-sync-token');
my (undef, $rlog) = iss_state(File::Spec->catdir(t_dir(), 'dav', 'state-syncret'), 'log');
my ($first, $last) = $rlog =~ /^entries: (\d+) to (\d+)/;
ok($last - $first + 1, 3, 'the log keeps three entries');
my $recent = sync_token_of('/syncret/');
dav(PUT => '/syncret/r9.txt', body => 'r');
$r = sync_report('/syncret/', token => $recent, level => 1);
ok($r->{code}, 207, 'a token inside the window works');
ok(join(' ', keys %{ $r->{members} }), '/syncret/r9.txt', '... and gives the change');

# iss-state compact drops entries now; recover with nothing to recover.
my $syncret = File::Spec->catdir(t_dir(), 'dav', 'state-syncret');
my $keep = sync_token_of('/syncret/');
dav(PUT => "/syncret/c$_.txt", body => 'c') for 1 .. 2;
my ($crc, $cout) = iss_state($syncret, 'compact', 'count=1');
ok($crc, 0, 'iss-state compact runs');
ok($cout =~ /^removed (\d+) entries/ ? $1 : $cout, 2, '... and says how many entries it removed');
ok(sync_report('/syncret/', token => $keep, level => 1)->{code}, 403, '... after which an older token is refused');
($crc, $cout) = iss_state($syncret, 'compact', 'bogus=1');
ok($crc, 2, 'iss-state compact with a bad word: usage error');
($crc, $cout) = iss_state($syncret, 'recover');
ok($cout, "recovered 0 interrupted writes\n", 'iss-state recover: nothing in flight');

# ---- sync tokens in If (RFC 6578 section 5) -------------------------------------------------
$tok = sync_token_of("$L/");
ok(dav(PUT => "$L/g.txt", body => 'g1', headers => { If => "(<$tok>)" })->code, 201,
   'If: (<current token>) matches');
ok(dav(PUT => "$L/g.txt", body => 'g2', headers => { If => "(<$tok>)" })->code, 412,
   'the same token after a change below the collection: 412');
ok(slurp(files_dir() =~ s{/files$}{/files-sync/err/g.txt}r), 'g1', '... and the file is unchanged');
ok(dav(PUT => "$L/g.txt", body => 'g3', headers => { If => "(Not <$tok>)" })->code, 204,
   'If: (Not <stale token>) matches');
# RFC 6578's own example: create a member only if the collection did not
# change, with a list tagged with the collection (mod_dav checks the
# parent of a new member).
my $res;
my $cur = sync_token_of("$L/");
ok(dav(PUT => "$L/new1.txt", body => 'n', headers => { If => '<' . url("$L/") . "> (<$cur>)" })->code, 201,
   'a tagged list naming the collection: PUT of a new member');
$res = dav(PUT => "$L/new2.txt", body => 'n', headers => { If => '<' . url("$L/") . "> (<$cur>)" });
# mod_dav reports a failed check of the parent as a 207 naming it.
ok(($res->code == 412 || ($res->code == 207 && $res->content =~ m{HTTP/1.1 412})) ? 1 : 0, 1,
   '... and 412 once the collection changed');
ok(-e (files_dir() =~ s{/files$}{/files-sync/err/new2.txt}r) ? 1 : 0, 0, '... creating nothing');
$cur = sync_token_of("$L/");
dav(PUT => '/sync/elsewhere.txt', body => 'e');
ok(dav(PUT => "$L/g.txt", body => 'g6', headers => { If => "(<$cur>)" })->code, 204,
   'a change outside the collection leaves its token current');
ok(dav(PUT => "$L/g.txt", body => 'g7', headers => { If => "(<$other>)" })->code, 412,
   'a token of another location never matches');
ok(dav(PUT => "$L/g.txt", body => 'g8', headers => { If => "(<$cur>) (Not <$cur>)" })->code, 204,
   'lists are or-ed: one matching list is enough');

# ---- the key of the tokens, damaged while httpd runs ------------------------------------------
# Each process sees the file change (one stat) and reads it again; the
# first finds it damaged and makes a new key (ISS01161), the others read
# that one. Tokens made before are refused (403), never read as other
# positions; the new ones work in every process.
{
    my $keyf = "$state/iss-token.key";
    my $before_tok = sync_token_of("$L/");
    ok((stat $keyf)[2] & 07777, 0600, 'the key file is mode 0600');
    my $mark = log_mark();
    spew($keyf, "iss-token-key 1 garbage\n");
    my $after_tok = sync_token_of("$L/");
    ok($after_tok =~ m{^https://mod-iss\.org/ns/sync/[0-9a-f-]+/[0-9a-f]{32}$} && $after_tok ne $before_tok ? 1 : 0, 1,
       'a damaged key: a new key, and a new token for the same position');
    my $log = log_since($mark);
    ok($log =~ /ISS01161: .*iss-token\.key is damaged.*replaced it with a new key/ ? 1 : 0, 1,
       '... logged at warning (ISS01161)') or print "# $log\n";
    ok(slurp($keyf) =~ /^iss-token-key 1 [0-9a-f]{32} [0-9a-f]{16}\n\z/ ? 1 : 0, 1, '... written to the file');
    my $r = sync_report("$L/", token => $before_tok, level => 1);
    ok($r->{code} . ' ' . ($r->{res}->content =~ /valid-sync-token/ ? 'valid-sync-token' : ''), '403 valid-sync-token',
       'a token of the old key: 403 valid-sync-token (the client syncs afresh)');
    my @codes = map { sync_report("$L/", token => $after_tok, level => 1)->{code} } 1 .. 6;
    ok("@codes", '207 207 207 207 207 207', 'the new token works in every process (six requests)');
    my ($c, $out) = iss_state($state, 'token', $after_tok);
    ok($c, 0, 'iss-state token reads the new token with the new key') or print "# $out\n";
}

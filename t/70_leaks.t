# Leaks across users (issue 16 items 1, 2 and 3): one store, /leak/,
# two users.  /leak/alice/ is alice's alone; /leak/drop/ is a drop box
# that every user may write and only alice may read (GET, HEAD,
# PROPFIND); /leak/bob/ and /leak/pub.txt are for everybody.  Bob must
# learn nothing of what he may not read: no name from a sync answer or a
# paging token, no page used up or count moved by what he cannot see, no
# answer of an If header that depends on it, no confirmation of a guess
# of a file's content through an entity tag; and no If header may make
# httpd read, hash or record a file outside the location or one he may
# not read.  Every refused or hidden case also checks that nothing
# changed on disk or in the store.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;
use MIME::Base64 qw(encode_base64);

plan tests => 63;

sub as { my ($user) = @_; ('Authorization' => 'Basic ' . encode_base64("$user:pw-$user", '')) }
my $files = files_dir() =~ s{files$}{files-leak}r;
my $state = File::Spec->catdir(t_dir(), 'dav', 'state-leak');
sub records { my ($code, $out) = iss_state($state, 'list', @_); $out }
sub log_entries { (iss_state($state, 'log'))[1] =~ /^(entries: .*)$/m ? $1 : 'none' }

sub rep {
    my ($user, $path, %o) = @_;
    return sync_report($path, %o, headers => { as($user) });
}
sub token_of {
    my ($user, $path) = @_;
    my $res = dav(PROPFIND => $path, headers => { as($user), Depth => '0', 'Content-Type' => 'application/xml' },
                  body => '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
    my ($t) = $res->content =~ m{<[\w-]+:sync-token>([^<]*)</}s;
    return $t // '';
}
# Every page of a sync from TOKEN with limit 1: ([hrefs], [tokens], [pages' member counts], truncated flags)
sub all_pages {
    my ($user, $path, $token, %o) = @_;
    my (@hrefs, @tokens, @counts, @trunc);
    for (1 .. 50) {
        my $p = rep($user, $path, token => $token, limit => 1, %o);
        last unless $p->{code} == 207;
        push @hrefs, @{ $p->{order} };
        push @counts, scalar @{ $p->{order} };
        push @trunc, $p->{truncated};
        push @tokens, $p->{token};
        $token = $p->{token};
        last unless $p->{truncated};
    }
    return (\@hrefs, \@tokens, \@counts, \@trunc);
}

# ---- the tree ----------------------------------------------------------------------------
ok(dav(MKCOL => '/leak/alice/', headers => { as('alice') })->code, 201, 'MKCOL /leak/alice/ as alice');
ok(dav(MKCOL => '/leak/drop/', headers => { as('alice') })->code, 201, 'MKCOL /leak/drop/ as alice');
ok(dav(MKCOL => '/leak/bob/', headers => { as('bob') })->code, 201, 'MKCOL /leak/bob/ as bob');
for my $n (1 .. 3) {
    dav(PUT => "/leak/alice/secret-name-$n.txt", body => "alice $n", headers => { as('alice') });
}
dav(PUT => '/leak/drop/in-the-box.txt', body => 'dropped', headers => { as('alice') });
dav(PUT => "/leak/bob/b$_.txt", body => "bob $_", headers => { as('bob') }) for 1 .. 2;
dav(PUT => '/leak/pub.txt', body => 'pub', headers => { as('bob') });
ok(dav(GET => '/leak/alice/secret-name-1.txt', headers => { as('bob') })->code, 401, 'bob may not read alice\'s folder');
ok(dav(PROPFIND => '/leak/drop/', headers => { as('bob'), Depth => 0 })->code, 401, '... nor list the drop box');

# ---- item 1: a first sync by pages -------------------------------------------------------
my $hidden = qr{alice|secret|drop|in-the-box};
my ($hrefs, $tokens, $counts, $trunc) = all_pages('bob', '/leak/', '', level => 'infinite');
ok(join(' ', sort @$hrefs), '/leak/bob/ /leak/bob/b1.txt /leak/bob/b2.txt /leak/pub.txt',
   'bob\'s first sync of /leak/ in pages of one: exactly what he may see');
ok(scalar(grep { $_ =~ $hidden } @$tokens), 0, '... no paging token names a hidden member: ' . join(' ', @$tokens));
ok(join(',', @$counts), '1,1,1,1', '... four pages of one member each: hidden members use up no page');
ok(join(',', @$trunc), '1,1,1,0', '... and only pages followed by a visible member say 507');
my $bob_tok = $tokens->[-1];
($hrefs, $tokens, $counts) = all_pages('bob', '/leak/', '');
ok(join(' ', sort @$hrefs) . ' ' . join(',', @$counts), '/leak/bob/ /leak/pub.txt 1,1',
   'at level 1: bob/ and pub.txt, one page each');
($hrefs, $tokens, $counts) = all_pages('alice', '/leak/', '', level => 'infinite');
ok(scalar(@$hrefs) . ' ' . join(',', @$counts), '10 ' . join(',', (1) x 10),
   'alice sees all ten members, a page each');

# ---- item 1: changes since a token --------------------------------------------------------
my $before = log_entries();
dav(PUT => '/leak/alice/secret-new.txt', body => 'n', headers => { as('alice') });
dav(PUT => '/leak/drop/dropped-2.txt', body => 'd2', headers => { as('bob') });
dav(PUT => '/leak/bob/b3.txt', body => 'b3', headers => { as('bob') });
dav(PUT => '/leak/alice/secret-name-1.txt', body => 'changed', headers => { as('alice') });
dav(DELETE => '/leak/alice/secret-name-2.txt', headers => { as('alice') });
($hrefs, $tokens, $counts, $trunc) = all_pages('bob', '/leak/', $bob_tok, level => 'infinite');
ok(join(' ', sort @$hrefs), '/leak/bob/ /leak/bob/b3.txt',
   'bob\'s changes since his token: his new file and its folder only');
ok(join(',', @$counts) . ' ' . join(',', @$trunc), '1,1 1,0', '... in two pages of one: hidden changes use up no page');
ok(scalar(grep { $_ =~ $hidden || m{/\d+\.\d+$} } @$tokens), 0,
   '... no token names a hidden member or counts items of an entry: ' . join(' ', @$tokens));
# the continuation really continues
{
    my $p = rep('bob', '/leak/', token => $tokens->[0], level => 'infinite');
    ok(join(' ', @{ $p->{order} }), '/leak/bob/', '... the first page\'s token resumes at the member it stopped before');
}
($hrefs) = all_pages('alice', '/leak/', $bob_tok, level => 'infinite');
my %once;
ok(join(' ', sort grep { !$once{$_}++ } @$hrefs), '/leak/alice/ /leak/alice/secret-name-1.txt /leak/alice/secret-name-2.txt '
   . '/leak/alice/secret-new.txt /leak/bob/ /leak/bob/b3.txt /leak/drop/ /leak/drop/dropped-2.txt',
   'alice, from the same token: every change');
{
    my $p = rep('bob', '/leak/', token => $bob_tok, level => 'infinite', limit => 100);
    ok($p->{truncated}, 0, 'without a small limit: one page, no 507');
}

# one entry whose items name the same member again and again (a MOVE of a folder, at level 1:
# m1, m2, m1, m2, ...): pages still move forward and end
dav(MKCOL => '/leak/bob/m1/', headers => { as('bob') });
dav(PUT => "/leak/bob/m1/f$_.txt", body => "f$_", headers => { as('bob') }) for 1 .. 3;
my $mtok = token_of('bob', '/leak/bob/');
ok(dav(MOVE => '/leak/bob/m1/', headers => { as('bob'), Destination => url('/leak/bob/m2/') })->code, 201,
   'bob moves a folder of three files');
{
    my ($mh, undef, undef, $mt) = all_pages('bob', '/leak/bob/', $mtok);
    my %u;
    ok(join(' ', sort grep { !$u{$_}++ } @$mh) . ' ' . ($mt->[-1] // 'none') . ' ' . (scalar(@$mt) <= 8 ? 'few' : scalar(@$mt)),
       '/leak/bob/m1/ /leak/bob/m2/ 0 few', '... a sync at level 1 in pages of one ends, with both folders');
}

# ---- item 1: sync tokens in If (RFC 6578 section 5) -----------------------------------------
my $cur = token_of('bob', '/leak/');
ok($cur =~ m{^https://mod-iss\.org/ns/sync/} ? 1 : 0, 1, 'bob reads the DAV:sync-token of /leak/');
dav(PUT => '/leak/alice/another-secret.txt', body => 'x', headers => { as('alice') });
dav(PUT => '/leak/drop/dropped-3.txt', body => 'x', headers => { as('alice') });
my $r = dav(PUT => '/leak/new-1.txt', body => 'n1', headers => { as('bob'), If => '<' . url('/leak/') . "> (<$cur>)" });
ok($r->code, 201, 'If: </leak/> (<token>) after changes bob cannot see: still current (201)');
$r = dav(PUT => '/leak/new-2.txt', body => 'n2', headers => { as('bob'), If => '<' . url('/leak/') . "> (<$cur>)" });
ok(($r->code == 412 || ($r->code == 207 && $r->content =~ m{HTTP/1.1 412})) ? 1 : 0, 1,
   '... and not current after a change he can see (his own new-1.txt)');
ok(-e "$files/new-2.txt" ? 1 : 0, 0, '... which created nothing');
$cur = token_of('bob', '/leak/');
dav(PUT => '/leak/alice/yet-another.txt', body => 'y', headers => { as('alice') });
$r = dav(PUT => '/leak/new-3.txt', body => 'n3', headers => { as('bob'), If => '<' . url('/leak/') . "> (Not <$cur>)" });
ok(($r->code == 412 || ($r->code == 207 && $r->content =~ m{HTTP/1.1 412})) ? 1 : 0, 1,
   '... (Not <token>) is false likewise: a hidden change does not count');
ok(-e "$files/new-3.txt" ? 1 : 0, 0, '... and nothing was created');

# ---- item 1: what a sync token's text tells (positions sealed with the store's key) ---------
# bob's DAV:sync-token of his own folder before and after 1 and 5 writes
# by alice that he may not see: the tokens move (the location changed,
# which is allowed), but no text says by how much.
my $SEALED = qr{^https://mod-iss\.org/ns/sync/[0-9a-f-]{36}/([0-9a-f]{32})$};
sub decoded { my ($c, $out) = iss_state($state, 'token', $_[0]); $c == 0 && $out =~ /^position: (\d+)$/m ? $1 : "refused ($out)" }
sub bits_apart { my $x = pack('H*', $_[0]) ^ pack('H*', $_[1]); unpack('%32b*', $x) }
my $t0 = token_of('bob', '/leak/bob/');
dav(PUT => '/leak/alice/hidden-1.txt', body => 'h', headers => { as('alice') });
my $t1 = token_of('bob', '/leak/bob/');
dav(PUT => "/leak/alice/hidden-$_.txt", body => 'h', headers => { as('alice') }) for 2 .. 5;
my $t5 = token_of('bob', '/leak/bob/');
my ($b0, $b1, $b5) = map { ($_ =~ $SEALED)[0] // 'none' } $t0, $t1, $t5;
ok(join(' ', map { $_ =~ $SEALED ? 'sealed' : $_ } $t0, $t1, $t5), 'sealed sealed sealed',
   'bob\'s tokens before, after 1 and after 5 hidden writes: the store id and 32 hex digits, no decimal position');
ok(length($t1) == length($t5) && length($t0) == length($t1) ? 1 : 0, 1, '... all of one length');
my ($p0, $p1, $p5) = map { decoded($_) } $t0, $t1, $t5;
ok(($p1 =~ /^\d+$/ && $p1 - $p0) . ' ' . ($p5 =~ /^\d+$/ && $p5 - $p0), '1 5',
   "... while the positions the admin tool reads with the key moved by 1 and by 5 ($p0, $p1, $p5)");
ok(bits_apart($b0, $b1) >= 30 && bits_apart($b0, $b5) >= 30 && bits_apart($b1, $b5) >= 30 ? 1 : 0, 1,
   '... and the blocks are unrelated (bits apart: ' . join(', ', bits_apart($b0, $b1), bits_apart($b0, $b5), bits_apart($b1, $b5)) . ' of 128)');
ok(token_of('bob', '/leak/bob/'), $t5, '... with nothing written since: the same token');
my $flipped_tok;
# a token with one digit changed: 403 valid-sync-token, nothing changed; the old decimal
# forms, past or future, get the same answer: no probing of the log's bounds
{
    my $sorted = sub { join "\n", sort split /\n/, records('') };    # DBM order may change
    my ($recs, $entries) = ($sorted->(), log_entries());
    my @probes = ((my $f = $t1) =~ s{([0-9a-f])$}{$1 eq 'a' ? 'b' : 'a'}er,
                  (my $g = $t1) =~ s{/([0-9a-f])([0-9a-f]{31})$}{'/' . ($1 eq 'a' ? 'b' : 'a') . $2}er,
                  map { $t1 =~ s{[0-9a-f]{32}$}{$_}r } 0, $p1, $p5 + 1000);
    my @codes = map { my $p = rep('bob', '/leak/bob/', token => $_); $p->{code} . ($p->{res}->content =~ /valid-sync-token/ ? ' valid-sync-token' : '') } @probes;
    ok(join(', ', @codes), join(', ', ('403 valid-sync-token') x 5),
       'bob\'s token with its last or first digit changed, and the old forms of positions 0, now and the future: each 403 valid-sync-token');
    my ($recs2, $entries2) = ($sorted->(), log_entries());
    ok($recs2 eq $recs && $entries2 eq $entries ? 1 : 0, 1, '... and nothing changed in the store')
        or print STDERR "# before: $entries\n# after: $entries2\n# records before:\n$recs\n# records after:\n$recs2\n" =~ s/^(?!#)/# /mgr;
    $flipped_tok = $probes[0];
}
# a sync from a valid token lists exactly what bob may see
dav(PUT => '/leak/bob/after-seal.txt', body => 's', headers => { as('bob') });
dav(PUT => '/leak/alice/hidden-6.txt', body => 'h', headers => { as('alice') });
{
    my $p = rep('bob', '/leak/bob/', token => $t1);
    ok($p->{code} . ' ' . join(' ', sort @{ $p->{order} }), '207 /leak/bob/after-seal.txt',
       'bob\'s sync of /leak/bob/ from his token: exactly his new file');
    ok(($p->{token} // '') =~ $SEALED ? 1 : 0, 1, '... and a sealed token');
    $p = rep('bob', '/leak/', token => $t1, level => 'infinite');
    ok(join(' ', sort @{ $p->{order} }), '/leak/bob/ /leak/bob/after-seal.txt',
       '... at infinite depth on /leak/: that file and its folder, nothing of alice');
}
# the token with a changed digit in an If header: not current (the PUT is
# still logged as a possible change, as every refused write is)
{
    my $r = dav(PUT => '/leak/bob/if-flipped.txt', body => 'x', headers => { as('bob'), If => '<' . url('/leak/bob/') . "> (<$flipped_tok>)" });
    ok(($r->code == 412 || ($r->code == 207 && $r->content =~ m{HTTP/1.1 412})) ? 1 : 0, 1,
       'a token with a changed digit in an If header: not a current token (412)');
    ok(-e "$files/bob/if-flipped.txt" ? 1 : 0, 0, '... which created nothing');
}

# ---- item 3: an If header names a resource outside the location ----------------------------
# bob's file has its digest recorded (a GET a second after its write)
sleep 2;
dav(GET => '/leak/bob/b1.txt', headers => { as('bob') });
my $d0 = records('d/');
my $log0 = log_entries();
my $up = join('', ('%2e%2e/') x 12);
for my $tag ("/leak/${up}etc/passwd", "/leak/bob/../../../../../../../../etc/passwd", "/leak/./bob/./b1.txt",
             "/leak/bob/%2e/b1.txt", url('/leak/..%2f..%2f..%2f..%2fetc/passwd'), "/leak//bob//b1.txt",
             "/leak/${up}" . substr($files, 1) . '/bob/b1.txt') {
    my $res = dav(GET => '/leak/bob/b1.txt', headers => { as('bob'), If => "<$tag> ([\"x\"])" });
    ok($res->code . ' ' . $res->content, '200 bob 1', "GET of bob's own file with If: <$tag> ([\"x\"])");
}
my $d1 = records('d/');
ok(join("\n", grep { m{\.\./|/\./|etc/passwd|//} } split /\n/, $d1), '',
   '... no record of a path outside the location or spelt otherwise');
{
    my %old = map { $_ => 1 } split /\n/, $d0;
    ok(join(' ', grep { !$old{$_} } sort split /\n/, $d1), '', '... no digest record added at all');
}
ok(log_entries(), $log0, '... and no change logged');
# a file alice wrote behind httpd's back: bob's If header must not read it
spew("$files/alice/behind.txt", 'written behind httpd');
sleep 2;                            # old enough for its digest to be recorded
$r = dav(GET => '/leak/bob/b1.txt', headers => { as('bob'), If => '</leak/alice/behind.txt> (["x"])' });
ok($r->code, 200, 'If: naming a file of alice\'s, sent by bob: his GET is answered');
ok(records('d/alice/behind.txt') eq '' ? 1 : 0, 1, '... and alice\'s file was not read for him (no digest record)');
$r = dav(GET => '/leak/alice/secret-name-3.txt', headers => { as('alice'), If => '</leak/alice/behind.txt> (["x"])' });
ok(records('d/alice/behind.txt') ne '' ? 1 : 0, 1, '... the same header from alice, who may read it, is evaluated');

# ---- item 2: guesses of a file's content in the drop box ------------------------------------
my $secret = 'the password is hunter2';
ok(dav(PUT => '/leak/drop/secret.txt', body => $secret, headers => { as('alice') })->code, 201, 'alice drops a file');
my $right = strong_etag($secret);
my $wrong = strong_etag('the password is 123456');
ok(dav(HEAD => '/leak/drop/secret.txt', headers => { as('alice') })->header('ETag'), $right,
   'alice, who may read it, gets its strong ETag (unchanged format)');
# one file per kind of request, each holding the secret (a right guess
# that got through would change its file)
for my $kind (qw(patch sabre if lock delete)) {
    dav(PUT => "/leak/drop/s-$kind.txt", body => $secret, headers => { as('alice') });
}
my $log1 = log_entries();
my %code;
for my $g ([right => $right], [wrong => $wrong]) {
    my ($name, $etag) = @$g;
    $code{"patch-$name"} = dav(PATCH => '/leak/drop/s-patch.txt', body => 'not a delta',
                               headers => { as('bob'), 'Content-Type' => 'application/vcdiff', 'If-Match' => $etag })->code;
    $code{"mdelta-$name"} = dav(PATCH => '/leak/drop/s-patch.txt',
                                body => iss_chunk('delta', \manifest_of($secret), \manifest_of("$secret, and more")),
                                headers => { as('bob'), 'Content-Type' => DELTA_TYPE, 'If-Match' => $etag })->code;
    $code{"delete-$name"} = dav(DELETE => '/leak/drop/s-delete.txt', headers => { as('bob'), 'If-Match' => $etag })->code;
    $code{"sabre-$name"} = dav(PATCH => '/leak/drop/s-sabre.txt', body => 'XX',
                               headers => { as('bob'), 'Content-Type' => 'application/x-sabredav-partialupdate',
                                            'X-Update-Range' => 'bytes=1000-', 'If-Match' => $etag })->code;
    $code{"if-$name"} = dav(PROPPATCH => '/leak/drop/s-if.txt', headers => { as('bob'), If => "([$etag])",
                            'Content-Type' => 'application/xml' },
                            body => '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:a>1</Z:a></D:prop></D:set></D:propertyupdate>')->code;
    $code{"lock-$name"} = dav(LOCK => '/leak/drop/s-lock.txt', headers => { as('bob'), If => '<' . url('/leak/drop/s-lock.txt') . "> ([$etag])",
                              'Content-Type' => 'application/xml', Timeout => 'Second-5' },
                              body => '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>')->code;
}
print "# answers to bob's guesses: ", join(' ', map { "$_=$code{$_}" } sort keys %code), "\n";
ok("$code{'patch-right'} $code{'patch-wrong'}", '412 412', 'bob\'s VCDIFF PATCH with If-Match: the right guess and a wrong one both 412');
ok("$code{'sabre-right'} $code{'sabre-wrong'}", '412 412', '... SabreDAV PATCH likewise');
ok("$code{'delete-right'} $code{'delete-wrong'}", '412 412', '... DELETE with If-Match likewise');
ok("$code{'mdelta-right'} $code{'mdelta-wrong'}", '403 403', '... a manifest delta: 403 read-required for both');
ok($code{'if-right'}, $code{'if-wrong'}, "... If: ([etag]) on a PROPPATCH: one answer for both guesses ($code{'if-wrong'})");
ok($code{'lock-right'}, $code{'lock-wrong'}, "... a tagged If on a LOCK: one answer for both guesses ($code{'lock-wrong'})");
ok(join(' ', map { slurp("$files/drop/s-$_.txt") eq $secret ? 1 : 0 } qw(patch sabre if lock delete)), '1 1 1 1 1', '... the files are unchanged');
ok(log_entries(), $log1, '... and nothing was logged');
# If-None-Match on a PUT: the same answer for both guesses too
my @inm;
for my $etag ($right, $wrong) {
    dav(PUT => '/leak/drop/secret.txt', body => $secret, headers => { as('alice') });
    push @inm, dav(PUT => '/leak/drop/secret.txt', body => 'overwritten by bob',
                   headers => { as('bob'), 'If-None-Match' => $etag })->code;
}
ok("@inm", '204 204', 'bob\'s PUT with If-None-Match: the right guess and a wrong one are treated alike');
# alice, who may read, still has her ETags in conditions
dav(PUT => '/leak/drop/secret.txt', body => $secret, headers => { as('alice') });
ok(dav(PATCH => '/leak/drop/secret.txt', body => 'not a delta',
       headers => { as('alice'), 'Content-Type' => 'application/vcdiff', 'If-Match' => $right })->code, 400,
   'alice\'s PATCH with the right If-Match gets past the condition (400: a bad delta)');
ok(dav(PATCH => '/leak/drop/secret.txt', body => 'not a delta',
       headers => { as('alice'), 'Content-Type' => 'application/vcdiff', 'If-Match' => $wrong })->code, 412,
   '... and 412 with a wrong one');

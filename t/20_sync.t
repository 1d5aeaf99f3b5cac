# RFC 6578 sync-collection on a `Dav iss` location: initial listings,
# changes since a token at level 1 and infinite, properties, removed
# members, collection moves and deletes, DAV:sync-token, supported-report-
# set, and what real clients send that the RFC's examples do not.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Path qw(make_path);

plan tests => 100;

my $L = '/sync';
sub hrefs { join ' ', sort keys %{ $_[0]{members} } }
sub statuses {
    my ($r) = @_;
    join ' ', map { "$_=$r->{members}{$_}{status}" } sort keys %{ $r->{members} };
}
sub put { dav(PUT => $_[0], body => $_[1] // 'x')->code }

# The tree: a/ (a/1.txt a/2.txt a/sub/ a/sub/3.txt) and top.txt.
ok(dav(MKCOL => "$L/a/")->code, 201);
ok(dav(MKCOL => "$L/a/sub/")->code, 201);
put("$L/a/1.txt", 'one'); put("$L/a/2.txt", 'two'); put("$L/a/sub/3.txt", 'three');
ok(put("$L/top.txt", 'top'), 201);

# ---- discovery ---------------------------------------------------------------
my $res = dav(PROPFIND => "$L/a/", headers => { Depth => 0 },
              body => '<D:propfind xmlns:D="DAV:"><D:prop><D:supported-report-set/></D:prop></D:propfind>');
ok($res->content =~ m{<D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report>} ? 1 : 0, 1,
   'DAV:supported-report-set lists sync-collection');
my $tok0 = sync_token_of("$L/a/");
ok(($tok0 // '') =~ m{^https://mod-iss\.org/ns/sync/[0-9a-f-]+/[0-9a-f]{32}$} ? 1 : 0, 1, 'DAV:sync-token is a URI naming the store and a sealed position');
ok(sync_token_of("$L/a/sub/"), $tok0, 'every collection of the store has the same current token');
$res = dav(PROPFIND => "$L/a/1.txt", headers => { Depth => 0 },
           body => '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
ok($res->content =~ m{HTTP/1.1 404} ? 1 : 0, 1, 'a file has no DAV:sync-token');
$res = dav(PROPFIND => "$L/a/", headers => { Depth => 0 },
           body => '<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>');
ok($res->content =~ /sync-token/ ? 1 : 0, 0, 'DAV:sync-token is not in allprop');
$res = dav(PROPPATCH => "$L/a/",
           body => '<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:sync-token>x</D:sync-token></D:prop></D:set></D:propertyupdate>');
ok($res->content =~ m{HTTP/1.1 (403|409)} ? 1 : 0, 1, 'DAV:sync-token is protected');
# (A PROPPATCH answered 207 is logged as "possibly changed" even when
# every property was refused: mod_dav does not say which it was.)
$tok0 = sync_token_of("$L/a/");
$res = dav(PROPFIND => '/plain/', headers => { Depth => 0 },
           body => '<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>');
ok($res->content =~ m{<lp\d+:sync-token>} ? 1 : 0, 0, 'a Dav On location has no sync token');
ok(sync_report('/plain/', token => '', level => 1)->{code}, 501, 'a Dav On location does not answer the report');

# ---- initial listings ---------------------------------------------------------
my $r = sync_report("$L/a/", token => '', level => 1);
ok($r->{code}, 207);
ok(hrefs($r), "$L/a/1.txt $L/a/2.txt $L/a/sub/", 'level 1: the direct members, collections included');
ok($r->{token}, $tok0, 'the listing ends with the current token');
$r = sync_report("$L/a/", token => '', level => 'infinite',
                 props => [qw(getetag getcontentlength getlastmodified resourcetype getcontenttype)]);
ok(hrefs($r), "$L/a/1.txt $L/a/2.txt $L/a/sub/ $L/a/sub/3.txt", 'infinite: the whole subtree');
my $m = $r->{members}{"$L/a/1.txt"};
ok($m->{props}{getcontentlength}, 3, 'getcontentlength');
ok($m->{props}{getetag}, dav(HEAD => "$L/a/1.txt")->header('ETag'), 'getetag is the ETag of a GET');
ok($m->{props}{getlastmodified} =~ /GMT$/ ? 1 : 0, 1, 'getlastmodified');
ok(defined $m->{props}{getcontenttype} ? 1 : 0, 1, 'getcontenttype');
ok($r->{members}{"$L/a/sub/"}{props}{resourcetype} =~ /collection/ ? 1 : 0, 1, 'resourcetype of a collection');
ok(join(',', @{ $r->{members}{"$L/a/sub/"}{missing} }), 'getcontentlength', 'a property a member lacks is 404 in its own propstat');

# ---- changes since a token ----------------------------------------------------
my $t1 = $r->{token};
$r = sync_report("$L/a/", token => $t1, level => 'infinite');
ok($r->{code}, 207);
ok(hrefs($r), '', 'no change: empty answer');
ok($r->{token}, $t1, '... and the same token');

put("$L/a/new.txt", 'new');                 # created
put("$L/a/1.txt", 'one, edited');           # modified
ok(dav(DELETE => "$L/a/2.txt")->code, 204); # removed
put("$L/top.txt", 'outside a/');            # outside the collection
put("$L/a/1.txt", 'one, edited twice');     # twice: reported once
ok(dav(PROPPATCH => "$L/a/sub/3.txt",
       body => '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>')->code, 207);
$r = sync_report("$L/a/", token => $t1, level => 'infinite',
                 raw => '<D:getetag/><Z:colour xmlns:Z="urn:z"/>');
ok(statuses($r), "$L/a/1.txt=200 $L/a/2.txt=404 $L/a/new.txt=200 $L/a/sub/3.txt=200",
   'created, modified, removed, dead property changed: each once');
ok(scalar(@{ $r->{order} }), 4, 'no member twice');
ok($r->{members}{"$L/a/sub/3.txt"}{props}{colour}, 'blue', 'dead properties are returned');
ok($r->{members}{"$L/a/1.txt"}{props}{getetag}, dav(HEAD => "$L/a/1.txt")->header('ETag'), 'the current ETag');
ok($r->{res}->content =~ m{<D:href>\Q$L\E/a/2.txt</D:href>\s*<D:status>HTTP/1.1 404 Not Found</D:status>\s*</D:response>} ? 1 : 0, 1,
   'a removed member: 404 and no propstat');
my $t2 = $r->{token};
ok($t2 ne $t1 ? 1 : 0, 1, 'a new token');

# Level 1: the change below a/sub/ shows as a/sub/ changed.
$r = sync_report("$L/a/", token => $t1, level => 1);
ok(statuses($r), "$L/a/1.txt=200 $L/a/2.txt=404 $L/a/new.txt=200 $L/a/sub/=200",
   'level 1: a deeper change shows as its child collection');
# A token from one level works at the other.
ok(sync_report("$L/a/", token => $t2, level => 1)->{code}, 207, 'tokens work across levels');
ok(hrefs(sync_report("$L/a/", token => $t2, level => 1)), '', '... with nothing since');

# Removed and re-created: changed.  Created and removed: removed.
ok(dav(DELETE => "$L/a/new.txt")->code, 204);
put("$L/a/new.txt", 'again');
put("$L/a/brief.txt", 'brief'); dav(DELETE => "$L/a/brief.txt");
$r = sync_report("$L/a/", token => $t2, level => 'infinite');
ok(statuses($r), "$L/a/brief.txt=404 $L/a/new.txt=200", 're-created: changed; created then removed: removed');
my $t3 = $r->{token};

# ---- collections removed and moved ---------------------------------------------
ok(dav(MKCOL => "$L/a/tree/")->code, 201);
ok(dav(MKCOL => "$L/a/tree/d/")->code, 201);
put("$L/a/tree/f.txt"); put("$L/a/tree/d/g.txt");
$r = sync_report("$L/a/", token => $t3, level => 'infinite');
my $t4 = $r->{token};
ok(dav(DELETE => "$L/a/tree/")->code, 204);
$r = sync_report("$L/a/", token => $t4, level => 'infinite');
ok(statuses($r), "$L/a/tree/=404", 'infinite: a removed collection alone, not its members');
$r = sync_report("$L/a/", token => $t3, level => 'infinite');
ok(statuses($r), "$L/a/tree/=404", 'created and removed again since the token: the collection alone, 404');
my $t5 = sync_report("$L/a/", token => $t4, level => 'infinite')->{token};

ok(dav(MOVE => "$L/a/sub/", headers => { Destination => url("$L/a/moved/") })->code, 201);
$r = sync_report("$L/a/", token => $t5, level => 'infinite');
ok(statuses($r), "$L/a/moved/=200 $L/a/moved/3.txt=200 $L/a/sub/=404",
   'a moved collection: removed at the old path, new with its members at the new one');
ok($r->{members}{"$L/a/moved/3.txt"}{props}{getetag} ? 1 : 0, 1, '... with properties');
$r = sync_report("$L/a/", token => $t5, level => 1);
ok(statuses($r), "$L/a/moved/=200 $L/a/sub/=404", 'level 1: the old and the new collection');
my $t6 = sync_report("$L/a/", token => $t5, level => 1)->{token};

# COPY of a collection, and a sync of the copy itself.
ok(dav(COPY => "$L/a/moved/", headers => { Destination => url("$L/a/copy/") })->code, 201);
$r = sync_report("$L/a/", token => $t6, level => 'infinite');
ok(statuses($r), "$L/a/copy/=200 $L/a/copy/3.txt=200", 'COPY: the copy and its members');
$r = sync_report("$L/a/copy/", token => $t6, level => 'infinite');
ok(statuses($r), "$L/a/copy/3.txt=200", 'a sync of a sub-collection reports only what is below it');

# A sync of the location root sees everything, top.txt included.
$r = sync_report("$L/", token => $t1, level => 1);
ok(exists $r->{members}{"$L/top.txt"} ? 1 : 0, 1, 'the root collection');
ok(exists $r->{members}{"$L/a/"} ? 1 : 0, 1, '... with a/ changed below');

# ---- what is not the client's to see ---------------------------------------------
make_path(files_dir() =~ s{/files$}{/files-sync/secret/inner}r);
spew((files_dir() =~ s{/files$}{/files-sync/secret/hidden.txt}r), 'secret');
ok(dav(GET => "$L/secret/hidden.txt")->code, 403, 'the secret sub-location is closed');
$r = sync_report("$L/", token => '', level => 'infinite');
ok(scalar(grep { m{/secret/} } keys %{ $r->{members} }), 0, 'an initial sync does not name what the client may not read');
ok(exists $r->{members}{"$L/a/1.txt"} ? 1 : 0, 1, '... and names the rest');

# ---- paging: DAV:limit and ISSSyncMaxResults ---------------------------------------
my $t7 = sync_token_of("$L/a/");
put("$L/a/p$_.txt", "p$_") for 1 .. 5;
$r = sync_report("$L/a/", token => $t7, level => 1, limit => 2);
ok($r->{code}, 207);
ok(scalar(@{ $r->{order} }), 2, 'limit 2: two members');
ok($r->{truncated}, 1, '... and 507 for the request-URI');
ok($r->{res}->content =~ m{<D:href>\Q$L\E/a/</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status><D:error><D:number-of-matches-within-limits/></D:error>} ? 1 : 0, 1,
   '... with DAV:number-of-matches-within-limits');
my %seen = map { $_ => 1 } @{ $r->{order} };
my $pages = 1;
while ($r->{truncated} && $pages < 10) {
    $r = sync_report("$L/a/", token => $r->{token}, level => 1, limit => 2);
    $seen{$_} = 1 for @{ $r->{order} };
    $pages++;
}
ok(join(' ', sort keys %seen), join(' ', map { "$L/a/p$_.txt" } 1 .. 5), 'the continuation tokens deliver the rest');
ok($pages, 3, 'in three pages');
ok(hrefs(sync_report("$L/a/", token => $r->{token}, level => 1)), '', 'the last token is current');

# Pages of one: a creation lists the member and its folder, one a page.
ok(dav(MKCOL => "$L/a/one/")->code, 201);
my $t7b = sync_token_of("$L/a/");
put("$L/a/one/n$_.txt") for 1 .. 2;
%seen = (); $pages = 0;
$r = { truncated => 1, token => $t7b };
while ($r->{truncated} && $pages < 20) {
    $r = sync_report("$L/a/", token => $r->{token}, level => 'infinite', limit => 1);
    ok(scalar(@{ $r->{order} }) <= 1 ? 1 : 0, 1, "limit 1: at most one member (page " . ($pages + 1) . ")");
    $seen{$_} = 1 for @{ $r->{order} };
    $pages++;
}
ok(join(' ', sort keys %seen), "$L/a/one/ $L/a/one/n1.txt $L/a/one/n2.txt", 'pages of one: the members and their folder');
ok($pages < 20 ? 1 : 0, 1, "... in $pages pages, not forever");

# A removed folder of many files: its members do not fill pages.
ok(dav(MKCOL => "$L/a/big/")->code, 201);
put("$L/a/big/b$_.txt") for 1 .. 30;
my $t7c = sync_token_of("$L/a/");
ok(dav(DELETE => "$L/a/big/")->code, 204);
$r = sync_report("$L/a/", token => $t7c, level => 'infinite', limit => 5);
ok(statuses($r), "$L/a/big/=404", 'a removed folder of 30 files, limit 5: the folder alone');
ok($r->{truncated}, 0, '... in one page');

# An initial listing in pages.
%seen = (); $pages = 0;
$r = { truncated => 1, token => '' };
while ($r->{truncated} && $pages < 20) {
    $r = sync_report("$L/a/", token => $r->{token}, level => 1, limit => 3);
    $seen{$_}++ for @{ $r->{order} };
    $pages++;
}
my $full = sync_report("$L/a/", token => '', level => 1);
ok(join(' ', sort keys %seen), hrefs($full), 'an initial listing in pages of 3 lists every member');
ok(scalar(grep { $_ > 1 } values %seen), 0, '... each once');
ok($r->{token}, $full->{token}, '... and ends with the token a single listing gives');

# The server's cap pages the same way (ISSSyncMaxResults 3 on /synccap/).
put("/synccap/c$_.txt") for 1 .. 7;
$r = sync_report('/synccap/', token => '', level => 1);
ok(scalar(@{ $r->{order} }), 3, 'ISSSyncMaxResults caps an answer');
ok($r->{truncated}, 1, '... with 507');
%seen = map { $_ => 1 } @{ $r->{order} };
while ($r->{truncated}) {
    $r = sync_report('/synccap/', token => $r->{token}, level => 1, limit => 100);
    ok(scalar(@{ $r->{order} }) <= 3 ? 1 : 0, 1, 'a client limit above the cap gets the cap');
    $seen{$_} = 1 for @{ $r->{order} };
}
ok(scalar(keys %seen), 7, 'all seven members over the pages');

# ---- what real clients send ---------------------------------------------------------
my $t8 = sync_token_of("$L/a/");
put("$L/a/p1.txt", 'client');
my @variants = (
    [ 'no XML declaration, text/xml',
      { 'Content-Type' => 'text/xml' },
      qq{<sync-collection xmlns="DAV:"><sync-token>$t8</sync-token><sync-level>1</sync-level><prop><getetag/></prop></sync-collection>} ],
    [ 'elements in another order, infinity',
      {},
      qq{<D:sync-collection xmlns:D="DAV:"><D:prop><D:getetag/></D:prop><D:sync-level>infinity</D:sync-level><D:sync-token>$t8</D:sync-token></D:sync-collection>} ],
    [ 'no sync-level (RFC 6578 drafts), no Depth header',
      { Depth => undef },
      qq{<D:sync-collection xmlns:D="DAV:"><D:sync-token>$t8</D:sync-token><D:prop><D:getetag/></D:prop></D:sync-collection>} ],
    [ 'whitespace around the token, allprop',
      {},
      qq{<D:sync-collection xmlns:D="DAV:">\n  <D:sync-token>\n   $t8\n  </D:sync-token>\n <D:sync-level>1</D:sync-level><D:allprop/></D:sync-collection>} ],
);
for my $v (@variants) {
    my ($name, $hdr, $body) = @$v;
    my %h = (%$hdr);
    my $no_depth = exists $h{Depth} && !defined $h{Depth};
    delete $h{Depth} if $no_depth;
    my $resp = $no_depth
        ? do { my $ua = LWP::UserAgent->new; my $q = HTTP::Request->new(REPORT => url("$L/a/"), ['Content-Type' => 'application/xml'], $body); $ua->request($q) }
        : dav(REPORT => "$L/a/", headers => { 'Content-Type' => 'application/xml', Depth => 0, %h }, body => $body);
    ok($resp->code, 207, "$name: accepted");
    my $p = parse_multistatus($resp->content);
    ok(hrefs($p), "$L/a/p1.txt", "$name: the change");
}

# `Dav iss` on a <Directory> section: the same protocol.
ok(dav(PUT => '/dirsec/s1.txt', body => 's1')->code =~ /^20[14]$/ ? 1 : 0, 1);
$r = sync_report('/dirsec/', token => '', level => 'infinite');
ok(exists $r->{members}{'/dirsec/s1.txt'} ? 1 : 0, 1, '<Directory>: an initial listing');
ok(dav(PUT => '/dirsec/s2.txt', body => 's2')->code, 201);
$r = sync_report('/dirsec/', token => $r->{token}, level => 'infinite');
ok(join(' ', sort keys %{ $r->{members} }), '/dirsec/s2.txt', '<Directory>: the change since');

# Names that need escaping, in hrefs and in continuation tokens.
ok(dav(MKCOL => "$L/odd/")->code, 201);
my @odd = ('sp ace.txt', 'amp&er.txt', 'pct%25.txt', "h\x{e9}#.txt", 'q?.txt');
my %esc = ('sp ace.txt' => 'sp%20ace.txt', 'amp&er.txt' => 'amp&er.txt', 'pct%25.txt' => 'pct%2525.txt',
           "h\x{e9}#.txt" => 'h%c3%a9%23.txt', 'q?.txt' => 'q%3f.txt');
for my $n (@odd) {
    (my $u = $n) =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
    utf8::encode($u) if $u =~ /[^\x00-\xff]/;
    $u =~ s/%E9/%C3%A9/;
    ok(dav(PUT => "$L/odd/$u", body => 'o')->code, 201, "PUT $n");
}
%seen = (); $pages = 0;
$r = { truncated => 1, token => '' };
while ($r->{truncated} && $pages < 20) {
    $r = sync_report("$L/odd/", token => $r->{token}, level => 1, limit => 1);
    $seen{lc $_}++ for @{ $r->{order} };
    $pages++;
}
ok(join(' ', sort keys %seen), join(' ', sort map { lc "$L/odd/$esc{$_}" } @odd),
   'odd names: escaped hrefs, and continuation tokens that carry them');
ok($pages, scalar(@odd), '... one page each');

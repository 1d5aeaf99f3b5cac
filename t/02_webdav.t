# `Dav iss` stores exactly what `Dav On` stores: /iss/ and /plain/ serve
# one folder, and what one writes (content, dead properties, locks) the
# other reads.  PROPFIND keeps mod_dav_fs's live properties, except that
# the ETag of a file is mod_iss's strong one (its content's SHA-256).
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use POSIX ();

plan tests => 28;

my $body = "line 1\nline 2\n";
ok(dav(PUT => '/iss/w/a.txt', body => $body)->code, 409, 'PUT into a missing collection: 409');
ok(dav(MKCOL => '/iss/w/')->code, 201);
ok(dav(PUT => '/iss/w/a.txt', body => $body)->code, 201);
ok(slurp(files_dir('w', 'a.txt')), $body, 'the file on disk is the plain file');
ok(dav(GET => '/plain/w/a.txt')->content, $body);

# Live properties that mod_dav_fs computes must survive the provider.
my $pf = dav(PROPFIND => '/iss/w/', headers => { Depth => 1 });
ok($pf->code, 207);
my $x = $pf->content;
ok($x =~ m{<lp1:getcontentlength>14</lp1:getcontentlength>}
   || $x =~ m{getcontentlength[^>]*>14<} ? 1 : 0, 1, 'getcontentlength in PROPFIND');
my ($etag) = $x =~ m{a\.txt</D:href>.*?getetag[^>]*>([^<]+)<}s;
my ($petag) = dav(PROPFIND => '/plain/w/', headers => { Depth => 1 })->content
              =~ m{a\.txt</D:href>.*?getetag[^>]*>([^<]+)<}s;
ok($etag // 'none', strong_etag($body), 'getetag in PROPFIND: the strong ETag of the content');
ok(defined $petag && $petag ne $etag ? 1 : 0, 1, 'Dav On keeps mod_dav_fs\'s ETag: ' . ($petag // 'none'));
ok($x =~ m{<D:href>/iss/w/a\.txt</D:href>} ? 1 : 0, 1, 'member listed with its href');

# Dead properties: set through one location, read through the other.
my $pp = <<'XML';
<?xml version="1.0" encoding="utf-8"?>
<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:test"><D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>
XML
ok(dav(PROPPATCH => '/iss/w/a.txt', body => $pp,
       headers => { 'Content-Type' => 'application/xml' })->code, 207);
my $q = <<'XML';
<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:Z="urn:test"><D:prop><Z:colour/></D:prop></D:propfind>
XML
my $r = dav(PROPFIND => '/plain/w/a.txt', body => $q, headers => { Depth => 0 });
ok($r->content =~ m{colour[^>]*>blue<} ? 1 : 0, 1, 'dead property set via iss, read via plain');
(my $pp2 = $pp) =~ s/blue/green/;
dav(PROPPATCH => '/plain/w/a.txt', body => $pp2, headers => { 'Content-Type' => 'application/xml' });
$r = dav(PROPFIND => '/iss/w/a.txt', body => $q, headers => { Depth => 0 });
ok($r->content =~ m{colour[^>]*>green<} ? 1 : 0, 1, 'dead property set via plain, read via iss');

# Locks: one lock database for both.
my $li = <<'XML';
<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>t</D:owner></D:lockinfo>
XML
my $lock = dav(LOCK => '/iss/w/a.txt', body => $li,
               headers => { 'Content-Type' => 'application/xml', Timeout => 'Second-600' });
ok($lock->code, 200);
my $token = $lock->header('Lock-Token') // '';
ok($token =~ /^<opaquelocktoken:/ ? 1 : 0, 1, "lock token $token");
ok(dav(PUT => '/plain/w/a.txt', body => 'x')->code, 423, 'lock taken via iss binds plain');
ok(dav(PUT => '/plain/w/a.txt', body => 'changed', headers => { If => "($token)" })->code, 204);
ok(dav(UNLOCK => '/plain/w/a.txt', headers => { 'Lock-Token' => $token })->code, 204);
ok(dav(PUT => '/iss/w/a.txt', body => $body)->code, 204, 'unlocked via plain, writable via iss');

# COPY, MOVE, DELETE of a collection with members.
dav(MKCOL => '/iss/w/sub/');
dav(PUT => '/iss/w/sub/b.txt', body => 'b');
ok(dav(COPY => '/iss/w/', headers => { Destination => url('/iss/w2/') })->code, 201);
ok(slurp(files_dir('w2', 'sub', 'b.txt')), 'b');
$r = dav(PROPFIND => '/plain/w2/a.txt', body => $q, headers => { Depth => 0 });
ok($r->content =~ m{colour[^>]*>green<} ? 1 : 0, 1, 'COPY carries dead properties');
ok(dav(MOVE => '/iss/w2/', headers => { Destination => url('/iss/w3/') })->code, 201);
ok(-e files_dir('w2') ? 1 : 0, 0, 'MOVE removed the source');
ok(slurp(files_dir('w3', 'sub', 'b.txt')), 'b');
ok(dav(DELETE => '/iss/w3/')->code, 204);
ok(-e files_dir('w3') ? 1 : 0, 0, 'DELETE removed the tree');

# Four clients MKCOL one folder at once: one creates it, the others get
# 405 as from plain mod_dav_fs, never 403 (recording the intent took long
# enough for another request's mkdir to come first).
{
    my %seen;
    for my $round (1 .. 10) {
        my @kids;
        for (1 .. 4) {
            my $pid = fork // die "fork: $!";
            if (!$pid) {
                my $code = dav(MKCOL => "/iss/race$round/")->code;
                POSIX::_exit($code == 201 ? 1 : $code == 405 ? 2 : $code == 403 ? 3 : 4);
            }
            push @kids, $pid;
        }
        for (@kids) { waitpid($_, 0); $seen{ ('?', 201, 405, 403, 'other')[$? >> 8] }++ }
    }
    ok(join(' ', map { "$_=" . ($seen{$_} // 0) } 201, 405, 403, 'other'), '201=10 405=30 403=0 other=0',
       'concurrent MKCOLs of one folder: one 201, the others 405');
}

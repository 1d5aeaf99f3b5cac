# Every change a client can make through a `Dav iss` location passes the
# one capture point, before it happens (with every member it touches)
# and after it completed (with its status).  The point logs at trace1
# (summary) and trace2 (members); this test counts what it saw.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;

plan tests => 50;

# Run one request; return (response, captures logged while it ran).
sub observe {
    my ($method, $path, %opt) = @_;
    my $mark = log_mark();
    my $res = dav($method, $path, %opt);
    return ($res, captures(log_since($mark)));
}

sub summary {
    my (@caps) = @_;
    return join ' | ', map { "$_->{when} $_->{method} st=$_->{status} n=$_->{members}" } @caps;
}

sub members {
    my ($cap) = @_;
    return join ',', sort @{ $cap->{changes} };
}

my ($res, @c);

# PUT of a new file, then of an existing one.
($res, @c) = observe(PUT => '/iss/cap/new.txt', body => 'x');
ok($res->code, 409, 'PUT below a missing collection fails');
ok(summary(@c), 'before PUT st=0 n=1 | after PUT st=409 n=1', 'failed PUT: seen before and after, with its status');

dav(MKCOL => '/iss/cap/');
($res, @c) = observe(PUT => '/iss/cap/new.txt', body => 'x');
ok($res->code, 201);
ok(summary(@c), 'before PUT st=0 n=1 | after PUT st=201 n=1');
ok(members($c[0]), 'created file /iss/cap/new.txt');

($res, @c) = observe(PUT => '/iss/cap/new.txt', body => 'xy');
ok($res->code, 204);
ok(members($c[0]), 'modified file /iss/cap/new.txt');
ok($c[1]{status}, 204);

# MKCOL.
($res, @c) = observe(MKCOL => '/iss/cap/d/');
ok($res->code, 201);
ok(summary(@c), 'before MKCOL st=0 n=1 | after MKCOL st=201 n=1');
ok(members($c[0]), 'created collection /iss/cap/d');

# PROPPATCH.
my $pp = '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:t">'
       . '<D:set><D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>';
($res, @c) = observe(PROPPATCH => '/iss/cap/new.txt', body => $pp,
                     headers => { 'Content-Type' => 'application/xml' });
ok($res->code, 207);
ok(summary(@c), 'before PROPPATCH st=0 n=1 | after PROPPATCH st=207 n=1');
ok(members($c[0]), 'props file /iss/cap/new.txt');

# LOCK on an unmapped URL creates a file; LOCK on an existing one does not
# change content and is not captured.
my $li = '<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
       . '</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>';
($res, @c) = observe(LOCK => '/iss/cap/locked.txt', body => $li,
                     headers => { 'Content-Type' => 'application/xml' });
ok($res->code =~ /^20[01]$/ ? 1 : 0, 1, 'LOCK on unmapped URL: ' . $res->code);
ok(summary(@c), 'before LOCK st=0 n=1 | after LOCK st=' . $res->code . ' n=1');
ok(members($c[0]), 'created file /iss/cap/locked.txt');
my $token = $res->header('Lock-Token');
dav(UNLOCK => '/iss/cap/locked.txt', headers => { 'Lock-Token' => $token });

($res, @c) = observe(LOCK => '/iss/cap/new.txt', body => $li,
                     headers => { 'Content-Type' => 'application/xml' });
ok($res->code, 200);
ok(scalar(@c), 0, 'LOCK of an existing file changes nothing: not captured');
dav(UNLOCK => '/iss/cap/new.txt', headers => { 'Lock-Token' => $res->header('Lock-Token') });

# Reads are never captured.
my $n = 0;
for my $m (qw(GET OPTIONS PROPFIND)) {
    (undef, @c) = observe($m => '/iss/cap/new.txt', headers => { Depth => 0 });
    $n += @c;
}
ok($n, 0, 'GET, OPTIONS, PROPFIND: nothing captured');

# A collection with members: d/{a,b}, d/e/{c}.
dav(PUT => "/iss/cap/d/$_", body => $_) for qw(a b);
dav(MKCOL => '/iss/cap/d/e/');
dav(PUT => '/iss/cap/d/e/c', body => 'c');

($res, @c) = observe(COPY => '/iss/cap/d/', headers => { Destination => url('/iss/cap/d2/') });
ok($res->code, 201);
ok(summary(@c), 'before COPY st=0 n=5 | after COPY st=201 n=5', 'COPY of a tree: every member');
ok(members($c[0]), join(',', sort map { "created $_" }
   'collection /iss/cap/d2', 'file /iss/cap/d2/a', 'file /iss/cap/d2/b',
   'collection /iss/cap/d2/e', 'file /iss/cap/d2/e/c'));

# COPY with Depth 0 copies the collection alone.
($res, @c) = observe(COPY => '/iss/cap/d/', headers => { Destination => url('/iss/cap/d0/'), Depth => 0 });
ok($res->code, 201);
ok(members($c[0]), 'created collection /iss/cap/d0');

# COPY over an existing tree: the old members go, the new ones come.
dav(PUT => '/iss/cap/d2/only-in-d2', body => 'z');
($res, @c) = observe(COPY => '/iss/cap/d/', headers => { Destination => url('/iss/cap/d2/') });
ok($res->code, 204);
ok(summary(@c), 'before COPY st=0 n=11 | after COPY st=204 n=11', 'overwriting COPY: 6 removed, 5 created');
ok(scalar(grep { /^removed file \/iss\/cap\/d2\/only-in-d2$/ } @{ $c[0]{changes} }), 1);

# MOVE of a tree: removed at the source, created at the destination.
($res, @c) = observe(MOVE => '/iss/cap/d2/', headers => { Destination => url('/iss/cap/d3/') });
ok($res->code, 201);
ok(summary(@c), 'before MOVE st=0 n=10 | after MOVE st=201 n=10');
ok(scalar(grep { /^removed / } @{ $c[0]{changes} }), 5, 'MOVE: 5 removed');
ok(scalar(grep { /^created .* \/iss\/cap\/d3(\/|$)/ } @{ $c[0]{changes} }), 5, 'MOVE: 5 created under d3');

# DELETE of a tree.
($res, @c) = observe(DELETE => '/iss/cap/d3/');
ok($res->code, 204);
ok(summary(@c), 'before DELETE st=0 n=5 | after DELETE st=204 n=5');
ok(members($c[0]), join(',', sort map { "removed $_" }
   'collection /iss/cap/d3', 'file /iss/cap/d3/a', 'file /iss/cap/d3/b',
   'collection /iss/cap/d3/e', 'file /iss/cap/d3/e/c'));

# DELETE of a missing resource: nothing to capture.
($res, @c) = observe(DELETE => '/iss/cap/nope');
ok($res->code, 404);
ok(scalar(@c), 0);

# Across locations: each `Dav iss` location involved sees its side.
($res, @c) = observe(MOVE => '/iss/cap/d/e/', headers => { Destination => url('/other/e/') });
ok($res->code, 201);
ok(scalar(grep { $_->{when} eq 'before' } @c), 2, 'MOVE to another iss location: two sides recorded');
ok(join(' ', map { members($_) } grep { $_->{when} eq 'before' } @c),
   'removed collection /iss/cap/d/e,removed file /iss/cap/d/e/c'
   . ' created collection /other/e,created file /other/e/c');

# Into an iss location from a plain one: the destination side is seen.
dav(PUT => '/plain/from-plain.txt', body => 'p');
($res, @c) = observe(COPY => '/plain/from-plain.txt', headers => { Destination => url('/other/from-plain.txt') });
ok($res->code, 201);
ok(summary(@c), 'before COPY st=0 n=1 | after COPY st=201 n=1', 'COPY from plain into iss is captured');

# Out of an iss location into a plain one: MOVE removes from iss.
($res, @c) = observe(MOVE => '/other/from-plain.txt', headers => { Destination => url('/plain/moved-out.txt') });
ok($res->code, 201);
ok(members($c[0]), 'removed file /other/from-plain.txt', 'MOVE out of iss: the removal is captured');

# Writes through the plain location are not mod_iss's to see.
(undef, @c) = observe(PUT => '/plain/cap-plain.txt', body => 'p');
ok(scalar(@c), 0, 'Dav On location: nothing captured');

# `Dav iss` set on a <Directory> section works the same way.
my $dav = join ',', dav(OPTIONS => '/dirsec/')->header('DAV');
ok($dav =~ m{mod-iss\.org/ns/iss/1} ? 1 : 0, 1, "<Directory> section: ISS token in DAV: $dav");
($res, @c) = observe(MKCOL => '/dirsec/sub/');
ok($res->code, 201);
ok(summary(@c), 'before MKCOL st=0 n=1 | after MKCOL st=201 n=1', '<Directory> section: MKCOL captured');
($res, @c) = observe(PUT => '/dirsec/sub/f.txt', body => 'd');
ok($res->code, 201);
ok(members($c[0]), 'created file /dirsec/sub/f.txt', '<Directory> section: PUT captured with its URI path');

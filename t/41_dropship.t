# The "Dropship" attack on dedup: one store, two sub-locations readable by
# different users (/dedup/alice/: Require user alice, /dedup/bob/: Require
# user bob).  Bob knows the chunk ids of a file of alice's (he has a copy
# of, or guesses, its content, and wants to confirm that alice holds it, or
# he has only its manifest and wants its bytes).  He must neither learn
# that the server has those chunks nor get a file assembled from them.
# Alice herself dedups against her own files.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use Digest::SHA ();
use MIME::Base64 qw(encode_base64);

plan tests => 29;

# Pseudo-random bytes, fast even under the ASan run's preloaded runtime
# (a byte at a time from rand() took minutes there): SHA-256 in counter
# mode, a new stream for every call.
my $rnd_calls = 0;
sub rnd {
    my ($n) = @_;
    my $seed = ++$rnd_calls . '-' . $0;
    return substr(join('', map { Digest::SHA::sha256("$seed-$_") } 0 .. $n / 32), 0, $n);
}
sub as { my ($user) = @_; ('Authorization' => 'Basic ' . encode_base64("$user:pw-$user", '')) }
sub element { $_[0]->content =~ m{<I:([a-z-]+)/>} ? $1 : '' }
my $files = files_dir() =~ s{files$}{files-dedup}r;

for my $u (qw(alice bob)) {
    ok(dav(MKCOL => "/dedup/$u/", headers => { as($u) })->code, 201, "MKCOL /dedup/$u/ as $u");
}
ok(dav(GET => "/dedup/alice/", headers => { as("bob") })->code, 401, 'bob may not read alice\'s folder');

my $secret = rnd(600_000);
my $r = dav(PUT => '/dedup/alice/secret.bin', body => $secret, headers => { as('alice') });
ok($r->code, 201, 'alice stores a file');
my $man = manifest_of($secret);
my $n = scalar @{ manifest_parse($man)->{entries} };

# bob: the manifest of alice's file, uploaded into his own folder
my $mark = log_mark();
$r = dav(PATCH => '/dedup/bob/guess.bin', body => $man,
         headers => { as('bob'), 'Content-Type' => MANIFEST_TYPE });
my $log = log_since($mark);
ok($log =~ /may bob read \/dedup\/alice\/secret\.bin\? no/ ? 1 : 0, 1,
   '... httpd was asked whether bob may read alice\'s file: no');
ok($r->code, 409, 'bob uploads the manifest of alice\'s file: 409');
my ($sid, @miss) = missing_of($r);
ok(scalar @miss, $n, "... every one of its $n chunks is asked of him: the server does not confirm it has them");
ok(-e "$files/bob/guess.bin" ? 1 : 0, 0, '... no file assembled');
# again with the session: still nothing from alice's file
$r = dav(PATCH => '/dedup/bob/guess.bin', body => $man,
         headers => { as('bob'), 'Content-Type' => MANIFEST_TYPE, 'ISS-Upload-Session' => $sid });
{ my (undef, @again) = missing_of($r);
  ok($r->code . ' ' . scalar(@again), "409 $n", '... asked again in his session: still every chunk') }
# the same answer as for content the server has never seen
my $fresh = rnd(600_000);
$r = dav(PATCH => '/dedup/bob/fresh.bin', body => manifest_of($fresh),
         headers => { as('bob'), 'Content-Type' => MANIFEST_TYPE });
ok($r->code . ' ' . element($r), '409 missing-chunks', '... the same answer as for content the server never saw');
# a delta against his own file naming alice's chunks: same
my $own = rnd(100_000);
$r = dav(PUT => '/dedup/bob/own.bin', body => $own, headers => { as('bob') });
my $etag = $r->header('ETag');
my $delta = iss_chunk('delta', \manifest_of($own), \$man);
$r = dav(PATCH => '/dedup/bob/own.bin', body => $delta,
         headers => { as('bob'), 'Content-Type' => DELTA_TYPE, 'If-Match' => $etag });
my ($sid2, @miss2) = missing_of($r);
ok(scalar @miss2, $n, 'a manifest delta naming alice\'s chunks: every one asked of bob');
ok(dav(GET => '/dedup/bob/own.bin', headers => { as('bob') })->content eq $own ? 1 : 0, 1, '... his file unchanged');
# the manifest of alice's file itself
ok(dav(GET => '/dedup/alice/secret.bin', headers => { as('bob'), Accept => MANIFEST_TYPE })->code, 401,
   'bob cannot GET the manifest of alice\'s file');
ok(dav(GET => '/dedup/alice/secret.bin', headers => { Accept => MANIFEST_TYPE })->code, 401,
   '... nor can anyone without credentials');
# bob sends the bytes himself: then he gets his file (from his own bytes)
$r = dav(POST => '/dedup/bob/guess.bin', body => frames_of($secret, $man, @miss),
         headers => { as('bob'), 'Content-Type' => CHUNKS_TYPE, 'ISS-Upload-Session' => $sid });
ok($r->code, 204, 'bob sends the chunks himself: 204');
$r = dav(PATCH => '/dedup/bob/guess.bin', body => $man,
         headers => { as('bob'), 'Content-Type' => MANIFEST_TYPE, 'ISS-Upload-Session' => $sid });
ok($r->code, 201, '... then his upload completes');
# sessions are per user: alice cannot use bob's session id
$r = dav(POST => '/dedup/bob/guess.bin', body => 'x',
         headers => { as('alice'), 'Content-Type' => CHUNKS_TYPE, 'ISS-Upload-Session' => $sid2 });
ok($r->code, 401, 'alice cannot even POST into bob\'s folder (401: httpd\'s answer to a user Require does not name)');

# alice dedups against her own files
$r = dav(PATCH => '/dedup/alice/copy.bin', body => $man,
         headers => { as('alice'), 'Content-Type' => MANIFEST_TYPE });
ok($r->code, 201, 'alice uploads a copy of her own file: 201 without sending a chunk');
ok(dav(GET => '/dedup/alice/copy.bin', headers => { as('alice') })->content eq $secret ? 1 : 0, 1, '... the copy holds the content');
# and against bob's? bob's copy is not hers to read: no
my $bobs = rnd(300_000);
dav(PUT => '/dedup/bob/bobs.bin', body => $bobs, headers => { as('bob') });
$r = dav(PATCH => '/dedup/alice/bobs.bin', body => manifest_of($bobs),
         headers => { as('alice'), 'Content-Type' => MANIFEST_TYPE });
my (undef, @m3) = missing_of($r);
ok(scalar @m3, scalar @{ manifest_parse(manifest_of($bobs))->{entries} }, 'alice gets nothing from bob\'s file either');
# the root of the store (valid-user): a file there is readable by both
my $shared = rnd(300_000);
ok(dav(PUT => '/dedup/shared.bin', body => $shared, headers => { as('alice') })->code, 201, 'alice stores a file in the shared root');
$r = dav(PATCH => '/dedup/bob/shared-copy.bin', body => manifest_of($shared),
         headers => { as('bob'), 'Content-Type' => MANIFEST_TYPE });
ok($r->code, 201, 'bob, who may read it, dedups against it: 201');

# a drop box: bob may write there but not read; what is in it stays hidden
ok(dav(MKCOL => '/dedup/drop/', headers => { as('alice') })->code, 201, 'MKCOL /dedup/drop/ (everyone writes, alice reads)');
my $letter = rnd(200_000);
$r = dav(PUT => '/dedup/drop/letter.bin', body => $letter, headers => { as('bob') });
ok($r->code, 201, 'bob drops a file');
my $letter_etag = $r->header('ETag');
ok(dav(GET => '/dedup/drop/letter.bin', headers => { as('bob') })->code, 401, '... and may not read it back');
my $letter2 = $letter; substr($letter2, 1000, 5) = 'EDIT!';
$r = dav(PATCH => '/dedup/drop/letter.bin', body => iss_chunk('delta', \manifest_of($letter), \manifest_of($letter2)),
         headers => { as('bob'), 'Content-Type' => DELTA_TYPE, 'If-Match' => $letter_etag });
ok($r->code . ' ' . element($r), '403 read-required', 'a manifest delta of a file he may not read: 403 read-required');
# (without If-Match: to a user who may not read the file no entity tag
# matches, not even that of what he wrote, t/70_leaks.t; a whole
# manifest needs none)
$r = dav(PATCH => '/dedup/drop/letter.bin', body => manifest_of($letter2),
         headers => { as('bob'), 'Content-Type' => MANIFEST_TYPE });
my (undef, @m4) = missing_of($r);
ok(scalar @m4, scalar @{ manifest_parse(manifest_of($letter2))->{entries} },
   'a whole manifest: every chunk asked, none taken from the version he may not read');
ok(dav(GET => '/dedup/drop/letter.bin', headers => { as('alice') })->content eq $letter ? 1 : 0, 1, '... the file unchanged');
$r = dav(PATCH => '/dedup/drop/copy.bin', body => manifest_of($letter2),
         headers => { as('alice'), 'Content-Type' => MANIFEST_TYPE });
my (undef, @m5) = missing_of($r);
ok(scalar @m5, 1, 'alice, who may read it, gets all but the edited chunk from it');

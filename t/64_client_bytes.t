# Bytes on the wire, from the server's own access log (mod_logio's %I and
# %O of every request of the run, headers included): a 64 MiB file synced
# to `Dav iss` (/ciss/), edited by 100 bytes in the middle, re-synced:
# under 1% of the file each way; then the same edit coming the other way
# (another client's folder uploads it, the first folder syncs it down):
# under 1% again.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use ISSClient;
use Digest::SHA qw(sha256 sha256_hex);
use Time::HiRes ();

my $T0 = Time::HiRes::time();
sub at { printf "# %.2f s: %s\n", Time::HiRes::time() - $T0, $_[0] }

# A file's SHA-256 (read as a stream: no 64 MiB copies in memory).
sub file_sha { my $d = Digest::SHA->new(256); -f $_[0] or return ''; $d->addfile($_[0], 'b'); $d->hexdigest }

plan tests => 16;

my $SIZE = 64 * 1024 * 1024;
my $LIMIT = int($SIZE / 100);

# 64 MiB that no chunk repeats in, fast (a SHA-256 counter-mode MiB, each
# copy XORed with a key of its own).
my $mib = join '', map { sha256("54-block-$_") } 0 .. 32767;
my $data = join '', map { $mib ^ (sha256("54-key-$_") x 32768) } 0 .. 63;
my $v1 = sha256_hex($data);
at('made the file');

my $a = new_case('bytes', 'ciss');
my $b = new_case('bytes-b', 'ciss', same_as => $a);
lput($a, 'big.bin', $data);
at('wrote it');
my $r = run_sync($a, timeout => 300);
ok_run($r, 0, 'the 64 MiB file is synced up');
at('synced');
ok(file_sha("$a->{srv}/big.bin"), $v1, '... whole on the server');

# ---- a 100-byte edit here, synced up ------------------------------------------
substr($data, 33_000_000, 100) = 'e' x 100;
my $v2 = sha256_hex($data);
{
    open my $fh, '+<:raw', "$a->{local}/big.bin" or die $!;
    seek $fh, 33_000_000, 0; print $fh 'e' x 100; close $fh or die $!;
}
my $mark = access_mark();
$r = run_sync($a, timeout => 300);
my ($in, $out) = wire_bytes($mark);
ok_run($r, 0, 'a 100-byte edit in the middle, synced up');
at('synced the edit');
ok(file_sha("$a->{srv}/big.bin"), $v2, '... the server holds the edited file');
ok($in < $LIMIT ? 1 : 0, 1, "... the server received $in bytes (under 1% of the file: $LIMIT)");
ok($out < $LIMIT ? 1 : 0, 1, "... the server sent $out bytes (under 1%)");
ok($in > 100 ? 1 : 0, 1, '... (and at least the edit itself went over the wire)');

# ---- another client's folder: it has the file already (recorded, no transfer) --
lput($b, 'big.bin', $data);
$mark = access_mark();
$r = run_sync($b, timeout => 300);
my ($bin, $bout) = wire_bytes($mark);
ok_run($r, 0, 'a second folder with the same file pairs with the collection');
ok($bin + $bout < $LIMIT ? 1 : 0, 1, "... without a transfer ($bin + $bout bytes)");

# ---- the edit comes the other way ------------------------------------------------
substr($data, 12_345_678, 100) = 'f' x 100;
my $v3 = sha256_hex($data);
undef $data;
{
    open my $fh, '+<:raw', "$b->{local}/big.bin" or die $!;
    seek $fh, 12_345_678, 0; print $fh 'f' x 100; close $fh or die $!;
}
$r = run_sync($b, timeout => 300);
ok_run($r, 0, 'the second folder uploads its 100-byte edit');
ok(file_sha("$a->{srv}/big.bin"), $v3, '... the server holds it');
$mark = access_mark();
$r = run_sync($a, timeout => 300);
($in, $out) = wire_bytes($mark);
ok_run($r, 0, 'the first folder syncs the edit down');
at('synced down');
ok(file_sha("$a->{local}/big.bin"), $v3, '... and holds the edited file');
ok($out < $LIMIT ? 1 : 0, 1, "... the server sent $out bytes (under 1%)");
ok($in < $LIMIT ? 1 : 0, 1, "... the server received $in bytes (under 1%)");
ok(temp_leftovers($a->{local}), '', '... no temporary file left');

# Changes made behind httpd's back (another program writing into the
# served folder) enter the change log through a reconciliation scan: on
# demand with `iss-state DIR scan FOLDER`, or every ISSReconcileInterval
# seconds, run by the next sync request.  A scan that finds nothing logs
# nothing.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;
use File::Path qw(make_path remove_tree);

plan tests => 26;

my $dav = File::Spec->catdir(t_dir(), 'dav');
my $files = "$dav/files-sync";
my $state = "$dav/state-sync";
my $L = '/sync/oob';
sub statuses {
    my ($r) = @_;
    join ' ', map { "$_=$r->{members}{$_}{status}" } sort keys %{ $r->{members} };
}
sub scan { iss_state($state, 'scan', $files) }

# Earlier tests wrote into this folder behind httpd's back: absorb that.
scan();
ok(dav(MKCOL => "$L/")->code, 201);
ok(dav(PUT => "$L/kept.txt", body => 'kept')->code, 201);
ok(dav(PUT => "$L/edited.txt", body => 'before')->code, 201);
ok(dav(PUT => "$L/gone.txt", body => 'gone')->code, 201);
my $tok = sync_token_of("$L/");

# Nothing changed behind httpd's back: the scan logs nothing.
my ($rc, $out) = scan();
ok($rc, 0, 'scan runs');
ok($out =~ /0 created, 0 modified, 0 removed/ ? 1 : 0, 1, 'nothing changed: nothing found') or print STDERR "# $out";
ok($out =~ /logged as entry/ ? 1 : 0, 0, '... and nothing logged');
ok(sync_token_of("$L/"), $tok, '... the token is unchanged');

# Another program creates, edits and deletes files, and a folder.
spew("$files/oob/new.txt", 'made by another program');
spew("$files/oob/edited.txt", 'after, and longer');
unlink "$files/oob/gone.txt" or die;
make_path("$files/oob/dir/deep");
spew("$files/oob/dir/deep/x.txt", 'x');
my $r = sync_report("$L/", token => $tok, level => 'infinite');
ok(statuses($r), '', 'before a scan the log does not know');
($rc, $out) = scan();
ok($rc, 0);
ok($out =~ /(\d+) created, (\d+) modified, (\d+) removed/ ? "$1 $2 $3" : $out, '4 1 1', 'the scan finds them');
$r = sync_report("$L/", token => $tok, level => 'infinite');
ok(statuses($r), "$L/dir/=200 $L/dir/deep/=200 $L/dir/deep/x.txt=200 $L/edited.txt=200 $L/gone.txt=404 $L/new.txt=200",
   'after the scan a sync reports each');
ok($r->{members}{"$L/edited.txt"}{props}{getetag}, dav(HEAD => "$L/edited.txt")->header('ETag'), '... as they are now');
my $tok2 = $r->{token};

# A second scan finds nothing new; writes through httpd are not found
# again by a scan (the capture keeps the scan's index up to date).
ok(dav(PUT => "$L/kept.txt", body => 'edited through httpd')->code, 204);
ok(dav(DELETE => "$L/dir/")->code, 204);
my $tok3 = sync_token_of("$L/");
($rc, $out) = scan();
ok($out =~ /0 created, 0 modified, 0 removed/ ? 1 : 0, 1, "the index follows httpd's own writes") or print STDERR "# $out";
ok(sync_token_of("$L/"), $tok3, '... nothing logged twice');

# A folder removed behind httpd's back: the folder, alone at infinite.
make_path("$files/oob/tree/sub");
spew("$files/oob/tree/sub/t.txt", 't');
scan();
my $tok4 = sync_token_of("$L/");
remove_tree("$files/oob/tree");
scan();
$r = sync_report("$L/", token => $tok4, level => 'infinite');
ok(statuses($r), "$L/tree/=404", 'a folder removed by another program: reported removed, alone');

# The scan is refused, and logs nothing, when it cannot read the folder.
($rc, $out) = iss_state($state, 'scan', "$files/no-such-folder");
ok($rc, 1, 'scan of a missing folder fails');
ok($out =~ /no-such-folder/ ? 1 : 0, 1, '... and says which');

# ISSReconcileInterval 1 on /syncrec/: the next sync after a second scans.
# pre.txt was there before the location's first token: the baseline scan
# that comes before that token indexes it without logging it.
spew("$dav/files-syncrec/pre.txt", 'there before');
ok(dav(PUT => '/syncrec/a.txt', body => 'a')->code, 201);
my $rt = sync_token_of('/syncrec/');
(undef, $out) = iss_state("$dav/state-syncrec", 'log');
ok($out =~ /pre\.txt/ ? 1 : 0, 0, 'the baseline scan logs nothing') or print STDERR "# $out";
spew("$dav/files-syncrec/b.txt", 'written behind its back');
select(undef, undef, undef, 1.2);
$r = sync_report('/syncrec/', token => $rt, level => 1);
ok($r->{code}, 207);
ok(statuses($r), '/syncrec/b.txt=200', 'ISSReconcileInterval: the sync request ran the scan (and pre.txt is known)');
$r = sync_report('/syncrec/', token => $r->{token}, level => 1);
ok(statuses($r), '', '... once');
ok(join(' ', sort keys %{ sync_report('/syncrec/', token => '', level => 1)->{members} }),
   '/syncrec/a.txt /syncrec/b.txt /syncrec/pre.txt', 'an initial listing has all three');

# OPTIONS names the ISS extension on `Dav iss` locations only; the server
# signature names mod_iss and its version.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;

plan tests => 8;

my $iss = dav(OPTIONS => '/iss/');
ok($iss->code == 200);
my $dav = join ',', $iss->header('DAV');
ok($dav =~ /(^|,)\s*1\s*,\s*2(,|$)/ ? 1 : 0, 1, "DAV classes 1,2 on /iss/: $dav");
ok($dav =~ m{<https://mod-iss\.org/ns/iss/1>} ? 1 : 0, 1, "ISS token on /iss/");

my $plain = dav(OPTIONS => '/plain/');
my $pdav = join ',', $plain->header('DAV');
ok($pdav =~ /mod-iss/ ? 1 : 0, 0, "no ISS token on plain Dav On: $pdav");

# The methods a plain WebDAV client relies on are all still there.
my %allow = map { s/^\s+|\s+$//gr => 1 } split /,/, $iss->header('Allow');
my %pallow = map { s/^\s+|\s+$//gr => 1 } split /,/, $plain->header('Allow');
ok(join(',', sort keys %allow), join(',', sort keys %pallow),
   'Allow on /iss/ lists what /plain/ lists');

my $server = $iss->header('Server') // '';
ok($server =~ m{mod_iss/0\.1\.0} ? 1 : 0, 1, "Server header names mod_iss: $server");

# An iss location serves GET of a collection member as plain WebDAV does.
ok(dav(PUT => '/iss/identity.txt', body => "hello\n")->code, 201);
ok(dav(GET => '/plain/identity.txt')->content, "hello\n");

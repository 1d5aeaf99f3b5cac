# Bad configuration stops httpd at startup with a message that names the
# directive and the path, instead of failing at the first request.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Temp qw(tempdir);

plan tests => 57;

# Start an httpd of its own with this <Location /s/> body: (code, log).
sub start_with {
    my ($body, %opt) = @_;
    my $h = own_httpd_start(config => "<Location /s/>\n$body\n</Location>", %opt);
    my $started = !defined $h->{code};
    my $code = own_httpd_stop($h);
    return ($started ? 0 : $code, $h->{log}->());
}

my ($code, $log);

($code, $log) = start_with("Dav iss\nISSStateDir /nonexistent/iss-state");
ok($code != 0 ? 1 : 0, 1, 'missing ISSStateDir: httpd does not start');
ok($log =~ m{ISS01003: ISSStateDir /nonexistent/iss-state \(in <Location /s/> \(\S+ line \d+\)\) does not exist} ? 1 : 0, 1,
   'message names the directive, path and section') or print "# $log\n";

my $file = tempdir(CLEANUP => 1) . '/plain-file';
spew($file, 'x');
($code, $log) = start_with("Dav iss\nISSStateDir $file");
ok($code != 0 ? 1 : 0, 1, 'ISSStateDir names a file: httpd does not start');
ok($log =~ m{ISS01004: ISSStateDir \Q$file\E .* is not a directory} ? 1 : 0, 1) or print "# $log\n";

my $ro = tempdir(CLEANUP => 1);
chmod 0555, $ro;
($code, $log) = start_with("Dav iss\nISSStateDir $ro");
ok($code != 0 ? 1 : 0, 1, 'read-only ISSStateDir: httpd does not start');
ok($log =~ m{ISS01005: ISSStateDir \Q$ro\E .* is not writable} ? 1 : 0, 1) or print "# $log\n";
chmod 0755, $ro;

($code, $log) = start_with("Dav iss");
ok($code != 0 ? 1 : 0, 1, 'Dav iss without ISSStateDir: httpd does not start');
ok($log =~ m{ISS01001: Dav iss in <Location /s/> .* has no ISSStateDir} ? 1 : 0, 1) or print "# $log\n";

{
    my $d = tempdir(CLEANUP => 1);
    my $h = own_httpd_start(config => "<Directory $d>\nDav iss\n</Directory>");
    my $started = !defined $h->{code};
    own_httpd_stop($h);
    ok($started ? 0 : 1, 1, '<Directory> with Dav iss but no ISSStateDir: httpd does not start');
    ok($h->{log}->() =~ m{ISS01001: Dav iss in <Directory \Q$d\E> .* has no ISSStateDir} ? 1 : 0, 1)
        or print "# ", $h->{log}->(), "\n";
}

($code, $log) = start_with("Dav iss\nISSStateDir $ro\nISSDBMType nosuchdbm");
ok($code != 0 ? 1 : 0, 1, 'unknown ISSDBMType: httpd does not start');
ok($log =~ m{ISSDBMType: unknown or unavailable DBM type 'nosuchdbm'} ? 1 : 0, 1) or print "# $log\n";

for my $bad (['ISSSyncRetention age=5x', qr/ISSSyncRetention: unknown unit in 'age=5x'/],
             ['ISSSyncRetention count=-1', qr/ISSSyncRetention: 'count=-1' is not a positive count/],
             ['ISSSyncRetention keep=all', qr/ISSSyncRetention: 'keep=all': expected age=/],
             ['ISSSyncMaxResults -1', qr/ISSSyncMaxResults: '-1' is not a number from 0/],
             ['ISSReconcileInterval soon', qr/ISSReconcileInterval: 'soon' is not a number from 0/],
             ['ISSDigestHeader Sometimes', qr/ISSDigestHeader: 'Sometimes' is not Always or OnRequest/],
             ['ISSPatchMaxTargetSize 12X', qr/ISSPatchMaxTargetSize: '12X' is not a size from 0 to/],
             ['ISSPatchMaxTargetSize -1', qr/ISSPatchMaxTargetSize: '-1' is not a size/],
             ['ISSPatchMaxWindow 1K', qr/ISSPatchMaxWindow: '1K' is not a size from 4096 to/],
             ['ISSPatchMaxWindow 2G', qr/ISSPatchMaxWindow: '2G' is not a size from 4096 to 1073741824/]) {
    ($code, $log) = start_with("Dav iss\nISSStateDir $ro\n$bad->[0]");
    ok($code != 0 && $log =~ $bad->[1] ? 1 : 0, 1, "$bad->[0]: httpd does not start, and says why")
        or print "# $log\n";
}

($code, $log) = start_with("Dav On", no_dav_fs => 1);
ok($code != 0 ? 1 : 0, 1, 'without mod_dav_fs: httpd does not start');
ok($log =~ /ISS01010: mod_iss builds on mod_dav_fs, which is not loaded/ ? 1 : 0, 1, 'and says why') or print "# $log\n";

($code, $log) = start_with("Dav On", no_dav => 1);
ok($code != 0 ? 1 : 0, 1, 'without mod_dav: httpd does not start');
ok($log =~ /mod_iss\.so.*(undefined symbol: dav_|mod_dav)/ ? 1 : 0, 1, 'and says why') or print "# $log\n";

# The good case, for contrast: the same skeleton starts and stops cleanly.
($code, $log) = start_with("Dav iss\nISSStateDir $ro");
ok($code, 0, 'a valid configuration starts') or print "# $log\n";
ok($log =~ m{mod_iss/0\.1\.0} ? 1 : 0, 1, 'and names mod_iss in its startup line') or print "# $log\n";

# A <Limit PUT> that forgets PATCH: httpd starts, with a warning that
# names the section's line.
{
    my $st = tempdir(CLEANUP => 1);
    ($code, $log) = start_with("Dav iss\nISSStateDir $st\n<Limit PUT DELETE>\n    Require all denied\n</Limit>");
    ok($code, 0, '<Limit PUT DELETE> in a Dav iss section: httpd starts');
    ok($log =~ m{ISS01062: <Limit PUT DELETE> in \S+ \(line \d+\) limits PUT but not PATCH} ? 1 : 0, 1,
       '... and warns that PATCH is not limited') or print "# $log\n";
}

# The chunk dedup directives: bad values stop httpd with a message that
# names the directive; good ones start.
for my $bad (['ISSChunkSizes 128K 64K 256K', qr/ISSChunkSizes: the minimum chunk size must be less than the average/],
             ['ISSChunkSizes 16K lots 256K', qr/ISSChunkSizes: 'lots' is not a size from 64 to 67108864 bytes/],
             ['ISSChunkSizes 16K 64K 65M', qr/ISSChunkSizes: '65M' is not a size from 64 to 67108864 bytes/],
             ['ISSDedupScope Everyone', qr/ISSDedupScope: 'Everyone' is not Off, File or Readable/],
             ['ISSUploadTimeout 0', qr/ISSUploadTimeout: '0' is not a number of seconds from 1 to 31536000/],
             ['ISSUploadTimeout abc', qr/ISSUploadTimeout: 'abc' is not a number of seconds from 1/],
             ['ISSUploadMaxSize -1', qr/ISSUploadMaxSize: '-1' is not a size from 0 to/],
             ['ISSUploadStagingLimit 12Q', qr/ISSUploadStagingLimit: '12Q' is not a size from 0 to/],
             ['ISSChunking maybe', qr/ISSChunking must be On or Off/]) {
    ($code, $log) = start_with("Dav iss\nISSStateDir $ro\n$bad->[0]");
    ok($code != 0 && $log =~ $bad->[1] ? 1 : 0, 1, "$bad->[0]: httpd does not start, and says why")
        or print "# $log\n";
}

for my $good ("ISSChunking On\nISSChunkSizes 8K 32K 128K\nISSDedupScope File\nISSUploadTimeout 3600\n"
              . "ISSUploadMaxSize 1G\nISSUploadStagingLimit 512M",
              "ISSChunking off\nISSChunkSizes 64 256 512\nISSDedupScope readable\nISSUploadTimeout 1\n"
              . "ISSUploadMaxSize 0\nISSUploadStagingLimit 0\nISSDedupScope Off") {
    my $st = tempdir(CLEANUP => 1);
    (my $what = $good) =~ s/\n/; /g;
    ($code, $log) = start_with("Dav iss\nISSStateDir $st\n$good");
    ok($code, 0, "valid chunk directives start ($what)") or print "# $log\n";
    ok($log =~ /AH00489: .* resuming normal operations/ && $log !~ /Syntax error|ISS\d+:.*(?:ISSChunk|ISSDedup|ISSUpload)/ ? 1 : 0, 1,
       '... cleanly, with no message about them') or print "# $log\n";
}

# A <Limit> with PUT and PATCH but not POST: httpd starts, with a warning
# that POST (which stages upload chunks) is not limited; with POST, none.
{
    my $st = tempdir(CLEANUP => 1);
    ($code, $log) = start_with("Dav iss\nISSStateDir $st\n<Limit PUT PATCH>\n    Require all denied\n</Limit>");
    ok($code, 0, '<Limit PUT PATCH> in a Dav iss section: httpd starts') or print "# $log\n";
    ok($log =~ m{ISS01063: <Limit PUT PATCH> in \S+ \(line \d+\) limits PUT but not POST} ? 1 : 0, 1,
       '... and warns that POST is not limited') or print "# $log\n";
    ok($log =~ /ISS01062/ ? 1 : 0, 0, '... and not about PATCH, which it limits') or print "# $log\n";

    ($code, $log) = start_with("Dav iss\nISSStateDir $st\n<Limit PUT PATCH POST>\n    Require all denied\n</Limit>");
    ok($code == 0 && $log =~ /AH00489: .* resuming normal operations/ ? 1 : 0, 1,
       '<Limit PUT PATCH POST>: httpd starts') or print "# $log\n";
    ok($log =~ /ISS01063/ ? 1 : 0, 0, '... without a warning about POST') or print "# $log\n";
    ok($log =~ /ISS01062/ ? 1 : 0, 0, '... or about PATCH') or print "# $log\n";
}

# `httpd -t` (apache2ctl configtest) runs the same checks: a configuration
# that cannot start fails the test, with the same message, instead of
# passing it and taking the server down at the next graceful restart.
{
    my ($code, $out) = own_httpd_configtest(config => "<Location /s/>\nDav iss\nISSStateDir /nonexistent/iss-state\n</Location>");
    ok($code != 0 ? 1 : 0, 1, 'configtest with a missing ISSStateDir fails');
    ok($out =~ m{ISS01003: ISSStateDir /nonexistent/iss-state \(in <Location /s/> \(\S+ line \d+\)\) does not exist} ? 1 : 0, 1,
       '... with the message a start gives') or print "# $out\n";
    ok($out =~ /Syntax OK/ ? 1 : 0, 0, '... and never says Syntax OK') or print "# $out\n";

    ($code, $out) = own_httpd_configtest(config => "<Location /s/>\nDav iss\nISSStateDir $ro\n</Location>");
    ok($code == 0 && $out =~ /Syntax OK/ ? 1 : 0, 1, 'configtest of a good configuration: Syntax OK') or print "# $out\n";

    # ISSStateSync takes On, Full or Off (any case); anything else stops httpd.
    ($code, $out) = own_httpd_configtest(config => "<Location /s/>\nDav iss\nISSStateDir $ro\nISSStateSync full\n</Location>");
    ok($code == 0 && $out =~ /Syntax OK/ ? 1 : 0, 1, 'ISSStateSync full: Syntax OK') or print "# $out\n";
    ($code, $out) = own_httpd_configtest(config => "<Location /s/>\nDav iss\nISSStateDir $ro\nISSStateSync Sometimes\n</Location>");
    ok($code != 0 && $out =~ /ISSStateSync: "Sometimes" is not On, Off or Full/ ? 1 : 0, 1,
       'ISSStateSync Sometimes: refused, with the values it takes') or print "# $out\n";

    # A warning appears once, at a configtest and at a start.
    my $st = tempdir(CLEANUP => 1);
    my $limit = "<Location /s/>\nDav iss\nISSStateDir $st\n<Limit PUT DELETE>\n    Require all denied\n</Limit>\n</Location>";
    ($code, $out) = own_httpd_configtest(config => $limit);
    my @n62 = $out =~ /ISS01062/g;
    my @n63 = $out =~ /ISS01063/g;
    ok($code == 0 && @n62 == 1 && @n63 == 1 ? 1 : 0, 1, 'configtest prints ISS01062 and ISS01063 once each')
        or print "# $out\n";
    my $h = own_httpd_start(config => $limit);
    my $started = !defined $h->{code};
    own_httpd_stop($h);
    my $log = $h->{log}->();
    @n62 = $log =~ /ISS01062/g;
    @n63 = $log =~ /ISS01063/g;
    ok($started && @n62 == 1 && @n63 == 1 ? 1 : 0, 1, 'a start prints ISS01062 and ISS01063 once each (terminal and error log together)')
        or print "# $log\n";
}

# Runs last: the server logged nothing at error level or worse that the
# tests did not provoke on purpose (damaged-state tests, startup tests).
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;
use File::Spec;

plan tests => 1;

my $log = slurp(File::Spec->catfile(t_dir(), 'logs', 'error_log')) // '';
my @bad = grep {
    /\[(?:[\w_]+:)?(?:error|crit|alert|emerg)\]/
    # mod_dav logs every client error (4xx) it answers; litmus sends many.
    && !/\[dav:error\].*\[4\d\d, #\d+\]\s*$/
    # 21_sync_errors.t sends a REPORT without a body (mod_dav's message).
    && !/\[dav:error\].*AH00614: The request body must specify a report/
    # 20_sync.t reads /sync/secret/ (closed to all) and syncs around it.
    && !/\[authz_core:error\].*AH01630: client denied by server configuration: .*files-sync\/secret/
    # 21_sync_errors.t: an If header whose tagged list fails on the parent.
    && !/\[dav:error\].*Error\(s\) occurred on resources during the validation process.*\[207, #0\]/
    # litmus sends malformed XML on purpose.
    && !/\[core:error\].*AH0054[01]: XML [Pp]arser [Ee]rror/
    # 41_dropship.t, 70_leaks.t, 73_delta_get.t: bob and alice read each
    # other's folders on purpose.
    && !/\[authz_core:error\].*AH01631: user (?:alice|bob): authorization failure for "\/(?:dedup|leak|delta)\/(?:alice|bob|drop)\//
    # 72_versions.t: bob asks for versions of a file he may not read,
    # and sends dot segments, on purpose.
    && !/\[authz_core:error\].*AH01631: user bob: authorization failure for "\/versions\/private\//
    && !/\[core:error\].*AH10244: invalid URI path \(\/versions\/%2e%2e\//
    # 72_versions.t writes into a live file whose chunks a version uses,
    # outside httpd, on purpose: reading that version fails (za.bin: a
    # version whose chunks another live file, zb.bin, held).
    && !/ISS0116[78]:.*\/versions\/(?:outside|live\/za)\.bin/
    # 04_state.t damages the state of /broken/ on purpose.
    && !/ISS0102[245]:.*state-broken/
} split /\n/, $log;
ok(join("\n", @bad), '', 'no unexpected error-level lines in the error log');

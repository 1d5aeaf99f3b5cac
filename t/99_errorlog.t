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
    && !/ISS0102[245]:.*state-broken/     # 04_state.t damages /broken/ on purpose
    && !/File does not exist/             # 404 probes
} split /\n/, $log;
ok(join("\n", @bad), '', 'no unexpected error-level lines in the error log');

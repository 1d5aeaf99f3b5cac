# WebDAV compliance: litmus against `Dav On` (/plain/) and `Dav iss`
# (/iss/) in the same server and run.  Every litmus test that passes on
# plain mod_dav_fs must pass on mod_iss; both summaries are printed.
use strict;
use warnings FATAL => 'all';
use Apache::Test;
use ISSTest;

my $litmus = '/usr/bin/litmus';
plan tests => 4, need { "litmus is installed" => -x $litmus };

sub run_litmus {
    my ($path) = @_;
    my $url = url($path);
    # litmus writes debug.log into its working directory.
    my $out = `cd '${\ t_dir()}/logs' && $litmus $url 2>&1`;
    my (%result, @summary);
    my $suite = '';
    for my $line (split /[\r\n]+/, $out) {
        $suite = $1 if $line =~ /^-> running `(\w+)'/;
        $result{"$suite/$1"} = $2
            if $line =~ /^\s*\d+\.\s+(\S+?)\.*\s+(pass|FAIL|SKIPPED|WARNING)/;
        push @summary, $line if $line =~ /^<- summary/;
        push @summary, "   $line" if $line =~ /WARNING:/;
    }
    return (\%result, \@summary, $out);
}

my ($plain, $psum, $pout) = run_litmus('/plain/');
my ($iss, $isum, $iout) = run_litmus('/iss/');

# On stderr, so that the summaries show in a non-verbose run too.
print STDERR "# litmus against Dav On (/plain/):\n", map { "#   $_\n" } @$psum;
print STDERR "# litmus against Dav iss (/iss/):\n", map { "#   $_\n" } @$isum;

ok(scalar(keys %$plain) > 50 ? 1 : 0, 1, 'litmus ran its suites on plain: ' . scalar(keys %$plain) . ' tests')
    or print map { "# $_\n" } split /\n/, $pout;
ok(scalar(keys %$iss), scalar(keys %$plain), 'the same litmus tests ran on iss');

my @regressions = grep { $plain->{$_} eq 'pass' && ($iss->{$_} // 'missing') ne 'pass' }
                  sort keys %$plain;
ok(join(' ', @regressions), '', 'every test that passes on Dav On passes on Dav iss')
    or print map { "# $_\n" } split /\n/, $iout;

my $passed_plain = grep { $_ eq 'pass' } values %$plain;
my $passed_iss = grep { $_ eq 'pass' } values %$iss;
ok($passed_iss >= $passed_plain ? 1 : 0, 1, "passes: Dav On $passed_plain, Dav iss $passed_iss");

#!/bin/sh
# Run a test as an unprivileged user:  scripts/as-test-user.sh CMD [ARGS...]
#
# As root, runs CMD as $ISS_TEST_USER (default `isstest`, created if
# missing: a system user with no home and no login shell), with the same
# environment; as anyone else, runs CMD as it is.  Tests of permission
# checks (a folder chmod 000) cannot fail for root, so as root they would
# be skipped, and CI runs as root: `make check` runs every unit test
# through this (LOG_COMPILER in Makefile.am), and scripts/run-apache-test.sh
# runs the httpd suite as the same user.  The test must be able to read
# the build tree and write its own temporary folders (they are in /tmp).
set -e
[ "$(id -u)" = 0 ] || exec "$@"
user=${ISS_TEST_USER:-isstest}
if ! id -u "$user" >/dev/null 2>&1; then
  # two tests may race to create it (make -j check): one of them wins
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin \
    "$user" 2>/dev/null || id -u "$user" >/dev/null
fi
exec runuser -u "$user" -- "$@"

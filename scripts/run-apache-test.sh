#!/bin/bash
# Run the Apache::Test suite in t/ against one build of mod_iss.so:
#   scripts/run-apache-test.sh BUILD_DIR [normal|asan] [t/NN_name.t ...]
# all of t/ by default, or the .t files named, e.g. one of them:
#   scripts/run-apache-test.sh build normal t/40_chunks.t
# (asan: BUILD_DIR is build-asan, and httpd runs with the ASan runtime
# preloaded).  Apache::Test refuses to run as root, so as root this runs
# the suite as the unprivileged user of scripts/as-test-user.sh
# (`isstest`, created if missing) in a private copy of t/ and conf/;
# ISS_KEEP_TEST_DIR=1 keeps that copy (logs included).  Servers bind to
# 127.0.0.1 on a free port.  See TESTING.md.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: $0 BUILD_DIR [normal|asan] [t/NN_name.t ...]"
[ $# -ge 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || { echo "$usage" >&2; exit 2; }
build=$1
mode=${2:-normal}
case "$mode" in normal|asan) ;; *) echo "$usage" >&2; exit 2 ;; esac
module="$build/mod_iss.so"
[ -f "$module" ] || { echo "no $module; build first (scripts/build.sh)" >&2; exit 2; }
for t in "${@:3}"; do                     # (options of t/TEST pass as they are)
  case "$t" in -*) ;; *) [ -f "$top/$t" ] || { echo "no $top/$t; $usage" >&2; exit 2; } ;; esac
done

user=$(id -un)
if [ "$(id -u)" = 0 ]; then
  user=${ISS_TEST_USER:-isstest}
  "$top/scripts/as-test-user.sh" true     # creates the user if missing
fi
work=$(mktemp -d /tmp/iss-apache-test.XXXXXX)
fat=
small=
cleanup() {
  [ -f "$work/t/logs/httpd.pid" ] && kill "$(cat "$work/t/logs/httpd.pid")" 2>/dev/null || true
  # the FAT folder of the client tests (unmounted before the rm below
  # could walk into it)
  if [ -n "$fat" ] && mountpoint -q "$fat"; then
    fusermount -u "$fat" 2>/dev/null || umount "$fat" 2>/dev/null || umount -l "$fat" || true
  fi
  # the small file system of t/11_full_disk.t
  if [ -n "$small" ] && mountpoint -q "$small"; then
    umount "$small" 2>/dev/null || umount -l "$small" || true
  fi
  if [ -z "${ISS_KEEP_TEST_DIR:-}" ]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT
# tsdav (t/25_tsdav.t's RFC 6578 client), as package-lock.json pins it;
# installed again only when the lock file is newer than the install.  If
# this fails, that test fails (it never skips).
tsdav="$top/t/tsdav"
if [ ! "$tsdav/node_modules/.package-lock.json" -nt "$tsdav/package-lock.json" ]; then
  (cd "$tsdav" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) \
    || echo "npm ci in t/tsdav failed: t/25_tsdav.t will fail" >&2
fi
cp -a "$top/t" "$top/conf" "$work/"
cp "$module" "$work/mod_iss.so"
cp "$build/tools/iss-state" "$work/iss-state"
cp "$build/tools/iss-chunk" "$work/iss-chunk"
# iss-sync, for the client tests (t/6x_client_*.t): they fail (never skip)
# when it is missing.
if [ -f "$build/client/iss-sync" ]; then
  cp "$build/client/iss-sync" "$work/iss-sync"
else
  echo "no $build/client/iss-sync: the client tests will fail" >&2
fi
chmod 755 "$work"; chown -R "$user:" "$work"

# A free port on 127.0.0.1, fixed for the whole run (Apache::Test's own
# "select" picks again in every test process).
port=$(perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0) or die; print $s->sockport')
envs=(HARNESS_TIMER=1 ISS_MODULE_PATH="$work/mod_iss.so" ISS_STATE_TOOL="$work/iss-state" ISS_CHUNK_TOOL="$work/iss-chunk" APACHE_TEST_PORT="$port"
      ISS_SYNC_TOOL="$work/iss-sync" ISS_TOP="$top" ISS_MODE="$mode" PATH="$PATH")

# A small FAT file system (case-insensitive, refuses ':' and more) for
# t/62_client_guards.t's names the local file system cannot hold.  FUSE
# needs root here (/dev/fuse is root's): mounted now, for the test user
# (allow_other, files owned by it), unmounted by cleanup.  If it cannot be
# mounted ISS_FAT_DIR stays unset and that test fails (it never skips).
if command -v fusefat >/dev/null && command -v mkfs.vfat >/dev/null; then
  truncate -s 16M "$work/fat.img" && mkfs.vfat "$work/fat.img" >/dev/null \
    && mkdir "$work/fat" && chown "$user:" "$work/fat.img" "$work/fat" || true
  opts=rw+
  if [ "$(id -u)" = 0 ]; then opts="rw+,allow_other,uid=$(id -u "$user"),gid=$(id -g "$user")"; fi
  if [ -d "$work/fat" ] && fusefat -o "$opts" "$work/fat.img" "$work/fat" >/dev/null 2>&1 \
     && mountpoint -q "$work/fat"; then
    fat="$work/fat"
    envs+=(ISS_FAT_DIR="$fat")
  else
    echo "cannot mount a FAT folder with fusefat: t/62_client_guards.t will fail" >&2
  fi
else
  echo "fusefat or mkfs.vfat missing (scripts/deps.sh installs them): t/62_client_guards.t will fail" >&2
fi
# A small tmpfs (1 MiB) holding both the files and the state of one
# location, for t/11_full_disk.t's full disk.  Mounting needs root: as
# root it is mounted now for the test user and unmounted by cleanup;
# otherwise ISS_SMALL_FS stays unset and that test fails (it never skips).
mkdir "$work/small"
if [ "$(id -u)" = 0 ] \
   && mount -t tmpfs -o "size=1m,mode=0755,uid=$(id -u "$user"),gid=$(id -g "$user")" tmpfs "$work/small" \
   && mountpoint -q "$work/small"; then
  small="$work/small"
  envs+=(ISS_SMALL_FS="$small")
else
  echo "cannot mount a small tmpfs (needs root): t/11_full_disk.t will fail" >&2
fi
httpd_opt=()
if [ "$mode" = asan ]; then
  # httpd itself is not instrumented: the ASan runtime must come first in
  # httpd, and only there.  Preloaded into the whole run it also slowed
  # the test scripts (Perl under ASan's allocator: t/07_crash.t's checks
  # took 5x longer) and every program they start.  So Apache::Test and
  # own_httpd_start run httpd through a wrapper that preloads it; the
  # instrumented tools (iss-state, iss-sync) carry their own runtime.
  httpd_bin=$(apxs2 -q SBINDIR)/$(apxs2 -q TARGET)
  printf '#!/bin/sh\nLD_PRELOAD=%s exec %s "$@"\n' \
    "$(gcc -print-file-name=libasan.so)" "$httpd_bin" > "$work/httpd-asan"
  chmod 755 "$work/httpd-asan"
  httpd_opt=(-httpd "$work/httpd-asan")
  envs+=(ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$work/t/logs/asan"
         UBSAN_OPTIONS="print_stacktrace=1:log_path=$work/t/logs/ubsan")
fi
cd "$work"
status=0
"$top/scripts/as-test-user.sh" env "${envs[@]}" perl t/TEST.PL -apxs /usr/bin/apxs2 \
  "${httpd_opt[@]}" -httpd_conf "$work/t/inherit.conf" -verbose=0 "${@:3}" || status=$?

# A sanitizer report or a crashed child fails the run, whatever prove said.
if ls "$work"/t/logs/asan.* "$work"/t/logs/ubsan.* >/dev/null 2>&1; then
  echo "sanitizer reports:"; cat "$work"/t/logs/asan.* "$work"/t/logs/ubsan.* 2>/dev/null | head -100
  status=1
fi
if grep -E "exit signal (Segmentation|Aborted|Bus)|AddressSanitizer|runtime error:" "$work/t/logs/error_log" 2>/dev/null; then
  echo "crash or sanitizer report in error_log"; status=1
fi
exit $status

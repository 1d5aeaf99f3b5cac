#!/bin/bash
# Install what building and testing mod_iss needs on Debian 12 (as root).
# Idempotent: only runs apt-get when a package is missing.
set -euo pipefail
PKGS=(build-essential autoconf automake libtool pkg-config
      apache2 apache2-dev libapr1-dev libaprutil1-dev libssl-dev zlib1g-dev
      libcurl4-openssl-dev libsqlite3-dev
      libapache2-mod-perl2 libwww-perl litmus curl perl xdelta3 procps acl nodejs
      clang libclang-rt-14-dev)
# Real clients the httpd suite drives (never mocked; their tests fail
# without them): gio/gvfs (t/50_admin.t), rclone (t/51_owncloud.t,
# bench/client_resync.sh), Chromium (t/52_cors.t); a FAT file system under
# FUSE for the client's name tests (t/62_client_guards.t); rsync for
# bench/client_resync.sh.
PKGS+=(libglib2.0-bin gvfs-backends dbus-daemon rclone chromium fuse fusefat dosfstools rsync)
# npm: Debian's, unless the installed nodejs brings its own (NodeSource's
# does, and conflicts with Debian's npm package).
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages (${missing[*]}); run this as root" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Do not let the package start Debian's own apache2 on port 80.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

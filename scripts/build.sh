#!/bin/bash
# Build mod_iss out of tree: scripts/build.sh [normal|asan]  -> build/ or build-asan/
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
kind=${1:-normal}
case "$kind" in
  normal) dir="$top/build"; extra=(--enable-werror) ;;
  asan)   dir="$top/build-asan"; extra=(--enable-werror --enable-sanitizers) ;;
  *) echo "usage: $0 [normal|asan]" >&2; exit 2 ;;
esac
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
  ./autogen.sh >/dev/null 2>&1 || ./autogen.sh
fi
mkdir -p "$dir"
cd "$dir"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
  "$top/configure" --quiet "${extra[@]}" CFLAGS="-g -O2"
fi
make -s -j"$(nproc)"
echo "build ($kind): $dir/mod_iss.so"

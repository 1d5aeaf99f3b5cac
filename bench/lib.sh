# Shared by the benchmarks (sourced): a private httpd's skeleton.
#   port=$(bench_free_port)
#   bench_conf_head WORK PORT BUILD >  WORK/httpd.conf
# The skeleton: 127.0.0.1:PORT, logs under WORK/logs, User www-data when
# run as root, event MPM, mod_dav, mod_dav_fs and BUILD/mod_iss.so,
# WORK as document root.  Callers append their locations.

bench_free_port() {
  perl -MIO::Socket::INET -e 'print IO::Socket::INET->new(Listen=>1,LocalAddr=>"127.0.0.1",LocalPort=>0)->sockport'
}

bench_conf_head() {
  local work=$1 port=$2 build=$3 mods=/usr/lib/apache2/modules
  cat <<CONF
ServerRoot "$work"
Listen 127.0.0.1:$port
ServerName 127.0.0.1
PidFile logs/httpd.pid
DefaultRuntimeDir logs
ErrorLog logs/error_log
$([ "$(id -u)" = 0 ] && printf 'User www-data\nGroup www-data')
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule alias_module $mods/mod_alias.so
LoadModule dav_module $mods/mod_dav.so
LoadModule dav_fs_module $mods/mod_dav_fs.so
LoadModule iss_module $build/mod_iss.so
DavLockDB logs/DavLock
DocumentRoot "$work"
<Directory "$work">
    Require all granted
</Directory>
CONF
}

# A private work folder and the trap that stops its httpd (once the
# caller has set started=1) and removes it:   bench_work PREFIX
bench_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  started=
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP
}
bench_cleanup() {
  if [ -n "$started" ]; then
    /usr/sbin/apache2 -f "$work/httpd.conf" -k stop || true
    for _ in $(seq 100); do [ -f "$work/logs/httpd.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$work"
}

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# The ETag mod_iss gives a file: base64url of its SHA-256, no padding.
etag_of() { printf '"%s"' "$(openssl dgst -sha256 -binary "$1" | base64 -w0 | tr '+/' '-_' | tr -d '=')"; }

# bench_curl NAME BODY_FILE URL CURL_ARGS...: one request with curl; sets
# code, secs, up (request headers + body) and down (response headers +
# body) as bytes on the wire; curl's -v trace in $work/NAME.trace, the
# response headers in $work/NAME.hdr.  curl counts a small body sent in
# one piece with the headers in size_request as well as in size_upload:
# the request headers come from the trace ("> " lines, each with its
# CRLF), checked against size_request with or without the body.
bench_curl() {
  local name=$1 body=$2 url=$3 w up_h up_b down_h down_b req_h
  shift 3
  w=$(curl -sS -v -o "$body" -D "$work/$name.hdr" \
        -w '%{http_code} %{time_total} %{size_request} %{size_upload} %{size_header} %{size_download}' \
        "$@" "$url" 2>"$work/$name.trace") || { cat "$work/$name.trace" >&2; echo "curl failed ($name)" >&2; exit 1; }
  read -r code secs up_h up_b down_h down_b <<<"$w"
  req_h=$(tr -d '\r' < "$work/$name.trace" | awk '/^> / {n += length($0)} END {print n + 0}')
  if [ "$up_h" != "$req_h" ] && [ "$up_h" != $((req_h + up_b)) ]; then
    echo "cannot account for the request bytes of $name: size_request $up_h, headers $req_h, body $up_b" >&2
    exit 1
  fi
  up=$((req_h + up_b)) down=$((down_h + down_b))
}

# bench_header NAME FIELD: the last value of FIELD in NAME's response.
bench_header() {
  tr -d '\r' < "$work/$1.hdr" | awk -v f="$(printf '%s' "$2" | tr 'A-Z' 'a-z')" \
    'index(tolower($0), f ":") == 1 {v = substr($0, length(f) + 2); sub(/^ */, "", v)} END {print v}'
}

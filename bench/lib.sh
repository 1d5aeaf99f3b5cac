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
# caller has set started=1), unmounts what the caller mounted in it
# (bench_mounts+=(DIR)) and removes it:   bench_work PREFIX
bench_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  started=
  bench_mounts=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP
}
bench_cleanup() {
  local m
  bench_stop
  for m in "${bench_mounts[@]}"; do umount "$m" || umount -l "$m" || true; done
  rm -rf "$work"
}

# Start the httpd of $work/httpd.conf (the work folder given to the
# server's user first, when run as root) and wait until it answers on
# $port; exit 1 with its error log's end if it does not.  bench_stop
# stops it (if started) and waits until it is gone.
bench_start() {
  [ "$(id -u)" = 0 ] && chown -R www-data: "$work"
  /usr/sbin/apache2 -f "$work/httpd.conf" -k start
  started=1
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0; sleep 0.1; done
  echo "httpd did not start: $(tail -5 "$work/logs/error_log" 2>/dev/null)" >&2
  exit 1
}
bench_stop() {
  [ -n "$started" ] || return 0
  /usr/sbin/apache2 -f "$work/httpd.conf" -k stop || true
  for _ in $(seq 100); do [ -f "$work/logs/httpd.pid" ] || break; sleep 0.1; done
  started=
}

# httpd's CPU time so far in clock ticks (user + system): the parent,
# with the children it reaped, and the children alive.
bench_httpd_ticks() {
  local ppid t=0 pid
  ppid=$(cat "$work/logs/httpd.pid")
  for pid in $ppid $(pgrep -P "$ppid"); do
    t=$((t + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
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

# bench_missing_ranges OLD_IDS NEW_IDS: the byte ranges ("start-end",
# inclusive, one a line) of the new file's chunks whose ids the old one
# lacks, neighbours merged; the inputs are `iss-chunk ids` listings.
bench_missing_ranges() {
  perl -e 'my ($o, $n) = @ARGV; my %have;
    open my $fh, "<", $o or die "$o: $!\n"; while (<$fh>) { my ($id) = split; $have{$id} = 1 }
    open $fh, "<", $n or die "$n: $!\n"; my ($s, $e);
    while (<$fh>) { my ($id, $len, $off) = split; next if $have{$id};
      if (defined $e && $off == $e + 1) { $e = $off + $len - 1 } else { print "$s-$e\n" if defined $s; ($s, $e) = ($off, $off + $len - 1) } }
    print "$s-$e\n" if defined $s' "$1" "$2"
}

# ---- the pairs of issue 15's benchmarks (bench/vcdiff_encode.sh,
# bench/delta_get.sh): an old and a new version, made at bench time ----

# bench_rewrite_blocks FILE: 10% of FILE's 64 KiB blocks, chosen at
# random (fixed seed), rewritten in place with random bytes.
bench_rewrite_blocks() {
  perl -e 'my ($p, $n) = @ARGV; my $k = int($n / 10 + 0.5); srand(4);
    my @b = (0 .. $n - 1);
    for my $i (0 .. $k - 1) { my $j = $i + int(rand($n - $i)); @b[$i, $j] = @b[$j, $i]; }
    open my $fh, "+<:raw", $p or die "$p: $!\n";
    open my $r, "<:raw", "/dev/urandom" or die "/dev/urandom: $!\n";
    for my $blk (sort { $a <=> $b } @b[0 .. $k - 1]) {
        read($r, my $buf, 65536) == 65536 or die "/dev/urandom: short read\n";
        seek $fh, $blk * 65536, 0; print $fh $buf;
    }
    close $fh or die "$p: $!\n"' "$1" $(( $(stat -c %s "$1") / 65536 ))
}

# bench_pair_sqlite OLD NEW: a SQLite database (300,000 rows with even
# ids, an index) and the same after scattered updates (every 500th row)
# and inserts (3,000 rows with odd ids spread over the table).
bench_pair_sqlite() {
  sqlite3 "$1" <<'SQL'
PRAGMA page_size = 4096;
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT,
                    score INTEGER, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000)
INSERT INTO users SELECT 2 * x, 'user' || x, 'user' || x || '@example.org',
                         (x * 7919) % 1000, hex(randomblob(24)) FROM c;
CREATE INDEX users_score ON users (score);
SQL
  cp "$1" "$2"
  sqlite3 "$2" <<'SQL'
UPDATE users SET score = score + 1, note = hex(randomblob(24)) WHERE id % 1000 = 0;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
INSERT INTO users SELECT 2 * ((x * 104729) % 300000) + 1, 'new' || x,
                         'new' || x || '@example.org', x % 1000,
                         hex(randomblob(24)) FROM c;
SQL
}

# bench_pair_tar TREE OLD NEW: a GNU tar archive of a tree (made in the
# new folder TREE, removed after) of text and binary files (about 64 MiB,
# sorted names, fixed owners and mtimes), and the same tree after its
# second member grew by 64 KiB.
bench_pair_tar() {
  local tree=$1
  mkdir -p "$tree"
  perl -e 'srand(15); my $dir = shift;
    my @w = qw(the of and to in is was for on that with as by at from this file data
               server client request version chunk delta window source target);
    for my $i (1 .. 24) {
        my $name = sprintf "%s/%02d-%s", $dir, $i, $i % 3 ? "doc.txt" : "blob.bin";
        my $size = int(rand(5 * 1048576)) + 65536;
        open my $fh, ">:raw", $name or die "$name: $!\n";
        if ($i % 3) {
            my $n = 0;
            while ($n < $size) {
                my $line = join(" ", map { $w[int rand @w] } 1 .. 4 + int rand 12) . ".\n";
                print $fh $line; $n += length $line;
            }
        } else {
            open my $r, "<:raw", "/dev/urandom" or die; read $r, my $b, $size; print $fh $b;
        }
        close $fh;
    }' "$tree"
  tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf "$2" -C "$tree" .
  perl -e 'srand(16); my @w = qw(grew appended more lines of text here and there);
    my $n = 0; while ($n < 65536) { my $l = join(" ", map { $w[int rand @w] } 1 .. 9) . "\n"; print $l; $n += length $l }' \
    >> "$tree/02-doc.txt"
  tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -cf "$3" -C "$tree" .
  rm -rf "$tree"
}

# bench_pair_log OLD NEW: a 64 MiB application log and the same log with
# 4 MiB of lines appended.
bench_log_lines() {   # bench_log_lines SEED FIRST_SECOND MIB
  perl -e 'my ($seed, $t, $mib) = @ARGV; srand($seed);
    my @lvl = (("INFO") x 8, "WARN", "DEBUG"); my @m = qw(GET GET GET POST PUT DELETE);
    my @p = ("/api/items", "/api/users", "/static/app.js", "/api/orders", "/health");
    my $n = 0;
    while ($n < $mib * 1048576) {
        my @t = gmtime($t + int($n / 2000));
        my $l = sprintf "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s [worker-%d] %s %s/%d %d %dms user=u%04d req=%08x\n",
            $t[5] + 1900, $t[4] + 1, $t[3], $t[2], $t[1], $t[0], int rand 1000,
            $lvl[int rand @lvl], int rand 16, $m[int rand @m], $p[int rand @p],
            int rand 100000, (200, 200, 200, 201, 304, 404, 500)[int rand 7],
            int rand 900, int rand 5000, int rand 4294967295;
        print $l; $n += length $l;
    }' "$@"
}
bench_pair_log() {
  bench_log_lines 17 1700000000 64 > "$1"
  { cat "$1"; bench_log_lines 18 1700100000 4; } > "$2"
}

#!/bin/bash
# Quick start, second command: install what is missing, build mod_iss
# (normal and ASan+UBSan), and run every test: C unit tests, a bounded
# libFuzzer run of the parsers of hostile input, the Apache::Test suite
# against a real httpd (litmus included), each against both builds.  Exits non-zero if anything fails.  Run as root on Debian 12.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
start=$(date +%s)

bash scripts/deps.sh || exit 1
bash scripts/build.sh normal || exit 1
bash scripts/build.sh asan || exit 1

names=(); codes=(); whys=(); tests=0; failed_tests=0; skipped_tests=0
# summary_count LOG LABEL: the number automake's test-suite summary gives
# for LABEL ("# FAIL:  2"), empty if the log has no such summary.
summary_count() { sed -n "s/^# $2: *\([0-9][0-9]*\)\$/\1/p" "$1" | tail -1; }
step() {
  local name=$1; shift
  echo; echo "=== $name"
  local log; log=$(mktemp)
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local n x s=0
  n=$(summary_count "$log" TOTAL)
  if [ -n "$n" ]; then
    # automake's summary (make check): "# TOTAL: N", "# FAIL: x",
    # "# ERROR: e", "# SKIP: s".  A skip is not a pass: the unit tests
    # run as an unprivileged user so that none needs to skip, and one
    # that does anyway (a missing DBM driver, ...) fails the step.
    x=$(( $(summary_count "$log" FAIL) + $(summary_count "$log" ERROR) + $(summary_count "$log" XPASS) ))
    s=$(summary_count "$log" SKIP)
    if [ "$s" -gt 0 ]; then
      echo "=== $name: $s test(s) skipped; see unit/*.log in the build tree"
      [ "$rc" = 0 ] && rc=1
    fi
  else
    # prove's summary (the httpd suite): "Files=F, Tests=N, ..." and, on
    # failure, "Failed f/F test programs. x/N subtests failed."
    n=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$log" | tail -1)
    x=$(sed -n 's/.* \([0-9]*\)\/[0-9]* subtests failed\..*/\1/p' "$log" | tail -1)
  fi
  [ "$rc" != 0 ] && [ "${x:-0}" = 0 ] && [ "$s" = 0 ] && x=1   # failed without a count
  tests=$((tests + ${n:-0})); failed_tests=$((failed_tests + ${x:-0}))
  skipped_tests=$((skipped_tests + s))
  # What failed, for the summary at the end (a CI log may keep only its
  # tail): prove's report, automake's FAIL lines, the suite's own checks.
  local why=""
  [ "$rc" != 0 ] && why=$(grep -E '^(FAIL|ERROR|XPASS): |^t/.*\(Wstat|^ +Failed tests?: |^# Test [0-9]+ got|Dubious|^crash or sanitizer|^sanitizer reports|skipped; see' "$log" | head -20)
  rm -f "$log"
  names+=("$name"); codes+=("$rc"); whys+=("$why")
}

step "unit tests (normal build)" make -s -C build check
step "unit tests (ASan+UBSan build)" env ASAN_OPTIONS=detect_leaks=1 make -s -C build-asan check
step "fuzz: VCDIFF decoder and encoder, manifest parsers, chunk frames, If header, sync tokens, digest fields, A-IM and If-None-Match (libFuzzer, ASan+UBSan, 20 s each)" bash scripts/fuzz.sh 20
step "httpd suite + litmus (normal build)" bash scripts/run-apache-test.sh build
step "httpd suite + litmus (ASan+UBSan build)" bash scripts/run-apache-test.sh build-asan asan

echo; echo "=== summary ($(( $(date +%s) - start ))s, $tests tests in ${#names[@]} suites)"
failed=0
for i in "${!names[@]}"; do
  if [ "${codes[$i]}" = 0 ]; then echo "  PASS  ${names[$i]}"
  else
    echo "  FAIL  ${names[$i]} (exit ${codes[$i]})"; failed=$((failed + 1))
    [ -n "${whys[$i]}" ] && printf '%s\n' "${whys[$i]}" | sed 's/^/          /'
  fi
done
passed=$((tests - failed_tests - skipped_tests)); [ "$passed" -lt 0 ] && passed=0
echo "$passed passed, $failed_tests failed, $skipped_tests skipped"
[ "$failed" = 0 ]

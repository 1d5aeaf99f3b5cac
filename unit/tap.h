/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * A tiny TAP producer for the C unit tests (run by `prove`).
 *
 *   plan(n);                      optional: "1..n" up front
 *   ok(cond, "name %d", i);       "ok N - name" / "not ok N - name"
 *   is_int(got, want, "name");    ok() plus a diagnostic on mismatch
 *   is_str(got, want, "name");    the same for strings (NULL allowed)
 *   skip(n, "why");               n tests reported as "ok N # SKIP why"
 *   diag("fmt", ...);             "# ..." comment line
 *   return done_testing();        prints "1..N" if plan() was not called;
 *                                 returns the exit status (non-zero if a
 *                                 test failed or the plan was missed)
 *
 * Output is flushed after every line, so forking is safe.  Meant for one
 * test program per translation unit: the counters are file-static.
 */
#ifndef ISS_TAP_H
#define ISS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static struct {
    int run;
    int failed;
    int planned;
} tap_state;

static inline void tap_vprint(FILE *out, const char *prefix, const char *fmt,
                              va_list ap)
{
    fputs(prefix, out);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    fflush(out);
}

static inline void diag(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    va_start(ap, fmt);
    tap_vprint(stderr, "# ", fmt, ap);
    va_end(ap);
}

static inline void plan(int n)
{
    tap_state.planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline int tap_vok(int pass, const char *file, int line,
                          const char *fmt, va_list ap)
{
    char prefix[64];

    tap_state.run++;
    if (!pass)
        tap_state.failed++;
    snprintf(prefix, sizeof(prefix), "%sok %d - ", pass ? "" : "not ",
             tap_state.run);
    tap_vprint(stdout, prefix, fmt, ap);
    if (!pass)
        diag("  Failed test at %s line %d.", file, line);
    return pass;
}

static inline int tap_ok(int pass, const char *file, int line,
                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int tap_ok(int pass, const char *file, int line,
                         const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = tap_vok(pass, file, line, fmt, ap);
    va_end(ap);
    return r;
}

static inline int tap_is_int(long long got, long long want, const char *file,
                             int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static inline int tap_is_int(long long got, long long want, const char *file,
                             int line, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = tap_vok(got == want, file, line, fmt, ap);
    va_end(ap);
    if (!r)
        diag("         got: %lld\n#     expected: %lld", got, want);
    return r;
}

static inline int tap_is_str(const char *got, const char *want,
                             const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static inline int tap_is_str(const char *got, const char *want,
                             const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int r, same = (got == NULL && want == NULL)
                  || (got && want && strcmp(got, want) == 0);

    va_start(ap, fmt);
    r = tap_vok(same, file, line, fmt, ap);
    va_end(ap);
    if (!r)
        diag("         got: %s%s%s\n#     expected: %s%s%s",
             got ? "'" : "", got ? got : "NULL", got ? "'" : "",
             want ? "'" : "", want ? want : "NULL", want ? "'" : "");
    return r;
}

static inline void skip(int n, const char *why)
{
    while (n-- > 0) {
        tap_state.run++;
        printf("ok %d # SKIP %s\n", tap_state.run, why);
    }
    fflush(stdout);
}

static inline int done_testing(void)
{
    if (!tap_state.planned) {
        printf("1..%d\n", tap_state.run);
        fflush(stdout);
    }
    else if (tap_state.planned != tap_state.run) {
        diag("Looks like you planned %d tests but ran %d.", tap_state.planned,
             tap_state.run);
        return 255;
    }
    if (tap_state.failed)
        diag("Looks like you failed %d test%s of %d.", tap_state.failed,
             tap_state.failed == 1 ? "" : "s", tap_state.run);
    return tap_state.failed ? (tap_state.failed < 254 ? tap_state.failed : 254)
                            : 0;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
    tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, \
               __VA_ARGS__)
#define is_str(got, want, ...) \
    tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

#endif /* ISS_TAP_H */

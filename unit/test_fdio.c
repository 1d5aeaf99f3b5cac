/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Unit tests of libiss/core/iss_fdio.c: whole-buffer pwrite and pread at
 * offsets, a read past the end (APR_EOF), a bad descriptor.  TAP.
 */

#include "iss_fdio.h"
#include "tap.h"

#include <apr_general.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char path[] = "/tmp/iss-test-fdio-XXXXXX";
    char big[200000], back[200000];
    int fd, i;

    apr_initialize();
    plan(8);
    fd = mkstemp(path);
    ok(fd >= 0, "a temporary file");
    for (i = 0; i < (int)sizeof(big); i++) {
        big[i] = (char)(i * 7 + 3);
    }
    ok(iss_pwrite_full(fd, big, sizeof(big), 4096) == APR_SUCCESS,
       "200,000 bytes written at offset 4096");
    is_int(lseek(fd, 0, SEEK_END), 4096 + (long long)sizeof(big),
           "... the file is that long (a hole before them)");
    ok(iss_pread_full(fd, back, sizeof(back), 4096) == APR_SUCCESS
       && memcmp(back, big, sizeof(big)) == 0, "read back whole");
    ok(iss_pread_full(fd, back, 10, 0) == APR_SUCCESS
       && memcmp(back, "\0\0\0\0\0\0\0\0\0\0", 10) == 0,
       "the hole reads as zeroes");
    ok(iss_pread_full(fd, back, 100, 4096 + sizeof(big) - 50) == APR_EOF,
       "a read that runs past the end: APR_EOF");
    ok(iss_pwrite_full(-1, big, 1, 0) == APR_FROM_OS_ERROR(EBADF)
       && iss_pread_full(-1, back, 1, 0) == APR_FROM_OS_ERROR(EBADF),
       "a bad descriptor: EBADF, for both");
    ok(iss_pwrite_full(fd, big, 0, 0) == APR_SUCCESS,
       "nothing to write: success");
    close(fd);
    unlink(path);
    apr_terminate();
    return done_testing();
}

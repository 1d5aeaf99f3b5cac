/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_fdio.h"

#include <errno.h>
#include <unistd.h>

apr_status_t iss_pwrite_full(int fd, const void *buf, apr_size_t n,
                             apr_uint64_t off)
{
    const char *p = buf;

    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return w < 0 ? APR_FROM_OS_ERROR(errno) : APR_EGENERAL;
        }
        p += w;
        n -= (apr_size_t)w;
        off += (apr_uint64_t)w;
    }
    return APR_SUCCESS;
}

apr_status_t iss_pread_full(int fd, void *buf, apr_size_t n,
                            apr_uint64_t off)
{
    char *p = buf;

    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return APR_FROM_OS_ERROR(errno);
        }
        if (r == 0) {
            return APR_EOF;
        }
        p += r;
        n -= (apr_size_t)r;
        off += (apr_uint64_t)r;
    }
    return APR_SUCCESS;
}

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_fdio — positioned reads and writes of a whole buffer on a file
 * descriptor, retried across EINTR and short transfers.
 *
 * One copy for the tree: the state store's write-ahead log and the
 * client's downloads both write and read at offsets.  POSIX only.
 */
#ifndef ISS_FDIO_H
#define ISS_FDIO_H

#include <apr.h>
#include <apr_errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Write the @a n bytes at @a buf at offset @a off of @a fd.  An error
 *  of pwrite() as an APR status; a pwrite() that writes nothing:
 *  APR_EGENERAL (never a loop without progress). */
apr_status_t iss_pwrite_full(int fd, const void *buf, apr_size_t n,
                             apr_uint64_t off);

/** Read exactly @a n bytes at offset @a off of @a fd into @a buf;
 *  APR_EOF if the file ends first. */
apr_status_t iss_pread_full(int fd, void *buf, apr_size_t n,
                            apr_uint64_t off);

#ifdef __cplusplus
}
#endif

#endif /* ISS_FDIO_H */

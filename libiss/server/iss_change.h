/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_change — what a write does to the members of a location.
 *
 * The capture point in the module lists, before a method runs, every
 * member it may create, modify, remove or re-propertise; this file
 * encodes such a list into bytes for the state store and decodes it back
 * with full validation (the bytes may come from a damaged store).
 * Paths are the decoded URI paths mod_dav uses (any bytes but NUL).
 */
#ifndef ISS_CHANGE_H
#define ISS_CHANGE_H

#include <apr_pools.h>
#include <apr_tables.h>

typedef enum iss_change_kind_e {
    ISS_CHANGE_CREATED = 'C',    /* did not exist before */
    ISS_CHANGE_MODIFIED = 'M',   /* content replaced */
    ISS_CHANGE_REMOVED = 'R',    /* gone afterwards */
    ISS_CHANGE_PROPS = 'P'       /* dead properties changed */
} iss_change_kind_e;

typedef struct iss_change_t {
    iss_change_kind_e kind;
    int collection;              /* 1 = collection, 0 = file */
    const char *path;            /* decoded URI path, NUL-terminated */
} iss_change_t;

/** Encode @a method and @a changes (an array of iss_change_t) into a
 *  buffer allocated from @a pool. */
void iss_change_encode(const char *method, const apr_array_header_t *changes,
                       char **buf, apr_size_t *len, apr_pool_t *pool);

/** Decode what iss_change_encode() made.  APR_EINVAL (and nothing
 *  allocated that the caller must free) on any malformation. */
apr_status_t iss_change_decode(const char *buf, apr_size_t len,
                               const char **method,
                               apr_array_header_t **changes,
                               apr_pool_t *pool);

/** The kind's name for logs: "created", "modified", "removed", "props". */
const char *iss_change_kind_name(iss_change_kind_e kind);

#endif /* ISS_CHANGE_H */

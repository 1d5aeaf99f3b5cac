/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_chunk.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_state.h"
#include "iss_chunkidx.h"
#include "iss_filedigest.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>

#include <stdlib.h>

/* A file modified less than this before it was read may still be being
 * written: its manifest is served but not kept (as for digests). */
#define SETTLE apr_time_from_sec(1)
#define IDENT (APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME \
               | APR_FINFO_TYPE)

void iss_chunk_limits(request_rec *r, iss_manifest_limits_t *lim)
{
    iss_dir_conf_t *dconf = iss_config_dir(r);
    const iss_cdc_params_t *params = iss_config_chunk_sizes(dconf);
    apr_uint64_t max = (apr_uint64_t)iss_config_upload_max_size(dconf);
    apr_uint64_t entries = max / params->min_size + 1;

    lim->params = params;
    lim->max_file_size = max;
    /* Every entry but the last is at least min_size long. */
    lim->max_entries = entries > APR_UINT32_MAX / 2 ? APR_UINT32_MAX / 2
                                                    : (apr_uint32_t)entries;
}

typedef struct keep_t {
    const char *rel;
    const iss_filedigest_t *d;
    apr_array_header_t *kvs;
    apr_pool_t *pool;
} keep_t;

static apr_status_t keep_txn(void *baton, iss_store_txn_t *txn)
{
    keep_t *k = baton;
    const char *dkey = iss_filedigest_key(k->rel, k->pool);
    const char *drec = iss_filedigest_encode(k->d, k->pool);

    iss_store_txn_put(txn, dkey, strlen(dkey), drec, strlen(drec));
    return iss_chunkidx_txn_put(txn, k->kvs, k->pool);
}

/* Keep the digest and the manifest of a file changed outside httpd. */
static void keep(request_rec *r, const char *rel, const iss_filedigest_t *d,
                 const iss_manifest_t *m)
{
    keep_t k = { rel, d, NULL, r->pool };
    iss_store_t *store;
    apr_status_t rv;

    if (iss_state_store(r, &store) != NULL
        || iss_chunkidx_records(rel, d, m, &k.kvs, r->pool) != APR_SUCCESS) {
        return;
    }
    /* Lazy: a manifest lost with the power is made again. */
    if ((rv = iss_store_txn_ex(store, keep_txn, &k, ISS_STORE_LAZY, r->pool))
        != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01064)
                      "cannot keep the manifest of %s in the state store "
                      "(%s); it will be made again", rel,
                      iss_store_last_error(store));
    }
}

apr_status_t iss_chunk_manifest_of_file(request_rec *r, const char *rel,
                                        apr_file_t *f,
                                        const apr_finfo_t *fi, int compute,
                                        iss_manifest_t **m)
{
    iss_manifest_limits_t lim;
    iss_filedigest_t d;
    iss_store_t *store;
    apr_finfo_t after;
    apr_status_t rv;

    iss_chunk_limits(r, &lim);
    if (iss_state_store(r, &store) == NULL) {
        rv = iss_chunkidx_lookup(store, rel, fi, &lim, m, r->pool);
        if (rv == APR_SUCCESS) {
            return APR_SUCCESS;
        }
        if (rv != APR_NOTFOUND) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01065)
                          "cannot read the manifest record of %s (%s)", rel,
                          iss_store_last_error(store));
        }
    }
    if (!compute) {
        return APR_NOTFOUND;
    }
    if ((rv = iss_manifest_of_file(f, lim.params, m, r->pool))
        != APR_SUCCESS
        || (rv = apr_file_info_get(&after, IDENT, f)) != APR_SUCCESS) {
        return rv;
    }
    memset(&d, 0, sizeof(d));
    iss_filedigest_set_identity(&d, fi);
    if (!iss_filedigest_matches(&d, &after)
        || (apr_uint64_t)fi->size != (*m)->file_size) {
        return APR_EAGAIN;
    }
    memcpy(d.sha256, (*m)->file_sha256, sizeof(d.sha256));
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01066)
                  "made the manifest of %s (%u chunks)", rel, (*m)->count);
    if (apr_time_now() - fi->mtime >= SETTLE) {
        keep(r, rel, &d, *m);
    }
    return APR_SUCCESS;
}

int iss_chunk_may_read(request_rec *r, const char *rel)
{
    request_rec parent = *r, *rr;
    const char *root = iss_state_root_uri(r);
    const char *uri;
    int ok;

    if (root == NULL) {
        return 0;
    }
    uri = ap_escape_uri(r->pool, apr_pstrcat(r->pool, root, "/", rel, NULL));
    /* httpd skips access control for a sub-request whose per-directory
     * configuration is its parent's (same section: same rules for the
     * parent's method).  Our question is about GET, and <Limit> or an
     * expression may answer it differently than for this request's
     * method: so the sub-request is made from a copy of the request
     * whose configuration is the server's, and httpd asks every access
     * module, for GET, for this user (authentication included). */
    parent.per_dir_config = r->server->lookup_defaults;
    /* (A "no" shows in the error log as mod_authz_core's "authorization
     * failure" of the file's URI: httpd logs every denial at error level,
     * and module log levels cannot lower that.  Documented.) */
    rr = ap_sub_req_method_uri("GET", uri, &parent, NULL);
    ok = rr->status == HTTP_OK;
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r, "dedup: may %s read %s? "
                  "%s (%d)", r->user ? r->user : "(anonymous)", uri,
                  ok ? "yes" : "no", rr->status);
    ap_destroy_sub_req(rr);
    return ok;
}

int iss_chunk_wants_manifest(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    while (accept && *accept) {
        char *range = ap_get_list_item(r->pool, &accept);
        char *semi, *q;

        if (range == NULL) {
            break;
        }
        semi = strchr(range, ';');
        if (semi) {
            *semi = '\0';
        }
        apr_collapse_spaces(range, range);
        if (strcasecmp(range, ISS_MANIFEST_MEDIA_TYPE) != 0) {
            continue;
        }
        /* q=0 means "not this" (RFC 9110 section 12.4.2). */
        q = semi ? ap_strcasestr(semi + 1, "q=") : NULL;
        return q == NULL || strtod(q + 2, NULL) > 0.0;
    }
    return 0;
}

const char *iss_chunk_manifest_etag(const unsigned char *sha256,
                                    apr_pool_t *pool)
{
    const char *etag = iss_digest_etag(sha256, pool);

    /* "<digest>.ism": another representation, another ETag. */
    return apr_pstrcat(pool, apr_pstrmemdup(pool, etag, strlen(etag) - 1),
                       ".ism\"", NULL);
}

const char *iss_chunk_params_header(request_rec *r)
{
    const iss_cdc_params_t *p = iss_config_chunk_sizes(iss_config_dir(r));

    return apr_psprintf(r->pool, "fastcdc;min=%u;avg=%u;max=%u",
                        p->min_size, p->avg_size, p->max_size);
}

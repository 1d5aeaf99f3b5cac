/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_owncloud.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_liveprop.h"
#include "mod_iss_provider.h"

#include <apr_strings.h>
#include <http_protocol.h>

/* Unique among mod_dav's live property providers of this server. */
#define ISS_PROPID_oc_checksums 21011

#define OC_NS "http://owncloud.org/ns"

/* The latest modification time a client may set: 9999-12-31. */
#define MTIME_MAX APR_INT64_C(253402300799)

/* ---- PUT ------------------------------------------------------------------ */

/* X-OC-Mtime: seconds since 1970, as ownCloud and Nextcloud take it
 * (digits, optionally a fraction; blanks around).  0 and *t set, or -1. */
static int parse_mtime(const char *v, apr_time_t *t)
{
    apr_int64_t sec = 0, usec = 0, scale = 100000;
    const char *p = v;

    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return -1;
    }
    while (*p >= '0' && *p <= '9') {
        sec = sec * 10 + (*p++ - '0');
        if (sec > MTIME_MAX) {
            return -1;
        }
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return -1;
        }
        while (*p >= '0' && *p <= '9') {
            usec += scale * (*p++ - '0');
            scale /= 10;
        }
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p) {
        return -1;
    }
    *t = apr_time_from_sec(sec) + usec;
    return 0;
}

int iss_oc_put_prepare(request_rec *r, iss_oc_put_t *oc, const char **tag,
                       const char **why)
{
    const char *v;
    apr_time_t t;

    memset(oc, 0, sizeof(*oc));
    if (!iss_config_owncloud(iss_config_dir(r))) {
        return 1;
    }
    oc->sums = iss_config_oc_sums(iss_config_dir(r));
    if ((v = apr_table_get(r->headers_in, "OC-Checksum")) != NULL) {
        if (iss_digest_sums_parse(v, &oc->want, oc->sha256, &oc->want_sha256)
            != APR_SUCCESS) {
            *tag = "invalid-checksum";
            *why = "The OC-Checksum header is malformed (expected TYPE:hex, "
                   "TYPE one of SHA1, MD5, ADLER32, SHA256).";
            return 0;
        }
        oc->check = 1;
    }
    if ((v = apr_table_get(r->headers_in, "X-OC-Mtime")) != NULL
        && parse_mtime(v, &t) != 0) {
        *tag = "invalid-mtime";
        *why = "The X-OC-Mtime header is malformed (expected seconds since "
               "1970, up to the year 9999).";
        return 0;
    }
    return 1;
}

const char *iss_oc_put_check(request_rec *r, const iss_oc_put_t *oc,
                             const unsigned char *sha256,
                             const iss_digest_sums_t *got)
{
    unsigned bad;

    if (!oc->check) {
        return NULL;
    }
    if (oc->want_sha256
        && memcmp(oc->sha256, sha256, ISS_DIGEST_SHA256_LEN) != 0) {
        return "The body does not match its OC-Checksum header (SHA256).";
    }
    if ((bad = iss_digest_sums_mismatch(&oc->want, got)) != 0) {
        return apr_psprintf(r->pool, "The body does not match its "
                            "OC-Checksum header (%s): %s.",
                            bad == ISS_SUM_SHA1 ? "SHA1"
                            : bad == ISS_SUM_MD5 ? "MD5" : "ADLER32",
                            iss_digest_sums_text(got, r->pool)
                                ? iss_digest_sums_text(got, r->pool)
                                : apr_psprintf(r->pool, "ADLER32:%08x",
                                               got->adler32));
    }
    return NULL;
}

void iss_oc_put_done(request_rec *r)
{
    const char *v = apr_table_get(r->headers_in, "X-OC-Mtime");
    const char *path;
    apr_time_t t;
    apr_status_t rv;

    if (v == NULL || r->filename == NULL
        || !iss_config_owncloud(iss_config_dir(r)) || parse_mtime(v, &t)) {
        return;
    }
    /* mod_dav_fs's path of the resource. */
    path = apr_pstrcat(r->pool, r->filename, r->path_info, NULL);
    if ((rv = apr_file_mtime_set(path, t, r->pool)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01077)
                      "PUT %s: cannot set the modification time X-OC-Mtime "
                      "asks for", r->uri);
        return;
    }
    apr_table_setn(r->headers_out, "X-OC-MTime", "accepted");
}

/* ---- oc:checksums ------------------------------------------------------------ */

static const char *const namespace_uris[] = { OC_NS, NULL };

static const dav_liveprop_spec specs[] = {
    { 0, "checksums", ISS_PROPID_oc_checksums, 0 },
    { 0, NULL, 0, 0 }
};

static const dav_hooks_liveprop hooks;

static const dav_liveprop_group group = { specs, namespace_uris, &hooks };

static dav_prop_insert insert_prop(const dav_resource *resource, int propid,
                                   dav_prop_insert what, apr_text_header *phdr)
{
    request_rec *r = iss_provider_resource_request(resource);
    const char *value = NULL;

    if (r == NULL || !resource->exists || resource->collection) {
        return DAV_PROP_INSERT_NOTDEF;
    }
    if (what == DAV_PROP_INSERT_VALUE) {
        unsigned want = iss_config_oc_sums(iss_config_dir(r));
        const dav_liveprop_spec *info;
        long ns = dav_get_liveprop_info(propid, &group, &info);
        iss_digest_sums_t sums;
        const char *text;
        int found;

        iss_digest_sums_of_uri(r, resource->uri, want, &sums, &found);
        if (!found || (text = iss_digest_sums_text(&sums, resource->pool))
                      == NULL) {
            return DAV_PROP_INSERT_NOTDEF;
        }
        /* ownCloud's form, which rclone and the ownCloud client read:
         * one oc:checksum element holding "TYPE:hex" words. */
        value = apr_psprintf(resource->pool, "<lp%ld:checksum>%s</lp%ld:"
                             "checksum>", ns, text, ns);
    }
    return iss_liveprop_insert(resource, &group, propid, what, value, phdr);
}

static const dav_hooks_liveprop hooks = {
    insert_prop,
    iss_liveprop_protected,
    namespace_uris,
    NULL, NULL, NULL, NULL,
    NULL
};

/* mod_dav asks once per request and property (first resource decides):
 * claim oc:checksums for every resource of a location with
 * ISSOwnCloudCompat On (collections then answer "not defined"). */
static int find_liveprop(const dav_resource *resource, const char *ns_uri,
                         const char *name, const dav_hooks_liveprop **out)
{
    request_rec *r = iss_provider_resource_request(resource);

    if (r == NULL || !iss_is_enabled(r)
        || !iss_config_owncloud(iss_config_dir(r))) {
        return 0;
    }
    return dav_do_find_liveprop(ns_uri, name, &group, out);
}

void iss_owncloud_register_hooks(apr_pool_t *p)
{
    dav_register_liveprop_group(p, &group);
    dav_hook_find_liveprop(find_liveprop, NULL, NULL, APR_HOOK_MIDDLE);
}

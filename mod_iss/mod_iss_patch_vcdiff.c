/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * PATCH with Content-Type: application/vcdiff.  The body streams into
 * libiss's decoder (iss_vcdiff: written for hostile input, memory bounded
 * by ISSPatchMaxWindow); the source is the file's current content, read
 * where COPY instructions point; the target goes to the temporary file of
 * mod_iss_patch and is read back for VCD_TARGET windows.
 */

#include "mod_iss_patch.h"
#include "iss_vcdiff.h"

static apr_status_t read_source(void *baton, apr_uint64_t offset,
                                apr_size_t len, unsigned char *buf)
{
    iss_patch_t *p = baton;

    return iss_patch_pread(p->src, (apr_off_t)offset, len, buf);
}

static apr_status_t read_target(void *baton, apr_uint64_t offset,
                                apr_size_t len, unsigned char *buf)
{
    iss_patch_t *p = baton;

    return iss_patch_pread(p->back, (apr_off_t)offset, len, buf);
}

/* Wraps write errors so that they can be told from decoder errors. */
typedef struct vc_ctx {
    iss_patch_t *p;
    iss_vcdiff_t *dec;
    apr_status_t write_rv;
    apr_status_t read_rv;
} vc_ctx;

static apr_status_t write_target(void *baton, const unsigned char *buf,
                                 apr_size_t len)
{
    vc_ctx *c = baton;

    return c->write_rv = iss_patch_write(c->p, buf, len);
}

static apr_status_t read_source_c(void *baton, apr_uint64_t offset,
                                  apr_size_t len, unsigned char *buf)
{
    vc_ctx *c = baton;

    return c->read_rv = read_source(c->p, offset, len, buf);
}

static apr_status_t read_target_c(void *baton, apr_uint64_t offset,
                                  apr_size_t len, unsigned char *buf)
{
    vc_ctx *c = baton;

    return c->read_rv = read_target(c->p, offset, len, buf);
}

/* An error of the decoder (or of a callback) as an HTTP answer. */
static int decoder_error(vc_ctx *c, apr_status_t rv)
{
    iss_patch_t *p = c->p;
    const char *why = iss_vcdiff_error(c->dec);

    if (c->write_rv != APR_SUCCESS) {
        return iss_patch_fail_write(p, c->write_rv);
    }
    if (c->read_rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, c->read_rv, p->r,
                      ISSLOGNO(01060) "PATCH %s: cannot read %s",
                      p->r->uri, p->path);
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "read-failed",
                              "The file could not be read; it was not "
                              "changed.");
    }
    switch (rv) {
    case ISS_VCDIFF_ESECONDARY:
    case ISS_VCDIFF_ECODETABLE:
        return iss_patch_fail(p, HTTP_UNPROCESSABLE_ENTITY,
                              "unsupported-delta", "The delta uses a VCDIFF "
                              "feature this server does not support (%s). "
                              "Make it without secondary compression or "
                              "custom code tables, e.g. xdelta3 -e -D -S "
                              "none -A.", why);
    case ISS_VCDIFF_ELIMIT:
        return iss_patch_fail(p, HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "patch-too-large", "The delta is beyond this "
                              "server's limits (%s): at most %" APR_OFF_T_FMT
                              " bytes of result and VCDIFF windows of at "
                              "most %" APR_SIZE_T_FMT " bytes.", why,
                              p->max_target, p->max_window);
    case ISS_VCDIFF_EGROWTH:
        return iss_patch_fail(p, HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "growth-too-large", "The delta would make "
                              "the file grow by more than this server "
                              "allows for a delta of its size (%s; "
                              "ISSPatchMaxGrowth: %" APR_UINT64_T_FMT
                              " bytes per byte of delta, plus %"
                              APR_UINT64_T_FMT "); send the new content "
                              "with PUT.", why, p->growth_ratio,
                              p->growth_floor);
    case ISS_VCDIFF_ECHECKSUM:
        return iss_patch_fail(p, HTTP_CONFLICT, "delta-conflict",
                              "The delta does not fit the current content "
                              "of the file (%s): it was made from another "
                              "version.", why);
    case ISS_VCDIFF_ETRUNCATED:
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-delta",
                              "The delta ends in the middle (%s).", why);
    default:
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-delta",
                              "The body is not a valid VCDIFF delta for "
                              "this file (%s).", why);
    }
}

static apr_status_t feed(void *baton, const char *data, apr_size_t len)
{
    vc_ctx *c = baton;
    apr_status_t rv = iss_vcdiff_feed(c->dec, data, len);

    if (rv != APR_SUCCESS) {
        decoder_error(c, rv);
    }
    return rv;
}

int iss_patch_vcdiff(iss_patch_t *p)
{
    iss_vcdiff_opts_t o = { 0 };
    vc_ctx c = { p, NULL, APR_SUCCESS, APR_SUCCESS };
    apr_status_t rv;
    int st;

    o.max_window = p->max_window;
    o.max_target = (apr_uint64_t)p->max_target;
    o.source_size = (apr_uint64_t)p->src_info.size;
    o.growth_ratio = p->growth_ratio;
    o.growth_floor = p->growth_floor;
    o.read_source = read_source_c;
    o.source_baton = &c;
    o.read_target = read_target_c;
    o.target_baton = &c;
    o.write = write_target;
    o.write_baton = &c;
    if ((rv = iss_vcdiff_create(&c.dec, &o, p->r->pool)) != APR_SUCCESS) {
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "failed",
                              "The VCDIFF decoder could not start.");
    }
    if ((st = iss_patch_read_body(p, feed, &c)) != OK) {
        return st;
    }
    if ((rv = iss_vcdiff_finish(c.dec)) != APR_SUCCESS) {
        return decoder_error(&c, rv);
    }
    return OK;
}

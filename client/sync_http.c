/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "sync_http.h"
#include "iss_bytes.h"
#include "iss_version.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_xml.h>

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_BODY (16u * 1024 * 1024)

struct sync_http_t {
    CURL *curl;
    sync_http_opts_t o;
    const char *user, *password;
    apr_uint64_t sent, received, requests;
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct xfer_t {
    const sync_req_t *req;
    sync_resp_t *resp;
    apr_pool_t *pool;
    apr_size_t max_body, cap;
    apr_uint64_t body_off;          /* in-memory request body position */
    sync_http_t *h;
} xfer_t;

static apr_status_t cleanup_http(void *data)
{
    sync_http_t *h = data;

    if (h->curl) {
        curl_easy_cleanup(h->curl);
        h->curl = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t sync_http_create(sync_http_t **hp, const sync_http_opts_t *o,
                              apr_pool_t *pool)
{
    static int global_done;
    sync_http_t *h = apr_pcalloc(pool, sizeof(*h));
    const char *u = getenv("ISS_SYNC_USER");
    const char *p = getenv("ISS_SYNC_PASSWORD");

    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            return APR_EGENERAL;
        }
        global_done = 1;
    }
    h->curl = curl_easy_init();
    if (h->curl == NULL) {
        return APR_EGENERAL;
    }
    if (o) {
        h->o = *o;
    }
    if (u && *u) {
        h->user = apr_pstrdup(pool, u);
        h->password = apr_pstrdup(pool, p ? p : "");
    }
    apr_pool_cleanup_register(pool, h, cleanup_http, apr_pool_cleanup_null);
    *hp = h;
    return APR_SUCCESS;
}

void sync_req_header(sync_req_t *req, apr_pool_t *pool, const char *name,
                     const char *value)
{
    if (req->headers == NULL) {
        req->headers = apr_array_make(pool, 8, sizeof(const char *));
    }
    APR_ARRAY_PUSH(req->headers, const char *) =
        apr_pstrcat(pool, name, ": ", value, NULL);
}

/* ---- callbacks ----------------------------------------------------------- */

static size_t on_header(char *data, size_t size, size_t n, void *baton)
{
    xfer_t *x = baton;
    size_t len = size * n;
    char *line = apr_pstrmemdup(x->pool, data, len);
    char *colon, *end;

    /* Trim CR LF. */
    end = line + strlen(line);
    while (end > line && (end[-1] == '\r' || end[-1] == '\n')) {
        *--end = '\0';
    }
    if (strncmp(line, "HTTP/", 5) == 0) {
        /* A new answer (100 Continue, 401 then the real one...): start
         * over with its headers. */
        const char *sp = strchr(line, ' ');

        x->resp->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        apr_table_clear(x->resp->headers);
        return len;
    }
    colon = strchr(line, ':');
    if (colon && colon > line) {
        const char *v = colon + 1;

        *colon = '\0';
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        apr_table_add(x->resp->headers, line, v);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *baton)
{
    xfer_t *x = baton;
    size_t len = size * n;
    sync_resp_t *resp = x->resp;

    if (x->req->sink && resp->status >= 200 && resp->status < 300) {
        apr_status_t rv = x->req->sink(x->req->sink_baton, data, len);

        if (rv != APR_SUCCESS) {
            resp->sink_rv = rv;
            return 0;                       /* aborts the transfer */
        }
        return len;
    }
    if (resp->body_len + len > x->max_body) {
        resp->too_big = 1;
        return 0;
    }
    if (resp->body_len + len + 1 > x->cap) {
        apr_size_t cap = x->cap ? x->cap : 8192;
        char *nb;

        while (cap < resp->body_len + len + 1) {
            cap *= 2;
        }
        nb = apr_palloc(x->pool, cap);
        if (resp->body_len) {
            memcpy(nb, resp->body, resp->body_len);
        }
        resp->body = nb;
        x->cap = cap;
    }
    memcpy(resp->body + resp->body_len, data, len);
    resp->body_len += len;
    resp->body[resp->body_len] = '\0';
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *baton)
{
    xfer_t *x = baton;
    size_t max = size * n;

    if (x->req->source) {
        apr_size_t got = 0;
        apr_status_t rv = x->req->source(x->req->source_baton, buf, max, &got);

        if (rv != APR_SUCCESS) {
            x->resp->sink_rv = rv;
            return CURL_READFUNC_ABORT;
        }
        return got;
    }
    else {
        apr_uint64_t left = x->req->body_len - x->body_off;
        size_t take = left < max ? (size_t)left : max;

        if (take) {
            memcpy(buf, (const char *)x->req->body + x->body_off, take);
            x->body_off += take;
        }
        return take;
    }
}

static int on_progress(void *baton, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    xfer_t *x = baton;

    (void)dltotal;
    (void)ultotal;
    if (x->h->o.progress) {
        x->h->o.progress(x->h->o.progress_baton, (apr_uint64_t)ulnow,
                         (apr_uint64_t)dlnow);
    }
    return 0;
}

/* ---- a request ----------------------------------------------------------- */

apr_status_t sync_http_do(sync_http_t *h, const sync_req_t *req,
                          sync_resp_t *resp, apr_pool_t *pool)
{
    CURL *c = h->curl;
    struct curl_slist *hl = NULL;
    xfer_t x;
    CURLcode cc;
    curl_off_t v;
    long lv;
    int i;

    memset(resp, 0, sizeof(*resp));
    resp->headers = apr_table_make(pool, 16);
    memset(&x, 0, sizeof(x));
    x.req = req;
    x.resp = resp;
    x.pool = pool;
    x.h = h;
    x.max_body = req->max_body ? req->max_body : DEFAULT_MAX_BODY;

    curl_easy_reset(c);     /* options only: connections stay alive */
    h->errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "iss-sync/" ISS_VERSION);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A transfer that moves less than 1 byte/s for 60 s is dead. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->o.cacert) {
        curl_easy_setopt(c, CURLOPT_CAINFO, h->o.cacert);
    }
    if (h->o.verbose) {
        curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
    }
    if (h->user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, h->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, h->password);
    }
    else {
        curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
    }
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    /* Bodies are never decoded behind our back: bytes are bytes. */
    curl_easy_setopt(c, CURLOPT_HTTP_CONTENT_DECODING, 0L);

    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    }
    else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (req->body || req->source) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(req->source ? req->source_len
                                                  : req->body_len));
    }
    else if (strcmp(req->method, "GET") != 0
             && strcmp(req->method, "HEAD") != 0) {
        /* No body: say so (some servers wait for one otherwise). */
        hl = curl_slist_append(hl, "Content-Length: 0");
    }
    for (i = 0; req->headers && i < req->headers->nelts; i++) {
        hl = curl_slist_append(hl, APR_ARRAY_IDX(req->headers, i,
                                                 const char *));
    }
    if (hl) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    }

    cc = curl_easy_perform(c);
    h->requests++;
    if (curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &lv) == CURLE_OK) {
        h->sent += (apr_uint64_t)lv;
    }
    if (curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &v) == CURLE_OK) {
        h->sent += (apr_uint64_t)v;
    }
    if (curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &lv) == CURLE_OK) {
        h->received += (apr_uint64_t)lv;
    }
    if (curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &v) == CURLE_OK) {
        h->received += (apr_uint64_t)v;
    }
    curl_slist_free_all(hl);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);

    if (cc != CURLE_OK) {
        if (resp->sink_rv != APR_SUCCESS) {
            resp->error = "the transfer was stopped by the client";
            return resp->sink_rv;
        }
        if (resp->too_big) {
            resp->error = "the answer is larger than expected";
            return APR_ENOSPC;
        }
        resp->error = apr_psprintf(pool, "%s", h->errbuf[0] ? h->errbuf
                                               : curl_easy_strerror(cc));
        resp->status = 0;
        return APR_EGENERAL;
    }
    if (curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &lv) == CURLE_OK) {
        resp->status = lv;
    }
    return APR_SUCCESS;
}

void sync_http_bytes(const sync_http_t *h, apr_uint64_t *sent,
                     apr_uint64_t *received)
{
    *sent = h->sent;
    *received = h->received;
}

apr_uint64_t sync_http_requests(const sync_http_t *h)
{
    return h->requests;
}

/* ---- messages -------------------------------------------------------------- */

static const char *reason(long status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 423: return "Locked";
    case 428: return "Precondition Required";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "";
    }
}

/* The text of the first element named "message" in the mod_iss
 * namespace of an XML error body, or NULL. */
static const char *xml_message(const sync_resp_t *resp, apr_pool_t *pool)
{
    apr_xml_parser *p;
    apr_xml_doc *doc = NULL;
    apr_xml_elem *e;
    int ns = -1, i;

    if (resp->body == NULL || resp->body_len == 0
        || strstr(resp->body, "mod-iss.org") == NULL) {
        return NULL;
    }
    p = apr_xml_parser_create(pool);
    if (apr_xml_parser_feed(p, resp->body, resp->body_len) != APR_SUCCESS
        || apr_xml_parser_done(p, &doc) != APR_SUCCESS || doc == NULL
        || doc->root == NULL) {
        return NULL;
    }
    for (i = 0; i < doc->namespaces->nelts; i++) {
        if (strcmp(APR_XML_GET_URI_ITEM(doc->namespaces, i),
                   "https://mod-iss.org/ns/iss/1") == 0) {
            ns = i;
        }
    }
    for (e = doc->root->first_child; e; e = e->next) {
        if (e->ns == ns && strcmp(e->name, "message") == 0) {
            const char *t = NULL;
            apr_size_t len;

            apr_xml_to_text(pool, e, APR_XML_X2T_INNER, NULL, NULL, &t, &len);
            return t;
        }
    }
    return NULL;
}

const char *sync_resp_describe(const sync_resp_t *resp, apr_pool_t *pool)
{
    const char *m;

    if (resp->status == 0) {
        return resp->error ? resp->error : "no answer";
    }
    m = xml_message(resp, pool);
    return apr_psprintf(pool, "%ld %s%s%s", resp->status, reason(resp->status),
                        m ? ": " : "", m ? m : "");
}

const char *sync_http_escape_segment(const char *seg, apr_pool_t *pool)
{
    apr_size_t n = strlen(seg), i, o = 0;
    char *out = apr_palloc(pool, 3 * n + 1);

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)seg[i];

        if (apr_isalnum(ch) || ch == '-' || ch == '.' || ch == '_'
            || ch == '~') {
            out[o++] = (char)ch;
        }
        else {
            out[o++] = '%';
            iss_hex_encode(out + o, &ch, 1);
            o += 2;
        }
    }
    out[o] = '\0';
    return out;
}

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss-sync — keep a local folder and a WebDAV collection in sync, both
 * ways (docs/client.md, iss-sync(1)).
 *
 *   iss-sync [OPTIONS] LOCAL_DIR URL
 *
 * One run: learn what changed on both sides since the last run, decide
 * path by path against the last synced state, carry it out, exit.
 */

#include "sync.h"
#include "sync_dav.h"
#include "sync_http.h"
#include "sync_run.h"
#include "sync_state.h"
#include "sync_ui.h"
#include "iss_version.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
"usage: iss-sync [OPTIONS] LOCAL_DIR URL\n"
"\n"
"Sync the folder LOCAL_DIR and the WebDAV collection URL both ways, once.\n"
"\n"
"  -n, --dry-run          print what would be done; change nothing\n"
"  -q, --quiet            print errors and warnings only\n"
"  -v, --verbose          say what was found and decided (-vv: HTTP too)\n"
"      --no-progress      no progress line (it is shown only on a terminal)\n"
"      --max-delete PCT   stop if a run would delete more than PCT%% of the\n"
"                         files on either side (default 50; 100: no limit)\n"
"      --allow-empty-root sync an empty folder (or collection) although the\n"
"                         last sync saw files there (deletes them)\n"
"      --state-dir DIR    where the state lives (default\n"
"                         $XDG_STATE_HOME/iss-sync or ~/.local/state/iss-sync)\n"
"      --cacert FILE      CA certificates to verify the server with\n"
"  -h, --help             this text\n"
"  -V, --version          the version\n"
"\n"
"Credentials: ISS_SYNC_USER and ISS_SYNC_PASSWORD, or ~/.netrc.\n"
"Exit: 0 in sync, 1 in sync with conflicts kept, 2 some items failed or\n"
"were skipped, 3 stopped by a safety guard, 4 usage or configuration,\n"
"5 server unreachable or refusing.\n");
}

static const char *default_state_dir(apr_pool_t *pool)
{
    const char *x = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");

    if (x && *x == '/') {
        return apr_pstrcat(pool, x, "/iss-sync", NULL);
    }
    if (home && *home) {
        return apr_pstrcat(pool, home, "/.local/state/iss-sync", NULL);
    }
    return NULL;
}

/* An absolute, canonical path for the folder: realpath() of what exists
 * (the folder itself, or for a folder to be made, its parent). */
static const char *absolute(const char *dir, apr_pool_t *pool)
{
    char buf[PATH_MAX];
    const char *slash, *parent, *name;
    apr_size_t n = strlen(dir);

    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    dir = apr_pstrmemdup(pool, dir, n);
    if (realpath(dir, buf)) {
        return apr_pstrdup(pool, buf);
    }
    slash = strrchr(dir, '/');
    parent = slash ? (slash == dir ? "/" : apr_pstrmemdup(pool, dir,
                                                          (apr_size_t)
                                                          (slash - dir)))
                   : ".";
    name = slash ? slash + 1 : dir;
    if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0
        || realpath(parent, buf) == NULL) {
        return NULL;
    }
    return apr_pstrcat(pool, strcmp(buf, "/") == 0 ? "" : buf, "/", name,
                       NULL);
}

int main(int argc, const char *const *argv)
{
    static const apr_getopt_option_t longopts[] = {
        { "dry-run", 'n', 0, "" },
        { "quiet", 'q', 0, "" },
        { "verbose", 'v', 0, "" },
        { "no-progress", 1001, 0, "" },
        { "max-delete", 1002, 1, "" },
        { "allow-empty-root", 1003, 0, "" },
        { "state-dir", 1004, 1, "" },
        { "cacert", 1005, 1, "" },
        { "help", 'h', 0, "" },
        { "version", 'V', 0, "" },
        { NULL, 0, 0, NULL }
    };
    apr_pool_t *pool;
    apr_getopt_t *opt;
    sync_opts_t *o;
    sync_ctx_t *ctx;
    sync_http_opts_t ho;
    const char *arg, *msg = NULL, *url;
    apr_status_t rv;
    int ch, exists = 0, verbose = 0, code;
    char *end;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "iss-sync: cannot initialise APR\n");
        return SYNC_EXIT_USAGE;
    }
    o = apr_pcalloc(pool, sizeof(*o));
    o->max_delete = 50;
    o->progress = 1;
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt_long(opt, longopts, &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 'n': o->dry_run = 1; break;
        case 'q': o->quiet = 1; break;
        case 'v': verbose++; break;
        case 1001: o->progress = 0; break;
        case 1002:
            o->max_delete = (int)strtol(arg, &end, 10);
            if (*arg == '\0' || *end || o->max_delete < 0
                || o->max_delete > 100) {
                fprintf(stderr, "iss-sync: --max-delete takes a percentage "
                        "from 0 to 100, not \"%s\"\n", arg);
                return SYNC_EXIT_USAGE;
            }
            break;
        case 1003: o->allow_empty_root = 1; break;
        case 1004: o->state_dir = arg; break;
        case 1005: o->cacert = arg; break;
        case 'h': usage(stdout); return SYNC_EXIT_OK;
        case 'V': printf("iss-sync " ISS_VERSION "\n"); return SYNC_EXIT_OK;
        }
    }
    if (rv != APR_EOF || argc - opt->ind != 2) {
        usage(stderr);
        return SYNC_EXIT_USAGE;
    }
    o->verbose = verbose > 0;
    o->local_root = absolute(argv[opt->ind], pool);
    if (o->local_root == NULL) {
        fprintf(stderr, "iss-sync: %s: no such folder, nor a parent folder "
                "to create it in\n", argv[opt->ind]);
        return SYNC_EXIT_USAGE;
    }
    url = argv[opt->ind + 1];
    if (url[strlen(url) - 1] != '/') {
        url = apr_pstrcat(pool, url, "/", NULL);
    }
    o->url = url;
    if (o->state_dir == NULL && (o->state_dir = default_state_dir(pool))
        == NULL) {
        fprintf(stderr, "iss-sync: no HOME nor XDG_STATE_HOME: say where the "
                "state goes with --state-dir\n");
        return SYNC_EXIT_USAGE;
    }
    if (*o->state_dir != '/') {
        char buf[PATH_MAX];

        if (getcwd(buf, sizeof(buf)) == NULL) {
            return SYNC_EXIT_USAGE;
        }
        o->state_dir = apr_pstrcat(pool, buf, "/", o->state_dir, NULL);
    }
    if (strncmp(o->state_dir, o->local_root, strlen(o->local_root)) == 0
        && (o->state_dir[strlen(o->local_root)] == '/'
            || o->state_dir[strlen(o->local_root)] == '\0')) {
        fprintf(stderr, "iss-sync: the state directory must not be inside "
                "the synced folder\n");
        return SYNC_EXIT_USAGE;
    }

    ctx = apr_pcalloc(pool, sizeof(*ctx));
    ctx->pool = pool;
    ctx->opts = o;
    ctx->items = apr_hash_make(pool);
    ctx->ui = sync_ui_create(o, pool);
    if (sync_dav_parse_url(&ctx->server, url, &msg, pool) != APR_SUCCESS) {
        sync_ui_error(ctx->ui, "%s: %s", url, msg);
        return SYNC_EXIT_USAGE;
    }
    if (sync_state_open(&ctx->state, o->state_dir, o->local_root, url,
                        o->dry_run, &exists, &msg, pool) != APR_SUCCESS) {
        sync_ui_error(ctx->ui, "%s", msg);
        return SYNC_EXIT_USAGE;
    }
    memset(&ho, 0, sizeof(ho));
    ho.cacert = o->cacert;
    ho.verbose = verbose > 1;
    ho.progress = sync_ui_wire;
    ho.progress_baton = ctx->ui;
    if (sync_http_create(&ctx->http, &ho, pool) != APR_SUCCESS) {
        sync_ui_error(ctx->ui, "cannot set up libcurl");
        return SYNC_EXIT_USAGE;
    }
    code = sync_run(ctx);
    apr_pool_destroy(pool);
    apr_terminate();
    return code;
}

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_config.h"

#include <apr_strings.h>
#include <apr_file_info.h>
#include <apr_thread_proc.h>
#include <apr_dbm.h>
#include <http_core.h>
#include <unixd.h>

#include <grp.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- directives ------------------------------------------------------- */

/* A field is set in a section when it does not hold the unset value of
 * its type: ISS_UNSET for numbers, NULL for pointers. */
#define UNSET_OF(x) _Generic((x), int: ISS_UNSET,                           \
                                  apr_int64_t: (apr_int64_t)ISS_UNSET,      \
                                  default: NULL)
#define IS_SET(x) ((x) != UNSET_OF(x))
/* The value in force: the section's, else the default. */
#define VALUE_OR(x, dflt) (IS_SET(x) ? (x) : (dflt))

void *iss_config_create_dir(apr_pool_t *p, char *dir)
{
    iss_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    /* pointers: NULL from apr_pcalloc; root_is_fs goes with state_dir */
    conf->state_sync = ISS_UNSET;
    conf->max_results = ISS_UNSET;
    conf->reconcile = ISS_UNSET;
    conf->digest_header = ISS_UNSET;
    conf->patch_max_target = ISS_UNSET;
    conf->patch_max_window = ISS_UNSET;
    conf->patch_growth_ratio = ISS_UNSET;
    conf->patch_growth_floor = ISS_UNSET;
    conf->if_max_sync_tokens = ISS_UNSET;
    conf->chunking = ISS_UNSET;
    conf->dedup_scope = ISS_UNSET;
    conf->upload_timeout = ISS_UNSET;
    conf->upload_max_size = ISS_UNSET;
    conf->upload_staging = ISS_UNSET;
    conf->owncloud = ISS_UNSET;
    conf->keep_versions = ISS_UNSET;
    return conf;
}

/* Every field: the inner section's value where its directive was given
 * there, else the outer one's.  section and root_is_fs come with
 * ISSStateDir (MERGE_WITH). */
#define MERGE_WITH(f, key) (conf->f = IS_SET(add->key) ? add->f : base->f)
#define MERGE(f) MERGE_WITH(f, f)

void *iss_config_merge_dir(apr_pool_t *p, void *basev, void *addv)
{
    const iss_dir_conf_t *base = basev, *add = addv;
    iss_dir_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    MERGE(state_dir);
    MERGE_WITH(section, state_dir);
    MERGE_WITH(root_is_fs, state_dir);
    MERGE(dbm_type);
    MERGE(state_sync);
    MERGE(retention);
    MERGE(max_results);
    MERGE(reconcile);
    MERGE(digest_header);
    MERGE(patch_max_target);
    MERGE(patch_max_window);
    MERGE(patch_growth_ratio);
    MERGE_WITH(patch_growth_floor, patch_growth_ratio);
    MERGE(if_max_sync_tokens);
    MERGE(chunking);
    MERGE(chunk_sizes);
    MERGE(dedup_scope);
    MERGE(upload_timeout);
    MERGE(upload_max_size);
    MERGE(upload_staging);
    MERGE(owncloud);
    MERGE(cors_origins);
    MERGE(keep_versions);
    MERGE_WITH(versions_limits, keep_versions);
    return conf;
}

void *iss_config_create_server(apr_pool_t *p, server_rec *s)
{
    return apr_pcalloc(p, sizeof(iss_server_conf_t));
}

iss_dir_conf_t *iss_config_dir(request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &iss_module);
}

iss_server_conf_t *iss_config_server(server_rec *s)
{
    return ap_get_module_config(s->module_config, &iss_module);
}

int iss_config_state_sync(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->state_sync, ISS_STATE_SYNC_ON);
}

const iss_sync_retention_t *iss_config_retention(const iss_dir_conf_t *dconf)
{
    static const iss_sync_retention_t dflt = {
        ISS_SYNC_RETENTION_DEFAULT_AGE, ISS_SYNC_RETENTION_DEFAULT_COUNT
    };

    return VALUE_OR(dconf->retention, &dflt);
}

static const iss_versions_limits_t versions_default = {
    ISS_VERSIONS_DEFAULT_COUNT, ISS_VERSIONS_DEFAULT_BYTES,
    ISS_VERSIONS_DEFAULT_AGE, ISS_VERSIONS_DEFAULT_PACK
};

const iss_versions_limits_t *iss_config_versions(const iss_dir_conf_t *dconf)
{
    if (VALUE_OR(dconf->keep_versions, 0) != 1) {
        return NULL;
    }
    return dconf->versions_limits ? dconf->versions_limits
                                  : &versions_default;
}

apr_int64_t iss_config_max_results(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->max_results, ISS_DEFAULT_MAX_RESULTS);
}

apr_int64_t iss_config_reconcile(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->reconcile, 0);
}

int iss_config_digest_always(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->digest_header, 0) == 1;
}

apr_int64_t iss_config_patch_max_target(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->patch_max_target, ISS_DEFAULT_PATCH_MAX_TARGET);
}

apr_int64_t iss_config_patch_max_window(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->patch_max_window, ISS_DEFAULT_PATCH_MAX_WINDOW);
}

apr_int64_t iss_config_patch_growth_ratio(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->patch_growth_ratio,
                    ISS_DEFAULT_PATCH_GROWTH_RATIO);
}

apr_int64_t iss_config_patch_growth_floor(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->patch_growth_floor,
                    ISS_DEFAULT_PATCH_GROWTH_FLOOR);
}

apr_int64_t iss_config_if_max_sync_tokens(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->if_max_sync_tokens,
                    ISS_DEFAULT_IF_MAX_SYNC_TOKENS);
}

int iss_config_chunking(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->chunking, 1);
}

const iss_cdc_params_t *iss_config_chunk_sizes(const iss_dir_conf_t *dconf)
{
    static const iss_cdc_params_t dflt = ISS_CDC_PARAMS_DEFAULT;

    return VALUE_OR(dconf->chunk_sizes, &dflt);
}

iss_dedup_scope_e iss_config_dedup_scope(const iss_dir_conf_t *dconf)
{
    return (iss_dedup_scope_e)VALUE_OR(dconf->dedup_scope,
                                       ISS_DEDUP_READABLE);
}

apr_int64_t iss_config_upload_timeout(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->upload_timeout, ISS_DEFAULT_UPLOAD_TIMEOUT);
}

apr_int64_t iss_config_upload_max_size(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->upload_max_size, ISS_DEFAULT_UPLOAD_MAX_SIZE);
}

apr_int64_t iss_config_upload_staging(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->upload_staging, ISS_DEFAULT_UPLOAD_STAGING);
}

int iss_config_owncloud(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->owncloud, 0);
}

unsigned iss_config_oc_sums(const iss_dir_conf_t *dconf)
{
    return iss_config_owncloud(dconf) ? ISS_SUM_SHA1 | ISS_SUM_MD5 : 0;
}

const apr_array_header_t *iss_config_cors_origins(const iss_dir_conf_t *dconf)
{
    return dconf->cors_origins && dconf->cors_origins->nelts
               ? dconf->cors_origins : NULL;
}

const char *iss_config_dbm_type(const iss_dir_conf_t *dconf)
{
    return VALUE_OR(dconf->dbm_type, ISS_DEFAULT_DBM_TYPE);
}

static const char *set_state_dir(cmd_parms *cmd, void *dconf, const char *arg)
{
    iss_dir_conf_t *conf = dconf;
    const char *path;

    if (cmd->path == NULL) {
        return "ISSStateDir belongs inside the <Location> or <Directory> "
               "section that says `Dav iss`";
    }
    if (*arg == '\0') {
        return "ISSStateDir needs a directory";
    }
    path = ap_server_root_relative(cmd->pool, arg);
    if (path == NULL) {
        return apr_pstrcat(cmd->pool, "ISSStateDir: invalid path ", arg, NULL);
    }
    conf->state_dir = path;
    conf->section = cmd->path;
    conf->root_is_fs = cmd->directive && cmd->directive->parent
        && strncasecmp(cmd->directive->parent->directive, "<Directory",
                       10) == 0;
    return NULL;
}

static const char *set_retention(cmd_parms *cmd, void *dconf, const char *arg)
{
    iss_dir_conf_t *conf = dconf;
    iss_sync_retention_t *ret = apr_palloc(cmd->pool, sizeof(*ret));
    const char *err;

    /* Each argument (and each line in a section) amends the value so
     * far, which starts as the default. */
    *ret = *iss_config_retention(conf);
    if ((err = iss_sync_retention_parse(ret, arg, cmd->pool))) {
        return apr_pstrcat(cmd->pool, "ISSSyncRetention: ", err, NULL);
    }
    conf->retention = ret;
    return NULL;
}

/* ISSKeepVersions On|Off|count=N|size=N[KMGT]|age=N[smhdw] ...: each
 * word amends the value so far (the section's, else the default
 * limits); a limit word also turns retention on. */
static const char *set_keep_versions(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    iss_dir_conf_t *conf = dconf;
    iss_versions_limits_t *lim = apr_palloc(cmd->pool, sizeof(*lim));
    int on = IS_SET(conf->keep_versions) ? conf->keep_versions : 0;
    const char *err;

    *lim = conf->versions_limits ? *conf->versions_limits : versions_default;
    if ((err = iss_versions_limits_parse(lim, &on, arg, cmd->pool))) {
        return apr_pstrcat(cmd->pool, "ISSKeepVersions: ", err, NULL);
    }
    conf->keep_versions = on;
    conf->versions_limits = lim;
    return NULL;
}

static const char *set_number(cmd_parms *cmd, const char *arg,
                              apr_int64_t max, apr_int64_t *out)
{
    char *end;
    apr_int64_t n = apr_strtoi64(arg, &end, 10);

    if (*arg == '\0' || *end || n < 0 || n > max) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a number from 0 to "
                            "%" APR_INT64_T_FMT, cmd->cmd->name, arg, max);
    }
    *out = n;
    return NULL;
}

static const char *set_max_results(cmd_parms *cmd, void *dconf,
                                   const char *arg)
{
    return set_number(cmd, arg, APR_INT32_MAX,
                      &((iss_dir_conf_t *)dconf)->max_results);
}

static const char *set_reconcile(cmd_parms *cmd, void *dconf, const char *arg)
{
    return set_number(cmd, arg, 365 * 86400,
                      &((iss_dir_conf_t *)dconf)->reconcile);
}

/* A size: digits with an optional K, M, G or T (powers of 1024), from
 * @a min to @a max bytes. */
static const char *set_size(cmd_parms *cmd, const char *arg, apr_int64_t min,
                            apr_int64_t max, apr_int64_t *out)
{
    char *end;
    apr_int64_t n = apr_strtoi64(arg, &end, 10);
    int shift = 0;

    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    }
    if (*arg < '0' || *arg > '9' || *end || n < 0 || n > (max >> shift)
        || (n << shift) < min) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a size from %"
                            APR_INT64_T_FMT " to %" APR_INT64_T_FMT
                            " bytes (digits, optionally followed by K, M, G "
                            "or T)", cmd->cmd->name, arg, min, max);
    }
    *out = n << shift;
    return NULL;
}

static const char *set_patch_max_target(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    return set_size(cmd, arg, 0, APR_INT64_C(1) << 50,
                    &((iss_dir_conf_t *)dconf)->patch_max_target);
}

static const char *set_patch_max_window(cmd_parms *cmd, void *dconf,
                                        const char *arg)
{
    /* The sections of a window may be twice its size: keep the sum of
     * the decoder's buffers well inside 32 bits. */
    return set_size(cmd, arg, 4096, APR_INT64_C(1) << 30,
                    &((iss_dir_conf_t *)dconf)->patch_max_window);
}

/* ISSPatchMaxGrowth <ratio> [<allowance>] */
static const char *set_patch_growth(cmd_parms *cmd, void *dconf,
                                    const char *ratio, const char *floor)
{
    iss_dir_conf_t *conf = dconf;
    const char *err = set_number(cmd, ratio, APR_INT64_C(1) << 30,
                                 &conf->patch_growth_ratio);

    if (err == NULL) {
        conf->patch_growth_floor = ISS_DEFAULT_PATCH_GROWTH_FLOOR;
        if (floor != NULL) {
            err = set_size(cmd, floor, 0, APR_INT64_C(1) << 50,
                           &conf->patch_growth_floor);
        }
    }
    return err;
}

static const char *set_if_max_sync_tokens(cmd_parms *cmd, void *dconf,
                                          const char *arg)
{
    return set_number(cmd, arg, 100000,
                      &((iss_dir_conf_t *)dconf)->if_max_sync_tokens);
}

static const char *set_digest_header(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    iss_dir_conf_t *conf = dconf;

    if (strcasecmp(arg, "Always") == 0) {
        conf->digest_header = 1;
    }
    else if (strcasecmp(arg, "OnRequest") == 0) {
        conf->digest_header = 0;
    }
    else {
        return apr_pstrcat(cmd->pool, "ISSDigestHeader: '", arg, "' is not "
                           "Always or OnRequest", NULL);
    }
    return NULL;
}

static const char *set_chunking(cmd_parms *cmd, void *dconf, int on)
{
    ((iss_dir_conf_t *)dconf)->chunking = on;
    return NULL;
}

static const char *set_chunk_sizes(cmd_parms *cmd, void *dconf,
                                   const char *min, const char *avg,
                                   const char *max)
{
    iss_dir_conf_t *conf = dconf;
    iss_cdc_params_t *sizes;
    apr_int64_t v[3];
    const char *err, *args[3] = { min, avg, max };
    int i;

    for (i = 0; i < 3; i++) {
        if ((err = set_size(cmd, args[i], ISS_CDC_MIN_LOWEST,
                            ISS_CDC_MAX_HIGHEST, &v[i])) != NULL) {
            return err;
        }
    }
    sizes = apr_palloc(cmd->pool, sizeof(*sizes));
    sizes->min_size = (apr_uint32_t)v[0];
    sizes->avg_size = (apr_uint32_t)v[1];
    sizes->max_size = (apr_uint32_t)v[2];
    if ((err = iss_cdc_params_check(sizes)) != NULL) {
        return apr_pstrcat(cmd->pool, "ISSChunkSizes: ", err, NULL);
    }
    conf->chunk_sizes = sizes;
    return NULL;
}

static const char *set_dedup_scope(cmd_parms *cmd, void *dconf,
                                   const char *arg)
{
    iss_dir_conf_t *conf = dconf;

    if (strcasecmp(arg, "Off") == 0) {
        conf->dedup_scope = ISS_DEDUP_OFF;
    }
    else if (strcasecmp(arg, "File") == 0) {
        conf->dedup_scope = ISS_DEDUP_FILE;
    }
    else if (strcasecmp(arg, "Readable") == 0) {
        conf->dedup_scope = ISS_DEDUP_READABLE;
    }
    else {
        return apr_pstrcat(cmd->pool, "ISSDedupScope: '", arg, "' is not "
                           "Off, File or Readable", NULL);
    }
    return NULL;
}

static const char *set_upload_timeout(cmd_parms *cmd, void *dconf,
                                      const char *arg)
{
    iss_dir_conf_t *conf = dconf;
    if (set_number(cmd, arg, 365 * 86400, &conf->upload_timeout) != NULL
        || conf->upload_timeout < 1) {
        return apr_pstrcat(cmd->pool, "ISSUploadTimeout: '", arg, "' is not "
                           "a number of seconds from 1 to 31536000", NULL);
    }
    return NULL;
}

static const char *set_upload_max_size(cmd_parms *cmd, void *dconf,
                                       const char *arg)
{
    return set_size(cmd, arg, 0, APR_INT64_C(1) << 50,
                    &((iss_dir_conf_t *)dconf)->upload_max_size);
}

static const char *set_upload_staging(cmd_parms *cmd, void *dconf,
                                      const char *arg)
{
    return set_size(cmd, arg, 0, APR_INT64_C(1) << 50,
                    &((iss_dir_conf_t *)dconf)->upload_staging);
}

static const char *set_dbm_type(cmd_parms *cmd, void *dconf, const char *arg)
{
    iss_dir_conf_t *conf = dconf;
    const char *used1, *used2;

    /* apr_dbm_get_usednames_ex() fails for a type this APR-util lacks. */
    if (apr_dbm_get_usednames_ex(cmd->temp_pool, arg, "probe", &used1, &used2)
        != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, "ISSDBMType: unknown or unavailable "
                           "DBM type '", arg, "' (try sdbm, gdbm or db)", NULL);
    }
    conf->dbm_type = apr_pstrdup(cmd->pool, arg);
    return NULL;
}

static const char *set_state_sync(cmd_parms *cmd, void *dconf,
                                  const char *arg)
{
    iss_dir_conf_t *conf = dconf;

    if (!strcasecmp(arg, "On")) {
        conf->state_sync = ISS_STATE_SYNC_ON;
    }
    else if (!strcasecmp(arg, "Off")) {
        conf->state_sync = ISS_STATE_SYNC_OFF;
    }
    else if (!strcasecmp(arg, "Full")) {
        conf->state_sync = ISS_STATE_SYNC_FULL;
    }
    else {
        return apr_pstrcat(cmd->pool, "ISSStateSync: \"", arg, "\" is not "
                           "On, Off or Full", NULL);
    }
    return NULL;
}

static const char *set_owncloud(cmd_parms *cmd, void *dconf, int on)
{
    ((iss_dir_conf_t *)dconf)->owncloud = on;
    return NULL;
}

/* ISSCORSAllowOrigin: origins as browsers send them (scheme://host[:port],
 * no path), `*` for any, or `Off`; the lines of a section add up to its
 * list, which replaces the one of an outer section. */
static const char *set_cors_origin(cmd_parms *cmd, void *dconf,
                                   const char *arg)
{
    iss_dir_conf_t *conf = dconf;
    apr_array_header_t *list;
    const char *p;
    apr_size_t n = strlen(arg);

    if (strcasecmp(arg, "Off") == 0) {
        conf->cors_origins = apr_array_make(cmd->pool, 1, sizeof(char *));
        return NULL;
    }
    if (strcmp(arg, "*") != 0) {
        p = ap_strstr_c(arg, "://");
        if ((strncasecmp(arg, "http://", 7) != 0
             && strncasecmp(arg, "https://", 8) != 0)
            || p == NULL || p[3] == '\0' || strchr(p + 3, '/')
            || arg[n - 1] == ':' || strpbrk(arg, " \t,\"") != NULL) {
            return apr_pstrcat(cmd->pool, "ISSCORSAllowOrigin: '", arg,
                               "' is not an origin (scheme://host[:port], "
                               "no path, as browsers send it in Origin), "
                               "`*` or Off", NULL);
        }
    }
    /* conf is this section's own: its first origin starts its list. */
    list = conf->cors_origins
               ? (apr_array_header_t *)conf->cors_origins
               : apr_array_make(cmd->pool, 4, sizeof(char *));
    APR_ARRAY_PUSH(list, const char *) = apr_pstrdup(cmd->pool, arg);
    conf->cors_origins = list;
    return NULL;
}

const command_rec iss_config_cmds[] = {
    AP_INIT_TAKE1("ISSStateDir", set_state_dir, NULL, ACCESS_CONF,
                  "Directory holding the mod_iss state of this location "
                  "(required where `Dav iss` is set)"),
    AP_INIT_TAKE1("ISSDBMType", set_dbm_type, NULL, ACCESS_CONF | RSRC_CONF,
                  "apr_dbm type of the state store: sdbm (default), gdbm "
                  "or db"),
    AP_INIT_TAKE1("ISSStateSync", set_state_sync, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "On (default): sync answers survive power loss (fsync; "
                  "a scan after a restart of the machine finds what writes "
                  "recorded without one); Full: every write's record too; "
                  "Off: no fsync (the death of httpd only)"),
    AP_INIT_ITERATE("ISSSyncRetention", set_retention, NULL,
                    ACCESS_CONF | RSRC_CONF,
                    "How much sync log to keep: age=<n>[smhdw]|off and/or "
                    "count=<n>|off (default age=30d count=100000)"),
    AP_INIT_TAKE1("ISSSyncMaxResults", set_max_results, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Most members in one sync-collection answer; more are "
                  "paged with 507 and a continuation token (default 10000, "
                  "0 = no cap)"),
    AP_INIT_TAKE1("ISSReconcileInterval", set_reconcile, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Seconds between reconciliation scans for changes made "
                  "behind httpd's back, run by the next sync request "
                  "(default 0 = only on demand)"),
    AP_INIT_TAKE1("ISSDigestHeader", set_digest_header, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "OnRequest (default): GET/HEAD send Repr-Digest when asked "
                  "with Want-Repr-Digest; Always: with every file"),
    AP_INIT_TAKE1("ISSPatchMaxTargetSize", set_patch_max_target, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Largest file a PATCH may produce (default 16G; K, M, G, "
                  "T suffixes); larger answers 413"),
    AP_INIT_TAKE1("ISSPatchMaxWindow", set_patch_max_window, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Largest VCDIFF target window a PATCH may use (default 8M, "
                  "xdelta3's default); a PATCH holds about three windows of "
                  "memory; larger answers 413"),
    AP_INIT_TAKE12("ISSPatchMaxGrowth", set_patch_growth, NULL,
                   ACCESS_CONF | RSRC_CONF,
                   "How far a PATCH may make its file grow past the old "
                   "content: <ratio> bytes per byte of request body "
                   "(default 1024; 0: no bound but ISSPatchMaxTargetSize) "
                   "plus <allowance> (default 1M); more answers 413"),
    AP_INIT_TAKE1("ISSIfMaxSyncTokens", set_if_max_sync_tokens, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Most sync-token conditions one If header may hold "
                  "(default 8); more answers 400"),
    AP_INIT_FLAG("ISSChunking", set_chunking, NULL, ACCESS_CONF | RSRC_CONF,
                 "On (default): files get chunk manifests as they are "
                 "written, and the chunk upload protocol is on; Off: "
                 "neither"),
    AP_INIT_TAKE3("ISSChunkSizes", set_chunk_sizes, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Smallest, average and largest chunk of the store's "
                  "content-defined chunking (default 16K 64K 256K)"),
    AP_INIT_TAKE1("ISSDedupScope", set_dedup_scope, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Where an upload by manifest may take chunks it does not "
                  "send: Off (its own session), File (+ the file's current "
                  "version) or Readable (default: + every file of the "
                  "store the user may GET)"),
    AP_INIT_TAKE1("ISSUploadTimeout", set_upload_timeout, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Seconds the staged chunks of an unfinished upload are "
                  "kept after its last request (default 86400)"),
    AP_INIT_TAKE1("ISSUploadMaxSize", set_upload_max_size, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Largest file an upload by manifest may make (default "
                  "16G; K, M, G, T suffixes); larger answers 413"),
    AP_INIT_TAKE1("ISSUploadStagingLimit", set_upload_staging, NULL,
                  ACCESS_CONF | RSRC_CONF,
                  "Most bytes the staged chunks of all unfinished uploads "
                  "of a store may take (default 4G); more answers 507"),
    AP_INIT_FLAG("ISSOwnCloudCompat", set_owncloud, NULL,
                 ACCESS_CONF | RSRC_CONF,
                 "On: meet ownCloud/Nextcloud clients (rclone's "
                 "vendor=owncloud): oc:checksums (SHA-1 and MD5, computed "
                 "with the SHA-256), OC-Checksum verified on PUT, "
                 "X-OC-Mtime honoured; Off (default): none of this"),
    AP_INIT_ITERATE("ISSCORSAllowOrigin", set_cors_origin, NULL,
                    ACCESS_CONF | RSRC_CONF,
                    "Origins of browser apps allowed to use this location "
                    "(CORS): scheme://host[:port] ..., `*` (any origin, "
                    "never with credentials) or Off (default)"),
    AP_INIT_ITERATE("ISSKeepVersions", set_keep_versions, NULL,
                    ACCESS_CONF | RSRC_CONF,
                    "Keep the previous content of files overwritten or "
                    "deleted: Off (default), On, and limits count=N "
                    "(per file), size=N[KMGT] (all files), age=N[smhdw] "
                    "(each may be off)"),
    { NULL }
};

/* ---- startup checks ----------------------------------------------------- */

/* Whether the user httpd's children run as may create files in @a dir.
 * As root we cannot ask access(2) for another user, so a short-lived
 * child takes on that user's identity (groups included) and asks. */
static int dir_writable_by_child_user(const char *dir, apr_pool_t *p)
{
    apr_proc_t proc;
    apr_exit_why_e why;
    int code;

    if (geteuid() != 0) {
        return access(dir, W_OK | X_OK) == 0;
    }
    if (apr_proc_fork(&proc, p) == APR_INCHILD) {
        if (initgroups(ap_unixd_config.user_name, ap_unixd_config.group_id)
            || setgid(ap_unixd_config.group_id)
            || setuid(ap_unixd_config.user_id)) {
            _exit(2);
        }
        _exit(access(dir, W_OK | X_OK) == 0 ? 0 : 1);
    }
    if (apr_proc_wait(&proc, &code, &why, APR_WAIT) != APR_CHILD_DONE) {
        return 0;
    }
    return why == APR_PROC_EXIT && code == 0;
}

static const char *section_name(const ap_directive_t *sec, apr_pool_t *p)
{
    const char *args = sec->args ? sec->args : "";
    apr_size_t n = strlen(args);

    if (n && args[n - 1] == '>') {
        args = apr_pstrmemdup(p, args, n - 1);
    }
    return apr_psprintf(p, "%s %s> (%s line %d)", sec->directive, args,
                        sec->filename, sec->line_num);
}

typedef struct check_ctx {
    apr_pool_t *p;
    server_rec *s;
    apr_hash_t *seen;      /* state dir -> section text */
    int errors;
    int warn;              /* log warnings in this pass */
} check_ctx;

static void check_section(check_ctx *c, const ap_directive_t *dav)
{
    const ap_directive_t *sec = dav->parent, *d;
    const char *dir = NULL, *where;

    if (sec == NULL) {
        return; /* mod_dav itself refuses `Dav` outside a section */
    }
    where = section_name(sec, c->p);
    for (d = sec->first_child; d; d = d->next) {
        if (strcasecmp(d->directive, "ISSStateDir") == 0) {
            const char *args = d->args;

            dir = ap_server_root_relative(c->p, ap_getword_conf(c->p, &args));
        }
    }
    if (dir == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, c->s, ISSLOGNO(01001)
                     "Dav iss in %s has no ISSStateDir: add "
                     "`ISSStateDir /path/to/state` to that section", where);
        c->errors++;
        return;
    }
    if (apr_hash_get(c->seen, dir, APR_HASH_KEY_STRING)) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, c->s, ISSLOGNO(01002)
                     "ISSStateDir %s in %s is already used by %s: every "
                     "location needs a state directory of its own", dir,
                     where, (const char *)apr_hash_get(c->seen, dir,
                                                       APR_HASH_KEY_STRING));
        c->errors++;
        return;
    }
    apr_hash_set(c->seen, dir, APR_HASH_KEY_STRING, where);
    {
        apr_finfo_t fi;
        apr_status_t rv = apr_stat(&fi, dir, APR_FINFO_TYPE, c->p);

        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, c->s, ISSLOGNO(01003)
                         "ISSStateDir %s (in %s) does not exist or cannot be "
                         "read; create it and give it to the user httpd "
                         "runs as", dir, where);
            c->errors++;
        }
        else if (fi.filetype != APR_DIR) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, c->s, ISSLOGNO(01004)
                         "ISSStateDir %s (in %s) is not a directory", dir,
                         where);
            c->errors++;
        }
        else if (!dir_writable_by_child_user(dir, c->p)) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, c->s, ISSLOGNO(01005)
                         "ISSStateDir %s (in %s) is not writable by user "
                         "%s, whom httpd's children run as", dir, where,
                         geteuid() == 0 ? ap_unixd_config.user_name
                                        : "(this user)");
            c->errors++;
        }
    }
}

/* Whether the method list @a args of a <Limit> names @a method. */
static int names_method(const char *args, const char *method,
                        apr_pool_t *p)
{
    const char *w;

    while (*(w = ap_getword_conf(p, &args)) != '\0') {
        apr_size_t n = strlen(w);

        if (w[n - 1] == '>') {
            w = apr_pstrmemdup(p, w, n - 1);
        }
        if (strcasecmp(w, method) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A <Limit PUT ...> in a `Dav iss` section that does not name PATCH
 * leaves PATCH, a write method too, to the section's other rules. */
static void check_limits(check_ctx *c, const ap_directive_t *dav)
{
    const ap_directive_t *d;

    if (!c->warn) {
        return;
    }
    for (d = dav->parent ? dav->parent->first_child : NULL; d; d = d->next) {
        if (strcasecmp(d->directive, "<Limit") == 0 && d->args
            && names_method(d->args, "PUT", c->p)
            && !names_method(d->args, "PATCH", c->p)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, c->s, ISSLOGNO(01062)
                         "<Limit %s in %s (line %d) limits PUT but not "
                         "PATCH: with `Dav iss`, PATCH writes files too; "
                         "add PATCH to that <Limit> (or use <LimitExcept>)",
                         d->args, d->filename, d->line_num);
        }
        if (strcasecmp(d->directive, "<Limit") == 0 && d->args
            && names_method(d->args, "PUT", c->p)
            && !names_method(d->args, "POST", c->p)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, c->s, ISSLOGNO(01063)
                         "<Limit %s in %s (line %d) limits PUT but not "
                         "POST: with `Dav iss`, POST stages the chunks of "
                         "an upload; add POST to that <Limit> (or use "
                         "<LimitExcept>)", d->args, d->filename,
                         d->line_num);
        }
    }
}

static void walk_tree(check_ctx *c, const ap_directive_t *d)
{
    for (; d; d = d->next) {
        if (strcasecmp(d->directive, "Dav") == 0 && d->args
            && strcasecmp(d->args, ISS_PROVIDER_NAME) == 0) {
            check_section(c, d);
            check_limits(c, d);
        }
        if (d->first_child) {
            walk_tree(c, d->first_child);
        }
    }
}

int iss_config_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    check_ctx c = { ptemp, s, apr_hash_make(ptemp), 0, 0 };

    /* httpd reads its configuration twice when it starts (the first pass
     * only checks it, its messages go to the terminal) and once per
     * restart.  Errors stop the first pass and are printed there;
     * warnings are printed in the pass that goes on to serve, or in the
     * only pass of a configuration test, so each appears once. */
    c.warn = ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG
             || ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST;

    walk_tree(&c, ap_conftree);
    return c.errors ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

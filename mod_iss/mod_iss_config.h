/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_config — directives and their merging.
 *
 * Per directory: ISSStateDir, ISSDBMType, ISSStateSync, ISSSync*,
 * ISSReconcileInterval, ISSDigestHeader, ISSPatch*, ISSChunking,
 * ISSChunkSizes, ISSDedupScope, ISSUpload*, ISSOwnCloudCompat,
 * ISSCORSAllowOrigin, ISSKeepVersions.  Nothing per server yet.
 */
#ifndef MOD_ISS_CONFIG_H
#define MOD_ISS_CONFIG_H

#include "mod_iss.h"
#include "iss_sync_log.h"
#include "iss_cdc.h"
#include "iss_digest.h"
#include "iss_versions.h"
#include <apr_global_mutex.h>

#define ISS_DEFAULT_DBM_TYPE "sdbm"

/* Per-directory configuration.  A field not set in a section holds
 * ISS_UNSET (numbers) or NULL (pointers), so that merging and defaults
 * are one pattern for every field (mod_iss_config.c). */
#define ISS_UNSET (-1)

typedef struct iss_dir_conf_t {
    const char *state_dir;   /* ISSStateDir, absolute path */
    const char *section;     /* ... the <Location>/<Directory> that set it */
    int root_is_fs;          /* ... that section is a <Directory>: its
                              * path is the tree's (set with state_dir) */
    const char *dbm_type;    /* ISSDBMType, an apr_dbm type name */
    int state_sync;          /* ISSStateSync: ISS_STATE_SYNC_* */
    const iss_sync_retention_t *retention; /* ISSSyncRetention */
    apr_int64_t max_results; /* ISSSyncMaxResults */
    apr_int64_t reconcile;   /* ISSReconcileInterval, seconds */
    int digest_header;       /* ISSDigestHeader: 1 Always, 0 OnRequest */
    apr_int64_t patch_max_target;  /* ISSPatchMaxTargetSize */
    apr_int64_t patch_max_window;  /* ISSPatchMaxWindow */
    apr_int64_t patch_growth_ratio;  /* ISSPatchMaxGrowth: ratio ... */
    apr_int64_t patch_growth_floor;  /* ... and allowance (bytes) */
    apr_int64_t if_max_sync_tokens;  /* ISSIfMaxSyncTokens */
    int chunking;                  /* ISSChunking: 1 on, 0 off */
    const iss_cdc_params_t *chunk_sizes;  /* ISSChunkSizes */
    int dedup_scope;               /* ISSDedupScope (iss_dedup_scope_e) */
    apr_int64_t upload_timeout;    /* ISSUploadTimeout, seconds */
    apr_int64_t upload_max_size;   /* ISSUploadMaxSize */
    apr_int64_t upload_staging;    /* ISSUploadStagingLimit */
    int owncloud;                  /* ISSOwnCloudCompat: 1 on, 0 off */
    const apr_array_header_t *cors_origins; /* ISSCORSAllowOrigin:
                                             * const char *, "*" for any;
                                             * empty: off */
    int keep_versions;             /* ISSKeepVersions: 1 on, 0 off */
    const iss_versions_limits_t *versions_limits; /* ... its limits */
} iss_dir_conf_t;

/** Where an upload by manifest may take chunks it does not receive. */
typedef enum {
    ISS_DEDUP_OFF = 0,      /* only chunks uploaded in its own session */
    ISS_DEDUP_FILE = 1,     /* + the current version of the file itself */
    ISS_DEDUP_READABLE = 2  /* + every file of the store the user may GET */
} iss_dedup_scope_e;

/* Defaults of the chunk directives: staged chunks of an upload session
 * live a day after its last use; an upload by manifest may make a file
 * of up to 16 GiB; staged chunks of all sessions of a store take at
 * most 4 GiB. */
#define ISS_DEFAULT_UPLOAD_TIMEOUT  86400
#define ISS_DEFAULT_UPLOAD_MAX_SIZE (APR_INT64_C(16) << 30)
#define ISS_DEFAULT_UPLOAD_STAGING  (APR_INT64_C(4) << 30)

/* Defaults: a PATCH may make a file of up to 16 GiB, from VCDIFF windows
 * of up to 8 MiB (xdelta3's default; a PATCH holds one window and its
 * sections, about three windows of memory). */
#define ISS_DEFAULT_PATCH_MAX_TARGET (APR_INT64_C(16) << 30)
#define ISS_DEFAULT_PATCH_MAX_WINDOW (APR_INT64_C(8) << 20)
/* A PATCH may make its file grow past the old content by at most 1 MiB
 * + 1024 bytes per byte of delta (ISSPatchMaxGrowth): a small request
 * costs proportionate work. */
#define ISS_DEFAULT_PATCH_GROWTH_RATIO 1024
#define ISS_DEFAULT_PATCH_GROWTH_FLOOR (APR_INT64_C(1) << 20)
/* Sync-token conditions evaluated in one If header (ISSIfMaxSyncTokens):
 * each reads the sync log since its token. */
#define ISS_DEFAULT_IF_MAX_SYNC_TOKENS 8

#define ISS_DEFAULT_MAX_RESULTS 10000


typedef struct iss_server_conf_t {
    int unused;                  /* nothing per server (yet) */
} iss_server_conf_t;

extern const command_rec iss_config_cmds[];

void *iss_config_create_dir(apr_pool_t *p, char *dir);
void *iss_config_merge_dir(apr_pool_t *p, void *base, void *add);
void *iss_config_create_server(apr_pool_t *p, server_rec *s);

iss_dir_conf_t *iss_config_dir(request_rec *r);
iss_server_conf_t *iss_config_server(server_rec *s);

/** ISSStateSync: Off (no fsync), On (default: commits a sync answer
 *  depends on are durable; a write's records are made lazily, and a
 *  restart of the machine calls for a scan) or Full (a write's intent
 *  too, before the write touches the files). */
#define ISS_STATE_SYNC_OFF  0
#define ISS_STATE_SYNC_ON   1
#define ISS_STATE_SYNC_FULL 2
int iss_config_state_sync(const iss_dir_conf_t *dconf);

/** The sync log retention in force (ISSSyncRetention or the default). */
const iss_sync_retention_t *iss_config_retention(const iss_dir_conf_t *dconf);

/** Most results in one sync answer (ISSSyncMaxResults; 0 = no cap). */
apr_int64_t iss_config_max_results(const iss_dir_conf_t *dconf);

/** Seconds between automatic reconciliation scans (0 = never). */
apr_int64_t iss_config_reconcile(const iss_dir_conf_t *dconf);

/** Whether GET/HEAD send Repr-Digest unasked (ISSDigestHeader Always). */
int iss_config_digest_always(const iss_dir_conf_t *dconf);

/** Largest file a PATCH may produce (ISSPatchMaxTargetSize). */
apr_int64_t iss_config_patch_max_target(const iss_dir_conf_t *dconf);

/** Largest VCDIFF target window a PATCH may use (ISSPatchMaxWindow). */
apr_int64_t iss_config_patch_max_window(const iss_dir_conf_t *dconf);

/** ISSPatchMaxGrowth: bytes a PATCH's result may grow past the old
 *  content per byte of request body (0: no bound but
 *  ISSPatchMaxTargetSize), and the allowance every PATCH has. */
apr_int64_t iss_config_patch_growth_ratio(const iss_dir_conf_t *dconf);
apr_int64_t iss_config_patch_growth_floor(const iss_dir_conf_t *dconf);

/** Most sync-token conditions one If header may hold
 *  (ISSIfMaxSyncTokens). */
apr_int64_t iss_config_if_max_sync_tokens(const iss_dir_conf_t *dconf);

/** Whether files get manifests and the chunk protocol is on
 *  (ISSChunking, default on). */
int iss_config_chunking(const iss_dir_conf_t *dconf);

/** The chunker parameters of the store (ISSChunkSizes or the default). */
const iss_cdc_params_t *iss_config_chunk_sizes(const iss_dir_conf_t *dconf);

/** ISSDedupScope (default readable). */
iss_dedup_scope_e iss_config_dedup_scope(const iss_dir_conf_t *dconf);

/** Seconds an upload session lives after its last use (ISSUploadTimeout). */
apr_int64_t iss_config_upload_timeout(const iss_dir_conf_t *dconf);

/** Largest file an upload by manifest may make (ISSUploadMaxSize). */
apr_int64_t iss_config_upload_max_size(const iss_dir_conf_t *dconf);

/** Most bytes staged by all upload sessions of a store
 *  (ISSUploadStagingLimit). */
apr_int64_t iss_config_upload_staging(const iss_dir_conf_t *dconf);

/** Whether ownCloud/Nextcloud clients are met (ISSOwnCloudCompat,
 *  default off): oc:checksums, OC-Checksum, X-OC-Mtime. */
int iss_config_owncloud(const iss_dir_conf_t *dconf);

/** The checksums files get with their digest (ISS_SUM_* bits of
 *  iss_digest.h): SHA-1 and MD5 with ISSOwnCloudCompat On, else none. */
unsigned iss_config_oc_sums(const iss_dir_conf_t *dconf);

/** The origins ISSCORSAllowOrigin lists (NULL: CORS is off here). */
const apr_array_header_t *iss_config_cors_origins(const iss_dir_conf_t *dconf);

/** The limits of retained versions when ISSKeepVersions is on here,
 *  NULL when it is off (the default). */
const iss_versions_limits_t *iss_config_versions(const iss_dir_conf_t *dconf);

/** The DBM type in force (ISSDBMType or the default). */
const char *iss_config_dbm_type(const iss_dir_conf_t *dconf);

/** Startup checks (check_config: at every start, restart and
 *  `httpd -t`): every section with `Dav iss` names an
 *  ISSStateDir that exists, is a directory and is writable by the user
 *  httpd's children run as; no two sections share one.  Logs every
 *  problem and returns non-OK if there is any; warns (once per start)
 *  about <Limit> lists that leave PATCH or POST open. */
int iss_config_check(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);

#endif /* MOD_ISS_CONFIG_H */

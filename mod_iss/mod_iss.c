/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * mod_iss — Internet Storage Sync for mod_dav.
 *
 * `Dav iss` on a <Location> or <Directory> serves it with mod_dav_fs's
 * storage plus mod_iss's sync state.  This file only wires the parts
 * together; see docs/design.md for how a request flows through them.
 */

#define ISS_MODULE_MAIN /* AP_DECLARE_MODULE below says APLOG_USE_MODULE */
#include "mod_iss.h"
#include "mod_iss_capture.h"
#include "mod_iss_config.h"
#include "mod_iss_cors.h"
#include "mod_iss_digest.h"
#include "mod_iss_options.h"
#include "mod_iss_owncloud.h"
#include "mod_iss_patch.h"
#include "mod_iss_provider.h"
#include "mod_iss_reports.h"
#include "mod_iss_state.h"
#include "mod_iss_sync.h"
#include "mod_iss_versions.h"

#include <http_core.h>

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    const char *msg = iss_provider_init();

    if (msg != NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, NULL, ISSLOGNO(01010) "%s",
                     msg);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return iss_state_pre_config(pconf, plog, ptemp);
}

/* The startup checks run here, not in post_config: check_config also
 * runs for `httpd -t` (apache2ctl configtest), so a configuration that
 * cannot start fails the test with the same message instead of passing
 * it and taking the server down at the next graceful restart. */
static int check_config(apr_pool_t *pconf, apr_pool_t *plog,
                        apr_pool_t *ptemp, server_rec *s)
{
    return iss_config_check(pconf, ptemp, s);
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog,
                       apr_pool_t *ptemp, server_rec *s)
{
    ap_add_version_component(pconf, "mod_iss/" ISS_VERSION);
    iss_digest_post_config(s);
    return iss_state_post_config(pconf, plog, ptemp, s);
}

static void child_init(apr_pool_t *p, server_rec *s)
{
    iss_state_child_init(p, s);
}

static void register_hooks(apr_pool_t *p)
{
    /* mod_dav_fs must have registered "filesystem" first: it has, by the
     * time pre_config runs, whatever the LoadModule order. */
    iss_provider_register(p);
    iss_options_register(p);
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    iss_capture_register_hooks(p);
    iss_reports_register_hooks(p);
    iss_sync_register_hooks(p);
    iss_sync_prop_register_hooks(p);
    iss_sync_if_register_hooks(p);
    iss_digest_register_hooks(p);
    iss_etag_register_hooks(p);
    iss_get_register_hooks(p);
    iss_patch_register_hooks(p);
    iss_upload_register_hooks(p);
    iss_owncloud_register_hooks(p);
    iss_cors_register_hooks(p);
    iss_versions_register_hooks(p);
}

AP_DECLARE_MODULE(iss) = {
    STANDARD20_MODULE_STUFF,
    iss_config_create_dir,
    iss_config_merge_dir,
    iss_config_create_server,
    NULL,
    iss_config_cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE
};

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_davfs.h"

#include <stddef.h>

static const char *const names[] = { ISS_DAVFS_STATE_DIR, NULL };
static const char *const prefixes[] = { ISS_DAVFS_TMP_PREFIX, NULL };

const iss_scan_ignore_t iss_davfs_ignore = { names, prefixes };

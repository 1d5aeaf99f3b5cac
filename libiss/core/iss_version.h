/* Licensed under the Apache License, Version 2.0 (see LICENSE). */
/** The version of mod_iss, libiss and iss-sync (one number for all). */
#ifndef ISS_VERSION_H
#define ISS_VERSION_H
#define ISS_VERSION_MAJOR 0
#define ISS_VERSION_MINOR 1
#define ISS_VERSION_PATCH 0
#define ISS_VERSION "0.1.0"
/** The token mod_iss adds to the DAV: header of OPTIONS answers. */
#define ISS_DAV_TOKEN "<https://mod-iss.org/ns/iss/1>"
#endif

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss-state — look into a mod_iss state directory.
 *
 *   iss-state [-t DBMTYPE] DIR info          store id, DBM type, key count
 *   iss-state [-t DBMTYPE] DIR verify        check every record
 *   iss-state [-t DBMTYPE] DIR list [PREFIX] keys (escaped) and value sizes
 *
 * The DBM type is read from the store unless -t insists on one.  It never
 * creates a store; run as root, it takes on the state directory's owner.  Safe while httpd runs: the store serialises with httpd
 * through its lock file.  Exit status: 0 fine, 1 damaged or not found,
 * 2 usage.
 */

#include "iss_store.h"
#include "iss_version.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: iss-state [-t DBMTYPE] DIR info|verify|list [PREFIX]\n"
            "  DBMTYPE: insist on this apr_dbm type (default: the store's)\n");
}

static void print_escaped(const unsigned char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            putchar(s[i]);
        }
        else {
            printf("\\x%02x", s[i]);
        }
    }
}

typedef struct count_t {
    apr_size_t keys, bytes;
    int list;
} count_t;

static int visit(void *baton, const void *key, apr_size_t klen,
                 const void *val, apr_size_t vlen)
{
    count_t *c = baton;

    c->keys++;
    c->bytes += vlen;
    if (c->list) {
        print_escaped(key, klen);
        printf("\t%" APR_SIZE_T_FMT "\n", vlen);
    }
    return 0;
}

/* Run as root, take on the identity of the state directory's owner: any
 * file this run creates (lock file, a recovery's new generation) must stay
 * writable for httpd, which owns the directory. */
static int become_owner(const char *dir)
{
    struct stat st;

    if (geteuid() != 0 || stat(dir, &st) != 0 || st.st_uid == 0) {
        return 0;
    }
    if (setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) {
        fprintf(stderr, "iss-state: cannot switch to the owner (uid %ld) of "
                "%s\n", (long)st.st_uid, dir);
        return -1;
    }
    return 0;
}

static void log_cb(void *baton, int level, apr_status_t rv, const char *msg)
{
    fprintf(stderr, "iss-state: %s\n", msg);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    apr_getopt_t *opt;
    const char *type = NULL, *arg, *dir, *cmd, *prefix = NULL;
    iss_store_t *store = NULL;
    apr_status_t rv;
    char ch;
    count_t c = { 0, 0, 0 };

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt(opt, "t:hV", &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 't': type = arg; break;
        case 'V': printf("iss-state %s\n", ISS_VERSION); return 0;
        default: usage(); return 2;
        }
    }
    if (rv != APR_EOF || argc - opt->ind < 2) {
        usage();
        return 2;
    }
    dir = argv[opt->ind];
    cmd = argv[opt->ind + 1];
    if (argc - opt->ind > 2) {
        prefix = argv[opt->ind + 2];
    }

    if (become_owner(dir) != 0) {
        return 1;
    }
    rv = iss_store_open(&store, dir, type, NULL, log_cb, NULL, pool);
    if (rv != APR_SUCCESS) {
        /* The store has said why through log_cb. */
        if (store == NULL) {
            fprintf(stderr, "iss-state: cannot open the state in %s\n", dir);
        }
        return 1;
    }
    if (strcmp(cmd, "verify") == 0) {
        rv = iss_store_verify(store, pool);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "iss-state: %s: %s\n", dir,
                    iss_store_last_error(store));
            return 1;
        }
        printf("%s: ok\n", dir);
        return 0;
    }
    if (strcmp(cmd, "info") == 0 || strcmp(cmd, "list") == 0) {
        c.list = cmd[0] == 'l';
        rv = iss_store_iterate(store, prefix, prefix ? strlen(prefix) : 0,
                               visit, &c, pool);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "iss-state: %s: %s\n", dir,
                    iss_store_last_error(store));
            return 1;
        }
        if (!c.list) {
            printf("store id: %s\ndbm type: %s\nkeys: %" APR_SIZE_T_FMT
                   "\nvalue bytes: %" APR_SIZE_T_FMT "\n",
                   iss_store_id(store), iss_store_dbm_type(store), c.keys,
                   c.bytes);
        }
        return 0;
    }
    usage();
    return 2;
}

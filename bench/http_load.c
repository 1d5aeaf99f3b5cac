/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * http_load - a small, cheap HTTP/1.1 load client for the benchmarks:
 * COUNT requests over CONNS keep-alive connections (one thread each),
 * each connection taking the next request number from a shared counter,
 * so that the run ends when the last request is answered.  Prints the
 * wall time and the rate; exits 1 if any answer had an unexpected status.
 *
 *   http_load [options] HOST PORT PATTERN
 *     -c CONNS     connections (default 8)
 *     -n COUNT     requests (default 1000)
 *     -m METHOD    (default GET)
 *     -b BYTES     a body of BYTES bytes ('x'), with Content-Length
 *     -B FILE      the body is FILE's content
 *     -k MOD       request i uses number i % MOD in PATTERN (default: i)
 *     -f FILE      paths from FILE (one per line, request i takes line
 *                  i % lines) instead of PATTERN (give "-" as PATTERN)
 *     -H 'N: V'    an extra request header (repeatable)
 *     -s CODES     accepted statuses, comma separated (default: any 2xx)
 *   PATTERN is a path with at most one %d (the request's number).
 *
 * It costs the client a few microseconds per request, so that on a
 * small machine the server's rate, not the client's, is measured (the
 * Perl clients of write_overhead.sh spend about 1 ms per request).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host, *pattern, *method = "GET";
static int port, conns = 8, mod = 0, nlines = 0, nheaders = 0, ncodes = 0;
static long count = 1000, body_len = -1;
static char **lines, *headers[32], *body;
static int codes[32];
static atomic_long next_req, bad, done_reqs;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int connect_to(void)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1
        || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int send_all(int fd, const char *d, size_t n)
{
    while (n) {
        ssize_t w = send(fd, d, n, MSG_NOSIGNAL);

        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A connection's receive buffer. */
typedef struct {
    int fd;
    char buf[65536];
    size_t have, pos;
} conn_t;

static int fill(conn_t *c)
{
    ssize_t r;

    if (c->pos == c->have)
        c->pos = c->have = 0;
    else if (c->pos > 0) {
        memmove(c->buf, c->buf + c->pos, c->have - c->pos);
        c->have -= c->pos;
        c->pos = 0;
    }
    if (c->have == sizeof(c->buf))
        return -1;
    do {
        r = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    c->have += (size_t)r;
    return 0;
}

/* One line (without CRLF) into @a out. */
static int read_line(conn_t *c, char *out, size_t max)
{
    for (;;) {
        char *nl = memchr(c->buf + c->pos, '\n', c->have - c->pos);

        if (nl) {
            size_t n = (size_t)(nl - (c->buf + c->pos));

            if (n && nl[-1] == '\r')
                n--;
            if (n >= max)
                n = max - 1;
            memcpy(out, c->buf + c->pos, n);
            out[n] = '\0';
            c->pos = (size_t)(nl + 1 - c->buf);
            return 0;
        }
        if (fill(c) != 0)
            return -1;
    }
}

static int skip(conn_t *c, long n)
{
    while (n > 0) {
        size_t avail = c->have - c->pos;

        if (avail == 0) {
            if (fill(c) != 0)
                return -1;
            continue;
        }
        if ((long)avail > n)
            avail = (size_t)n;
        c->pos += avail;
        n -= (long)avail;
    }
    return 0;
}

/* Read one response; *status and *close_after.  -1 on a broken
 * connection. */
static int read_response(conn_t *c, int head, int *status, int *close_after)
{
    char line[8192];
    long clen = -1;
    int chunked = 0;

    if (read_line(c, line, sizeof(line)) != 0)
        return -1;
    if (strncmp(line, "HTTP/1.", 7) != 0 || strlen(line) < 12)
        return -1;
    *status = atoi(line + 9);
    *close_after = line[7] == '0';
    for (;;) {
        if (read_line(c, line, sizeof(line)) != 0)
            return -1;
        if (!*line)
            break;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            clen = atol(line + 15);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0
                 && strstr(line, "chunked"))
            chunked = 1;
        else if (strncasecmp(line, "Connection:", 11) == 0) {
            if (strcasestr(line, "close"))
                *close_after = 1;
            else if (strcasestr(line, "keep-alive"))
                *close_after = 0;
        }
    }
    if (head || *status == 204 || *status == 304 || *status / 100 == 1)
        return 0;
    if (chunked) {
        for (;;) {
            long n;

            if (read_line(c, line, sizeof(line)) != 0)
                return -1;
            n = strtol(line, NULL, 16);
            if (n == 0) {
                do {                    /* trailers */
                    if (read_line(c, line, sizeof(line)) != 0)
                        return -1;
                } while (*line);
                return 0;
            }
            if (skip(c, n) != 0 || read_line(c, line, sizeof(line)) != 0)
                return -1;
        }
    }
    if (clen >= 0)
        return skip(c, clen);
    /* Until the connection closes. */
    while (fill(c) == 0)
        c->pos = c->have;
    *close_after = 1;
    return 0;
}

static int accepted(int status)
{
    int i;

    if (ncodes == 0)
        return status / 100 == 2;
    for (i = 0; i < ncodes; i++)
        if (codes[i] == status)
            return 1;
    return 0;
}

static void *worker(void *arg)
{
    conn_t *c = calloc(1, sizeof(*c));
    char req[16384];
    (void)arg;

    c->fd = -1;
    for (;;) {
        long i = atomic_fetch_add(&next_req, 1), k;
        char path[4096];
        int n, h, status, close_after, tries;

        if (i >= count)
            break;
        k = mod ? i % mod : i;
        if (nlines)
            snprintf(path, sizeof(path), "%s", lines[k % nlines]);
        else
            snprintf(path, sizeof(path), pattern, k);
        n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: %s:%d\r\n",
                     method, path, host, port);
        for (h = 0; h < nheaders; h++)
            n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\n",
                          headers[h]);
        if (body_len >= 0)
            n += snprintf(req + n, sizeof(req) - (size_t)n,
                          "Content-Length: %ld\r\n", body_len);
        n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
        for (tries = 0; tries < 3; tries++) {
            if (c->fd < 0) {
                c->have = c->pos = 0;
                if ((c->fd = connect_to()) < 0) {
                    perror("connect");
                    exit(2);
                }
            }
            if (send_all(c->fd, req, (size_t)n) == 0
                && (body_len <= 0 || send_all(c->fd, body, (size_t)body_len)
                                     == 0)
                && read_response(c, strcmp(method, "HEAD") == 0, &status,
                                 &close_after) == 0)
                break;
            close(c->fd);               /* a keep-alive connection closed */
            c->fd = -1;
        }
        if (tries == 3) {
            fprintf(stderr, "%s %s: no answer\n", method, path);
            exit(2);
        }
        if (!accepted(status)) {
            if (atomic_fetch_add(&bad, 1) < 5)
                fprintf(stderr, "%s %s: %d\n", method, path, status);
        }
        atomic_fetch_add(&done_reqs, 1);
        if (close_after) {
            close(c->fd);
            c->fd = -1;
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    return NULL;
}

static void read_lines(const char *file)
{
    FILE *f = fopen(file, "r");
    char buf[4096];
    int cap = 1024;

    if (!f) {
        perror(file);
        exit(2);
    }
    lines = malloc(sizeof(char *) * (size_t)cap);
    while (fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\r\n")] = '\0';
        if (!*buf)
            continue;
        if (nlines == cap)
            lines = realloc(lines, sizeof(char *) * (size_t)(cap *= 2));
        lines[nlines++] = strdup(buf);
    }
    fclose(f);
    if (nlines == 0) {
        fprintf(stderr, "%s: no paths\n", file);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    pthread_t th[256];
    double t0, t1;
    int opt, i;

    while ((opt = getopt(argc, argv, "c:n:m:b:B:k:f:H:s:")) != -1) {
        switch (opt) {
        case 'c': conns = atoi(optarg); break;
        case 'n': count = atol(optarg); break;
        case 'm': method = optarg; break;
        case 'b': body_len = atol(optarg); break;
        case 'B': {
            FILE *f = fopen(optarg, "rb");

            if (!f || fseek(f, 0, SEEK_END) != 0 || (body_len = ftell(f)) < 0
                || fseek(f, 0, SEEK_SET) != 0
                || !(body = malloc((size_t)body_len + 1))
                || fread(body, 1, (size_t)body_len, f) != (size_t)body_len) {
                perror(optarg);
                return 2;
            }
            fclose(f);
            break;
        }
        case 'k': mod = atoi(optarg); break;
        case 'f': read_lines(optarg); break;
        case 'H':
            if (nheaders < 32)
                headers[nheaders++] = optarg;
            break;
        case 's': {
            char *s = optarg, *tok;

            while ((tok = strtok(s, ",")) && ncodes < 32) {
                codes[ncodes++] = atoi(tok);
                s = NULL;
            }
            break;
        }
        default:
            goto usage;
        }
    }
    if (argc - optind != 3 || conns < 1 || conns > 256 || count < 0)
        goto usage;
    host = argv[optind];
    port = atoi(argv[optind + 1]);
    pattern = argv[optind + 2];
    if (body_len > 0 && !body) {
        body = malloc((size_t)body_len);
        memset(body, 'x', (size_t)body_len);
    }
    t0 = now();
    for (i = 0; i < conns; i++)
        pthread_create(&th[i], NULL, worker, NULL);
    for (i = 0; i < conns; i++)
        pthread_join(th[i], NULL);
    t1 = now();
    printf("requests %ld seconds %.3f rate %.1f unexpected %ld\n",
           (long)atomic_load(&done_reqs), t1 - t0,
           (double)atomic_load(&done_reqs) / (t1 - t0),
           (long)atomic_load(&bad));
    return atomic_load(&bad) ? 1 : 0;
usage:
    fprintf(stderr, "usage: http_load [-c CONNS] [-n COUNT] [-m METHOD] "
            "[-b BYTES] [-B FILE] [-k MOD] [-f FILE] [-H 'N: V'] [-s CODES] HOST PORT "
            "PATTERN\n");
    return 2;
}

/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "sync_ui.h"

#include <apr_strings.h>
#include <apr_time.h>

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

struct sync_ui_t {
    apr_pool_t *pool;
    const sync_opts_t *opts;
    int tty;                        /* progress line on */
    int shown;                      /* a progress line is on screen */
    apr_uint64_t files_total, bytes_total, files_done, bytes_done;
    apr_uint64_t req_bytes;         /* wire bytes of the current request */
    apr_uint64_t wire_done;         /* of the requests before it */
    apr_time_t start, last_draw;
};

sync_ui_t *sync_ui_create(const sync_opts_t *opts, apr_pool_t *pool)
{
    sync_ui_t *ui = apr_pcalloc(pool, sizeof(*ui));

    ui->pool = pool;
    ui->opts = opts;
    ui->tty = opts->progress && !opts->quiet && !opts->dry_run
              && isatty(STDOUT_FILENO);
    ui->start = apr_time_now();
    return ui;
}

static void clear_line(sync_ui_t *ui)
{
    if (ui->shown) {
        fputs("\r\033[K", stdout);
        fflush(stdout);
        ui->shown = 0;
    }
}

static void vmsg(sync_ui_t *ui, FILE *f, const char *pre, const char *fmt,
                 va_list ap)
{
    clear_line(ui);
    fflush(stdout);
    fprintf(f, "%s", pre);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
}

void sync_ui_error(sync_ui_t *ui, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmsg(ui, stderr, "iss-sync: error: ", fmt, ap);
    va_end(ap);
}

void sync_ui_warn(sync_ui_t *ui, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vmsg(ui, stderr, "iss-sync: warning: ", fmt, ap);
    va_end(ap);
}

void sync_ui_info(sync_ui_t *ui, const char *fmt, ...)
{
    va_list ap;

    if (!ui->opts->verbose || ui->opts->quiet) {
        return;
    }
    va_start(ap, fmt);
    vmsg(ui, stdout, "", fmt, ap);
    va_end(ap);
}

void sync_ui_action(sync_ui_t *ui, const char *verb, const char *path,
                    const char *extra)
{
    if (ui->opts->quiet) {
        return;
    }
    clear_line(ui);
    printf("%s %s%s%s\n", verb, path, extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}

const char *sync_ui_bytes(apr_uint64_t n, apr_pool_t *pool)
{
    if (n < 1000) {
        return apr_psprintf(pool, "%" APR_UINT64_T_FMT " B", n);
    }
    if (n < 1000 * 1000) {
        return apr_psprintf(pool, "%.1f kB", n / 1e3);
    }
    if (n < (apr_uint64_t)1000 * 1000 * 1000) {
        return apr_psprintf(pool, "%.1f MB", n / 1e6);
    }
    return apr_psprintf(pool, "%.2f GB", n / 1e9);
}

static void draw(sync_ui_t *ui)
{
    apr_time_t now = apr_time_now();
    double secs = (double)(now - ui->start) / APR_USEC_PER_SEC;
    apr_uint64_t wire = ui->wire_done + ui->req_bytes;
    double rate = secs > 0.2 ? wire / secs : 0;
    apr_uint64_t left = ui->bytes_total > ui->bytes_done
                        ? ui->bytes_total - ui->bytes_done : 0;
    apr_pool_t *p;

    if (!ui->tty || now - ui->last_draw < apr_time_from_msec(200)) {
        return;
    }
    ui->last_draw = now;
    apr_pool_create(&p, ui->pool);
    printf("\r\033[K%" APR_UINT64_T_FMT "/%" APR_UINT64_T_FMT " files, "
           "%s of %s, %s/s", ui->files_done, ui->files_total,
           sync_ui_bytes(ui->bytes_done, p), sync_ui_bytes(ui->bytes_total, p),
           sync_ui_bytes((apr_uint64_t)rate, p));
    if (rate > 0 && left > 0) {
        printf(", ETA %.0fs", left / rate);
    }
    fflush(stdout);
    ui->shown = 1;
    apr_pool_destroy(p);
}

void sync_ui_plan(sync_ui_t *ui, apr_uint64_t files, apr_uint64_t bytes)
{
    ui->files_total = files;
    ui->bytes_total = bytes;
    draw(ui);
}

void sync_ui_item_done(sync_ui_t *ui, apr_uint64_t bytes)
{
    ui->files_done++;
    ui->bytes_done += bytes;
    draw(ui);
}

void sync_ui_wire(void *baton, apr_uint64_t sent, apr_uint64_t received)
{
    sync_ui_t *ui = baton;

    ui->req_bytes = sent + received;
    draw(ui);
}

void sync_ui_request_done(sync_ui_t *ui)
{
    ui->wire_done += ui->req_bytes;
    ui->req_bytes = 0;
}

void sync_ui_finish(sync_ui_t *ui)
{
    clear_line(ui);
}

void sync_ui_summary(sync_ui_t *ui, const sync_stats_t *st)
{
    apr_pool_t *p;
    apr_uint64_t wire = st->sent + st->received;
    apr_uint64_t saved = st->whole_bytes > wire ? st->whole_bytes - wire : 0;

    clear_line(ui);
    if (ui->opts->quiet) {
        return;
    }
    apr_pool_create(&p, ui->pool);
    printf("%s%" APR_UINT64_T_FMT " up, %" APR_UINT64_T_FMT " down, "
           "%" APR_UINT64_T_FMT " deleted, %" APR_UINT64_T_FMT " conflicts"
           "%s%s; sent %s, received %s, saved %s\n",
           ui->opts->dry_run ? "dry run: would do " : "",
           st->up, st->down, st->deleted_local + st->deleted_remote,
           st->conflicts,
           st->failed ? apr_psprintf(p, ", %" APR_UINT64_T_FMT " failed",
                                     st->failed) : "",
           st->skipped ? apr_psprintf(p, ", %" APR_UINT64_T_FMT " skipped",
                                      st->skipped) : "",
           sync_ui_bytes(st->sent, p), sync_ui_bytes(st->received, p),
           sync_ui_bytes(saved, p));
    fflush(stdout);
    apr_pool_destroy(p);
}

/* err.c — error messages with context, checked allocation. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages quote names and values from files (JSON keys, tensor names,
 * prompts); a control byte among them would break the one-line rule, so
 * each becomes a visible escape ("\n", "\x07"). */
static void keep_one_line(char *msg, size_t cap)
{
    char out[sizeof(((SdcErr *)0)->msg)];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && o + 5 < sizeof out; p++) {
        if (*p >= 0x20 && *p != 0x7f) out[o++] = (char)*p;
        else if (*p == '\n') out[o++] = '\\', out[o++] = 'n';
        else o += (size_t)snprintf(out + o, sizeof out - o, "\\x%02x", *p);
    }
    out[o] = 0;
    snprintf(msg, cap, "%s", out);
}

int sdc_err(SdcErr *e, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        keep_one_line(e->msg, sizeof e->msg);
    }
    return -1;
}

int sdc_err_prefix(SdcErr *e, const char *fmt, ...)
{
    if (!e) return -1;
    char prefix[512], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* both parts may be long: cut the message rather than overflow */
    size_t n = strlen(prefix);
    if (n > sizeof e->msg - 3) n = sizeof e->msg - 3;
    memcpy(e->msg, prefix, n);
    memcpy(e->msg + n, ": ", 2);
    size_t rest = sizeof e->msg - n - 3;
    strncpy(e->msg + n + 2, old, rest);
    e->msg[sizeof e->msg - 1] = 0;
    keep_one_line(e->msg, sizeof e->msg);
    return -1;
}

_Noreturn void sdc_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "sdc: internal error: %s:%d: assertion failed: %s\n", file, line, cond);
    abort();
}

static void *oom(size_t n)
{
    fprintf(stderr, "sdc: out of memory (%zu bytes)\n", n);
    exit(2);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(n * size);
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

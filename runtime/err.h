/* err.h — the two kinds of error in sdc.
 *
 * User errors (bad files, bad flags) travel as a status: a library function
 * returns -1 and leaves one line in an SdcErr, naming the file and the field
 * ("unet/config.json: down_block_types[2]: unknown block \"Foo\"").  Only the
 * CLI (or a generated executable's main) prints it and exits with status 1.
 *
 * Internal bugs go through SDC_ASSERT, which prints file:line and aborts
 * (exit status 2 via the CLI's SIGABRT handler is not attempted: abort is
 * the honest signal of a bug). */
#ifndef SDC_ERR_H
#define SDC_ERR_H

#include <stddef.h>

typedef struct SdcErr {
    char msg[1024];
} SdcErr;

/* Sets e->msg from the format (if e is not NULL) and returns -1, so that
 * `return sdc_err(e, "...")` reads naturally. */
int sdc_err(SdcErr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (context added on the way up). */
int sdc_err_prefix(SdcErr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Internal invariant; never for user input. */
#define SDC_ASSERT(cond)                                                    \
    do {                                                                    \
        if (!(cond)) sdc_assert_fail(#cond, __FILE__, __LINE__);            \
    } while (0)
_Noreturn void sdc_assert_fail(const char *cond, const char *file, int line);

/* Allocation that cannot fail silently: on exhaustion it prints
 * "sdc: out of memory (N bytes)" and exits with status 2. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif

/* cfg.h — reading diffusers/transformers config.json files with errors that
 * name the file and the field:
 *     unet/config.json: down_block_types[2]: unknown block "Foo"
 *
 * Errors are sticky: the first one is kept in err and later calls return
 * their default, so an importer reads every field it needs in a row and
 * checks cfg->failed once. */
#ifndef SDC_CFG_H
#define SDC_CFG_H

#include <cjson/cJSON.h>

#include "err.h"

typedef struct Cfg {
    char *file;  /* as shown in messages, e.g. "unet/config.json" */
    cJSON *root; /* an object */
    SdcErr *err;
    int failed;
} Cfg;

/* Parses path (shown as `shown`); -1 if unreadable, not JSON or not an object. */
int cfg_load(Cfg *c, const char *path, const char *shown, SdcErr *err);
/* Parses text already in memory. */
int cfg_parse(Cfg *c, const char *text, const char *shown, SdcErr *err);
void cfg_free(Cfg *c);

/* Records an error about `key` (printf-style message after "file: key: "). */
int cfg_fail(Cfg *c, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

int cfg_has(const Cfg *c, const char *key); /* present and not null */
/* Absent or null -> dflt.  Wrong JSON type or outside [lo, hi] -> error. */
long long cfg_int(Cfg *c, const char *key, long long dflt, long long lo, long long hi);
double cfg_num(Cfg *c, const char *key, double dflt, double lo, double hi);
int cfg_bool(Cfg *c, const char *key, int dflt);
const char *cfg_str(Cfg *c, const char *key, const char *dflt);
/* One of the allowed strings (NULL-terminated list); returns its index. */
int cfg_enum(Cfg *c, const char *key, const char *dflt, const char *const *allowed);
/* An integer or a list of integers: a scalar is repeated n times; a list
 * must have exactly n entries (n < 0: any length up to max, count returned). */
int cfg_int_list(Cfg *c, const char *key, int *out, int n, int max, long long dflt, long long lo, long long hi);
/* A list of strings; returns the count (pointers into the JSON). */
int cfg_str_list(Cfg *c, const char *key, const char **out, int max);
/* The field must be absent, null or equal to `allowed` (a JSON literal
 * such as "false", "0", "1.0", "\"default\""); otherwise an error saying the
 * value is not supported.  This is how unsupported options are refused
 * rather than silently ignored. */
void cfg_only(Cfg *c, const char *key, const char *allowed);

#endif

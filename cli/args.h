/* args.h — table-driven flag parsing for sdc's subcommands.
 *
 * Each subcommand describes its flags in a table; the parser accepts
 * "--name value" and "--name=value", checks numbers and ranges, and gives
 * one-line errors naming the flag.  --help prints the table. */
#ifndef SDC_ARGS_H
#define SDC_ARGS_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"

typedef enum ArgKind { ARG_STR, ARG_INT, ARG_DOUBLE, ARG_BOOL, ARG_STRS } ArgKind;

#define ARGS_MAX_MULTI 16

typedef struct StrList {
    int n;
    const char *v[ARGS_MAX_MULTI];
} StrList;

typedef struct OptSpec {
    const char *name; /* "--passes" */
    ArgKind kind;
    void *dst;        /* const char **, long long *, double *, int *, StrList * */
    const char *meta; /* "NAME" in the help line */
    const char *help;
    double min, max;  /* for numbers; min == max == 0 means unchecked */
} OptSpec;

typedef struct CmdSpec {
    const char *name;
    const char *usage;   /* "sdc opt FILE.ir [options]" */
    const char *summary; /* one line */
    int min_pos, max_pos;
    const OptSpec *opts;
    int nopts;
} CmdSpec;

/* Parses argv (after the subcommand name).  Positional arguments go to
 * pos[0..*npos).  Returns 0, 1 when --help was printed, -1 on error. */
int args_parse(const CmdSpec *cmd, int argc, char **argv, const char **pos, int *npos, SdcErr *err);
void args_print_help(const CmdSpec *cmd, FILE *out);

/* Parses a whole decimal integer / number; -1 on junk or overflow. */
int parse_ll(const char *s, long long *out);
int parse_double(const char *s, double *out);
/* A byte count: digits with an optional unit B, KiB, MiB, GiB or TiB
 * ("512MiB", "8GiB", "1048576"); -1 on junk, a zero or overflow. */
int parse_bytes(const char *s, uint64_t *out);

#endif

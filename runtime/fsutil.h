/* fsutil.h — small file helpers with checked I/O.
 *
 * Every output sdc writes goes through a temporary name in the same
 * directory and a rename, so a crash or an error never leaves a half-written
 * file under the name the user asked for. */
#ifndef SDC_FSUTIL_H
#define SDC_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* Reads a whole file (NUL-terminated for convenience); *len gets its size. */
char *file_read_all(const char *path, size_t *len, SdcErr *err);
/* Writes data to path atomically (temp name, fsync, rename). */
int file_write_atomic(const char *path, const void *data, size_t n, SdcErr *err);

/* An output file in the making: write to f, then atomic_commit or _abort. */
typedef struct AtomicFile {
    FILE *f;
    char *path, *tmp;
} AtomicFile;
int atomic_open(AtomicFile *a, const char *path, SdcErr *err);
int atomic_commit(AtomicFile *a, SdcErr *err); /* checks write errors, renames */
void atomic_abort(AtomicFile *a);              /* removes the temp file */

char *path_join(const char *dir, const char *name); /* xmalloc-ed */
int path_is_dir(const char *path);
int path_exists(const char *path);
int mkdir_p(const char *path, SdcErr *err);
/* Removes the files in dir (not recursively) and then dir itself; for the
 * temporary folders sdc makes.  Errors are ignored. */
void remove_flat_dir(const char *dir);
/* Whether `path` can be made as an output file: not a directory, and its
 * directory exists and is writable.  Checked before long work, so that a
 * typo in an output path costs nothing; `flag` starts the message
 * ("-o: cannot write x/y: directory x does not exist"). */
int path_check_output(const char *flag, const char *path, SdcErr *err);

#endif

/* fsutil.c — see fsutil.h. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *file_read_all(const char *path, size_t *len, SdcErr *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sdc_err(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        sdc_err(err, "%s: is a directory", path);
        return NULL;
    }
    size_t cap = 1 << 14, n = 0, got;
    char *buf = xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 >= cap) buf = xrealloc(buf, cap *= 2);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        sdc_err(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

int atomic_open(AtomicFile *a, const char *path, SdcErr *err)
{
    size_t n = strlen(path) + 32;
    a->path = xstrdup(path);
    a->tmp = xmalloc(n);
    snprintf(a->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    a->f = fopen(a->tmp, "wb");
    if (!a->f) {
        int e = errno;
        free(a->path), free(a->tmp);
        a->path = a->tmp = NULL;
        return sdc_err(err, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

void atomic_abort(AtomicFile *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    free(a->path), free(a->tmp);
    a->f = NULL, a->path = a->tmp = NULL;
}

int atomic_commit(AtomicFile *a, SdcErr *err)
{
    int bad = fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0;
    int e = errno;
    if (fclose(a->f) != 0 && !bad) bad = 1, e = errno;
    a->f = NULL;
    if (!bad && rename(a->tmp, a->path) != 0) bad = 1, e = errno;
    if (bad) {
        sdc_err(err, "%s: write failed: %s", a->path, strerror(e));
        unlink(a->tmp);
    }
    free(a->path), free(a->tmp);
    a->path = a->tmp = NULL;
    return bad ? -1 : 0;
}

int file_write_atomic(const char *path, const void *data, size_t n, SdcErr *err)
{
    AtomicFile a;
    if (atomic_open(&a, path, err) < 0) return -1;
    if (n && fwrite(data, 1, n, a.f) != n) {
        int e = errno;
        atomic_abort(&a);
        return sdc_err(err, "%s: write failed: %s", path, strerror(e));
    }
    return atomic_commit(&a, err);
}

char *path_join(const char *dir, const char *name)
{
    if (!dir || !*dir || name[0] == '/') return xstrdup(name);
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return p;
}

int path_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int mkdir_p(const char *path, SdcErr *err)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            sdc_err(err, "%s: cannot create directory: %s", p, strerror(e));
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, 0755) != 0 && errno != EEXIST) rc = sdc_err(err, "%s: cannot create directory: %s", p, strerror(errno));
    else if (!path_is_dir(p)) rc = sdc_err(err, "%s: exists and is not a directory", p);
    free(p);
    return rc;
}

int path_check_output(const char *flag, const char *path, SdcErr *err)
{
    if (!path[0]) return sdc_err(err, "%s: empty path", flag);
    if (path_is_dir(path)) return sdc_err(err, "%s: %s is a directory", flag, path);
    char *copy = xstrdup(path);
    const char *dir = dirname(copy);
    int rc = 0;
    if (!path_is_dir(dir)) rc = sdc_err(err, "%s: cannot write %s: directory %s does not exist", flag, path, dir);
    else if (access(dir, W_OK) != 0)
        rc = sdc_err(err, "%s: cannot write %s: directory %s is not writable (%s)", flag, path, dir, strerror(errno));
    free(copy);
    return rc;
}

void remove_flat_dir(const char *dir)
{
    if (!dir || !dir[0]) return;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            char *p = path_join(dir, e->d_name);
            unlink(p);
            free(p);
        }
    if (d) closedir(d);
    rmdir(dir);
}

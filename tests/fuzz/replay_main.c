/* replay_main.c — runs a libFuzzer target over files, without libFuzzer.
 *
 * Every tests/fuzz/fuzz_*.c is linked with this main into replay_<target>
 * in every build, and ctest runs it over the committed corpus
 * (tests/fuzz/corpus/<target>/): the seeds and every input that once
 * crashed a fuzzer are regression tests of the normal (and the sanitizer)
 * build.  A target signals a failed property with abort(), so a failure
 * here is a crash naming the file it was given.
 *
 * usage: replay_<target> FILE_OR_DIR... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0)
        if ((n += got) == cap) buf = realloc(buf, cap *= 2);
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: out of memory reading %s\n", path);
        return -1;
    }
    /* an exact-size copy, so that AddressSanitizer sees reads past the input */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) return free(buf), -1;
    memcpy(exact, buf, n);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    int files = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s does not exist\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad |= run_file(argv[i]) != 0, files++;
            continue;
        }
        /* a folder: its files in name order, so that runs are repeatable */
        DIR *d = opendir(argv[i]);
        char **names = NULL;
        int n = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.') {
                names = realloc(names, sizeof(char *) * (size_t)(n + 1));
                names[n] = malloc(strlen(argv[i]) + strlen(e->d_name) + 2);
                sprintf(names[n++], "%s/%s", argv[i], e->d_name);
            }
        if (d) closedir(d);
        qsort(names, (size_t)n, sizeof(char *), by_name);
        for (int k = 0; k < n; k++) {
            bad |= run_file(names[k]) != 0, files++;
            free(names[k]);
        }
        free(names);
    }
    if (files == 0) {
        fprintf(stderr, "replay: no input files\n");
        return 1;
    }
    fprintf(stderr, "replay: %d file(s), no crash\n", files);
    return bad;
}

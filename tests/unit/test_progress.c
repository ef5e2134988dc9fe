/* test_progress.c — the progress bar's output (captured from stderr) and
 * the monotonic clock. */
#include "progress.h"
#include "test.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Runs fn with stderr sent to a file; returns what it wrote (static). */
static const char *capture_stderr(void (*fn)(void))
{
    static char out[4096];
    char path[512];
    snprintf(path, sizeof path, "%s/stderr.txt", test_tmpdir());
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(out, 1, sizeof out - 1, f) : 0;
    out[n] = 0;
    if (f) fclose(f);
    unlink(path);
    return out;
}

static void run_disabled(void)
{
    Progress p;
    progress_begin(&p, "quiet", 5, 0);
    for (int i = 0; i < 5; i++) progress_step(&p);
    progress_end(&p);
}

static void run_three_steps(void)
{
    Progress p;
    progress_begin(&p, "denoise", 3, 1);
    for (int i = 0; i < 3; i++) progress_step(&p);
    progress_end(&p);
    progress_end(&p); /* second end: nothing */
}

static void run_edge_totals(void)
{
    Progress p;
    progress_begin(&p, "zero", 0, 1);
    progress_end(&p);
    progress_begin(&p, "one", 1, 1);
    progress_step(&p);
    progress_step(&p); /* more steps than announced */
    progress_end(&p);
    progress_begin(&p, NULL, -1, 1);
    progress_step(&p);
    progress_end(&p);
}

static void test_output(void)
{
    CHECK(strcmp(capture_stderr(run_disabled), "") == 0);

    const char *s = capture_stderr(run_three_steps);
    CHECK_MSG(strstr(s, "\rdenoise   1/3 [######..............]") != NULL, "%s", s);
    CHECK_MSG(strstr(s, "ETA") != NULL, "%s", s);
    CHECK_MSG(strstr(s, "\rdenoise   3/3 [####################]") != NULL, "%s", s);
    CHECK_MSG(strstr(s, "s/it") != NULL && strstr(s, "s total") != NULL, "%s", s);
    size_t n = strlen(s);
    CHECK(n > 0 && s[n - 1] == '\n' && strchr(s, '\n') == s + n - 1); /* one newline, at the end */

    s = capture_stderr(run_edge_totals);
    CHECK_MSG(strstr(s, "\rzero   0") != NULL, "%s", s);
    CHECK_MSG(strstr(s, "\rone   2/1 [####################]") != NULL, "%s", s);
    int lines = 0;
    for (const char *c = s; *c; c++) lines += *c == '\n';
    CHECK(lines == 3);
}

static void test_clock(void)
{
    double a = rt_now();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double b = rt_now();
    CHECK(b - a >= 0.019 && b - a < 5.0);
    CHECK(progress_default_enabled(1) == 0);
    CHECK(progress_default_enabled(0) == isatty(STDERR_FILENO));
}

int main(void)
{
    RUN(test_output);
    RUN(test_clock);
    return test_finish();
}

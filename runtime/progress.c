/* progress.c — progress bar on stderr, monotonic clock. */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_BAR_WIDTH 20

double rt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int progress_default_enabled(int quiet) { return !quiet && isatty(STDERR_FILENO); }

void progress_begin(Progress *p, const char *label, int total, int enabled)
{
    p->label = label ? label : "";
    p->total = total;
    p->done = 0;
    p->enabled = enabled;
    p->t_begin = p->t_last = rt_now();
}

/* One line, without the newline; trailing spaces wipe a longer old line. */
static void progress_draw(const Progress *p, int final)
{
    double elapsed = p->t_last - p->t_begin;
    double per_step = p->done > 0 ? elapsed / p->done : 0.0;
    if (p->total > 0) {
        int filled = (int)((long long)PROGRESS_BAR_WIDTH * (p->done < p->total ? p->done : p->total) / p->total);
        char bar[PROGRESS_BAR_WIDTH + 1];
        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
        bar[PROGRESS_BAR_WIDTH] = 0;
        fprintf(stderr, "\r%s %3d/%d [%s]", p->label, p->done, p->total, bar);
    } else {
        fprintf(stderr, "\r%s %3d", p->label, p->done);
    }
    if (p->done > 0) fprintf(stderr, " %.2f s/it", per_step);
    if (final) {
        fprintf(stderr, " %.1f s total   ", elapsed);
    } else if (p->total > p->done && p->done > 0) {
        double eta = per_step * (p->total - p->done);
        fprintf(stderr, eta < 10.0 ? " ETA %.1f s   " : " ETA %.0f s   ", eta);
    } else {
        fprintf(stderr, "          ");
    }
    fflush(stderr);
}

void progress_step(Progress *p)
{
    p->done++;
    p->t_last = rt_now();
    if (p->enabled) progress_draw(p, 0);
}

void progress_end(Progress *p)
{
    if (!p->enabled) return;
    progress_draw(p, 1);
    fputc('\n', stderr);
    p->enabled = 0; /* a second end prints nothing */
}

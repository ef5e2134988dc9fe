/* progress.h — a one-line progress bar on stderr and a monotonic clock.
 *
 * "denoise  7/20 [#######.............] 1.23 s/it ETA 16 s", redrawn with \r
 * after every step, ended with a newline.  The caller decides whether to
 * draw at all: progress_default_enabled(quiet) says yes when not quiet and
 * stderr is a terminal (so logs and pipes get no \r noise). */
#ifndef SDC_PROGRESS_H
#define SDC_PROGRESS_H

/* Seconds on a monotonic clock (only differences mean anything). */
double rt_now(void);

typedef struct Progress {
    const char *label; /* not copied: must outlive the bar */
    int total;         /* steps expected; 0 or less: no bar, just a count */
    int done;          /* steps finished so far */
    int enabled;       /* draw at all */
    double t_begin;    /* rt_now() at progress_begin */
    double t_last;     /* rt_now() at the last step */
} Progress;

int progress_default_enabled(int quiet);
void progress_begin(Progress *p, const char *label, int total, int enabled);
void progress_step(Progress *p);
/* Final line (total time, mean s/it) and a newline. */
void progress_end(Progress *p);

#endif

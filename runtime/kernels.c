/* kernels.c — the kernels' shared services: thread count, per-thread
 * scratch memory.  The kernels themselves live in kernels_*.c and gemm*.c
 * (see kernels_internal.h for the map and the determinism rule).
 *
 * Scratch: each thread keeps one growing buffer per RtScratchSlot (the
 * OpenMP thread pool outlives a kernel call, so buffers are allocated once
 * and reused by every later call).  What a thread holds at most for SD 1.5
 * at 512x512, bounded by the block sizes of gemm.h, kernels_gemm.c,
 * kernels_conv.c and kernels_attention.c (bench/kernels_bench.c prints the
 * measured peak):
 *   packed B block       <= 1.5 MiB (RT_GEMM_KC_MAX x GEMM_NC floats: the im2col of a conv)
 *   packed A block       <= 216 KiB (GEMM_MC x RT_GEMM_KC_MAX)
 *   attention            S^T 240 KiB, O^T and statistics <= 70 KiB (dv <= 64)
 *   bf16 pair blocks     half the packed blocks above (bf16 weights only)
 * about 3.5 MiB per thread whatever the image size, plus, on the thread
 * that calls rt_attention, K and V of every head packed once (21.5 MiB for
 * the UNet's 4096-token self-attention at batch 2).  Several threads may
 * call kernels at once: every OpenMP thread has its own scratch set. */
#include "kernels_internal.h"

#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static int threads_wanted; /* 0 = all cores */

void rt_set_threads(int n) { threads_wanted = n > 0 ? n : 0; }

int rt_threads(void)
{
    if (threads_wanted > 0) return threads_wanted;
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

/* Scratch sets: one per thread that ever ran a kernel task.  Every set stays
 * on the global list (so memory checkers see it reachable); a thread that
 * exits frees its buffers through the key destructor and leaves its set for
 * the next new thread. */
typedef struct ScratchBuf {
    void *raw;  /* what malloc returned */
    float *at;  /* raw rounded up to 64 bytes */
    size_t cap; /* floats */
} ScratchBuf;

typedef struct ScratchSet {
    ScratchBuf buf[RT_SCRATCH_COUNT];
    size_t bytes; /* held by this set */
    int in_use;   /* owned by a live thread */
    struct ScratchSet *next;
} ScratchSet;

static pthread_once_t prepare_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;
static ScratchSet *scratch_sets;
static _Thread_local ScratchSet *scratch_mine;
static atomic_size_t scratch_peak;

static void scratch_set_release(void *arg)
{
    ScratchSet *set = arg;
    for (int i = 0; i < RT_SCRATCH_COUNT; i++) free(set->buf[i].raw);
    pthread_mutex_lock(&scratch_lock);
    memset(set->buf, 0, sizeof set->buf);
    set->bytes = 0;
    set->in_use = 0;
    pthread_mutex_unlock(&scratch_lock);
}

static void prepare(void)
{
    if (pthread_key_create(&scratch_key, scratch_set_release)) SDC_ASSERT(!"pthread_key_create failed");
}

void rt_kernels_prepare(void) { pthread_once(&prepare_once, prepare); }

static ScratchSet *scratch_set(void)
{
    if (scratch_mine) return scratch_mine;
    rt_kernels_prepare();
    pthread_mutex_lock(&scratch_lock);
    ScratchSet *set = scratch_sets;
    while (set && set->in_use) set = set->next;
    if (!set) {
        set = xcalloc(1, sizeof *set);
        set->next = scratch_sets;
        scratch_sets = set;
    }
    set->in_use = 1;
    pthread_mutex_unlock(&scratch_lock);
    pthread_setspecific(scratch_key, set);
    return scratch_mine = set;
}

float *rt_scratch(RtScratchSlot slot, size_t count)
{
    SDC_ASSERT(slot >= 0 && slot < RT_SCRATCH_COUNT);
    ScratchSet *set = scratch_set();
    ScratchBuf *s = &set->buf[slot];
    if (count > s->cap) {
        size_t cap = (count + count / 8 + 15) & ~(size_t)15; /* some slack: sizes creep up */
        free(s->raw);
        s->raw = xmalloc(cap * sizeof(float) + 64);
        s->at = (float *)(((uintptr_t)s->raw + 63) & ~(uintptr_t)63);
        set->bytes += (cap - s->cap) * sizeof(float);
        s->cap = cap;
        size_t peak = atomic_load(&scratch_peak);
        while (set->bytes > peak && !atomic_compare_exchange_weak(&scratch_peak, &peak, set->bytes)) {
        }
    }
    return s->at;
}

size_t rt_scratch_peak_bytes(void) { return atomic_load(&scratch_peak); }

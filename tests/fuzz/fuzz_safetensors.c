/* fuzz_safetensors.c — libFuzzer target for the safetensors reader.
 *
 * Build and run (from the repository root):
 *   clang-14 -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iruntime \
 *     tests/fuzz/fuzz_safetensors.c runtime/safetensors.c runtime/err.c runtime/dtype.c -lcjson -lm \
 *     -o /tmp/fuzz_safetensors
 *   mkdir -p /tmp/st-corpus && /tmp/fuzz_safetensors -max_total_time=60 /tmp/st-corpus tests/fuzz/corpus/safetensors
 *
 * The seeds in tests/fuzz/corpus/safetensors/ (made by
 * make_safetensors_corpus.py beside this file) are tiny files, valid and
 * not: every dtype sdc computes in, metadata, a zero-element tensor, a
 * scalar, an unpadded header (odd data offsets), overlapping tensors, a
 * duplicate name, a size mismatch and a header length beyond the file.
 *
 * Every input is opened with st_open_memory; when it is accepted, every
 * tensor's bytes are touched and every small tensor is read with
 * st_read_f32, so that a header the validator lets through with a bad
 * offset or size shows up as an AddressSanitizer report. */
#include "safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    StFile f;
    SdcErr err;
    if (st_open_memory(&f, data, size, "fuzz.safetensors", &err) != 0) {
        if (strchr(err.msg, '\n')) abort(); /* messages are one line, whatever the names hold */
        return 0;
    }
    for (int i = 0; i < f.n; i++) {
        const StTensor *t = &f.tensors[i];
        if (st_find(&f, t->name) != t) abort();
        const uint8_t *p = st_data(&f, t);
        /* the validator promised these bytes lie inside the buffer */
        if (t->nbytes && (p < f.base || t->offset + t->nbytes > f.size)) abort();
        volatile uint8_t sink = 0;
        if (t->nbytes) sink ^= p[0] ^ p[t->nbytes - 1];
        (void)sink;
        int64_t n = st_numel(t);
        if (n < 0) abort();
        if (n <= (1 << 16)) {
            float *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
            int rc = st_read_f32(&f, t, out, &err);
            if ((rc == 0) != (t->dtype != DT_OTHER)) abort();
            free(out);
        }
    }
    for (int i = 0; i < f.n_meta; i++)
        if (st_meta(&f, f.meta_keys[i]) != f.meta_vals[i]) abort();
    st_close(&f);
    return 0;
}

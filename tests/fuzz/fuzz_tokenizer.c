/* fuzz_tokenizer.c — libFuzzer target for the CLIP tokenizer's encoder.
 *
 * Build and run (from the repository root):
 *   clang-14 -std=c17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *     -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iruntime \
 *     tests/fuzz/fuzz_tokenizer.c runtime/tokenizer.c runtime/tok_text.c runtime/unicode_tables.c \
 *     runtime/fsutil.c runtime/err.c -lcjson -lz -lm -o /tmp/fuzz_tokenizer
 *   mkdir -p /tmp/tok-corpus && /tmp/fuzz_tokenizer -max_total_time=60 /tmp/tok-corpus tests/fuzz/corpus/tokenizer
 *
 * A small vocabulary is loaded once with tok_load_memory: the 512 byte
 * symbols, a few merges (some whose results are missing from the
 * vocabulary, so BPE falls back to unk), <|startoftext|>, <|endoftext|>, and
 * "!" as pad token (so that "!" also splits the prompt, as in SD2).  Each
 * input, cut at its first NUL, is encoded as a prompt — invalid UTF-8,
 * entities, controls and all — and the result is checked: a count in
 * [2, max_length], bos first, eos after the kept ids, padding after that,
 * every id below tok_vocab_size(), and tok_count agreeing with the count. */
#include "tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LENGTH = 77 };

/* Merges of byte symbols ("Ã" and "©" are the symbols of the bytes of "é"). */
static const char MERGES[] = "#version: 0.2\n"
                             "t h\nth e</w>\ni n\nin g</w>\na n\nan d</w>\ne r\ner s</w>\n"
                             "Ã ©</w>\nc a\nca t</w>\n! !</w>\n. .\n.. .</w>\nq q\n";
static const char *const MERGED[] = {"th", "the</w>", "in", "ing</w>", "an", "and</w>", "er",
                                     "Ã©</w>", "ca", "cat</w>", "!!</w>", "..", "...</w>"};

static Tokenizer *tok;

static void append(char **buf, size_t *n, size_t *cap, const char *s)
{
    size_t k = strlen(s);
    if (*n + k + 1 > *cap) {
        *cap = 2 * (*n + k + 1);
        *buf = realloc(*buf, *cap);
        if (!*buf) abort();
    }
    memcpy(*buf + *n, s, k + 1);
    *n += k;
}

static void load_once(void)
{
    if (tok) return;
    char *json = NULL, entry[64];
    size_t n = 0, cap = 0;
    int id = 0, extra = 0;
    append(&json, &n, &cap, "{");
    for (int end = 0; end < 2; end++) {
        extra = 0;
        for (int b = 0; b < 256; b++) {
            int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            unsigned c = printable ? (unsigned)b : 256u + (unsigned)extra++;
            char u[4] = {0};
            if (c < 0x80) u[0] = (char)c;
            else u[0] = (char)(0xC0 | (c >> 6)), u[1] = (char)(0x80 | (c & 0x3F));
            const char *esc = (c == '"' || c == '\\') ? "\\" : "";
            snprintf(entry, sizeof entry, "\"%s%s%s\": %d, ", esc, u, end ? "</w>" : "", id++);
            append(&json, &n, &cap, entry);
        }
    }
    for (size_t k = 0; k < sizeof MERGED / sizeof MERGED[0]; k++) {
        snprintf(entry, sizeof entry, "\"%s\": %d, ", MERGED[k], id++);
        append(&json, &n, &cap, entry);
    }
    snprintf(entry, sizeof entry, "\"<|startoftext|>\": %d, \"<|endoftext|>\": %d}", id, id + 1);
    append(&json, &n, &cap, entry);
    SdcErr err;
    if (tok_load_memory(&tok, json, n, MERGES, strlen(MERGES), "!", MAX_LENGTH, "fuzz", &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load_once();
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;

    int32_t ids[MAX_LENGTH];
    SdcErr err;
    int n = tok_encode(tok, text, ids, &err);
    int full = tok_count(tok, text, &err);
    free(text);

    int32_t bos, eos, pad;
    tok_special_ids(tok, &bos, &eos, &pad);
    if (n < 2 || n > MAX_LENGTH || ids[0] != bos || ids[n - 1] != eos) abort();
    if (full < n || (full <= MAX_LENGTH && full != n) || (full > MAX_LENGTH && n != MAX_LENGTH)) abort();
    for (int i = 0; i < MAX_LENGTH; i++) {
        if (ids[i] < 0 || ids[i] >= tok_vocab_size(tok)) abort();
        if (i >= n && ids[i] != pad) abort();
    }
    return 0;
}

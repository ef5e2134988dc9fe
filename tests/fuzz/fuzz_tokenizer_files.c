/* fuzz_tokenizer_files.c — libFuzzer target for loading tokenizer files.
 *
 * The input is vocab.json, merges.txt and the pad token separated by NUL
 * bytes (missing parts are empty), loaded with tok_load_memory as a
 * compiled executable loads the copy in its weights file (tok_load_dir
 * reads the same two parsers from files).  Checked: a refused input gives
 * one line naming the data ("fuzz/vocab.json: ..."); an accepted one
 * encodes a few prompts (plain words, special tokens, the pad token, the
 * vocabulary text itself) into max_length ids below tok_vocab_size(),
 * bos first, eos after the kept ids, then padding.  (fuzz_tokenizer.c
 * fuzzes the prompt side with a fixed vocabulary.)  Seeds:
 * tests/fuzz/corpus/tokenizer_files/.  Build with -DSDC_FUZZ=ON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_LENGTH = 77 };

/* Splits the input at its first two NULs into three NUL-terminated parts
 * (buf[size] is a NUL). */
static void split3(char *buf, size_t size, char *part[3], size_t len[3])
{
    size_t at = 0;
    for (int k = 0; k < 3; k++) {
        size_t end = at;
        while (end < size && buf[end]) end++;
        part[k] = buf + at;
        len[k] = end - at;
        at = end < size ? end + 1 : size;
    }
}

static void check_encode(const Tokenizer *t, const char *text)
{
    int32_t ids[MAX_LENGTH], bos, eos, pad;
    int n = tok_encode(t, text, ids, NULL);
    tok_special_ids(t, &bos, &eos, &pad);
    if (n < 2 || n > MAX_LENGTH || ids[0] != bos || ids[n - 1] != eos) abort();
    for (int i = 0; i < MAX_LENGTH; i++)
        if (ids[i] < 0 || ids[i] >= tok_vocab_size(t) || (i >= n && ids[i] != pad)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *part[3];
    size_t len[3];
    split3(buf, size, part, len);
    Tokenizer *t = NULL;
    SdcErr err = {{0}};
    if (tok_load_memory(&t, part[0], len[0], part[1], len[1], part[2], MAX_LENGTH, "fuzz", &err) != 0) {
        if (strncmp(err.msg, "fuzz", 4) != 0 || strchr(err.msg, '\n')) abort();
    } else {
        check_encode(t, "a photo of a cat");
        check_encode(t, "<|startoftext|>x<|endoftext|> y");
        check_encode(t, part[2]);
        check_encode(t, part[0]);
        tok_free(t);
    }
    free(buf);
    return 0;
}

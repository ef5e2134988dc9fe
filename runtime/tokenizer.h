/* tokenizer.h — the CLIP BPE tokenizer: prompt -> max_length (77) token ids.
 *
 * Reproduces transformers' slow CLIPTokenizer as StableDiffusionPipeline
 * calls it (padding="max_length", truncation=True) with ftfy installed:
 *
 *   1. the prompt is split at the tokenizer's added/special tokens
 *      ("<|startoftext|>", "<|endoftext|>", the pad token, ...) as written,
 *      each of which becomes its own id;
 *   2. every other piece is cleaned (ftfy.fix_text, whitespace collapsed and
 *      stripped, str.lower()), cut by CLIP's regex
 *      <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 *      (case-insensitive), mapped byte-wise through GPT-2's bytes_to_unicode,
 *      and merged by BPE (lowest merge rank first; "</w>" marks a word's last
 *      symbol); a result missing from the vocabulary becomes the unk token;
 *   3. ids = <|startoftext|> + first (max_length - 2) ids + <|endoftext|>,
 *      padded with the pad token's id to max_length.
 *
 * Known differences from the Python reference (see tok_text.c):
 *   - ftfy's mojibake repair (fix_encoding) is not done; every other ftfy
 *     fix is.  openai/CLIP's extra html.unescape (its basic_clean) is not
 *     done either, because transformers does not do it.
 *   - Invalid UTF-8 in the prompt is not an error: each maximal invalid
 *     sequence becomes U+FFFD, as bytes.decode("utf-8", "replace") does.
 *   - Unicode data is Python 3.11's (Unicode 14.0); `regex` may know newer
 *     letters/digits that are unassigned in 14.0.
 *   - Added tokens with single_word=True are matched like the others
 *     (lstrip/rstrip need nothing: the clean-up strips that whitespace anyway).
 *   - BPE time grows with the square of one word's length (a run of letters
 *     or of punctuation): 0.2 s for a 20,000-letter word, microseconds for prompts.
 *
 * A Tokenizer is immutable after loading; tok_encode may be called from
 * several threads at once. */
#ifndef SDC_TOKENIZER_H
#define SDC_TOKENIZER_H

#include "err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct Tokenizer Tokenizer;

/* A diffusers/transformers tokenizer folder: vocab.json, merges.txt, and
 * tokenizer_config.json and/or special_tokens_map.json (special tokens,
 * model_max_length; CLIP's defaults when absent).  As in transformers, when
 * tokenizer_config.json has "added_tokens_decoder" it alone decides the
 * special tokens; otherwise special_tokens_map.json overrides it (which is
 * how SD2.x ends up padding with "!") and added_tokens.json is read. */
int tok_load_dir(Tokenizer **t, const char *dir, SdcErr *err);

/* openai/CLIP's bpe_simple_vocab_16e6.txt.gz (gzip, via zlib): the 49408-token
 * vocabulary built as SimpleTokenizer does it (256 byte symbols, the same
 * with "</w>", the joined merges of lines 1..48894, <|startoftext|>,
 * <|endoftext|>); pad token <|endoftext|>, max_length 77. */
int tok_load_clip_bpe_gz(Tokenizer **t, const char *gz_path, SdcErr *err);

/* From memory (vocab.json text, merges.txt text, pad token, max_length), for
 * executables that embed their tokenizer.  bos/eos/unk are CLIP's
 * <|startoftext|>, <|endoftext|>, <|endoftext|>.  display_name names the
 * data in error messages. */
int tok_load_memory(Tokenizer **t, const char *vocab_json, size_t vocab_len, const char *merges_txt,
                    size_t merges_len, const char *pad_token, int max_length, const char *display_name,
                    SdcErr *err);

/* Writes exactly tok_max_length(t) ids.  Returns the number of real tokens
 * (bos + kept tokens + eos, at most max_length; the rest is padding), or -1
 * if text is NULL. */
int tok_encode(const Tokenizer *t, const char *text, int32_t *ids, SdcErr *err);

/* The untruncated length of the prompt in tokens, bos and eos included (more
 * than tok_max_length() means tok_encode drops the tail), or -1 if text is NULL. */
int tok_count(const Tokenizer *t, const char *text, SdcErr *err);

int tok_max_length(const Tokenizer *t);

/* One more than the largest id tok_encode can produce (= len(vocab.json) for
 * a dense vocabulary, as transformers' vocab_size). */
int tok_vocab_size(const Tokenizer *t);

/* The id of a token string (a vocabulary entry or an added token), or -1. */
int32_t tok_token_id(const Tokenizer *t, const char *token);

void tok_special_ids(const Tokenizer *t, int32_t *bos, int32_t *eos, int32_t *pad);

/* The pad token's text as configured ("<|endoftext|>" for SD 1.x, "!" for SD 2.x). */
const char *tok_pad_token(const Tokenizer *t);
void tok_free(Tokenizer *t);

#endif

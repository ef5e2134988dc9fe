/* tok_text.h — text handling for the CLIP tokenizer: UTF-8, character
 * classes, and the clean-up transformers' slow CLIPTokenizer applies before
 * BPE (ftfy.fix_text, whitespace_clean, str.lower), all on arrays of code
 * points.  The data comes from unicode_tables.c (generated from Python). */
#ifndef SDC_TOK_TEXT_H
#define SDC_TOK_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* A growable array of code points. */
typedef struct CpBuf {
    uint32_t *v;
    size_t n, cap;
} CpBuf;

void cpbuf_push(CpBuf *b, uint32_t cp);
void cpbuf_append(CpBuf *b, const uint32_t *cps, size_t n);
void cpbuf_free(CpBuf *b);

/* Decodes n bytes of UTF-8 and appends the code points to out.  Invalid input
 * becomes U+FFFD, one per maximal invalid subsequence, exactly as Python's
 * bytes.decode("utf-8", "replace") does (overlong forms, surrogates and
 * values past U+10FFFF included). */
void tok_utf8_decode(const char *s, size_t n, CpBuf *out);

/* Writes the UTF-8 form of cp (a valid scalar value) and returns its length. */
size_t tok_utf8_encode(uint32_t cp, unsigned char out[4]);

/* Character classes as transformers' regex sees them. */
int uni_is_letter(uint32_t cp);      /* \p{L} */
int uni_is_number(uint32_t cp);      /* \p{N} */
int uni_is_space(uint32_t cp);       /* str.isspace() */
int uni_is_regex_space(uint32_t cp); /* the `regex` package's \s (White_Space) */

/* ftfy 6.1's fix_text with its default settings, minus fix_encoding (the
 * mojibake detector): html entities (only in lines before the first '<'),
 * C1 controls, Latin ligatures, character width, curly quotes, line breaks,
 * terminal escapes, control characters, NFC; each line repeated until it
 * stops changing.  Appends the result to out. */
void tok_text_fix(const uint32_t *s, size_t n, CpBuf *out);

/* CLIP's whitespace_clean: runs of \s become one space, then str.strip(). */
void tok_text_clean_space(const uint32_t *s, size_t n, CpBuf *out);

/* Python's str.lower(): full lower-case mapping with the Final_Sigma rule. */
void tok_text_lower(const uint32_t *s, size_t n, CpBuf *out);

/* Unicode normalisation form C (unicodedata.normalize("NFC", s)). */
void tok_text_nfc(const uint32_t *s, size_t n, CpBuf *out);

#endif

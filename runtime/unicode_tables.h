/* unicode_tables.h — the Unicode and HTML data behind the CLIP tokenizer's
 * text clean-up.  The data lives in unicode_tables.c, which
 * gen_unicode_tables.py writes from Python's unicodedata / html modules; the
 * functions that use it are in tok_text.c.  Every table is sorted by its
 * first field so that lookups are binary searches. */
#ifndef SDC_UNICODE_TABLES_H
#define SDC_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

typedef struct UniRange {
    uint32_t lo, hi; /* inclusive */
} UniRange;

/* One code point replaced by 1..3 code points. */
typedef struct UniMap {
    uint32_t cp;
    uint32_t out[3];
    uint8_t n;
} UniMap;

typedef struct UniCcc {
    uint32_t lo, hi; /* inclusive run with one canonical combining class */
    uint8_t ccc;
} UniCcc;

typedef struct UniDecomp {
    uint32_t cp;
    uint16_t off; /* into uni_decomp_pool */
    uint8_t n;
} UniDecomp;

typedef struct UniCompose {
    uint32_t first, second, composite;
} UniCompose;

typedef struct HtmlEntity {
    const char *name;  /* without '&' and ';' */
    const char *value; /* UTF-8 */
} HtmlEntity;

extern const char uni_data_version[];

extern const UniRange uni_letter[], uni_number[], uni_space[], uni_decimal[];
extern const size_t uni_letter_count, uni_number_count, uni_space_count, uni_decimal_count;
extern const UniRange uni_cased[], uni_case_ignorable[];
extern const size_t uni_cased_count, uni_case_ignorable_count;

extern const UniMap uni_lower[];
extern const size_t uni_lower_count;

extern const UniCcc uni_ccc[];
extern const size_t uni_ccc_count;
extern const uint32_t uni_decomp_pool[];
extern const UniDecomp uni_decomp[];
extern const size_t uni_decomp_count;
extern const UniCompose uni_compose[];
extern const size_t uni_compose_count;

extern const UniMap ftfy_ligatures[], ftfy_width[];
extern const size_t ftfy_ligatures_count, ftfy_width_count;
extern const uint32_t ftfy_c1[32];

extern const HtmlEntity html_entities[];
extern const size_t html_entities_count;
extern const UniMap html_invalid_charrefs[];
extern const size_t html_invalid_charrefs_count;
extern const UniRange html_invalid_codepoints[];
extern const size_t html_invalid_codepoints_count;

#endif

/* tok_text.c — the text clean-up in front of CLIP's BPE, on code points.
 *
 * transformers' slow CLIPTokenizer runs, per piece of prompt between special
 * tokens: whitespace_clean(ftfy.fix_text(text)).lower().  This file
 * reproduces those three Python functions:
 *
 *   ftfy.fix_text (6.1, default TextFixerConfig): the text is cut after every
 *   '\n'; a line is fixed by repeating [unescape_html, fix_encoding,
 *   fix_c1_controls, fix_latin_ligatures, fix_character_width, uncurl_quotes,
 *   fix_line_breaks, fix_surrogates, remove_terminal_escapes,
 *   remove_control_chars, NFC] until nothing changes.  unescape_html is "auto":
 *   off from the first line that contains '<' on.  fix_encoding (mojibake
 *   repair driven by ftfy's badness heuristic) is NOT reproduced: text that
 *   ftfy would judge to be mis-decoded UTF-8 ("cafÃ©") stays as typed.
 *   fix_surrogates has nothing to do: decoded UTF-8 never holds surrogates.
 *
 *   whitespace_clean: regex.sub(r"\s+", " ") then str.strip().
 *
 *   str.lower(): CPython's full mapping (U+0130 -> "i̇") and its Final_Sigma
 *   rule for U+03A3.
 *
 * All data (classes, mappings, NFC, entity names) is generated from Python by
 * gen_unicode_tables.py into unicode_tables.c. */
#include "tok_text.h"

#include "err.h"
#include "unicode_tables.h"

#include <stdlib.h>
#include <string.h>

enum { FFFD = 0xFFFD };

/* ftfy's max_decode_length: longer lines are cut into pieces of this size. */
enum { FTFY_MAX_SEGMENT = 1000000 };

/* ftfy loops until a line stops changing; its fixers converge in two or three
 * rounds.  The bound only guards against a cycle we do not know of. */
enum { FTFY_MAX_ROUNDS = 32 };

void cpbuf_push(CpBuf *b, uint32_t cp)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = cp;
}

void cpbuf_append(CpBuf *b, const uint32_t *cps, size_t n)
{
    for (size_t i = 0; i < n; i++) cpbuf_push(b, cps[i]);
}

void cpbuf_free(CpBuf *b)
{
    free(b->v);
    b->v = NULL;
    b->n = b->cap = 0;
}

/* ---- UTF-8 ------------------------------------------------------------- */

void tok_utf8_decode(const char *str, size_t n, CpBuf *out)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            cpbuf_push(out, c);
            i++;
            continue;
        }
        /* Length and the allowed range of the second byte (which rules out
         * overlong forms, surrogates and values past U+10FFFF). */
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            cpbuf_push(out, FFFD);
            i++;
            continue;
        }
        uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
        size_t k = 1;
        for (; k < len && i + k < n; k++) {
            unsigned b = s[i + k];
            unsigned blo = k == 1 ? lo : 0x80, bhi = k == 1 ? hi : 0xBF;
            if (b < blo || b > bhi) break;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (k == len) {
            cpbuf_push(out, cp);
        } else {
            cpbuf_push(out, FFFD); /* the lead byte and the valid bytes after it */
        }
        i += k;
    }
}

size_t tok_utf8_encode(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- table look-ups ------------------------------------------------------ */

static int in_ranges(const UniRange *r, size_t count, uint32_t cp)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static const UniMap *find_map(const UniMap *m, size_t count, uint32_t cp)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < m[mid].cp) hi = mid;
        else if (cp > m[mid].cp) lo = mid + 1;
        else return &m[mid];
    }
    return NULL;
}

int uni_is_letter(uint32_t cp)
{
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    return in_ranges(uni_letter, uni_letter_count, cp);
}

int uni_is_number(uint32_t cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return in_ranges(uni_number, uni_number_count, cp);
}

int uni_is_space(uint32_t cp)
{
    return in_ranges(uni_space, uni_space_count, cp);
}

/* The `regex` package's \s is the White_Space property, which unlike
 * str.isspace() leaves out the information separators U+001C..U+001F. */
int uni_is_regex_space(uint32_t cp)
{
    return uni_is_space(cp) && !(cp >= 0x1C && cp <= 0x1F);
}

static int uni_is_decimal(uint32_t cp)
{
    return in_ranges(uni_decimal, uni_decimal_count, cp);
}

static void push_map(CpBuf *out, const UniMap *m)
{
    for (int k = 0; k < m->n; k++) cpbuf_push(out, m->out[k]);
}

/* ---- ftfy fixers ----------------------------------------------------------- */

static int is_ascii_alnum(uint32_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int hex_value(uint32_t c)
{
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

static const char *find_entity(const char *name)
{
    size_t lo = 0, hi = html_entities_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, html_entities[mid].name);
        if (c < 0) hi = mid;
        else if (c > 0) lo = mid + 1;
        else return html_entities[mid].value;
    }
    return NULL;
}

/* html.unescape of "&#<digits>;" / "&#x<hex>;" as ftfy uses it: the text of
 * the numeric reference `num` (saturated above U+10FFFF) into out. */
static void push_charref(CpBuf *out, uint64_t num)
{
    const UniMap *m = num < 0x100 ? find_map(html_invalid_charrefs, html_invalid_charrefs_count, (uint32_t)num)
                                  : NULL;
    if (m) push_map(out, m);
    else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) cpbuf_push(out, FFFD);
    else if (in_ranges(html_invalid_codepoints, html_invalid_codepoints_count, (uint32_t)num)) return;
    else cpbuf_push(out, (uint32_t)num);
}

/* ftfy unescape_html: every match of &#?[0-9A-Za-z]{1,24}; that names an
 * entity of ftfy's HTML_ENTITIES, or that is a complete decimal / hex
 * character reference, is replaced (unless the replacement is ';'). */
static void fix_unescape_html(const uint32_t *s, size_t n, CpBuf *out)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&') {
            cpbuf_push(out, s[i++]);
            continue;
        }
        size_t start = i + 1 + (i + 1 < n && s[i + 1] == '#');
        size_t end = start;
        while (end < n && is_ascii_alnum(s[end]) && end - start <= 24) end++;
        size_t len = end - start;
        if (len < 1 || len > 24 || end >= n || s[end] != ';') {
            cpbuf_push(out, s[i++]); /* no match starting here */
            continue;
        }
        size_t match_end = end + 1;
        size_t before = out->n;
        int replaced = 0;
        if (start == i + 1) {
            char name[25];
            for (size_t k = 0; k < len; k++) name[k] = (char)s[start + k];
            name[len] = 0;
            const char *val = find_entity(name);
            if (val) {
                tok_utf8_decode(val, strlen(val), out);
                replaced = 1;
            }
        } else {
            int is_hex = s[start] == 'x' || s[start] == 'X';
            size_t d = start + (size_t)is_hex;
            uint64_t num = 0;
            int ok = d < end;
            for (; d < end && ok; d++) {
                int v = is_hex ? hex_value(s[d]) : (s[d] >= '0' && s[d] <= '9' ? (int)(s[d] - '0') : -1);
                if (v < 0) ok = 0;
                else if (num <= 0x10FFFF) num = num * (is_hex ? 16 : 10) + (uint64_t)v;
            }
            if (ok) {
                push_charref(out, num);
                /* ftfy keeps the reference when the result contains ';' */
                if (out->n == before + 1 && out->v[before] == ';') out->n = before;
                else replaced = 1;
            }
        }
        if (!replaced) cpbuf_append(out, s + i, match_end - i);
        i = match_end;
    }
}

static void fix_c1_controls(const uint32_t *s, size_t n, CpBuf *out)
{
    for (size_t i = 0; i < n; i++)
        cpbuf_push(out, s[i] >= 0x80 && s[i] <= 0x9F ? ftfy_c1[s[i] - 0x80] : s[i]);
}

static void fix_translate(const UniMap *table, size_t count, const uint32_t *s, size_t n, CpBuf *out)
{
    for (size_t i = 0; i < n; i++) {
        const UniMap *m = s[i] < 0x80 ? NULL : find_map(table, count, s[i]);
        if (m) push_map(out, m);
        else cpbuf_push(out, s[i]);
    }
}

static void fix_uncurl_quotes(const uint32_t *s, size_t n, CpBuf *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        cpbuf_push(out, c);
    }
}

static void fix_line_breaks(const uint32_t *s, size_t n, CpBuf *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == '\r' && i + 1 < n && s[i + 1] == '\n') {
            cpbuf_push(out, '\n');
            i++;
        } else if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) {
            cpbuf_push(out, '\n');
        } else {
            cpbuf_push(out, c);
        }
    }
}

/* ANSI_RE = "\033\[((?:\d|;)*)([a-zA-Z])" with Python's Unicode \d. */
static void fix_terminal_escapes(const uint32_t *s, size_t n, CpBuf *out)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] == 0x1B && i + 1 < n && s[i + 1] == '[') {
            size_t j = i + 2;
            while (j < n && (s[j] == ';' || uni_is_decimal(s[j]))) j++;
            if (j < n && s[j] < 0x80 && ((s[j] | 0x20) >= 'a' && (s[j] | 0x20) <= 'z')) {
                i = j + 1;
                continue;
            }
        }
        cpbuf_push(out, s[i++]);
    }
}

static int is_removed_control(uint32_t c)
{
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static void fix_control_chars(const uint32_t *s, size_t n, CpBuf *out)
{
    for (size_t i = 0; i < n; i++)
        if (!is_removed_control(s[i])) cpbuf_push(out, s[i]);
}

static void fix_ligatures(const uint32_t *s, size_t n, CpBuf *out)
{
    fix_translate(ftfy_ligatures, ftfy_ligatures_count, s, n, out);
}

static void fix_character_width(const uint32_t *s, size_t n, CpBuf *out)
{
    fix_translate(ftfy_width, ftfy_width_count, s, n, out);
}

/* The fixers after unescape_html (and the skipped fix_encoding), in ftfy's
 * order; fix_surrogates is left out (nothing to do on decoded UTF-8). */
typedef void (*TextFixer)(const uint32_t *s, size_t n, CpBuf *out);
static const TextFixer FIXERS[] = {
    fix_c1_controls, fix_ligatures,        fix_character_width, fix_uncurl_quotes,
    fix_line_breaks, fix_terminal_escapes, fix_control_chars,   tok_text_nfc,
};

static void cpbuf_swap(CpBuf *a, CpBuf *b)
{
    CpBuf t = *a;
    *a = *b;
    *b = t;
}

/* One line through ftfy's fix_and_explain loop. */
static void fix_segment(const uint32_t *s, size_t n, int unescape_html, CpBuf *out)
{
    CpBuf cur = {0}, next = {0}, orig = {0};
    cpbuf_append(&cur, s, n);
    for (int round = 0; round < FTFY_MAX_ROUNDS; round++) {
        orig.n = 0;
        cpbuf_append(&orig, cur.v, cur.n);
        if (unescape_html) {
            next.n = 0;
            fix_unescape_html(cur.v, cur.n, &next);
            cpbuf_swap(&cur, &next);
        }
        for (size_t k = 0; k < sizeof FIXERS / sizeof FIXERS[0]; k++) {
            next.n = 0;
            FIXERS[k](cur.v, cur.n, &next);
            cpbuf_swap(&cur, &next);
        }
        if (cur.n == orig.n && (cur.n == 0 || memcmp(cur.v, orig.v, cur.n * sizeof *cur.v) == 0)) break;
    }
    cpbuf_append(out, cur.v, cur.n);
    cpbuf_free(&cur);
    cpbuf_free(&next);
    cpbuf_free(&orig);
}

void tok_text_fix(const uint32_t *s, size_t n, CpBuf *out)
{
    int unescape_html = 1;
    size_t pos = 0;
    while (pos < n) {
        size_t end = pos;
        while (end < n && s[end] != '\n') end++;
        end = end < n ? end + 1 : n;
        if (end - pos > FTFY_MAX_SEGMENT) end = pos + FTFY_MAX_SEGMENT;
        if (unescape_html)
            for (size_t k = pos; k < end; k++)
                if (s[k] == '<') unescape_html = 0;
        fix_segment(s + pos, end - pos, unescape_html, out);
        pos = end;
    }
}

/* ---- whitespace_clean and lower ------------------------------------------ */

void tok_text_clean_space(const uint32_t *s, size_t n, CpBuf *out)
{
    size_t first = out->n;
    int in_space = 0;
    for (size_t i = 0; i < n; i++) {
        if (uni_is_regex_space(s[i])) {
            if (!in_space) cpbuf_push(out, ' ');
            in_space = 1;
        } else {
            cpbuf_push(out, s[i]);
            in_space = 0;
        }
    }
    /* str.strip() */
    size_t lo = first, hi = out->n;
    while (lo < hi && uni_is_space(out->v[lo])) lo++;
    while (hi > lo && uni_is_space(out->v[hi - 1])) hi--;
    if (lo > first) memmove(out->v + first, out->v + lo, (hi - lo) * sizeof *out->v);
    out->n = first + (hi - lo);
}

static int is_cased(uint32_t c)
{
    return in_ranges(uni_cased, uni_cased_count, c);
}

static int is_case_ignorable(uint32_t c)
{
    return in_ranges(uni_case_ignorable, uni_case_ignorable_count, c);
}

/* CPython's handle_capital_sigma: U+03A3 at s[i] lowers to final sigma when
 * a cased letter precedes it and none follows (case-ignorable ones skipped). */
static uint32_t lower_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && is_case_ignorable(s[j - 1])) j--;
    if (j == 0 || !is_cased(s[j - 1])) return 0x3C3;
    size_t k = i + 1;
    while (k < n && is_case_ignorable(s[k])) k++;
    return k == n || !is_cased(s[k]) ? 0x3C2 : 0x3C3;
}

void tok_text_lower(const uint32_t *s, size_t n, CpBuf *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c < 0x80) {
            cpbuf_push(out, c >= 'A' && c <= 'Z' ? c + 32 : c);
        } else if (c == 0x3A3) {
            cpbuf_push(out, lower_sigma(s, n, i));
        } else {
            const UniMap *m = find_map(uni_lower, uni_lower_count, c);
            if (m) push_map(out, m);
            else cpbuf_push(out, c);
        }
    }
}

/* ---- NFC ----------------------------------------------------------------------- */

enum {
    HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
    HANGUL_LCOUNT = 19, HANGUL_VCOUNT = 21, HANGUL_TCOUNT = 28,
    HANGUL_NCOUNT = HANGUL_VCOUNT * HANGUL_TCOUNT, HANGUL_SCOUNT = HANGUL_LCOUNT * HANGUL_NCOUNT,
};

static int ccc_of(uint32_t c)
{
    if (c < 0x300) return 0;
    size_t lo = 0, hi = uni_ccc_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < uni_ccc[mid].lo) hi = mid;
        else if (c > uni_ccc[mid].hi) lo = mid + 1;
        else return uni_ccc[mid].ccc;
    }
    return 0;
}

static void decompose(uint32_t c, CpBuf *out)
{
    if (c >= HANGUL_S && c < HANGUL_S + HANGUL_SCOUNT) {
        uint32_t si = c - HANGUL_S;
        cpbuf_push(out, HANGUL_L + si / HANGUL_NCOUNT);
        cpbuf_push(out, HANGUL_V + (si % HANGUL_NCOUNT) / HANGUL_TCOUNT);
        if (si % HANGUL_TCOUNT) cpbuf_push(out, HANGUL_T + si % HANGUL_TCOUNT);
        return;
    }
    if (c >= 0xC0) {
        size_t lo = 0, hi = uni_decomp_count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (c < uni_decomp[mid].cp) hi = mid;
            else if (c > uni_decomp[mid].cp) lo = mid + 1;
            else {
                cpbuf_append(out, uni_decomp_pool + uni_decomp[mid].off, uni_decomp[mid].n);
                return;
            }
        }
    }
    cpbuf_push(out, c);
}

/* The primary composite of (a, b), or 0. */
static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LCOUNT && b >= HANGUL_V && b < HANGUL_V + HANGUL_VCOUNT)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VCOUNT + (b - HANGUL_V)) * HANGUL_TCOUNT;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SCOUNT && (a - HANGUL_S) % HANGUL_TCOUNT == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TCOUNT)
        return a + (b - HANGUL_T);
    size_t lo = 0, hi = uni_compose_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const UniCompose *p = &uni_compose[mid];
        if (a < p->first || (a == p->first && b < p->second)) hi = mid;
        else if (a > p->first || b > p->second) lo = mid + 1;
        else return p->composite;
    }
    return 0;
}

/* Stable sort of a run of non-starters by combining class (canonical
 * ordering); counting sort so that long runs stay linear. */
static void sort_marks(uint32_t *v, size_t n, CpBuf *tmp)
{
    if (n < 2) return;
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++) count[ccc_of(v[i]) + 1]++;
    for (int c = 0; c < 256; c++) count[c + 1] += count[c];
    tmp->n = 0;
    for (size_t i = 0; i < n; i++) cpbuf_push(tmp, 0);
    for (size_t i = 0; i < n; i++) tmp->v[count[ccc_of(v[i])]++] = v[i];
    memcpy(v, tmp->v, n * sizeof *v);
}

void tok_text_nfc(const uint32_t *s, size_t n, CpBuf *out)
{
    /* Fast path: ASCII needs nothing. */
    size_t i = 0;
    while (i < n && s[i] < 0x80) i++;
    if (i == n) {
        cpbuf_append(out, s, n);
        return;
    }

    CpBuf d = {0}, tmp = {0};
    for (i = 0; i < n; i++) decompose(s[i], &d);
    for (i = 0; i < d.n;) {
        if (ccc_of(d.v[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < d.n && ccc_of(d.v[j]) != 0) j++;
        sort_marks(d.v + i, j - i, &tmp);
        i = j;
    }

    /* Canonical composition (UAX #15): a mark joins the last starter unless
     * a mark of the same or higher class, or a starter, stands between. */
    size_t base = out->n;
    if (d.n > 0) {
        size_t starter = base;
        int last_ccc = ccc_of(d.v[0]);
        if (last_ccc != 0) last_ccc = 256; /* no starter yet: block */
        cpbuf_push(out, d.v[0]);
        for (i = 1; i < d.n; i++) {
            uint32_t c = d.v[i];
            int cc = ccc_of(c);
            uint32_t comp = compose(out->v[starter], c);
            if (comp && (last_ccc < cc || last_ccc == 0)) {
                out->v[starter] = comp;
                continue;
            }
            if (cc == 0) starter = out->n;
            last_ccc = cc;
            cpbuf_push(out, c);
        }
    }
    cpbuf_free(&d);
    cpbuf_free(&tmp);
}

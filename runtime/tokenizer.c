/* tokenizer.c — the CLIP BPE tokenizer: loading and encoding.
 *
 * Loading turns vocab.json + merges.txt (or openai's .gz) into integer
 * tables: every string BPE can produce (the 512 byte symbols and every merge
 * result) is interned as a "symbol", each merge line becomes an entry
 * (left symbol, right symbol) -> (rank, merged symbol) in a hash map, and
 * each symbol already knows its token id.  Encoding then works on arrays of
 * symbol indices only.
 *
 * The rules copied from transformers' CLIPTokenizer (4.40):
 *   - merges.txt: the whole file is stripped, split at '\n', the first line
 *     (the "#version" header) is dropped, and only the next
 *     49152 - 256 - 2 = 48894 lines are used; each is split on whitespace.
 *     A repeated merge keeps the rank of its last occurrence (dict(zip(...))).
 *     Merges may name strings missing from vocab.json (transformers never
 *     checks): their results just map to the unk token.
 *   - BPE: repeatedly take the adjacent pair of lowest rank and merge all its
 *     occurrences left to right; stop when no pair has a rank.
 *   - Added tokens (special tokens and added_tokens_decoder) split the raw
 *     prompt before any clean-up, like transformers' Trie: at each position
 *     the longest added token that starts there wins.
 * We are stricter than transformers where it would fail later or silently
 * misbehave: a merges line that is not two tokens, a special token missing
 * from the vocabulary, a vocab value that is not an integer id. */
#include "tokenizer.h"

#include "fsutil.h"
#include "tok_text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* merges.txt lines 1 .. 49152-256-2 are used (CLIP's 49408-token vocabulary
 * minus the 512 byte symbols and the 2 special tokens). */
enum { CLIP_MAX_MERGES = 49152 - 256 - 2 };
enum { CLIP_MAX_LENGTH = 77 };         /* CLIP's context length */
enum { TOK_MAX_LENGTH_LIMIT = 65536 }; /* sanity bound on model_max_length */

static const char SOT[] = "<|startoftext|>", EOT[] = "<|endoftext|>";

/* ---- string -> int32 hash map with its own string pool ------------------ */

typedef struct StrSlot {
    uint32_t off, len; /* key in the pool */
    int32_t val;
    int used;
} StrSlot;

typedef struct StrMap {
    char *pool;
    size_t pool_len, pool_cap;
    StrSlot *slots;
    size_t cap, count; /* cap is 0 or a power of two */
} StrMap;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static StrSlot *strmap_slot(const StrMap *m, const char *s, size_t n)
{
    if (m->cap == 0) return NULL;
    size_t i = (size_t)hash_bytes(s, n) & (m->cap - 1);
    for (;;) {
        StrSlot *e = &m->slots[i];
        if (!e->used || (e->len == n && memcmp(m->pool + e->off, s, n) == 0)) return e;
        i = (i + 1) & (m->cap - 1);
    }
}

static const int32_t *strmap_get(const StrMap *m, const char *s, size_t n)
{
    StrSlot *e = strmap_slot(m, s, n);
    return e && e->used ? &e->val : NULL;
}

static void strmap_grow(StrMap *m)
{
    size_t old_cap = m->cap;
    StrSlot *old = m->slots;
    m->cap = old_cap ? 2 * old_cap : 64;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].used) continue;
        StrSlot *e = strmap_slot(m, m->pool + old[i].off, old[i].len);
        *e = old[i];
    }
    free(old);
}

/* The value slot for key s (inserted with value -1 if new). */
static int32_t *strmap_put(StrMap *m, const char *s, size_t n, int *inserted)
{
    if (2 * (m->count + 1) > m->cap) strmap_grow(m);
    StrSlot *e = strmap_slot(m, s, n);
    if (inserted) *inserted = !e->used;
    if (e->used) return &e->val;
    SDC_ASSERT(m->pool_len + n < UINT32_MAX);
    if (!m->pool || m->pool_len + n > m->pool_cap) { /* also for a first key of 0 bytes: no memcpy to NULL */
        m->pool_cap = 2 * (m->pool_len + n) + 256;
        m->pool = xrealloc(m->pool, m->pool_cap);
    }
    memcpy(m->pool + m->pool_len, s, n);
    *e = (StrSlot){.off = (uint32_t)m->pool_len, .len = (uint32_t)n, .val = -1, .used = 1};
    m->pool_len += n;
    m->count++;
    return &e->val;
}

static void strmap_free(StrMap *m)
{
    free(m->pool);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- (symbol, symbol) -> merge hash map ------------------------------------ */

typedef struct PairSlot {
    uint64_t key; /* left << 32 | right; PAIR_EMPTY when unused */
    int32_t rank, merged;
} PairSlot;

#define PAIR_EMPTY UINT64_MAX

typedef struct PairMap {
    PairSlot *slots;
    size_t cap, count;
} PairMap;

static uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static size_t pair_hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

static PairSlot *pair_slot(const PairMap *m, uint64_t key)
{
    size_t i = pair_hash(key) & (m->cap - 1);
    while (m->slots[i].key != PAIR_EMPTY && m->slots[i].key != key) i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static void pair_put(PairMap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    if (2 * (m->count + 1) > m->cap) {
        size_t old_cap = m->cap;
        PairSlot *old = m->slots;
        m->cap = old_cap ? 2 * old_cap : 1024;
        m->slots = xmalloc(m->cap * sizeof *m->slots);
        for (size_t i = 0; i < m->cap; i++) m->slots[i].key = PAIR_EMPTY;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].key != PAIR_EMPTY) *pair_slot(m, old[i].key) = old[i];
        free(old);
    }
    PairSlot *e = pair_slot(m, pair_key(a, b));
    if (e->key == PAIR_EMPTY) m->count++;
    *e = (PairSlot){.key = pair_key(a, b), .rank = rank, .merged = merged};
}

static const PairSlot *pair_get(const PairMap *m, int32_t a, int32_t b)
{
    if (m->cap == 0) return NULL;
    const PairSlot *e = pair_slot(m, pair_key(a, b));
    return e->key == PAIR_EMPTY ? NULL : e;
}

/* ---- the tokenizer ------------------------------------------------------------ */

/* A token that splits the raw prompt (special or added token). */
typedef struct AddedToken {
    char *text;
    uint32_t *cps; /* text as code points, for matching */
    size_t n;
    int32_t id;
} AddedToken;

struct Tokenizer {
    int max_length;
    int vocab_size;
    int32_t bos_id, eos_id, pad_id, unk_id;
    int32_t sot_piece_id, eot_piece_id; /* regex pieces "<|startoftext|>" / "<|endoftext|>" */
    StrMap vocab;                       /* vocab.json */
    StrMap syms;                        /* BPE symbol string -> symbol index */
    int32_t *sym_id;                    /* [n_syms] token id of each symbol */
    size_t n_syms, cap_syms;
    PairMap merges;
    int32_t byte_sym[256], byte_sym_end[256]; /* symbol of each byte, without / with "</w>" */
    AddedToken *added;
    size_t n_added;
    char *pad_text; /* the pad token as configured (a compiled executable is given it back) */
};

/* The special tokens and added tokens a config names. */
enum { SPECIAL_BOS, SPECIAL_EOS, SPECIAL_UNK, SPECIAL_PAD, SPECIAL_COUNT };
static const char *const SPECIAL_KEYS[SPECIAL_COUNT] = {"bos_token", "eos_token", "unk_token", "pad_token"};

typedef struct TokConfig {
    char *special[SPECIAL_COUNT];
    char **extra; /* additional_special_tokens */
    size_t n_extra;
    char **added; /* added_tokens_decoder / added_tokens.json: text and id */
    int32_t *added_id;
    size_t n_added;
    int max_length;
} TokConfig;

/* One merges.txt line, pointing into the text. */
typedef struct Merge {
    const char *a, *b;
    size_t alen, blen;
} Merge;

static void config_defaults(TokConfig *c)
{
    memset(c, 0, sizeof *c);
    c->special[SPECIAL_BOS] = xstrdup(SOT);
    c->special[SPECIAL_EOS] = xstrdup(EOT);
    c->special[SPECIAL_UNK] = xstrdup(EOT);
    c->special[SPECIAL_PAD] = xstrdup(EOT);
    c->max_length = CLIP_MAX_LENGTH;
}

static void config_free(TokConfig *c)
{
    for (int k = 0; k < SPECIAL_COUNT; k++) free(c->special[k]);
    for (size_t i = 0; i < c->n_extra; i++) free(c->extra[i]);
    for (size_t i = 0; i < c->n_added; i++) free(c->added[i]);
    free(c->extra);
    free(c->added);
    free(c->added_id);
}

static void config_add_extra(TokConfig *c, const char *text)
{
    c->extra = xrealloc(c->extra, (c->n_extra + 1) * sizeof *c->extra);
    c->extra[c->n_extra++] = xstrdup(text);
}

static void config_add_added(TokConfig *c, const char *text, int32_t id)
{
    c->added = xrealloc(c->added, (c->n_added + 1) * sizeof *c->added);
    c->added_id = xrealloc(c->added_id, (c->n_added + 1) * sizeof *c->added_id);
    c->added[c->n_added] = xstrdup(text);
    c->added_id[c->n_added++] = id;
}

void tok_free(Tokenizer *t)
{
    if (!t) return;
    strmap_free(&t->vocab);
    strmap_free(&t->syms);
    free(t->sym_id);
    free(t->merges.slots);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].text);
        free(t->added[i].cps);
    }
    free(t->added);
    free(t->pad_text);
    free(t);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes get U+0100.. in byte order.  order[] lists the bytes in
 * the order of the dict (printable ones first), which is vocabulary order. */
static void bytes_to_unicode(uint32_t cp[256], int order[256])
{
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
            cp[b] = (uint32_t)b;
            order[n++] = b;
        }
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            cp[b] = 256u + (uint32_t)extra++;
            order[n++] = b;
        }
}

/* The UTF-8 text of byte b's symbol, optionally with "</w>"; returns length. */
static size_t byte_symbol_text(const uint32_t cp[256], int b, int end_of_word, char out[8])
{
    size_t n = tok_utf8_encode(cp[b], (unsigned char *)out);
    if (end_of_word) {
        memcpy(out + n, "</w>", 4);
        n += 4;
    }
    return n;
}

static int32_t intern_symbol(Tokenizer *t, const char *s, size_t n)
{
    int inserted;
    int32_t *slot = strmap_put(&t->syms, s, n, &inserted);
    if (inserted) {
        if (t->n_syms == t->cap_syms) {
            t->cap_syms = t->cap_syms ? 2 * t->cap_syms : 1024;
            t->sym_id = xrealloc(t->sym_id, t->cap_syms * sizeof *t->sym_id);
        }
        SDC_ASSERT(t->n_syms < INT32_MAX);
        *slot = (int32_t)t->n_syms;
        t->sym_id[t->n_syms++] = -1;
    }
    return *slot;
}

/* transformers' convert_tokens_to_ids: added tokens first, then the
 * vocabulary; -1 when neither has it. */
static int32_t lookup_id(const Tokenizer *t, const char *s, size_t n)
{
    for (size_t i = 0; i < t->n_added; i++)
        if (strlen(t->added[i].text) == n && memcmp(t->added[i].text, s, n) == 0) return t->added[i].id;
    const int32_t *v = strmap_get(&t->vocab, s, n);
    return v ? *v : -1;
}

static void add_split_token(Tokenizer *t, const char *text, int32_t id)
{
    if (!text[0]) return; /* transformers skips empty tokens */
    for (size_t i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].text, text) == 0) return;
    CpBuf cps = {0};
    tok_utf8_decode(text, strlen(text), &cps);
    t->added = xrealloc(t->added, (t->n_added + 1) * sizeof *t->added);
    t->added[t->n_added++] = (AddedToken){.text = xstrdup(text), .cps = cps.v, .n = cps.n, .id = id};
}

/* Builds everything from a parsed vocabulary (moved into t), the merges and
 * the config.  vocab_file names the vocabulary in messages. */
static int tok_build(Tokenizer *t, const Merge *merges, size_t n_merges, const TokConfig *cfg,
                     const char *vocab_file, SdcErr *err)
{
    t->max_length = cfg->max_length;
    int64_t max_id = -1;
    for (size_t i = 0; i < t->vocab.cap; i++)
        if (t->vocab.slots[i].used && t->vocab.slots[i].val > max_id) max_id = t->vocab.slots[i].val;

    /* Added tokens keep their stored ids; special tokens take the id of an
     * added token with the same text, else their vocabulary id. */
    for (size_t i = 0; i < cfg->n_added; i++) {
        add_split_token(t, cfg->added[i], cfg->added_id[i]);
        if (cfg->added_id[i] > max_id) max_id = cfg->added_id[i];
    }
    int32_t special_id[SPECIAL_COUNT];
    for (int k = 0; k < SPECIAL_COUNT; k++) {
        const char *s = cfg->special[k];
        special_id[k] = lookup_id(t, s, strlen(s));
        if (special_id[k] < 0)
            return sdc_err(err, "%s: %s \"%.60s\" is not in the vocabulary", vocab_file, SPECIAL_KEYS[k], s);
    }
    const int32_t *unk = strmap_get(&t->vocab, cfg->special[SPECIAL_UNK], strlen(cfg->special[SPECIAL_UNK]));
    if (!unk)
        return sdc_err(err, "%s: unk_token \"%.60s\" is not in the vocabulary", vocab_file,
                       cfg->special[SPECIAL_UNK]);
    for (int k = 0; k < SPECIAL_COUNT; k++) add_split_token(t, cfg->special[k], special_id[k]);
    for (size_t i = 0; i < cfg->n_extra; i++) {
        int32_t id = lookup_id(t, cfg->extra[i], strlen(cfg->extra[i]));
        if (id < 0)
            return sdc_err(err, "%s: additional special token \"%.60s\" is not in the vocabulary", vocab_file,
                           cfg->extra[i]);
        add_split_token(t, cfg->extra[i], id);
    }
    t->bos_id = special_id[SPECIAL_BOS];
    t->eos_id = special_id[SPECIAL_EOS];
    t->pad_id = special_id[SPECIAL_PAD];
    t->pad_text = xstrdup(cfg->special[SPECIAL_PAD]);
    t->unk_id = *unk;
    t->vocab_size = (int)(max_id + 1);

    /* Symbols: the 512 byte symbols, then both sides and the result of each merge. */
    uint32_t cp[256];
    int order[256];
    bytes_to_unicode(cp, order);
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n = byte_symbol_text(cp, b, 0, s);
        t->byte_sym[b] = intern_symbol(t, s, n);
        n = byte_symbol_text(cp, b, 1, s);
        t->byte_sym_end[b] = intern_symbol(t, s, n);
    }
    char *joined = NULL;
    size_t joined_cap = 0;
    for (size_t r = 0; r < n_merges; r++) {
        const Merge *m = &merges[r];
        if (m->alen + m->blen > joined_cap) {
            joined_cap = 2 * (m->alen + m->blen);
            joined = xrealloc(joined, joined_cap);
        }
        memcpy(joined, m->a, m->alen);
        memcpy(joined + m->alen, m->b, m->blen);
        int32_t a = intern_symbol(t, m->a, m->alen);
        int32_t b = intern_symbol(t, m->b, m->blen);
        int32_t ab = intern_symbol(t, joined, m->alen + m->blen);
        pair_put(&t->merges, a, b, (int32_t)r, ab);
    }
    free(joined);

    for (size_t i = 0; i < t->syms.cap; i++) {
        const StrSlot *e = &t->syms.slots[i];
        if (!e->used) continue;
        int32_t id = lookup_id(t, t->syms.pool + e->off, e->len);
        t->sym_id[e->val] = id >= 0 ? id : t->unk_id;
    }
    int32_t id = lookup_id(t, SOT, strlen(SOT));
    t->sot_piece_id = id >= 0 ? id : t->unk_id;
    id = lookup_id(t, EOT, strlen(EOT));
    t->eot_piece_id = id >= 0 ? id : t->unk_id;
    return 0;
}

/* ---- parsing the files ---------------------------------------------------------- */

/* Byte length of the Python-whitespace (str.isspace) character at s, or 0.
 * Whitespace beyond ASCII is U+0085..U+3000: two- or three-byte UTF-8. */
static size_t space_len(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t cp;
    size_t len;
    if (s[0] < 0x80) return uni_is_space(s[0]) ? 1 : 0;
    if ((s[0] & 0xE0) == 0xC0 && n >= 2 && (s[1] & 0xC0) == 0x80) {
        cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        len = 2;
    } else if ((s[0] & 0xF0) == 0xE0 && n >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        len = 3;
    } else {
        return 0;
    }
    return cp >= 0x80 && uni_is_space(cp) ? len : 0; /* cp < 0x80 would be an overlong form */
}

/* Splits merges text as transformers does (see the top of the file).
 * *merges points into text. */
static int parse_merges(const char *text, size_t len, const char *file, Merge **merges, size_t *n_merges,
                        SdcErr *err)
{
    /* str.strip(): skip leading whitespace (counting lines for messages),
     * end after the last character that is not whitespace */
    size_t lo = 0, hi = 0, sp, line_no = 1;
    while (lo < len && (sp = space_len(text + lo, len - lo)) > 0) {
        if (text[lo] == '\n') line_no++;
        lo += sp;
    }
    for (size_t i = lo; i < len;) {
        if ((sp = space_len(text + i, len - i)) > 0) {
            i += sp;
        } else {
            i++;
            hi = i;
        }
    }

    Merge *v = NULL;
    size_t n = 0, cap = 0;
    size_t pos = lo;
    int first = 1;
    while (pos < hi && n < CLIP_MAX_MERGES) {
        const char *nl = memchr(text + pos, '\n', hi - pos);
        size_t end = nl ? (size_t)(nl - text) : hi;
        if (first) {
            first = 0; /* the "#version" header line */
        } else {
            const char *tok[3];
            size_t tok_len[3], ntok = 0;
            size_t i = pos;
            while (i < end) {
                size_t s = space_len(text + i, end - i);
                if (s) {
                    i += s;
                    continue;
                }
                size_t j = i;
                while (j < end && space_len(text + j, end - j) == 0) j++;
                if (ntok < 3) {
                    tok[ntok] = text + i;
                    tok_len[ntok] = j - i;
                }
                ntok++;
                i = j;
            }
            if (ntok != 2) {
                free(v);
                return sdc_err(err, "%s:%zu: a merge is two tokens separated by a space, this line has %zu", file,
                               line_no, ntok);
            }
            if (n == cap) {
                cap = cap ? 2 * cap : 1024;
                v = xrealloc(v, cap * sizeof *v);
            }
            v[n++] = (Merge){.a = tok[0], .alen = tok_len[0], .b = tok[1], .blen = tok_len[1]};
        }
        pos = end + 1;
        line_no++;
    }
    *merges = v;
    *n_merges = n;
    return 0;
}

static int parse_vocab(Tokenizer *t, const char *text, size_t len, const char *file, SdcErr *err)
{
    /* cJSON wants the terminating NUL inside the length to reject trailing
     * garbage; embedded data need not have one, so parse a copy */
    char *z = xmalloc(len + 1);
    memcpy(z, text, len);
    z[len] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(z, len + 1, &end, 1);
    size_t at = end ? (size_t)(end - z) : 0;
    free(z);
    if (!root) return sdc_err(err, "%s: invalid JSON near byte %zu", file, at);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sdc_err(err, "%s: expected a JSON object mapping token strings to ids", file);
    }
    for (const cJSON *it = root->child; it; it = it->next) {
        double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || !(v >= 0 && v < INT32_MAX) || v != (double)(int64_t)v) {
            int r = sdc_err(err, "%s: \"%.60s\": the id must be a non-negative integer", file, it->string);
            cJSON_Delete(root);
            return r;
        }
        /* json.load keeps the last of repeated keys */
        *strmap_put(&t->vocab, it->string, strlen(it->string), NULL) = (int32_t)v;
    }
    cJSON_Delete(root);
    return 0;
}

/* A special-token value: "text" or {"content": "text", ...}. */
static int json_token_text(const cJSON *v, const char *file, const char *field, char **out, SdcErr *err)
{
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return sdc_err(err, "%s: %s: expected a token string or {\"content\": ...}", file, field);
    free(*out);
    *out = xstrdup(v->valuestring);
    return 0;
}

static int read_json_object(const char *path, cJSON **out, SdcErr *err)
{
    size_t len;
    char *text = file_read_all(path, &len, err);
    if (!text) return -1;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1); /* text is NUL-terminated */
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    if (!*out) return sdc_err(err, "%s: invalid JSON near byte %zu", path, at);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return sdc_err(err, "%s: expected a JSON object", path);
    }
    return 0;
}

/* Special tokens (and additional_special_tokens) of a config object. */
static int read_special_tokens(const cJSON *obj, const char *file, TokConfig *cfg, SdcErr *err)
{
    for (int k = 0; k < SPECIAL_COUNT; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, SPECIAL_KEYS[k]);
        if (v && json_token_text(v, file, SPECIAL_KEYS[k], &cfg->special[k], err)) return -1;
    }
    const cJSON *extra = cJSON_GetObjectItemCaseSensitive(obj, "additional_special_tokens");
    if (extra && !cJSON_IsNull(extra)) {
        if (!cJSON_IsArray(extra)) return sdc_err(err, "%s: additional_special_tokens: expected a list", file);
        for (const cJSON *it = extra->child; it; it = it->next) {
            char *s = NULL;
            if (json_token_text(it, file, "additional_special_tokens[]", &s, err)) return -1;
            config_add_extra(cfg, s);
            free(s);
        }
    }
    return 0;
}

static int read_max_length(const cJSON *obj, const char *file, TokConfig *cfg, SdcErr *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "model_max_length");
    if (!v) return 0;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || !(d >= 3 && d <= TOK_MAX_LENGTH_LIMIT) || d != (double)(int)d)
        return sdc_err(err, "%s: model_max_length: expected an integer in [3, %d]", file, TOK_MAX_LENGTH_LIMIT);
    cfg->max_length = (int)d;
    return 0;
}

/* transformers' _from_pretrained: tokenizer_config.json; if it has no
 * added_tokens_decoder, special_tokens_map.json overrides it and
 * added_tokens.json adds tokens. */
static int read_dir_config(const char *dir, TokConfig *cfg, SdcErr *err)
{
    char *cfg_path = path_join(dir, "tokenizer_config.json");
    char *map_path = path_join(dir, "special_tokens_map.json");
    char *added_path = path_join(dir, "added_tokens.json");
    cJSON *conf = NULL, *map = NULL, *added = NULL;
    int rc = -1;

    if (path_exists(cfg_path)) {
        if (read_json_object(cfg_path, &conf, err)) goto done;
        if (read_special_tokens(conf, cfg_path, cfg, err) || read_max_length(conf, cfg_path, cfg, err)) goto done;
    }
    const cJSON *decoder = conf ? cJSON_GetObjectItemCaseSensitive(conf, "added_tokens_decoder") : NULL;
    if (decoder) {
        if (!cJSON_IsObject(decoder)) {
            sdc_err(err, "%s: added_tokens_decoder: expected an object", cfg_path);
            goto done;
        }
        for (const cJSON *it = decoder->child; it; it = it->next) {
            char *endp;
            errno = 0;
            long id = strtol(it->string, &endp, 10);
            char *text = NULL;
            if (!it->string[0] || *endp || errno || id < 0 || id >= INT32_MAX) {
                sdc_err(err, "%s: added_tokens_decoder: \"%.40s\" is not a token id", cfg_path, it->string);
                goto done;
            }
            if (json_token_text(it, cfg_path, "added_tokens_decoder", &text, err)) goto done;
            config_add_added(cfg, text, (int32_t)id);
            free(text);
        }
    } else {
        if (path_exists(map_path)) {
            if (read_json_object(map_path, &map, err) || read_special_tokens(map, map_path, cfg, err)) goto done;
        }
        if (path_exists(added_path)) {
            if (read_json_object(added_path, &added, err)) goto done;
            for (const cJSON *it = added->child; it; it = it->next) {
                double d = it->valuedouble;
                if (!cJSON_IsNumber(it) || !(d >= 0 && d < INT32_MAX) || d != (double)(int64_t)d) {
                    sdc_err(err, "%s: \"%.60s\": the id must be a non-negative integer", added_path, it->string);
                    goto done;
                }
                config_add_added(cfg, it->string, (int32_t)d);
            }
        }
    }
    rc = 0;
done:
    cJSON_Delete(conf);
    cJSON_Delete(map);
    cJSON_Delete(added);
    free(cfg_path);
    free(map_path);
    free(added_path);
    return rc;
}

/* ---- loaders ------------------------------------------------------------------------- */

static int finish(Tokenizer **out, Tokenizer *t, int rc)
{
    if (rc) {
        tok_free(t);
        *out = NULL;
        return -1;
    }
    *out = t;
    return 0;
}

int tok_load_dir(Tokenizer **out, const char *dir, SdcErr *err)
{
    Tokenizer *t = xcalloc(1, sizeof(Tokenizer));
    TokConfig cfg;
    config_defaults(&cfg);
    char *vocab_path = path_join(dir, "vocab.json");
    char *merges_path = path_join(dir, "merges.txt");
    char *vocab_text = NULL, *merges_text = NULL;
    Merge *merges = NULL;
    size_t vocab_len, merges_len, n_merges = 0;
    int rc = -1;

    if (!(vocab_text = file_read_all(vocab_path, &vocab_len, err))) goto done;
    if (!(merges_text = file_read_all(merges_path, &merges_len, err))) goto done;
    if (parse_vocab(t, vocab_text, vocab_len, vocab_path, err)) goto done;
    if (parse_merges(merges_text, merges_len, merges_path, &merges, &n_merges, err)) goto done;
    if (read_dir_config(dir, &cfg, err)) goto done;
    rc = tok_build(t, merges, n_merges, &cfg, vocab_path, err);
done:
    config_free(&cfg);
    free(merges);
    free(vocab_text);
    free(merges_text);
    free(vocab_path);
    free(merges_path);
    return finish(out, t, rc);
}

int tok_load_memory(Tokenizer **out, const char *vocab_json, size_t vocab_len, const char *merges_txt,
                    size_t merges_len, const char *pad_token, int max_length, const char *display_name,
                    SdcErr *err)
{
    const char *name = display_name ? display_name : "tokenizer";
    Tokenizer *t = xcalloc(1, sizeof(Tokenizer));
    TokConfig cfg;
    config_defaults(&cfg);
    size_t nlen = strlen(name) + 16;
    char *vocab_file = xmalloc(nlen), *merges_file = xmalloc(nlen);
    snprintf(vocab_file, nlen, "%s/vocab.json", name);
    snprintf(merges_file, nlen, "%s/merges.txt", name);
    Merge *merges = NULL;
    size_t n_merges = 0;
    int rc = -1;

    if (!vocab_json || !merges_txt || !pad_token) {
        sdc_err(err, "%s: tok_load_memory: vocab, merges and pad token are required", name);
        goto done;
    }
    if (max_length < 3 || max_length > TOK_MAX_LENGTH_LIMIT) {
        sdc_err(err, "%s: max_length %d is not in [3, %d]", name, max_length, TOK_MAX_LENGTH_LIMIT);
        goto done;
    }
    free(cfg.special[SPECIAL_PAD]);
    cfg.special[SPECIAL_PAD] = xstrdup(pad_token);
    cfg.max_length = max_length;
    if (parse_vocab(t, vocab_json, vocab_len, vocab_file, err)) goto done;
    if (parse_merges(merges_txt, merges_len, merges_file, &merges, &n_merges, err)) goto done;
    rc = tok_build(t, merges, n_merges, &cfg, vocab_file, err);
done:
    config_free(&cfg);
    free(merges);
    free(vocab_file);
    free(merges_file);
    return finish(out, t, rc);
}

/* Reads a whole gzip file; a file that is not gzip, or is cut short or
 * corrupt, is an error (zlib would pass plain files through). */
static char *gz_read_all(const char *path, size_t *len, SdcErr *err)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        sdc_err(err, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        return NULL;
    }
    size_t cap = 1 << 20, n = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (cap - n < (1 << 16)) buf = xrealloc(buf, cap *= 2);
        int got = gzread(f, buf + n, (unsigned)(cap - n - 1));
        if (got < 0) break;
        n += (size_t)got;
        if (got == 0) break;
    }
    int zerr;
    const char *msg = gzerror(f, &zerr);
    int plain = gzdirect(f);
    if (zerr != Z_OK || plain) {
        if (plain) sdc_err(err, "%s: not a gzip file", path);
        else if (zerr == Z_BUF_ERROR) sdc_err(err, "%s: corrupt gzip data (unexpected end of file)", path);
        else if (zerr == Z_ERRNO) sdc_err(err, "%s: %s", path, strerror(errno));
        else sdc_err(err, "%s: corrupt gzip data (%s)", path, msg);
        gzclose(f);
        free(buf);
        return NULL;
    }
    gzclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

int tok_load_clip_bpe_gz(Tokenizer **out, const char *gz_path, SdcErr *err)
{
    Tokenizer *t = xcalloc(1, sizeof(Tokenizer));
    TokConfig cfg;
    config_defaults(&cfg);
    Merge *merges = NULL;
    size_t len, n_merges = 0;
    int rc = -1;
    char *text = gz_read_all(gz_path, &len, err);
    if (!text) goto done;
    if (parse_merges(text, len, gz_path, &merges, &n_merges, err)) goto done;

    /* SimpleTokenizer's vocabulary: bytes, bytes + "</w>", merges, specials;
     * ids in list order, a repeated string keeping its last id. */
    uint32_t cp[256];
    int order[256];
    bytes_to_unicode(cp, order);
    int32_t next_id = 0;
    for (int end_of_word = 0; end_of_word < 2; end_of_word++)
        for (int k = 0; k < 256; k++) {
            char s[8];
            size_t n = byte_symbol_text(cp, order[k], end_of_word, s);
            *strmap_put(&t->vocab, s, n, NULL) = next_id++;
        }
    char *joined = NULL;
    for (size_t r = 0; r < n_merges; r++) {
        joined = xrealloc(joined, merges[r].alen + merges[r].blen);
        memcpy(joined, merges[r].a, merges[r].alen);
        memcpy(joined + merges[r].alen, merges[r].b, merges[r].blen);
        *strmap_put(&t->vocab, joined, merges[r].alen + merges[r].blen, NULL) = next_id++;
    }
    free(joined);
    *strmap_put(&t->vocab, SOT, strlen(SOT), NULL) = next_id++;
    *strmap_put(&t->vocab, EOT, strlen(EOT), NULL) = next_id++;
    rc = tok_build(t, merges, n_merges, &cfg, gz_path, err);
done:
    config_free(&cfg);
    free(merges);
    free(text);
    return finish(out, t, rc);
}

/* ---- encoding ---------------------------------------------------------------------- */

typedef struct IdBuf {
    int32_t *v;
    size_t n, cap;
} IdBuf;

static void ids_push(IdBuf *b, int32_t id)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 128;
        b->v = xrealloc(b->v, b->cap * sizeof *b->v);
    }
    b->v[b->n++] = id;
}

/* Buffers reused across the pieces of one tok_encode call. */
typedef struct Scratch {
    CpBuf fixed, clean, lower;
    unsigned char *bytes;
    int32_t *word, *next;
    size_t cap; /* of bytes, word and next */
} Scratch;

static void scratch_free(Scratch *s)
{
    cpbuf_free(&s->fixed);
    cpbuf_free(&s->clean);
    cpbuf_free(&s->lower);
    free(s->bytes);
    free(s->word);
    free(s->next);
}

/* BPE over word[0..n): returns the new length. */
static size_t bpe(const Tokenizer *t, int32_t *word, size_t n, int32_t *next)
{
    while (n > 1) {
        const PairSlot *best = NULL;
        for (size_t i = 0; i + 1 < n; i++) {
            const PairSlot *p = pair_get(&t->merges, word[i], word[i + 1]);
            if (p && (!best || p->rank < best->rank)) best = p;
        }
        if (!best) break;
        int32_t first = (int32_t)(best->key >> 32), second = (int32_t)(uint32_t)best->key;
        size_t m = 0;
        for (size_t i = 0; i < n;) {
            if (i + 1 < n && word[i] == first && word[i + 1] == second) {
                next[m++] = best->merged;
                i += 2;
            } else {
                next[m++] = word[i++];
            }
        }
        memcpy(word, next, m * sizeof *word);
        n = m;
    }
    return n;
}

/* One regex piece (lower-cased code points) -> token ids. */
static void encode_piece(const Tokenizer *t, const uint32_t *cps, size_t n, Scratch *s, IdBuf *out)
{
    if (4 * n > s->cap) {
        s->cap = 8 * n;
        s->bytes = xrealloc(s->bytes, s->cap);
        s->word = xrealloc(s->word, s->cap * sizeof *s->word);
        s->next = xrealloc(s->next, s->cap * sizeof *s->next);
    }
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) nb += tok_utf8_encode(cps[i], s->bytes + nb);
    /* bpe()'s cache holds the two special strings unsplit */
    if (nb == strlen(SOT) && memcmp(s->bytes, SOT, nb) == 0) {
        ids_push(out, t->sot_piece_id);
        return;
    }
    if (nb == strlen(EOT) && memcmp(s->bytes, EOT, nb) == 0) {
        ids_push(out, t->eot_piece_id);
        return;
    }
    for (size_t i = 0; i < nb; i++) s->word[i] = t->byte_sym[s->bytes[i]];
    s->word[nb - 1] = t->byte_sym_end[s->bytes[nb - 1]];
    size_t m = bpe(t, s->word, nb, s->next);
    for (size_t i = 0; i < m; i++) ids_push(out, t->sym_id[s->word[i]]);
}

/* A letter of CLIP's regex literals, matched case-insensitively as `regex`
 * does: ASCII case, and U+017F LATIN SMALL LETTER LONG S for 's'. */
static int literal_char_eq(uint32_t c, char want)
{
    if (c < 0x80) return (c >= 'A' && c <= 'Z' ? c + 32 : c) == (uint32_t)want;
    return want == 's' && c == 0x17F;
}

/* Length of the literal lit at s[i..n), or 0. */
static size_t match_literal(const uint32_t *s, size_t i, size_t n, const char *lit)
{
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || !literal_char_eq(s[i + k], lit[k])) return 0;
    return k;
}

/* The regex's "other" class [^\s\p{L}\p{N}].  Under IGNORECASE `regex`
 * matches U+0345 COMBINING GREEK YPOGEGRAMMENI (whose case fold is a
 * letter) with neither this class nor \p{L}: findall skips it. */
static int is_other(uint32_t c)
{
    return !uni_is_regex_space(c) && !uni_is_letter(c) && !uni_is_number(c) && c != 0x345;
}

/* Length of the regex match at s[i], or 0 if no alternative matches there. */
static size_t regex_match_at(const uint32_t *s, size_t i, size_t n)
{
    static const char *const CONTRACTIONS[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t len;
    if ((len = match_literal(s, i, n, SOT)) || (len = match_literal(s, i, n, EOT))) return len;
    for (size_t k = 0; k < sizeof CONTRACTIONS / sizeof CONTRACTIONS[0]; k++)
        if ((len = match_literal(s, i, n, CONTRACTIONS[k]))) return len;
    size_t j = i;
    if (uni_is_letter(s[i])) {
        while (j < n && uni_is_letter(s[j])) j++;
        return j - i;
    }
    if (uni_is_number(s[i])) return 1;
    while (j < n && is_other(s[j])) j++;
    return j - i;
}

/* Text between added tokens -> ids, stopping once out holds limit ids. */
static void encode_chunk(const Tokenizer *t, const uint32_t *cps, size_t n, size_t limit, Scratch *s, IdBuf *out)
{
    if (n == 0) return;
    s->fixed.n = s->clean.n = s->lower.n = 0;
    tok_text_fix(cps, n, &s->fixed);
    tok_text_clean_space(s->fixed.v, s->fixed.n, &s->clean);
    tok_text_lower(s->clean.v, s->clean.n, &s->lower);
    const uint32_t *w = s->lower.v;
    size_t wn = s->lower.n;
    for (size_t i = 0; i < wn && out->n < limit;) {
        size_t len = regex_match_at(w, i, wn);
        if (len == 0) {
            i++; /* whitespace (or U+0345): findall skips it */
            continue;
        }
        encode_piece(t, w + i, len, s, out);
        i += len;
    }
}

/* The longest added token starting at s[0..n), or NULL. */
static const AddedToken *match_added(const Tokenizer *t, const uint32_t *s, size_t n)
{
    const AddedToken *best = NULL;
    for (size_t k = 0; k < t->n_added; k++) {
        const AddedToken *a = &t->added[k];
        if (a->n <= n && a->cps[0] == s[0] && (!best || a->n > best->n) &&
            memcmp(a->cps, s, a->n * sizeof *s) == 0)
            best = a;
    }
    return best;
}

/* The prompt's ids without bos/eos, at least the first `limit` of them. */
static void encode_text(const Tokenizer *t, const char *text, size_t limit, IdBuf *out)
{
    CpBuf raw = {0};
    Scratch s = {0};
    tok_utf8_decode(text, strlen(text), &raw);
    size_t chunk = 0;
    for (size_t i = 0; i < raw.n && out->n < limit;) {
        const AddedToken *a = match_added(t, raw.v + i, raw.n - i);
        if (!a) {
            i++;
            continue;
        }
        encode_chunk(t, raw.v + chunk, i - chunk, limit, &s, out);
        if (out->n < limit) ids_push(out, a->id);
        i += a->n;
        chunk = i;
    }
    if (out->n < limit && chunk < raw.n) encode_chunk(t, raw.v + chunk, raw.n - chunk, limit, &s, out);
    cpbuf_free(&raw);
    scratch_free(&s);
}

int tok_encode(const Tokenizer *t, const char *text, int32_t *ids, SdcErr *err)
{
    if (!t || !text || !ids) return sdc_err(err, "tok_encode: NULL argument");
    size_t keep = (size_t)t->max_length - 2;
    IdBuf b = {0};
    encode_text(t, text, keep, &b);
    size_t n = b.n < keep ? b.n : keep;
    ids[0] = t->bos_id;
    if (n) memcpy(ids + 1, b.v, n * sizeof *ids);
    ids[n + 1] = t->eos_id;
    for (size_t i = n + 2; i < (size_t)t->max_length; i++) ids[i] = t->pad_id;
    free(b.v);
    return (int)n + 2;
}

int tok_count(const Tokenizer *t, const char *text, SdcErr *err)
{
    if (!t || !text) return sdc_err(err, "tok_count: NULL argument");
    IdBuf b = {0};
    encode_text(t, text, SIZE_MAX, &b);
    free(b.v);
    return b.n > INT_MAX - 2 ? INT_MAX : (int)b.n + 2;
}

int tok_max_length(const Tokenizer *t)
{
    return t->max_length;
}

int tok_vocab_size(const Tokenizer *t)
{
    return t->vocab_size;
}

int32_t tok_token_id(const Tokenizer *t, const char *token)
{
    return lookup_id(t, token, strlen(token));
}

const char *tok_pad_token(const Tokenizer *t) { return t->pad_text; }

void tok_special_ids(const Tokenizer *t, int32_t *bos, int32_t *eos, int32_t *pad)
{
    if (bos) *bos = t->bos_id;
    if (eos) *eos = t->eos_id;
    if (pad) *pad = t->pad_id;
}

/* tokenizer_synth.c — a CLIP-format BPE tokenizer learned from built-in text
 * (see random_model.h for what it is and why).
 *
 * Training is textbook BPE, done the way CLIP's vocabulary was shaped:
 * the text is lower-cased and cut into words by CLIP's pattern ('s, 't, 're,
 * 've, 'm, 'll, 'd, runs of letters, single digits, runs of other
 * non-space characters); each word is a sequence of byte symbols whose last
 * carries "</w>".  Then, repeatedly, the adjacent pair with the highest
 * count (weighted by word frequency; ties: lowest left id, then lowest right
 * id) is merged everywhere.  A pair whose joined text is already a token
 * ("a"+"bc" after "ab"+"c") is passed over, so every merge adds exactly one
 * new token and the ids stay CLIP's layout: 512 byte symbols, merge k at
 * 512 + k, then the two specials.  The corpus is ASCII, so the word cutter
 * only needs ASCII classes. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "random_model.h"

/* Prompt-like English, written for this purpose. */
static const char corpus[] =
    "a photograph of an astronaut riding a horse on the moon, highly detailed, sharp focus, 8k\n"
    "a watercolor painting of a quiet harbor at sunrise, soft light, pastel colors\n"
    "portrait of an old fisherman with a grey beard, dramatic lighting, oil on canvas\n"
    "a cozy wooden cabin in a snowy forest at night, warm windows, stars in the sky\n"
    "a red fox sitting in a field of tall golden grass, morning mist, national geographic\n"
    "an ancient stone castle on a cliff above a stormy sea, lightning, epic fantasy art\n"
    "a bowl of ramen with a soft boiled egg, steam rising, food photography, close up\n"
    "a futuristic city skyline at dusk, neon signs, flying cars, cyberpunk, rain\n"
    "a small robot watering flowers in a greenhouse, cute, pixar style, 3d render\n"
    "a cat wearing a tiny crown sitting on a velvet cushion, royal portrait\n"
    "a mountain lake reflecting snowy peaks, crystal clear water, landscape photography\n"
    "a vintage car parked in front of a diner, 1950s, kodachrome, film grain\n"
    "the interior of a grand library with endless shelves of books, candles, dust in the air\n"
    "a lighthouse on a rocky island during a storm, huge waves, cinematic\n"
    "a field of sunflowers under a bright blue sky, summer, impressionist painting\n"
    "a dragon sleeping on a pile of gold coins inside a cave, glowing embers\n"
    "a girl reading a book under a cherry blossom tree, anime style, spring breeze\n"
    "a steaming cup of coffee on a wooden table next to a window, rainy afternoon\n"
    "an owl perched on a branch in the moonlight, detailed feathers, night photography\n"
    "a busy market street in marrakech, colorful spices, lanterns, travel photo\n"
    "a sailing ship crossing the ocean at sunset, golden hour, painting by turner\n"
    "a macro photograph of a dew drop on a green leaf, bokeh background\n"
    "a portrait of a woman with freckles and red hair, natural light, 85mm lens\n"
    "a giant tortoise walking through a tropical jungle, lush vegetation, volumetric light\n"
    "an abstract composition of circles and triangles, bauhaus poster, bold colors\n"
    "a medieval knight in shining armor holding a sword, studio lighting, octane render\n"
    "a snowy village with wooden houses and smoke from the chimneys, christmas eve\n"
    "a desert landscape with red rocks and a single cactus, clear night sky, milky way\n"
    "a bakery window full of fresh bread and croissants, early morning, warm tones\n"
    "a panda eating bamboo in a misty bamboo forest, wildlife photography\n"
    "a steampunk airship above the clouds, brass and copper, intricate details\n"
    "a child flying a kite on a windy beach, playful, candid photo\n"
    "a bouquet of wild flowers in a glass vase, still life, dutch masters\n"
    "an underwater scene with coral reefs and tropical fish, sunbeams through the water\n"
    "a wizard casting a spell in a dark forest, magical particles, fantasy illustration\n"
    "a train crossing a stone bridge over a deep valley, autumn leaves, aerial view\n"
    "a minimalist living room with large windows and white walls, architectural photography\n"
    "a wolf howling at the full moon on a snowy hill, blue tones, silhouette\n"
    "a plate of sushi on a black slate, japanese restaurant, elegant presentation\n"
    "a hot air balloon festival over green hills, many colorful balloons, morning\n"
    "an old map of an imaginary island, sepia ink, hand drawn, parchment texture\n"
    "a samurai standing in a bamboo grove, wind blowing leaves, ukiyo e woodblock print\n"
    "a glass of orange juice with ice cubes, bright kitchen, commercial photography\n"
    "a tiny house built inside a hollow tree, fairy tale, whimsical, storybook illustration\n"
    "a neon lit alley in tokyo at midnight, reflections on wet pavement, blade runner mood\n"
    "a herd of elephants walking across the savanna at sunset, dust, warm colors\n"
    "a portrait of a young man in a knitted sweater, soft studio light, shallow depth of field\n"
    "a mountain road winding through pine trees, fog, moody atmosphere\n"
    "a chocolate cake with strawberries on top, birthday candles, shallow focus\n"
    "a space station orbiting a blue planet, stars, science fiction concept art\n"
    "a garden with a stone fountain and blooming roses, english countryside, summer afternoon\n"
    "a hummingbird drinking nectar from a purple flower, frozen motion, high speed photo\n"
    "a black and white photograph of a jazz musician playing the saxophone, smoky club\n"
    "a waterfall in a rainforest, rainbow in the spray, long exposure\n"
    "a knight and a dragon playing chess, humorous painting, renaissance style\n"
    "a row of colorful houses along a canal in amsterdam, bicycles, spring\n"
    "a polar bear on an ice floe, arctic ocean, overcast sky, documentary photo\n"
    "an astronaut floating inside a space shuttle, earth visible through the window\n"
    "a pumpkin patch at harvest time, scarecrow, orange and brown colors, autumn\n"
    "a portrait of a golden retriever puppy, sitting on green grass, happy expression\n"
    "a volcano erupting at night, rivers of lava, dramatic sky, wide angle\n"
    "a quiet temple in the mountains of kyoto, maple trees, red leaves, peaceful\n"
    "a bicycle leaning against a yellow wall, mediterranean town, bright sunlight\n"
    "a chef cooking pasta in a busy kitchen, motion blur, documentary style\n"
    "a colorful parrot on a tree branch in the amazon, vivid feathers, detailed\n"
    "an abandoned factory overgrown with plants, post apocalyptic, soft light\n"
    "a fantasy map with mountains, rivers, forests and kingdoms, detailed cartography\n"
    "a bowl of fresh fruit with apples, pears and grapes, classical still life\n"
    "a lone tree on a hill under a starry sky, long exposure, star trails\n"
    "a knight riding through a burning village, dark fantasy, dramatic composition\n"
    "a ballet dancer in mid leap on a stage, spotlight, elegant, motion\n"
    "a stack of pancakes with maple syrup and butter, breakfast, morning light\n"
    "a sports car racing on a mountain road, motion blur, photorealistic render\n"
    "a koi pond with lily pads and pink lotus flowers, zen garden, top view\n"
    "an illustration of a friendly monster under a bed, children book, soft colors\n"
    "a gothic cathedral with stained glass windows, light rays, interior, wide angle\n"
    "a farmer working in a rice field, terraces, vietnam, golden light\n"
    "a jellyfish glowing in the deep dark ocean, bioluminescence, ethereal\n"
    "a cup of green tea with a tea pot, traditional japanese ceramics, calm\n"
    "a portrait of an elderly woman smiling, wrinkles, warm light, documentary\n"
    "a snowy owl flying over a frozen lake, wings spread, winter morning\n"
    "a city street in paris after the rain, cafe tables, umbrellas, evening lights\n"
    "a crystal cave with glowing blue minerals, explorers with torches, fantasy\n"
    "a vegetable market with tomatoes, peppers and onions, vibrant colors, overhead shot\n"
    "a silhouette of a couple watching fireworks over a river, celebration, night\n"
    "a vintage typewriter on a desk with scattered papers, nostalgic, film photo\n"
    "a lion resting on a rock, savanna background, golden mane, wildlife portrait\n"
    "a pirate ship battle in a storm, cannons firing, oil painting, maritime art\n"
    "a modern glass skyscraper reflecting clouds, low angle, architectural detail\n"
    "a deer standing in a foggy meadow at dawn, soft pastel light, serene\n"
    "a robot and a boy walking together in a field, sunset, science fiction illustration\n"
    "a plate of tacos with lime and cilantro, street food, mexico city\n"
    "a frozen waterfall in the mountains, ice climbers, blue hour\n"
    "a medieval market town with timber houses, merchants, lively crowd\n"
    "a close up of a honey bee on a lavender flower, macro, summer\n"
    "a snowy mountain peak above the clouds, climbers on the ridge, epic scale\n"
    "a surreal landscape with melting clocks and strange trees, dreamlike, in the style of dali\n"
    "a cozy reading nook with pillows, blankets and a cat, rainy window, hygge\n"
    "a group of friends having a picnic in a park, spring, candid, happy\n"
    "a wooden boat on a calm lake at dawn, mist on the water, minimal\n"
    "an ornate golden pocket watch, intricate gears, product photography, black background\n"
    "a fierce tiger walking through tall grass, intense eyes, national park\n"
    "a lantern festival with thousands of floating lights over a river, magical evening\n"
    "a simple pencil sketch of a horse running, loose lines, drawing\n"
    "a portrait of a queen wearing a jeweled crown, baroque painting, rich colors\n"
    "a busy harbor with fishing boats and seagulls, morning, mediterranean\n"
    "a green dragon flying over a medieval city, fantasy concept art, wide shot\n"
    "beautiful, masterpiece, best quality, ultra realistic, trending on artstation, unreal engine\n"
    "highly detailed, intricate, elegant, smooth, sharp focus, illustration, digital painting\n"
    "soft lighting, cinematic lighting, volumetric fog, ray tracing, global illumination\n"
    "hyper realistic, photo realistic, 4k, 8k, uhd, hdr, dslr, studio quality\n"
    "low poly, isometric, vector art, flat design, pixel art, line art, comic book style\n"
    "watercolor, oil painting, charcoal drawing, pastel, gouache, ink wash, acrylic on canvas\n"
    "portrait, landscape, still life, street photography, fashion photography, aerial photography\n"
    "by greg rutkowski, by alphonse mucha, by claude monet, by vincent van gogh, by rembrandt\n"
    "blurry, low quality, deformed, ugly, bad anatomy, extra fingers, watermark, text, signature\n"
    "red, orange, yellow, green, blue, indigo, violet, purple, pink, brown, black, white, gray, golden, silver\n"
    "one, two, three, four, five, six, seven, eight, nine, ten, hundred, thousand\n"
    "morning, noon, afternoon, evening, night, midnight, dawn, dusk, sunrise, sunset, twilight\n"
    "spring, summer, autumn, winter, rain, snow, wind, storm, fog, clouds, thunder, rainbow\n"
    "the quick brown fox jumps over the lazy dog while the children laugh and play outside\n"
    "it's a beautiful day and we're going to the beach, they've said it'll be sunny, i'm sure\n"
    ;

/* openai/CLIP's bytes_to_unicode: printable bytes stand for themselves,
 * the other 68 get code points from 256 on.  order[i] is the byte of vocab
 * position i, cp[i] its code point. */
static void clip_byte_order(int order[256], unsigned cp[256])
{
    int n = 0, taken[256] = {0};
    for (int b = '!'; b <= '~'; b++) order[n] = b, cp[n++] = (unsigned)b, taken[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++) order[n] = b, cp[n++] = (unsigned)b, taken[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++) order[n] = b, cp[n++] = (unsigned)b, taken[b] = 1;
    int extra = 0;
    for (int b = 0; b < 256; b++)
        if (!taken[b]) order[n] = b, cp[n++] = 256u + (unsigned)extra++;
    SDC_ASSERT(n == 256);
}

static char *utf8_symbol(unsigned cp, int end_of_word)
{
    char *s = xmalloc(8);
    int n = 0;
    if (cp < 0x80) {
        s[n++] = (char)cp;
    } else { /* all code points here are below 0x800 */
        s[n++] = (char)(0xC0 | (cp >> 6));
        s[n++] = (char)(0x80 | (cp & 0x3F));
    }
    s[n] = 0;
    if (end_of_word) {
        s = xrealloc(s, (size_t)n + 5);
        strcat(s, "</w>");
    }
    return s;
}

/* ---- the vocabulary: id -> text, text -> id ------------------------------------ */

typedef struct Vocab {
    int n;
    char **text;
    int *slot; /* open addressing over text hashes; -1 empty */
    size_t cap;
} Vocab;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int vocab_find(const Vocab *v, const char *s)
{
    for (size_t i = hash_str(s) & (v->cap - 1);; i = (i + 1) & (v->cap - 1)) {
        if (v->slot[i] < 0) return -1;
        if (strcmp(v->text[v->slot[i]], s) == 0) return v->slot[i];
    }
}

static int vocab_add(Vocab *v, char *s) /* takes s */
{
    SDC_ASSERT((size_t)v->n * 2 < v->cap);
    size_t i = hash_str(s) & (v->cap - 1);
    while (v->slot[i] >= 0) i = (i + 1) & (v->cap - 1);
    v->text = xrealloc(v->text, sizeof(char *) * (size_t)(v->n + 1));
    v->text[v->n] = s;
    v->slot[i] = v->n;
    return v->n++;
}

static void vocab_free(Vocab *v)
{
    for (int i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->slot);
}

/* ---- words of the corpus -------------------------------------------------------- */

typedef struct Word {
    int n;     /* symbols */
    int *sym;  /* vocab ids */
    int count; /* occurrences in the corpus */
} Word;

static int is_letter(int c) { return c >= 'a' && c <= 'z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_space(int c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

/* Length of the CLIP pre-token at s (lower-cased ASCII), 0 at a space. */
static size_t pretoken_len(const char *s)
{
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    if (is_space(*s)) return 0;
    for (size_t k = 0; k < sizeof contractions / sizeof contractions[0]; k++)
        if (strncmp(s, contractions[k], strlen(contractions[k])) == 0) return strlen(contractions[k]);
    size_t n = 1;
    if (is_letter(*s)) {
        while (is_letter(s[n])) n++;
    } else if (!is_digit(*s)) {
        while (s[n] && !is_space(s[n]) && !is_letter(s[n]) && !is_digit(s[n])) n++;
    }
    return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The distinct words of the corpus (sorted) with their counts, as byte symbols. */
static int corpus_words(const int pos_of_byte[256], Word **out)
{
    char *text = xstrdup(corpus);
    for (char *c = text; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    char **tok = NULL;
    int ntok = 0;
    for (char *c = text; *c;) {
        size_t n = pretoken_len(c);
        if (!n) {
            c++;
            continue;
        }
        tok = xrealloc(tok, sizeof(char *) * (size_t)(ntok + 1));
        tok[ntok] = xmalloc(n + 1);
        memcpy(tok[ntok], c, n);
        tok[ntok++][n] = 0;
        c += n;
    }
    qsort(tok, (size_t)ntok, sizeof(char *), cmp_str);
    Word *w = xcalloc((size_t)(ntok ? ntok : 1), sizeof(Word));
    int nw = 0;
    for (int i = 0; i < ntok; i++) {
        if (nw && i && strcmp(tok[i], tok[i - 1]) == 0) {
            w[nw - 1].count++;
            continue;
        }
        int len = (int)strlen(tok[i]);
        w[nw].n = len;
        w[nw].sym = xmalloc(sizeof(int) * (size_t)len);
        for (int k = 0; k < len; k++)
            w[nw].sym[k] = pos_of_byte[(unsigned char)tok[i][k]] + (k == len - 1 ? 256 : 0);
        w[nw++].count = 1;
    }
    for (int i = 0; i < ntok; i++) free(tok[i]);
    free(tok);
    free(text);
    *out = w;
    return nw;
}

/* ---- BPE training ---------------------------------------------------------------- */

typedef struct PairCount {
    uint64_t key; /* left id << 32 | right id; 0 = empty (id pair 0,0 is encoded as key+1) */
    int64_t count;
} PairCount;

static uint64_t pair_key(int a, int b) { return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1; }

static void count_pairs(const Word *w, int nw, PairCount *tab, size_t cap)
{
    memset(tab, 0, sizeof(PairCount) * cap);
    for (int i = 0; i < nw; i++)
        for (int k = 0; k + 1 < w[i].n; k++) {
            uint64_t key = pair_key(w[i].sym[k], w[i].sym[k + 1]);
            size_t j = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
            while (tab[j].key && tab[j].key != key) j = (j + 1) & (cap - 1);
            tab[j].key = key;
            tab[j].count += w[i].count;
        }
}

static char *joined(const Vocab *v, int a, int b)
{
    size_t la = strlen(v->text[a]), lb = strlen(v->text[b]);
    char *s = xmalloc(la + lb + 1);
    memcpy(s, v->text[a], la);
    memcpy(s + la, v->text[b], lb + 1);
    return s;
}

/* Learns up to max_merges merges into v (after its 512 byte symbols);
 * merge k is (left[k], right[k]) and makes token 512 + k. */
static int bpe_train(Vocab *v, const int pos_of_byte[256], int max_merges, int *left, int *right)
{
    Word *w;
    int nw = corpus_words(pos_of_byte, &w);
    size_t nsym = 0;
    for (int i = 0; i < nw; i++) nsym += (size_t)w[i].n;
    size_t cap = 1024;
    while (cap < 4 * nsym) cap *= 2;
    PairCount *tab = xmalloc(sizeof(PairCount) * cap);
    int nmerges = 0;
    while (nmerges < max_merges) {
        count_pairs(w, nw, tab, cap);
        int best_a = -1, best_b = -1;
        int64_t best = 0;
        for (size_t j = 0; j < cap; j++) {
            if (!tab[j].key) continue;
            int a = (int)((tab[j].key - 1) >> 32), b = (int)((tab[j].key - 1) & 0xFFFFFFFFu);
            int better = tab[j].count > best ||
                         (tab[j].count == best && (a < best_a || (a == best_a && b < best_b)));
            if (!better) continue;
            char *s = joined(v, a, b);
            int exists = vocab_find(v, s) >= 0;
            free(s);
            if (!exists) best = tab[j].count, best_a = a, best_b = b;
        }
        if (best_a < 0) break; /* every word is one token */
        int id = vocab_add(v, joined(v, best_a, best_b));
        left[nmerges] = best_a, right[nmerges] = best_b;
        nmerges++;
        for (int i = 0; i < nw; i++) {
            int out = 0;
            for (int k = 0; k < w[i].n; k++) {
                if (k + 1 < w[i].n && w[i].sym[k] == best_a && w[i].sym[k + 1] == best_b) {
                    w[i].sym[out++] = id;
                    k++;
                } else {
                    w[i].sym[out++] = w[i].sym[k];
                }
            }
            w[i].n = out;
        }
    }
    free(tab);
    for (int i = 0; i < nw; i++) free(w[i].sym);
    free(w);
    return nmerges;
}

/* ---- the files ---------------------------------------------------------------------- */

static int write_text(const char *dir, const char *name, const char *text, SdcErr *err)
{
    char *path = path_join(dir, name);
    int rc = file_write_atomic(path, text, strlen(text), err);
    free(path);
    return rc;
}

static int write_json(const char *dir, const char *name, cJSON *obj, int formatted, SdcErr *err)
{
    char *s = formatted ? cJSON_Print(obj) : cJSON_PrintUnformatted(obj);
    SDC_ASSERT(s);
    size_t n = strlen(s);
    char *t = xmalloc(n + 2);
    memcpy(t, s, n);
    strcpy(t + n, "\n");
    cJSON_free(s);
    int rc = write_text(dir, name, t, err);
    free(t);
    return rc;
}

/* {"content": s, "lstrip": false, "normalized": true, "rstrip": false, "single_word": false} */
static cJSON *added_token(const char *s, int with_type)
{
    cJSON *o = cJSON_CreateObject();
    if (with_type) cJSON_AddStringToObject(o, "__type", "AddedToken");
    cJSON_AddStringToObject(o, "content", s);
    cJSON_AddFalseToObject(o, "lstrip");
    cJSON_AddTrueToObject(o, "normalized");
    cJSON_AddFalseToObject(o, "rstrip");
    cJSON_AddFalseToObject(o, "single_word");
    return o;
}

static const char SOT[] = "<|startoftext|>", EOT[] = "<|endoftext|>";

/* The two small configs, in the form the SD 1.5 / 2.1 hub repos use (no
 * added_tokens_decoder, so special_tokens_map.json has the last word, which
 * is how SD 2.x pads with "!"). */
static int write_configs(const char *dir, int max_length, const char *pad, SdcErr *err)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddFalseToObject(c, "add_prefix_space");
    cJSON_AddItemToObject(c, "bos_token", added_token(SOT, 1));
    cJSON_AddTrueToObject(c, "do_lower_case");
    cJSON_AddItemToObject(c, "eos_token", added_token(EOT, 1));
    cJSON_AddStringToObject(c, "errors", "replace");
    cJSON_AddNumberToObject(c, "model_max_length", max_length);
    cJSON_AddStringToObject(c, "pad_token", EOT);
    cJSON_AddStringToObject(c, "tokenizer_class", "CLIPTokenizer");
    cJSON_AddItemToObject(c, "unk_token", added_token(EOT, 1));
    int rc = write_json(dir, "tokenizer_config.json", c, 1, err);
    cJSON_Delete(c);
    if (rc) return rc;
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToObject(m, "bos_token", added_token(SOT, 0));
    cJSON_AddItemToObject(m, "eos_token", added_token(EOT, 0));
    cJSON_AddStringToObject(m, "pad_token", pad);
    cJSON_AddItemToObject(m, "unk_token", added_token(EOT, 0));
    rc = write_json(dir, "special_tokens_map.json", m, 1, err);
    cJSON_Delete(m);
    return rc;
}

int tokenizer_synth_write(const char *dir, int vocab_size, int max_length, const char *pad_token, SdcErr *err)
{
    if (vocab_size < 514)
        return sdc_err(err, "text_encoder/config.json: vocab_size: %d is too small for a CLIP tokenizer (at least 514: "
                            "512 byte symbols and 2 special tokens)", vocab_size);
    int max_merges = vocab_size - 514 < RM_TOK_MAX_MERGES ? vocab_size - 514 : RM_TOK_MAX_MERGES;
    int order[256], pos_of_byte[256];
    unsigned cp[256];
    clip_byte_order(order, cp);
    for (int i = 0; i < 256; i++) pos_of_byte[order[i]] = i;

    Vocab v = {0};
    v.cap = 8192;
    v.slot = xmalloc(sizeof(int) * v.cap);
    for (size_t i = 0; i < v.cap; i++) v.slot[i] = -1;
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 256; i++) vocab_add(&v, utf8_symbol(cp[i], e));
    int *left = xmalloc(sizeof(int) * (size_t)(max_merges + 1));
    int *right = xmalloc(sizeof(int) * (size_t)(max_merges + 1));
    int nmerges = bpe_train(&v, pos_of_byte, max_merges, left, right);
    vocab_add(&v, xstrdup(SOT));
    vocab_add(&v, xstrdup(EOT));
    SDC_ASSERT(v.n <= vocab_size);

    int rc = -1;
    char *merges = NULL;
    cJSON *vj = NULL;
    if (vocab_find(&v, pad_token) < 0) {
        sdc_err(err, "tokenizer: pad_token \"%.60s\" is not in the synthesised vocabulary (use \"%s\" or a single "
                     "character)", pad_token, EOT);
        goto done;
    }
    vj = cJSON_CreateObject();
    for (int i = 0; i < v.n; i++) cJSON_AddNumberToObject(vj, v.text[i], i);
    if (write_json(dir, "vocab.json", vj, 0, err)) goto done;

    size_t len = 16, at;
    for (int k = 0; k < nmerges; k++) len += strlen(v.text[left[k]]) + strlen(v.text[right[k]]) + 2;
    merges = xmalloc(len + 1);
    at = (size_t)sprintf(merges, "#version: 0.2\n");
    for (int k = 0; k < nmerges; k++) at += (size_t)sprintf(merges + at, "%s %s\n", v.text[left[k]], v.text[right[k]]);
    if (write_text(dir, "merges.txt", merges, err)) goto done;
    rc = write_configs(dir, max_length, pad_token, err);
done:
    cJSON_Delete(vj);
    free(merges);
    free(left);
    free(right);
    vocab_free(&v);
    return rc;
}

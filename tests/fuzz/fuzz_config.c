/* fuzz_config.c — libFuzzer target for the config importer.
 *
 * The input is a config.json as a diffusers folder holds it, preceded by
 * two bytes: the first picks the builder (UNet, VAE decoder, VAE encoder,
 * CLIP text encoder), the second the graph size (latent side 1..16 and the
 * text length).  The text is parsed with cfg_parse and handed to the
 * builder in collect mode (ws_collect: parameters are recorded, no weights
 * file is read), as `sdc random-model` does.
 *
 * Checked: a refused config gives one line that names the config file (or,
 * for shapes that do not fit the graph size, the module being built); an
 * accepted one gives a graph that passes the verifier (a builder must never
 * make an invalid graph from a config it accepted).  Seeds:
 * tests/fuzz/corpus/config/: the configs of the tiny, sd15 and sd21 presets
 * (frontend/presets.c) for each builder, two variants with the less common
 * options, and crash-* files (inputs that once crashed, now regressions).
 * Build with -DSDC_FUZZ=ON (tests/fuzz/run.sh). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    static const char *const shown[COMP_COUNT] = {"unet/config.json", "vae/config.json", "vae/config.json",
                                                  "text_encoder/config.json"};
    Component comp = (Component)(data[0] % COMP_COUNT);
    int side = 1 + data[1] % 16;
    char *text = malloc(size - 1);
    if (!text) return 0;
    memcpy(text, data + 2, size - 2);
    text[size - 2] = 0;

    SdcErr err = {{0}};
    Cfg cfg;
    Graph *g = NULL;
    int parsed = cfg_parse(&cfg, text, shown[comp], &err) == 0;
    if (parsed) {
        WeightSet ws;
        ws_collect(&ws, comp == COMP_UNET ? "unet" : comp == COMP_TEXT_ENCODER ? "text_encoder" : "vae");
        /* the VAE encoder takes the image, 8x the latent side */
        ImportShape s = {.batch = 1, .height = comp == COMP_VAE_ENCODER ? 8 * side : side, .seq_len = 1 + data[1] / 16};
        s.width = s.height;
        switch (comp) {
        case COMP_UNET: g = build_unet(&cfg, &ws, &s, &err); break;
        case COMP_VAE_DECODER: g = build_vae_decoder(&cfg, &ws, &s, &err); break;
        case COMP_VAE_ENCODER: g = build_vae_encoder(&cfg, &ws, &s, &err); break;
        default: g = build_text_encoder(&cfg, &ws, &s, &err); break;
        }
        ws_close(&ws);
    }
    if (!g) {
        /* one line that names the file, or the module whose shapes do not fit
         * (the graph size is ours here, not the config's) */
        if (!err.msg[0] || strchr(err.msg, '\n') || (!strstr(err.msg, "config.json") && strncmp(err.msg, "building ", 9))) {
            fprintf(stderr, "fuzz_config: unclear message: %s\n", err.msg);
            abort();
        }
    } else if (ir_verify(g, &err) != 0) {
        fprintf(stderr, "fuzz_config: accepted config, invalid graph: %s\n", err.msg);
        abort(); /* a builder bug */
    }
    graph_free(g);
    cfg_free(&cfg);
    free(text);
    return 0;
}

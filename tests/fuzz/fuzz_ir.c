/* fuzz_ir.c — libFuzzer target for the IR text parser and the verifier.
 *
 * The input, cut at its first NUL, is parsed as an .ir file.  Checked: a
 * refused text gives one line starting with the file name; a graph that
 * parses and verifies prints to a text that parses back, verifies and
 * prints the same (print(parse(print(g))) == print(g), the round-trip rule
 * every .ir file in the repo follows); its memory plan and statistics are
 * computed, which multiply every shape (the verifier bounds their size).
 * Seeds: tests/fuzz/corpus/ir/ (pass tests and small graphs of every op
 * family).  Build with -DSDC_FUZZ=ON (tests/fuzz/run.sh). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "memplan.h"
#include "stats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const SdcErr *err)
{
    if (strncmp(err->msg, "fuzz.ir", 7) != 0 || strchr(err->msg, '\n')) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    SdcErr err = {{0}};
    Graph *g = ir_parse(text, "fuzz.ir", &err);
    free(text);
    if (!g) {
        check_err(&err);
        return 0;
    }
    if (ir_verify(g, &err) != 0) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort();
        graph_free(g);
        return 0;
    }
    char *printed = ir_print_str(g);
    Graph *again = ir_parse(printed, "fuzz.ir", &err);
    if (!again || ir_verify(again, &err) != 0) abort(); /* the printer wrote what the parser refuses */
    char *reprinted = ir_print_str(again);
    if (strcmp(printed, reprinted) != 0) abort();
    MemPlan plan;
    memplan_compute(g, &plan);
    if (plan.peak < plan.lower_bound) abort();
    memplan_free(&plan);
    GraphStats st;
    graph_stats(g, &st);
    free(printed), free(reprinted);
    graph_free(again);
    graph_free(g);
    return 0;
}

/* backend.c — the registry of backends. */
#include "backend.h"

#include <string.h>

extern const Backend backend_c;

static const Backend *const backends[] = {&backend_c};

const Backend *backend_find(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (strcmp(backends[i]->name, name) == 0) return backends[i];
    return NULL;
}

int backend_check(const Backend *b, const Graph *g, SdcErr *err)
{
    for (int i = 0; i < g->n; i++)
        if (!b->supports_op(g, &g->nodes[i], err))
            return sdc_err_prefix(err, "backend %s: graph @%s: %%%s = %s", b->name, g->name, g->nodes[i].name,
                                  op_table[g->nodes[i].op].name);
    return 0;
}

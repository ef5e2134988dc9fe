/* cli.h — the sdc command line: one function per subcommand.
 * Each returns the process exit status: 0 success, 1 user error (one line
 * already printed on stderr), 2 internal error. */
#ifndef SDC_CLI_H
#define SDC_CLI_H

#include "args.h"

int cmd_opt(int argc, char **argv);
int cmd_interp(int argc, char **argv);
int cmd_passes(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_random_model(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_compile_graph(int argc, char **argv);

/* A temporary folder for passes that write constants (folded weights,
 * per-step tables), made on first use and removed at exit. */
const char *cli_scratch_dir(void);

/* Prints "sdc: <message>" and returns 1. */
int cli_fail(const SdcErr *err);

#endif

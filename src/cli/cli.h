/* SPDX-License-Identifier: Apache-2.0 */
/* The moat CLI: global options and the verb table (one file per verb). */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdbool.h>

struct moat_global {
        const char *root;       /* --root, default /run/moat */
        const char *log;        /* --log FILE */
        const char *log_format; /* text|json */
        bool debug;
};

/* A verb gets its own argv (argv[0] is the verb) and returns the exit code. */
typedef int (*moat_verb_fn) (struct moat_global *g, int argc, char **argv);

int moat_cmd_run (struct moat_global *g, int argc, char **argv);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* The moat CLI: global options and the verb table (one file per verb). */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdbool.h>
#include <sys/types.h>

#include "moat/container.h"
#include "moat/error.h"

struct moat_global {
        const char *root;       /* --root, default /run/moat */
        const char *log;        /* --log FILE */
        const char *log_format; /* text|json */
        bool debug;
        bool systemd_cgroup; /* --systemd-cgroup: cgroupsPath is slice:prefix:name */
};

/* Reports an error as moat_error_print does: "moat: MSG" on stderr and MSG
 * as an "error" line in the --log file (runc's JSON lines with --log-format
 * json, which containerd's shim and conmon read back on a failure). fmt has
 * neither the "moat: " prefix nor a newline. */
void moat_cli_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* The library's context for g (include/moat/container.h). */
static inline struct moat_context
moat_cli_context (const struct moat_global *g)
{
        return (struct moat_context){.root = g->root, .debug = g->debug, .systemd_cgroup = g->systemd_cgroup};
}

/* A verb gets its own argv (argv[0] is the verb) and returns the exit code. */
typedef int (*moat_verb_fn) (struct moat_global *g, int argc, char **argv);

/* Parses the options create and run share (run also takes -d/--detach
 * and --keep). Returns 0, 1 on a usage error (printed), 2 for --help. */
int moat_parse_create_opts (const char *verb, int argc, char **argv, struct moat_container_create_opts *o, bool *detach,
                            bool *keep);

int moat_cmd_create (struct moat_global *g, int argc, char **argv);
int moat_cmd_start (struct moat_global *g, int argc, char **argv);
int moat_cmd_state (struct moat_global *g, int argc, char **argv);
int moat_cmd_kill (struct moat_global *g, int argc, char **argv);
int moat_cmd_delete (struct moat_global *g, int argc, char **argv);
int moat_cmd_run (struct moat_global *g, int argc, char **argv);
int moat_cmd_exec (struct moat_global *g, int argc, char **argv);
int moat_cmd_ps (struct moat_global *g, int argc, char **argv);
int moat_cmd_list (struct moat_global *g, int argc, char **argv);
int moat_cmd_pause (struct moat_global *g, int argc, char **argv);
int moat_cmd_resume (struct moat_global *g, int argc, char **argv);
int moat_cmd_update (struct moat_global *g, int argc, char **argv);
int moat_cmd_spec (struct moat_global *g, int argc, char **argv);
int moat_cmd_features (struct moat_global *g, int argc, char **argv);
int moat_cmd_events (struct moat_global *g, int argc, char **argv);
int moat_cmd_check (struct moat_global *g, int argc, char **argv);
int moat_cmd_env (struct moat_global *g, int argc, char **argv);
int moat_cmd_setup (struct moat_global *g, int argc, char **argv);
int moat_cmd_template (struct moat_global *g, int argc, char **argv);

#endif

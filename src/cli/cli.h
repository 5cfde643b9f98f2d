/* SPDX-License-Identifier: Apache-2.0 */
/* The moat CLI: global options and the verb table (one file per verb). */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdbool.h>
#include <sys/types.h>

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

/* Fails unless the live status of container id is one of `allowed`
 * (space-separated), with runc's wording, which clients match on:
 * "container not <want> (status: <status>)". */
int moat_cli_expect_status (struct moat_global *g, const char *id, const char *allowed, const char *want,
                            moat_error_t *err);

/* A verb gets its own argv (argv[0] is the verb) and returns the exit code. */
typedef int (*moat_verb_fn) (struct moat_global *g, int argc, char **argv);

/* create (and run -d): the shared core. */
struct moat_create_opts {
        const char *id, *bundle, *pid_file, *console_socket;
        int preserve_fds;
        /* run in the foreground: the VM dies with this process, a terminal
         * without --console-socket is our own stdin/stdout; the stand-in's
         * pid and the socket on which it reports "E<message>" before it
         * exits on an error are returned. */
        bool foreground;
        pid_t *standin_pid;
        int *standin_sync;
};
int moat_cli_create (struct moat_global *g, const struct moat_create_opts *o, moat_error_t *err);
/* start (and run -d). */
int moat_cli_start (struct moat_global *g, const char *id, moat_error_t *err);
/* delete (and run without --keep): *force kills a container that is not stopped. */
int moat_cli_delete (struct moat_global *g, const char *id, bool force, moat_error_t *err);

/* Parses the options create and run share (run also takes -d/--detach
 * and --keep). Returns 0, 1 on a usage error (printed), 2 for --help. */
int moat_parse_create_opts (const char *verb, int argc, char **argv, struct moat_create_opts *o, bool *detach,
                            bool *keep);

/* Writes "<pid>" to path atomically (temporary file + rename), like runc. */
int moat_write_pid_file (const char *path, pid_t pid, moat_error_t *err);

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

#endif

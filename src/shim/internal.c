/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's libmoat calls, each in a fresh process of this binary:
 *   containerd-shim-moat-v2 -id ID -namespace NS [-debug] internal ROOT VERB ARGS...
 * libmoat's create takes a private mount namespace, forks the VMM and the
 * stand-in and waits for them, which a threaded daemon must not do in its
 * own process. Such a child is what `moat create` is to containerd's runc
 * shim: fds 0-2 are the process's stdio (the stand-in inherits them), fd 3
 * gets one line, "OK [value]" or "ERR <errno> <message>", and it exits.
 * The stand-ins it forks are re-parented to the daemon (a child
 * subreaper), which reaps them and reads their exit status. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/container.h"
#include "moat/log.h"
#include "moat/util.h"
#include "shim.h"

#define MOAT_STR_(x) #x
#define MOAT_STR(x) MOAT_STR_ (x)

static void
reply (int rc, const char *value, moat_error_t err)
{
        FILE *f = fdopen (SHIM_RESULT_FD, "w");
        if (f == NULL)
                return;
        if (rc < 0)
                fprintf (f, "ERR %d %s\n", err ? err->errno_ : EIO, err ? err->msg : "failed");
        else
                fprintf (f, "OK %s\n", value ? value : "");
        fclose (f);
}

static const char *
arg (char **argv, int argc, int i)
{
        return i < argc && strcmp (argv[i], "-") != 0 ? argv[i] : NULL;
}

int
shim_internal (const struct shim_opts *o, int argc, char **argv)
{
        struct moat_context ctx = {.root = argc > 0 ? argv[0] : NULL, .debug = o->debug};
        const char *verb = argc > 1 ? argv[1] : "";
        cleanup_error moat_error_t err = NULL;
        cleanup_free char *value = NULL;
        int rc;

        /* the daemon's log (the bundle's log fifo); stderr is the process's */
        if (moat_log_init ("/proc/self/fd/" MOAT_STR (SHIM_LOG_FD), 0, o->debug) < 0)
                moat_log_init (NULL, 0, o->debug);
        close (SHIM_LOG_FD);
        if (ctx.root == NULL || *ctx.root != '/') {
                moat_make_error (&err, EINVAL, "internal: no state root");
                reply (-1, NULL, err);
                return 1;
        }
        argc -= 2;
        argv += 2;
        if (strcmp (verb, "create") == 0 && argc >= 2) {
                /* create BUNDLE CONSOLE_SOCKET|- [SANDBOX_ID|-]: with a
                 * sandbox id, in that container's VM (a pod) */
                pid_t pid = 0;
                const char *sandbox = arg (argv, argc, 2);
                struct moat_container_create_opts co = {
                        .id = o->id, .bundle = argv[0], .console_socket = arg (argv, argc, 1), .standin_pid = &pid};
                rc = sandbox ? moat_container_create_in (&ctx, sandbox, &co, &err)
                             : moat_container_create (&ctx, &co, &err);
                if (rc == 0)
                        value = xasprintf_r ("%d", (int)pid);
        } else if (strcmp (verb, "start") == 0) {
                rc = moat_container_start (&ctx, o->id, &err);
        } else if (strcmp (verb, "exec") == 0 && argc >= 3) {
                /* exec EXEC_ID PROCESS_FILE CONSOLE_SOCKET|- : the stand-in's
                 * pid comes back through a pid file */
                cleanup_free char *pidf = xasprintf_r ("%s.pid", argv[1]);
                cleanup_free char *pidtxt = NULL;
                size_t len;
                int code = 0;
                struct moat_container_exec_opts eo = {.process_file = argv[1],
                                                      .detach = true,
                                                      .console_socket = arg (argv, argc, 2),
                                                      .pid_file = pidf,
                                                      .exec_id = argv[0]};
                rc = moat_container_exec (&ctx, o->id, &eo, &code, &err);
                if (rc == 0 && read_file (pidf, &pidtxt, &len, &err) == 0)
                        value = xstrdup (pidtxt);
                else if (rc == 0)
                        rc = -1;
                unlink (pidf);
        } else if (strcmp (verb, "kill") == 0 && argc >= 3) {
                /* kill EXEC_ID|- SIGNAL all|one */
                rc = moat_container_kill_process (&ctx, o->id, arg (argv, argc, 0), atoi (argv[1]),
                                                  strcmp (argv[2], "all") == 0, &err);
        } else if (strcmp (verb, "delete") == 0) {
                rc = moat_container_delete (&ctx, o->id, true, &err);
        } else if (strcmp (verb, "pause") == 0) {
                rc = moat_container_pause (&ctx, o->id, &err);
        } else if (strcmp (verb, "resume") == 0) {
                rc = moat_container_resume (&ctx, o->id, &err);
        } else if (strcmp (verb, "update") == 0 && argc >= 1) {
                cleanup_free char *json = NULL;
                size_t len;
                rc = read_file (argv[0], &json, &len, &err);
                if (rc == 0)
                        rc = moat_container_update (&ctx, o->id, json, &err);
        } else if (strcmp (verb, "stats") == 0) {
                struct moat_stats s = {0};
                rc = moat_container_stats (&ctx, o->id, &s, &err);
                if (rc == 0) {
                        /* one line of numbers: the daemon builds the metrics */
                        value = xasprintf_r ("%llu %llu %llu %llu %llu %llu %llu %llu",
                                             (unsigned long long)s.memory_usage, (unsigned long long)s.memory_limit,
                                             (unsigned long long)s.memory_max_usage,
                                             (unsigned long long)s.cpu_usage_usec, (unsigned long long)s.cpu_user_usec,
                                             (unsigned long long)s.cpu_system_usec, (unsigned long long)s.pids_current,
                                             (unsigned long long)s.pids_limit);
                        for (size_t i = 0; i < s.n_pids; i++) {
                                char *v = xasprintf_r ("%s %u", value, s.pids[i]);
                                free (value);
                                value = v;
                        }
                        moat_stats_clear (&s);
                }
        } else {
                moat_make_error (&err, EINVAL, "internal: unknown call %s", verb);
                rc = -1;
        }
        reply (rc, value, err);
        return rc < 0 ? 1 : 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* moat delete [--force|-f] ID: delete a stopped container: power its VM
 * off (if the stand-in left it on), stop moat-vsock, detach the share,
 * remove the host cgroup, then run the poststop hooks, then remove the
 * state.
 * A created, running or paused container is refused without --force (the
 * runtime spec says so for created too; runc deletes those). A create
 * killed before the container existed leaves "creating" with nobody
 * holding the lock: that is stopped, and a plain delete cleans it. --force kills
 * what is left even when the VMM or the stand-in died, and succeeds for an
 * unknown ID, as runc does. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "moat/hooks.h"
#include "moat/sandbox.h"
#include "moat/log.h"
#include "moat/oci.h"
#include "moat/state.h"
#include "moat/util.h"

/* on_destroyed: the poststop hooks (runtime.md: after the container is
 * deleted), with the saved state as stopped; a failing hook is only a
 * warning and the others still run */
static void
run_poststop (struct moat_sandbox *sb, void *ctx)
{
        cleanup_free char *sj = NULL;
        cleanup_error moat_error_t e = NULL;
        sb->state.pid = 0;
        sj = moat_state_to_oci_json (&sb->state, "stopped", 0);
        moat_hooks_run (sb->cfg, OCI_HOOK_POSTSTOP, sj, true, ctx, &e);
}

int
moat_cli_delete (struct moat_global *g, const char *id, bool force, moat_error_t *err)
{
        cleanup_close int lock = -1;
        struct moat_state *st = NULL;
        struct moat_sandbox *sb = NULL;
        cleanup_free char *dir = NULL;
        const char *status;

        if (moat_state_validate_id (id, err) < 0)
                return -1;
        dir = moat_state_dir (g->root, id);
        if (moat_state_lock (g->root, id, &lock, err) < 0) {
                /* --force: a create killed between making the directory
                 * and its lock left an empty directory; nothing else is
                 * there (a create still that far fails on its own) */
                if (force && (*err)->errno_ == ENOENT && access (dir, F_OK) == 0) {
                        moat_error_release (err);
                        return moat_state_remove (g->root, id, err);
                }
                goto missing;
        }
        if (moat_state_load (g->root, id, &st, err) < 0) {
                /* a create that died before writing its state leaves a
                 * directory with the lock only: --force removes it */
                if (force && (*err)->errno_ == ENOENT) {
                        moat_error_release (err);
                        return moat_state_remove (g->root, id, err);
                }
                goto missing;
        }
        /* "creating" counts as stopped here: we hold the lock, so the
         * create that wrote it is gone */
        status = moat_state_live_status (st);
        if (strcmp (status, "stopped") != 0 && !force) {
                moat_make_error (err, 0, "cannot delete a container that is not stopped (%s); use --force", status);
                moat_state_free (st);
                return -1;
        }
        /* everything on the host (VM, stand-in, moat-vsock, strays,
         * mounts, cgroup), the poststop hooks, the state last: the id is
         * free once it is gone (a failure keeps the state: delete can
         * retry) */
        if (moat_sandbox_load (g->root, st, &sb, err) < 0)
                return -1;
        sb->on_destroyed = run_poststop;
        return moat_sandbox_destroy (sb, err);
missing:
        if (force && (*err)->errno_ == ENOENT) {
                moat_error_release (err);
                return 0;
        }
        return -1;
}

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat delete [--force|-f] ID\n\n"
                    "Delete a stopped container: its VM, host resources and state.\n\n"
                    "Options:\n"
                    "  -f, --force  also kill and delete a created, running or paused container\n"
                    "               (and succeed if ID does not exist)\n"
                    "  -h, --help   this help\n");
}

int
moat_cmd_delete (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
        cleanup_error moat_error_t err = NULL;
        bool force = false;
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+fh", opts, NULL)) != -1) {
                if (c == 'f')
                        force = true;
                else if (c == 'h') {
                        usage (stdout);
                        return 0;
                } else {
                        fprintf (stderr, "moat: delete: unknown option %s\n", argv[optind - 1]);
                        return 1;
                }
        }
        if (optind + 1 != argc) {
                fprintf (stderr, "moat: delete: expected exactly one container ID (see moat delete --help)\n");
                return 1;
        }
        if (moat_cli_delete (g, argv[optind], force, &err) < 0) {
                moat_error_wrap (&err, "delete %s", argv[optind]);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}

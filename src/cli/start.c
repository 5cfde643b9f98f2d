/* SPDX-License-Identifier: Apache-2.0 */
/* moat start ID: start the process of a created container, then run the
 * poststart hooks (a failing one stops the container and fails start). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "moat/agent_client.h"
#include "moat/hooks.h"
#include "moat/log.h"
#include "moat/oci.h"
#include "moat/state.h"
#include "moat/util.h"

#define AGENT_TIMEOUT_MS 5000

/* The config as it was at create time (saved in the state dir). */
static int
load_saved_config (const char *root, const char *id, struct oci_config **cfg, moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, id);
        return oci_config_load (dir, cfg, err);
}

int
moat_cli_start (struct moat_global *g, const char *id, moat_error_t *err)
{
        cleanup_close int lock = -1;
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        cleanup_oci_config struct oci_config *cfg = NULL;
        cleanup_free char *sj = NULL;
        const char *status;
        int rc = -1;

        if (moat_state_validate_id (id, err) < 0 || moat_state_lock (g->root, id, &lock, err) < 0)
                return -1;
        /* reload under the lock: a delete may have won the race */
        if (moat_state_load (g->root, id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, "created") != 0) {
                if (strcmp (status, "running") == 0 || strcmp (status, "paused") == 0)
                        moat_make_error (err, 0, "cannot start an already %s container", status);
                else if (strcmp (status, "stopped") == 0)
                        moat_make_error (err, 0, "cannot start a container that has stopped");
                else
                        moat_make_error (err, 0, "cannot start a container that is %s", status);
                goto out;
        }
        if (load_saved_config (g->root, id, &cfg, err) < 0)
                goto out;
        if (moat_agent_open (st->vsock_socket, AGENT_TIMEOUT_MS, &a, err) < 0) {
                moat_error_wrap (err, "connect to the agent");
                goto out;
        }
        moat_agent_set_hooks_time (a, moat_hooks_time_ms (cfg, OCI_HOOK_START_CONTAINER));
        if (moat_agent_start_container (a, id, err) < 0) {
                /* a failing startContainer hook: the process must not run
                 * and the container ends up stopped */
                cleanup_error moat_error_t e = NULL;
                if (moat_agent_signal (a, id, NULL, SIGKILL, true, &e) < 0)
                        moat_debug ("kill %s after the failed start: %s", id, e->msg);
                goto out;
        }
        free (st->status);
        st->status = xstrdup ("running");
        if (moat_state_save (g->root, st, err) < 0)
                goto out;
        sj = moat_state_to_oci_json (st, "running", 0);
        if (moat_hooks_run (cfg, OCI_HOOK_POSTSTART, sj, false, NULL, err) < 0) {
                /* runtime-spec 1.3: a failing poststart hook is an error
                 * and the container is stopped */
                cleanup_error moat_error_t e = NULL;
                if (moat_agent_signal (a, id, NULL, SIGKILL, true, &e) < 0)
                        moat_debug ("kill %s after the failed poststart hook: %s", id, e->msg);
                goto out;
        }
        rc = 0;
out:
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

int
moat_cmd_start (struct moat_global *g, int argc, char **argv)
{
        cleanup_error moat_error_t err = NULL;
        if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)) {
                printf ("Usage: moat start ID\n\nStart the process of a created container and run the poststart "
                        "hooks.\n");
                return 0;
        }
        if (argc != 2 || argv[1][0] == '-') {
                moat_cli_error ("start: expected exactly one container ID (usage: moat start ID)");
                return 1;
        }
        if (moat_cli_start (g, argv[1], &err) < 0) {
                moat_error_wrap (&err, "start %s", argv[1]);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* moat-agent --standalone BUNDLE [ID]: runs BUNDLE/config.json's container
 * right here (no VM, no vsock) with the agent's own code, stdio inherited.
 * Exits with the container's status (128+n when killed by signal n). For
 * debugging and for tests/integration/agent-standalone.sh. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

int
agent_standalone (const char *bundle, const char *id)
{
        cleanup_free char *path = xasprintf_r ("%s/config.json", bundle);
        cleanup_free char *json = NULL;
        cleanup_free char *default_id = NULL;
        cleanup_free char *abs_bundle = realpath (bundle, NULL);
        struct agent_container *c = NULL;
        struct agent_stdio stdio = {.fd = {0, 1, 2}};
        moat_error_t err = NULL;
        int tty = -1, status;
        bool started = true;

        if (abs_bundle == NULL) {
                agent_log ("bundle %s: %s", bundle, strerror (errno));
                return 125;
        }
        if (id == NULL)
                id = default_id = xasprintf_r ("standalone-%d", (int)getpid ());
        prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if (agent_reaper_start (&err) < 0 || read_file (path, &json, NULL, &err) < 0)
                goto fail;
        if (agent_container_create (id, json, abs_bundle, abs_bundle, NULL, &stdio, &c, &tty, &err) < 0)
                goto fail;
        if (tty >= 0) /* a terminal was not asked for: cannot happen */
                close (tty);
        agent_container_put (c); /* create's reference: nobody else here */
        if (agent_container_start (c, &err) < 0) {
                moat_error_print (&err, "moat-agent");
                started = false;
        }
        pthread_mutex_lock (&agent_lock);
        agent_process_wait_locked (c, c->init, -1);
        status = started ? agent_status_code (c->init->wait_status, NULL, NULL) : 125;
        agent_container_unlink (c);
        pthread_mutex_unlock (&agent_lock);
        if (agent_container_kill_all (c, SIGKILL, &err) < 0)
                moat_error_print (&err, "moat-agent");
        if (c->cgroup_path && agent_cgroup_destroy (c->cgroup_path, &err) < 0)
                moat_error_print (&err, "moat-agent");
        agent_container_free (c);
        return status;
fail:
        agent_log ("%s", err->msg);
        moat_error_release (&err);
        return 125;
}

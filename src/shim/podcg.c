/* SPDX-License-Identifier: Apache-2.0 */
/* The shim's own host cgroup. One shim serves a whole pod, so it goes
 * under the pod's cgroup_parent beside the pod's containers, as the VMM
 * does (in the sandbox container's cgroup): kubelet's pod cgroup, sized
 * with the RuntimeClass overhead, then accounts for everything the pod
 * runs on the host. The shim takes a cgroup of its own there,
 * <parent>/moat-shim-<sandbox id> (the sandbox container's cgroup is
 * removed when that container is deleted, while the shim lives on until
 * Shutdown), leaves it before it exits and removes it; `delete` removes
 * the one a killed shim left. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "moat/hostcgroup.h"
#include "moat/log.h"
#include "moat/state.h"
#include "moat/util.h"
#include "shim.h"
#include "shim_task.h"

char *
shim_pod_cgroup (const char *root, const char *id)
{
        cleanup_error moat_error_t e = NULL;
        struct moat_state *st = NULL;
        const char *type = NULL;
        char *path = NULL, *slash;

        if (moat_state_load (root, id, &st, &e) < 0)
                return NULL;
        for (size_t i = 0; i < st->n_annotations; i++)
                if (strcmp (st->annotation_keys[i], SHIM_CONTAINER_TYPE_ANNOTATION) == 0)
                        type = st->annotation_values[i];
        /* a pod's sandbox, whose cgroup has the pod's as its parent */
        if (type && strcmp (type, "sandbox") == 0 && st->cgroup && (slash = strrchr (st->cgroup, '/')) != NULL &&
            slash != st->cgroup)
                path = xasprintf_r ("%.*s/moat-shim-%s", (int)(slash - st->cgroup), st->cgroup, id);
        moat_state_free (st);
        return path;
}

void
shim_enter_pod_cgroup (struct shim *s, const char *id)
{
        cleanup_error moat_error_t e = NULL;
        char *path;
        pid_t pids[2] = {getpid (), 0};

        if (s->pod_cgroup)
                return;
        path = shim_pod_cgroup (s->root, id);
        if (path == NULL)
                return;
        if (moat_hostcg_enter (path, pids, &e) < 0) {
                moat_warn ("the shim stays in its cgroup: %s", e->msg);
                free (path);
                return;
        }
        moat_debug ("the shim is in host cgroup %s", path);
        s->pod_cgroup = path;
}

void
shim_leave_pod_cgroup (struct shim *s)
{
        cleanup_error moat_error_t e = NULL;
        cleanup_free char *path = steal_pointer (&s->pod_cgroup);

        if (path == NULL)
                return;
        /* the hierarchies' roots: the shim is about to exit */
        if (moat_hostcg_add ("/", getpid (), &e) < 0 || moat_hostcg_remove (path, 1000, &e) < 0)
                moat_warn ("leave host cgroup %s: %s", path, e->msg);
}

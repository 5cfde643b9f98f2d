/* SPDX-License-Identifier: Apache-2.0 */
/* The `delete` action: containerd runs it (cwd the bundle, 5 s) when a
 * shim's connection closed or could not be re-established, and reads a
 * containerd.task.v2.DeleteResponse from our stdout; stderr is logged as
 * cleanup warnings. It must work from the bundle alone: the shim that knew
 * the task is gone. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/mount.h>

#include "moat/container.h"
#include "moat/hostcgroup.h"
#include "moat/util.h"
#include "shim.h"
#include "shim_task.h"
#include "task.pb-c.h"

int
shim_delete (const struct shim_opts *o, moat_error_t *err)
{
        Containerd__Task__V2__DeleteResponse r = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
        Containerd__Task__V2__Timestamp ts = CONTAINERD__TASK__V2__TIMESTAMP__INIT;
        struct timespec now;
        cleanup_free uint8_t *buf = NULL;
        size_t n;

        char cwd[4096];
        const char *bundle = o->bundle;
        struct moat_context ctx = {.debug = o->debug};
        cleanup_free char *root = xasprintf_r ("%s/%s", SHIM_STATE_ROOT, *o->namespace_ ? o->namespace_ : "default");
        cleanup_free char *rootfs = NULL;
        cleanup_error moat_error_t e = NULL;
        cleanup_error moat_error_t e2 = NULL;
        cleanup_free char *cg = NULL;

        if (bundle == NULL && getcwd (cwd, sizeof cwd))
                bundle = cwd;
        /* whatever the dead shim's task left: its VM, share, host cgroup
         * and state (an unknown id is no error), then the rootfs it
         * mounted. Problems go to stderr, which containerd logs. */
        ctx.root = root;
        cg = shim_pod_cgroup (root, o->id); /* read before the state goes */
        if (moat_container_delete (&ctx, o->id, true, &e) < 0)
                fprintf (stderr, "%s: delete %s: %s\n", SHIM_NAME, o->id, e->msg);
        rmdir (root); /* empty once the namespace has no task left */
        /* the cgroup a killed shim of the pod was in (podcg.c) */
        if (cg && moat_hostcg_remove (cg, 500, &e2) < 0)
                fprintf (stderr, "%s: remove %s: %s\n", SHIM_NAME, cg, e2->msg);
        if (bundle) {
                rootfs = xasprintf_r ("%s/rootfs", bundle);
                while (umount2 (rootfs, MNT_DETACH) == 0) {
                }
                shim_remove_stale_socket (bundle);
        }
        /* containerd's convention for a task whose shim died: killed */
        clock_gettime (CLOCK_REALTIME, &now);
        ts.seconds = now.tv_sec;
        ts.nanos = now.tv_nsec;
        r.pid = 0;
        r.exit_status = 128 + 9;
        r.exited_at = &ts;
        n = containerd__task__v2__delete_response__get_packed_size (&r);
        buf = xmalloc (n ? n : 1);
        containerd__task__v2__delete_response__pack (&r, buf);
        if (write_all (STDOUT_FILENO, buf, n) != (ssize_t)n)
                return moat_make_error (err, errno, "write the delete response");
        return 0;
}

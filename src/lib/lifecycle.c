/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/agent_client.h"
#include "moat/hostcgroup.h"
#include "moat/lifecycle.h"
#include "moat/log.h"
#include "moat/state.h"
#include "moat/util.h"

#define VM_POWEROFF_TIMEOUT_MS 5000
#define STANDIN_EXIT_TIMEOUT_MS 2000

static bool
wait_gone (pid_t pid, unsigned long long start, int timeout_ms)
{
        int64_t deadline = now_ms () + timeout_ms;
        for (;;) {
                int st;
                /* reap it if it happens to be ours (run --keep, tests) */
                waitpid (pid, &st, WNOHANG);
                if (!moat_pid_alive (pid, start))
                        return true;
                if (now_ms () >= deadline)
                        return false;
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
}

void
moat_stop_process (pid_t pid, unsigned long long start, int sig, int timeout_ms)
{
        if (!moat_pid_alive (pid, start))
                return;
        if (kill (pid, sig) < 0)
                return;
        if (wait_gone (pid, start, timeout_ms))
                return;
        if (sig != SIGKILL && kill (pid, SIGKILL) < 0)
                return;
        wait_gone (pid, start, 5000);
}

int
moat_sandbox_teardown (const char *root, const struct moat_state *st, moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, st->id);
        cleanup_free char *shared = xasprintf_r ("%s/shared", dir);
        cleanup_error moat_error_t e = NULL;

        /* 1. the VM: ask the guest to power off, else kill the VMM */
        if (st->vmm_pid > 0 && moat_pid_alive (st->vmm_pid, st->vmm_start)) {
                struct moat_agent *a = NULL;
                bool asked = false;
                if (st->vsock_socket && moat_agent_open (st->vsock_socket, 2000, &a, &e) == 0) {
                        /* delete --force: kill the container first, so that its
                         * stand-in reports 137 rather than a lost VM */
                        if (strcmp (moat_state_live_status (st), "stopped") != 0) {
                                if (moat_agent_signal (a, st->id, NULL, SIGKILL, true, &e) < 0) {
                                        moat_debug ("%s: SIGKILL: %s", st->id, e->msg);
                                        moat_error_release (&e);
                                } else if (st->pid > 0 && st->pid != st->vmm_pid && st->pid != getpid ()) {
                                        wait_gone (st->pid, st->pid_start, STANDIN_EXIT_TIMEOUT_MS);
                                }
                        }
                        if (moat_agent_destroy_sandbox (a, &e) < 0) {
                                moat_debug ("%s: DestroySandbox: %s", st->id, e->msg);
                                moat_error_release (&e);
                        }
                        asked = true;
                        moat_agent_free (a);
                } else if (e) {
                        moat_debug ("%s: agent: %s", st->id, e->msg);
                        moat_error_release (&e);
                }
                if (!asked || !wait_gone (st->vmm_pid, st->vmm_start, VM_POWEROFF_TIMEOUT_MS))
                        moat_stop_process (st->vmm_pid, st->vmm_start, SIGKILL, 5000);
        }
        /* 2. the stand-in (its process is gone with the VM) and moat-vsock */
        if (st->pid > 0 && st->pid != st->vmm_pid && st->pid != getpid ())
                moat_stop_process (st->pid, st->pid_start, SIGKILL, 2000);
        if (st->vsockd_pid > 0)
                moat_stop_process (st->vsockd_pid, st->vsockd_start, SIGTERM, 2000);
        /* 3. the share: one private mount with every staged bind below it */
        for (int i = 0; i < 64; i++)
                if (umount2 (shared, MNT_DETACH) < 0) {
                        if (errno != EINVAL && errno != ENOENT && *err == NULL)
                                moat_make_error (err, errno, "unmount %s", shared);
                        break;
                }
        /* 4. the host cgroup */
        if (st->cgroup && moat_hostcg_remove (st->cgroup, 2000, &e) < 0) {
                if (*err == NULL) {
                        *err = e;
                        e = NULL;
                }
        }
        return *err ? -1 : 0;
}

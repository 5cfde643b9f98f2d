/* SPDX-License-Identifier: Apache-2.0 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "moat/agent_client.h"
#include "moat/hostcgroup.h"
#include "moat/lifecycle.h"
#include "moat/log.h"
#include "moat/oci.h"
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

/* The processes a sandbox runs on the host outside the state's pids: a
 * create killed between starting moat-vsock or the VMM and saving their
 * pids leaves them unrecorded. Both run in the state directory (their
 * working directory) and name files in it on their command line; a
 * process that does both is the sandbox's, whoever else has a shell there. */
static void
stop_strays (const char *dir)
{
        char real[PATH_MAX];
        struct stat want;
        DIR *d;
        struct dirent *de;

        if (realpath (dir, real) == NULL || stat (real, &want) < 0)
                return;
        d = opendir ("/proc");
        if (d == NULL)
                return;
        while ((de = readdir (d)) != NULL) {
                char path[64];
                cleanup_free char *cmd = NULL;
                cleanup_error moat_error_t e = NULL;
                struct stat cwd;
                size_t len = 0;
                bool named = false;
                pid_t pid = (pid_t)atoi (de->d_name);
                if (pid <= 0 || pid == getpid ())
                        continue;
                snprintf (path, sizeof path, "/proc/%d/cwd", (int)pid);
                if (stat (path, &cwd) < 0 || cwd.st_dev != want.st_dev || cwd.st_ino != want.st_ino)
                        continue;
                snprintf (path, sizeof path, "/proc/%d/cmdline", (int)pid);
                if (read_file (path, &cmd, &len, &e) < 0)
                        continue;
                for (size_t i = 0; i < len && !named; i += strlen (cmd + i) + 1)
                        named = strstr (cmd + i, real) != NULL || strstr (cmd + i, dir) != NULL;
                if (!named)
                        continue;
                moat_debug ("%s: stopping unrecorded process %d", dir, (int)pid);
                moat_stop_process (pid, moat_pid_start_time (pid), SIGKILL, 5000);
        }
        closedir (d);
}

/* The host cgroup of a create killed before it saved the cgroup's path in
 * the state: the path its saved config names (create makes it only after
 * saving the config). Only an empty cgroup goes (rmdir). */
static void
remove_unrecorded_cgroup (const char *root, const char *dir, const struct moat_state *st)
{
        cleanup_oci_config struct oci_config *cfg = NULL;
        cleanup_error moat_error_t e = NULL;
        const char *cp;
        char *paths[2] = {NULL, NULL};

        if (st->cgroup || st->status == NULL || strcmp (st->status, "creating") != 0)
                return;
        if (oci_config_load (dir, &cfg, &e) < 0)
                return; /* create died before it saved the config: no cgroup yet */
        cp = cfg->linux_ ? cfg->linux_->cgroups_path : NULL;
        if (moat_hostcg_resolve (cp, root, st->id, false, &paths[0], &e) < 0)
                return; /* create refused it before making anything */
        /* no cgroupsPath: the default depends on --systemd-cgroup */
        if (cp == NULL || *cp == '\0')
                moat_hostcg_resolve (NULL, root, st->id, true, &paths[1], &e);
        for (int i = 0; i < 2; i++) {
                cleanup_error moat_error_t e2 = NULL;
                if (paths[i] && moat_hostcg_remove (paths[i], 200, &e2) < 0)
                        moat_debug ("%s: cgroup %s: %s", st->id, paths[i], e2->msg);
                free (paths[i]);
        }
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
        /* 2. the stand-in (its process is gone with the VM: it exits on its
         * own once it has drained the output and taken its tc redirect
         * off the network interface; killed if it does not) and moat-vsock */
        if (st->pid > 0 && st->pid != st->vmm_pid && st->pid != getpid () &&
            !wait_gone (st->pid, st->pid_start, STANDIN_EXIT_TIMEOUT_MS + 1000))
                moat_stop_process (st->pid, st->pid_start, SIGKILL, 2000);
        if (st->vsockd_pid > 0)
                moat_stop_process (st->vsockd_pid, st->vsockd_start, SIGTERM, 2000);
        stop_strays (dir);
        /* 3. the share: one private mount with every staged bind below it */
        for (int i = 0; i < 64; i++)
                if (umount2 (shared, MNT_DETACH) < 0) {
                        if (errno != EINVAL && errno != ENOENT && *err == NULL)
                                moat_make_error (err, errno, "unmount %s", shared);
                        break;
                }
        /* 4. the host cgroup */
        remove_unrecorded_cgroup (root, dir, st);
        if (st->cgroup && moat_hostcg_remove (st->cgroup, 2000, &e) < 0) {
                if (*err == NULL) {
                        *err = e;
                        e = NULL;
                }
        }
        return *err ? -1 : 0;
}

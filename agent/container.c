/* SPDX-License-Identifier: Apache-2.0 */
/* Container lifecycle on top of spawn.c: create (held init), start, exec,
 * kill. The table itself is in process.c. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "agent.h"
#include "moat/util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static bool
valid_id (const char *id)
{
        if (id == NULL || *id == '\0' || strlen (id) > 1024 || strcmp (id, ".") == 0 || strcmp (id, "..") == 0)
                return false;
        for (const char *s = id; *s; s++)
                if (*s == '/' || *s <= ' ')
                        return false;
        return true;
}

int
agent_container_create (const char *id, const char *config_json, const char *bundle_dir, struct agent_stdio *stdio,
                        struct agent_container **out, int *tty_master, moat_error_t *err)
{
        struct agent_container *c = NULL;
        struct oci_config *cfg = NULL;
        struct spawn_request req = {0};
        struct statfs sfs;
        struct stat st;
        pid_t pid;

        *tty_master = -1;
        if (!valid_id (id))
                return moat_make_error (err, EINVAL, "invalid container id \"%s\"", id ? id : "");
        if (oci_config_parse (config_json, "config.json", &cfg, err) < 0)
                return -1;
        if (cfg->process == NULL) {
                oci_config_free (cfg);
                return moat_make_error (err, EINVAL, "config.json: process is required");
        }
        if (cfg->linux_ && agent_seccomp_check (cfg->linux_->seccomp, err) < 0) {
                oci_config_free (cfg);
                return moat_error_wrap (err, "create %s", id);
        }
        c = xzalloc (sizeof *c);
        c->id = xstrdup (id);
        c->config = cfg;
        c->sync_fd = -1;
        c->state = CONTAINER_CREATED;
        if (cfg->root_path[0] == '/' || bundle_dir == NULL)
                c->rootfs = xstrdup (cfg->root_path);
        else
                c->rootfs = xasprintf_r ("%s/%s", bundle_dir, cfg->root_path);
        if (stat (c->rootfs, &st) < 0 || !S_ISDIR (st.st_mode)) {
                moat_make_error (err, S_ISDIR (st.st_mode) ? errno : ENOTDIR, "root.path %s", c->rootfs);
                agent_container_free (c);
                return -1;
        }
        if (statfs (agent_cgroup_root (), &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
                agent_log ("%s is not a cgroup2 hierarchy: container %s runs without a cgroup (set "
                           "MOAT_AGENT_CGROUP_ROOT)",
                           agent_cgroup_root (), id);
        else if (agent_cgroup_create (id, cfg, &c->cgroup_path, err) < 0) {
                agent_container_free (c);
                return moat_error_wrap (err, "create %s", id);
        }

        pthread_mutex_lock (&agent_lock);
        if (agent_container_find (id)) {
                pthread_mutex_unlock (&agent_lock);
                if (c->cgroup_path)
                        rmdir (c->cgroup_path);
                agent_container_free (c);
                return moat_make_error (err, EEXIST, "container %s already exists", id);
        }
        agent_container_add (c);
        pthread_mutex_unlock (&agent_lock);

        req.config = cfg;
        req.process = cfg->process;
        req.rootfs = c->rootfs;
        req.cgroup_path = c->cgroup_path;
        req.bundle_dir = bundle_dir;
        req.stdio = stdio;
        req.hold = true;
        if (agent_spawn (&req, c, "-", &pid, &c->sync_fd, tty_master, err) < 0) {
                moat_error_t e2 = NULL;
                pthread_mutex_lock (&agent_lock);
                agent_container_unlink (c);
                pthread_mutex_unlock (&agent_lock);
                if (c->cgroup_path) {
                        agent_cgroup_kill (c->cgroup_path, SIGKILL, &e2);
                        moat_error_release (&e2);
                        if (agent_cgroup_destroy (c->cgroup_path, &e2) < 0) {
                                agent_log ("%s", e2->msg);
                                moat_error_release (&e2);
                        }
                }
                agent_container_free (c);
                return moat_error_wrap (err, "create %s", id);
        }
        agent_log ("container %s created, init pid %d", id, pid);
        *out = c;
        return 0;
}

int
agent_container_start (struct agent_container *c, moat_error_t *err)
{
        int fd;

        pthread_mutex_lock (&agent_lock);
        if (c->state != CONTAINER_CREATED || c->sync_fd < 0) {
                enum container_state st = c->state;
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, EBUSY, "container %s is %s, not created", c->id,
                                        st == CONTAINER_RUNNING ? "running" : "stopped");
        }
        fd = steal_fd (&c->sync_fd);
        c->state = CONTAINER_RUNNING;
        pthread_mutex_unlock (&agent_lock);
        if (agent_spawn_release (fd, err) < 0)
                return moat_error_wrap (err, "start %s", c->id);
        agent_debug ("container %s started", c->id);
        return 0;
}

int
agent_container_exec (struct agent_container *c, const char *exec_id, const char *process_json,
                      struct agent_stdio *stdio, pid_t *pid_out, int *tty_master, moat_error_t *err)
{
        struct oci_process *proc = NULL;
        struct spawn_request req = {0};
        pid_t join;
        int r;

        *tty_master = -1;
        if (!valid_id (exec_id) || strcmp (exec_id, "-") == 0)
                return moat_make_error (err, EINVAL, "invalid exec id \"%s\"", exec_id ? exec_id : "");
        pthread_mutex_lock (&agent_lock);
        if (c->init == NULL || c->init->exited) {
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, EBUSY, "container %s is not running", c->id);
        }
        if (agent_process_find (c, exec_id) != NULL) {
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, EEXIST, "exec %s already exists in container %s", exec_id, c->id);
        }
        join = c->init->pid;
        pthread_mutex_unlock (&agent_lock);

        if (oci_process_parse (process_json, "process", &proc, err) < 0)
                return moat_error_wrap (err, "exec %s in %s", exec_id, c->id);
        req.config = c->config;
        req.process = proc;
        req.rootfs = c->rootfs;
        req.cgroup_path = c->cgroup_path;
        req.join_pid = join;
        req.stdio = stdio;
        req.hold = false;
        r = agent_spawn (&req, c, exec_id, pid_out, NULL, tty_master, err);
        oci_process_free (proc);
        if (r < 0)
                return moat_error_wrap (err, "exec %s in %s", exec_id, c->id);
        agent_debug ("exec %s in %s: pid %d", exec_id, c->id, *pid_out);
        return 0;
}

int
agent_container_kill_all (struct agent_container *c, int sig, moat_error_t *err)
{
        pthread_mutex_lock (&agent_lock);
        if (c->init && !c->init->exited)
                kill (c->init->pid, sig);
        for (struct agent_process *p = c->execs; p; p = p->next)
                if (!p->exited)
                        kill (p->pid, sig);
        pthread_mutex_unlock (&agent_lock);
        if (c->cgroup_path && agent_cgroup_kill (c->cgroup_path, sig, err) < 0 && (*err)->errno_ != ENOENT)
                return -1;
        moat_error_release (err);
        return 0;
}

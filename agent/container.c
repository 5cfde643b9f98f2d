/* SPDX-License-Identifier: Apache-2.0 */ /* Container lifecycle on top of spawn.c: create (held init), start, exec,
                                           * kill. The table itself is in process.c. */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* process.rlimits: one entry per type (config.md: duplicates MUST be an error). */
static int
check_rlimits (struct oci_process *p, const char *what, moat_error_t *err)
{
        for (size_t i = 0; i < p->n_rlimits; i++)
                for (size_t j = 0; j < i; j++)
                        if (p->rlimits[i].resource == p->rlimits[j].resource)
                                return moat_make_error (err, EINVAL,
                                                        "%s.rlimits[%zu]: %s is already set by rlimits[%zu]", what, i,
                                                        p->rlimits[i].type, j);
        return 0;
}

/* linux.namespaces: one entry per type, and a path must name a namespace of
 * that type here, in the guest. Host paths (/proc/<pid>/ns/net,
 * /run/netns/NAME from podman or docker) do not exist in the VM: the host
 * must not send them (or must send them in a form the guest knows). */
static int
check_namespaces (struct oci_linux *l, moat_error_t *err)
{
        for (size_t i = 0; l && i < l->n_namespaces; i++) {
                struct oci_namespace *ns = &l->namespaces[i];
                cleanup_close int fd = -1;
                int type;
                for (size_t j = 0; j < i; j++)
                        if (l->namespaces[j].clone_flag == ns->clone_flag)
                                return moat_make_error (err, EINVAL,
                                                        "linux.namespaces[%zu]: type \"%s\" is already listed at [%zu]",
                                                        i, ns->type_name, j);
                if (ns->path == NULL || *ns->path == '\0')
                        continue;
                fd = open (ns->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0 && errno == ENOENT)
                        return moat_make_error (err, ENOENT,
                                                "linux.namespaces[%zu]: %s namespace path %s does not exist in the "
                                                "guest VM (a host namespace cannot be joined from the VM)",
                                                i, ns->type_name, ns->path);
                if (fd < 0)
                        return moat_make_error (err, errno, "linux.namespaces[%zu]: open %s namespace path %s", i,
                                                ns->type_name, ns->path);
                type = ioctl (fd, NS_GET_NSTYPE);
                if (type < 0)
                        return moat_make_error (err, errno == ENOTTY ? EINVAL : errno,
                                                "linux.namespaces[%zu]: %s is not a namespace", i, ns->path);
                if (type != ns->clone_flag)
                        return moat_make_error (err, EINVAL, "linux.namespaces[%zu]: %s is not a namespace of type %s",
                                                i, ns->path, ns->type_name);
        }
        return 0;
}

/* A container of a pod: each namespace type in join->types joins the
 * namespace of the init of container join->sandbox_id, which must be
 * created or running here: its entry in linux.namespaces gets that init's
 * /proc path (joined by the spawn like any namespace path). The pid is
 * read under the lock while the init is known to be alive; the create
 * checks again once the container exists (agent_pod_join_valid). */
static int
pod_join_namespaces (struct oci_config *cfg, struct agent_pod_join *join, moat_error_t *err)
{
        static const struct {
                const char *oci, *proc;
        } names[] = {{"network", "net"}, {"ipc", "ipc"}, {"uts", "uts"}, {"pid", "pid"}};
        struct agent_container *sc;
        pid_t pid = 0;

        if (!valid_id (join->sandbox_id))
                return moat_make_error (err, EINVAL, "invalid sandbox id \"%s\"", join->sandbox_id);
        pthread_mutex_lock (&agent_lock);
        sc = agent_container_find (join->sandbox_id);
        if (sc && sc->init && !sc->init->exited)
                pid = sc->init->pid;
        pthread_mutex_unlock (&agent_lock);
        if (pid <= 0)
                return moat_make_error (err, ESRCH, "sandbox container %s is not running in this VM", join->sandbox_id);
        for (size_t i = 0; i < join->n_types; i++) {
                const char *proc = NULL;
                struct oci_namespace *ns = NULL;
                for (size_t k = 0; k < ARRAY_SIZE (names); k++)
                        if (strcmp (join->types[i], names[k].oci) == 0)
                                proc = names[k].proc;
                if (proc == NULL)
                        return moat_make_error (err, EINVAL, "cannot join the sandbox's %s namespace", join->types[i]);
                for (size_t j = 0; cfg->linux_ && j < cfg->linux_->n_namespaces; j++)
                        if (strcmp (cfg->linux_->namespaces[j].type_name, join->types[i]) == 0)
                                ns = &cfg->linux_->namespaces[j];
                if (ns == NULL)
                        return moat_make_error (err, EINVAL, "linux.namespaces has no %s entry to join",
                                                join->types[i]);
                free (ns->path);
                ns->path = xasprintf_r ("/proc/%d/ns/%s", (int)pid, proc);
        }
        join->sandbox_pid = pid;
        return 0;
}

/* The sandbox's init is still the process whose namespaces were joined. */
bool
agent_pod_join_valid (const struct agent_pod_join *join)
{
        struct agent_container *sc;
        bool ok;

        if (join == NULL || join->sandbox_id == NULL || *join->sandbox_id == '\0')
                return true;
        pthread_mutex_lock (&agent_lock);
        sc = agent_container_find (join->sandbox_id);
        ok = sc && sc->init && !sc->init->exited && sc->init->pid == join->sandbox_pid;
        pthread_mutex_unlock (&agent_lock);
        return ok;
}

/* Drops a reserved entry whose create failed: nobody else can hold it
 * (lookups skip creating entries, RemoveContainer refuses them). */
static void
abandon (struct agent_container *c)
{
        moat_error_t e = NULL;

        pthread_mutex_lock (&agent_lock);
        agent_container_unlink (c);
        pthread_mutex_unlock (&agent_lock);
        if (c->cgroup_path) {
                agent_cgroup_kill (c->cgroup_path, SIGKILL, &e);
                moat_error_release (&e);
                if (agent_cgroup_destroy (c->cgroup_path, &e) < 0) {
                        agent_log ("%s", e->msg);
                        moat_error_release (&e);
                }
        }
        agent_container_free (c);
}

int
agent_container_create (const char *id, const char *config_json, const char *bundle_dir, const char *host_bundle,
                        struct agent_pod_join *join, struct agent_stdio *stdio, struct agent_container **out,
                        int *tty_master, moat_error_t *err)
{
        bool pod = join && join->sandbox_id && *join->sandbox_id;
        struct agent_container *c = NULL, *old;
        struct oci_config *cfg = NULL;
        struct spawn_request req = {0};
        struct statfs sfs;
        struct stat st;
        pid_t pid;
        int e, sync_fd = -1;

        *tty_master = -1;
        if (!valid_id (id))
                return moat_make_error (err, EINVAL, "invalid container id \"%s\"", id ? id : "");
        if (oci_config_parse (config_json, "config.json", &cfg, err) < 0)
                return -1;
        if (cfg->process == NULL) {
                oci_config_free (cfg);
                return moat_make_error (err, EINVAL, "config.json: process is required");
        }
        if (pod && pod_join_namespaces (cfg, join, err) < 0) {
                oci_config_free (cfg);
                return moat_error_wrap (err, "create %s", id);
        }
        if (check_rlimits (cfg->process, "process", err) < 0 || check_namespaces (cfg->linux_, err) < 0 ||
            (cfg->linux_ && agent_seccomp_check (cfg->linux_->seccomp, err) < 0)) {
                oci_config_free (cfg);
                return moat_error_wrap (err, "create %s", id);
        }
        c = xzalloc (sizeof *c);
        c->id = xstrdup (id);
        c->config = cfg;
        c->sync_fd = -1;
        c->state = CONTAINER_CREATED;
        c->creating = true;
        c->bundle = xstrdup (host_bundle && *host_bundle ? host_bundle : bundle_dir ? bundle_dir : "");
        if (cfg->root_path[0] == '/' || bundle_dir == NULL)
                c->rootfs = xstrdup (cfg->root_path);
        else
                c->rootfs = xasprintf_r ("%s/%s", bundle_dir, cfg->root_path);

        /* Reserve the id before touching anything named after it (the
         * cgroup): a second create of a live id must not reuse its cgroup. */
        pthread_mutex_lock (&agent_lock);
        old = agent_container_find_any (id);
        if (old) {
                bool creating = old->creating, removing = old->removing;
                pthread_mutex_unlock (&agent_lock);
                agent_container_free (c);
                if (creating)
                        return moat_make_error (err, EEXIST, "container %s is already being created", id);
                if (removing)
                        return moat_make_error (err, EEXIST, "container %s already exists (it is being removed)", id);
                return moat_make_error (err, EEXIST, "container %s already exists", id);
        }
        agent_container_add (c);
        pthread_mutex_unlock (&agent_lock);

        /* save errno first: st is not filled in when stat fails */
        e = stat (c->rootfs, &st) < 0 ? errno : S_ISDIR (st.st_mode) ? 0 : ENOTDIR;
        if (e != 0) {
                moat_make_error (err, e, "root.path %s", c->rootfs);
                abandon (c);
                return -1;
        }
        if (statfs (agent_cgroup_root (), &sfs) < 0 || sfs.f_type != CGROUP2_SUPER_MAGIC)
                agent_log ("%s is not a cgroup2 hierarchy: container %s runs without a cgroup (set "
                           "MOAT_AGENT_CGROUP_ROOT)",
                           agent_cgroup_root (), id);
        else if (agent_cgroup_create (id, cfg, &c->cgroup_path, err) < 0) {
                abandon (c);
                return moat_error_wrap (err, "create %s", id);
        }

        req.config = cfg;
        req.process = cfg->process;
        req.rootfs = c->rootfs;
        req.cgroup_path = c->cgroup_path;
        req.bundle_dir = bundle_dir;
        req.stdio = stdio;
        req.hold = true;
        req.container_id = c->id;
        req.host_bundle = c->bundle;
        if (agent_spawn (&req, c, "-", &pid, &sync_fd, tty_master, err) < 0) {
                abandon (c);
                return moat_error_wrap (err, "create %s", id);
        }
        pthread_mutex_lock (&agent_reap_lock);
        pthread_mutex_lock (&agent_lock);
        if (c->init)
                agent_process_publish_locked (c->init);
        /* (the reaper closes c->sync_fd when the init exits: set it under the lock) */
        if (c->init && !c->init->exited)
                c->sync_fd = sync_fd;
        else
                close (sync_fd);
        c->creating = false;
        c->refs++; /* the caller's */
        pthread_mutex_unlock (&agent_lock);
        pthread_mutex_unlock (&agent_reap_lock);
        agent_log ("container %s created, init pid %d", id, pid);
        *out = c;
        return 0;
}

/* A startContainer hook failed: the container is stopped (runtime.md,
 * Lifecycle step 7) before StartContainer returns the error. */
static void
stop_held (struct agent_container *c)
{
        struct agent_process *init;
        int fd;

        pthread_mutex_lock (&agent_lock);
        fd = steal_fd (&c->sync_fd);
        c->starting = false;
        init = c->init;
        pthread_mutex_unlock (&agent_lock);
        if (init)
                agent_process_kill (init, SIGKILL);
        if (fd >= 0)
                close (fd); /* the held init sees EOF and gives up, too */
        pthread_mutex_lock (&agent_lock);
        if (init)
                agent_process_wait_locked (c, init, 5000);
        pthread_mutex_unlock (&agent_lock);
}

int
agent_container_start (struct agent_container *c, moat_error_t *err)
{
        int fd;

        pthread_mutex_lock (&agent_lock);
        if (c->state != CONTAINER_CREATED || c->sync_fd < 0 || c->starting) {
                enum container_state st = c->state;
                bool starting = c->starting;
                pthread_mutex_unlock (&agent_lock);
                if (starting)
                        return moat_make_error (err, EBUSY, "container %s is already being started", c->id);
                return moat_make_error (err, EBUSY, "container %s is %s, not created", c->id,
                                        st == CONTAINER_RUNNING ? "running" : "stopped");
        }
        c->starting = true;
        pthread_mutex_unlock (&agent_lock);

        if (agent_hooks_run_in_container (c, OCI_HOOK_START_CONTAINER, err) < 0) {
                stop_held (c);
                return moat_error_wrap (err, "start %s", c->id);
        }

        pthread_mutex_lock (&agent_lock);
        c->starting = false;
        if (c->sync_fd < 0) { /* killed while the hooks ran */
                pthread_mutex_unlock (&agent_lock);
                return moat_make_error (err, ESRCH, "start %s: the container process is gone", c->id);
        }
        fd = steal_fd (&c->sync_fd);
        c->state = CONTAINER_RUNNING;
        pthread_mutex_unlock (&agent_lock);
        if (agent_spawn_release (fd, err) < 0)
                return moat_error_wrap (err, "start %s", c->id);
        agent_debug ("container %s started", c->id);
        return 0;
}

/* Removes entry p from c->execs and frees it; agent_lock held, p unpublished. */
static void
drop_exec_locked (struct agent_container *c, struct agent_process *p)
{
        for (struct agent_process **pp = &c->execs; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        agent_process_free (p);
                        return;
                }
}

int
agent_container_exec (struct agent_container *c, const char *exec_id, const char *process_json,
                      struct agent_stdio *stdio, pid_t *pid_out, int *tty_master, moat_error_t *err)
{
        struct oci_process *proc = NULL;
        struct spawn_request req = {0};
        struct agent_process *slot, *p = NULL;
        const char *why = NULL;
        pid_t join;
        int r;

        *tty_master = -1;
        if (!valid_id (exec_id) || strcmp (exec_id, "-") == 0)
                return moat_make_error (err, EINVAL, "invalid exec id \"%s\"", exec_id ? exec_id : "");
        if (oci_process_parse (process_json, "process", &proc, err) < 0 || check_rlimits (proc, "process", err) < 0) {
                oci_process_free (proc);
                return moat_error_wrap (err, "exec %s in %s", exec_id, c->id);
        }
        pthread_mutex_lock (&agent_lock);
        if (c->removing)
                why = "is being removed";
        else if (c->init == NULL || c->init->exited)
                why = "is not running";
        else if (c->paused)
                why = "is paused";
        if (why) {
                pthread_mutex_unlock (&agent_lock);
                oci_process_free (proc);
                return moat_make_error (err, EBUSY, "container %s %s", c->id, why);
        }
        if (agent_process_find (c, exec_id) != NULL) {
                pthread_mutex_unlock (&agent_lock);
                oci_process_free (proc);
                return moat_make_error (err, EEXIST, "exec %s already exists in container %s", exec_id, c->id);
        }
        /* Hold the exec id while we spawn (a concurrent ExecProcess with the
         * same id sees it): an unpublished entry without a pid. */
        slot = xzalloc (sizeof *slot);
        slot->exec_id = xstrdup (exec_id);
        slot->tty_master = slot->tty_conn = slot->stdin_fd = -1;
        slot->next = c->execs;
        c->execs = slot;
        join = c->init->pid;
        pthread_mutex_unlock (&agent_lock);

        req.config = c->config;
        req.process = proc;
        req.rootfs = c->rootfs;
        req.cgroup_path = c->cgroup_path;
        req.join_pid = join;
        req.stdio = stdio;
        req.hold = false;
        r = agent_spawn (&req, c, exec_id, pid_out, NULL, tty_master, err);
        oci_process_free (proc);

        pthread_mutex_lock (&agent_reap_lock);
        pthread_mutex_lock (&agent_lock);
        drop_exec_locked (c, slot);
        if (r == 0) {
                for (p = c->execs; p; p = p->next)
                        if (p->pid == *pid_out && !p->ready)
                                break;
                /* The process joined the namespaces of pid `join`. If the init
                 * is reaped by now, that pid may have named another process
                 * by then: never let such an exec run on. (In a pid namespace
                 * the kernel kills it with the init anyway.) */
                if (p == NULL || c->removing || c->init == NULL || c->init->exited) {
                        if (p) {
                                agent_process_signal_locked (p, SIGKILL); /* unreaped: under agent_reap_lock */
                                drop_exec_locked (c, p);
                        }
                        r = moat_make_error (err, ESRCH, "container %s stopped during the exec", c->id);
                } else
                        agent_process_publish_locked (p);
        }
        pthread_mutex_unlock (&agent_lock);
        pthread_mutex_unlock (&agent_reap_lock);
        if (r < 0) {
                if (*tty_master >= 0)
                        close (*tty_master);
                *tty_master = -1;
                return moat_error_wrap (err, "exec %s in %s", exec_id, c->id);
        }
        agent_debug ("exec %s in %s: pid %d", exec_id, c->id, *pid_out);
        return 0;
}

int
agent_container_kill_all (struct agent_container *c, int sig, moat_error_t *err)
{
        /* Entries without a pidfd (hooks, processes still being set up) are
         * signalled by pid, which is safe only under agent_reap_lock. A
         * spawner may hold that one for a long time: do not wait for it (the
         * cgroup kill below reaches those processes too). */
        bool reap_locked = pthread_mutex_trylock (&agent_reap_lock) == 0;

        pthread_mutex_lock (&agent_lock);
        if (c->init && (reap_locked || (c->init->ready && c->init->pidfd >= 0)))
                agent_process_signal_locked (c->init, sig);
        for (struct agent_process *p = c->execs; p; p = p->next)
                if (reap_locked || (p->ready && p->pidfd >= 0))
                        agent_process_signal_locked (p, sig);
        pthread_mutex_unlock (&agent_lock);
        if (reap_locked)
                pthread_mutex_unlock (&agent_reap_lock);
        if (c->cgroup_path && agent_cgroup_kill (c->cgroup_path, sig, err) < 0 && (*err)->errno_ != ENOENT)
                return -1;
        moat_error_release (err);
        return 0;
}

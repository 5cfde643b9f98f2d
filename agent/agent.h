/* SPDX-License-Identifier: Apache-2.0 */
/* moat-agent internals: the guest's PID 1, which serves the agent API and
 * creates the containers. Shared by the agent sources only. */
#ifndef MOAT_AGENT_H
#define MOAT_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "moat/agent_proto.h"
#include "moat/error.h"
#include "moat/oci.h"

#define AGENT_STDIO_WAIT_MS 10000

/* --- log.c: "moat-agent: ..." lines on stderr (the console in the guest) --- */
extern int agent_debug_enabled;
void agent_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void agent_debug (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* --- process table (process.c) ---
 * Every container process the agent started is in the table. One reaper
 * thread collects every child (PID 1 duty) with waitpid(-1) and records the
 * status of the processes it knows. Spawners hold the reap lock from fork
 * until the new pid is registered, so a process can never be reaped before
 * the table knows it. */
enum container_state { CONTAINER_CREATED, CONTAINER_RUNNING, CONTAINER_STOPPED };

struct agent_process {
        struct agent_process *next;
        char *exec_id; /* "-" for the container's init */
        pid_t pid;
        bool exited;
        int wait_status; /* raw waitpid status */
        int tty_master;  /* -1 without a terminal */
        int tty_conn;    /* our copy of the "tty" connection (the relay has its own) */
        int stdin_fd;    /* our copy of the stdin connection (CloseStdin), -1 */
        /* Published (agent_process_publish_locked) once its setup succeeded:
         * only then do the API handlers see it (agent_process_get), and from
         * then on only agent_container_free frees it. spawn.c's entries start
         * unpublished (zeroed). */
        bool ready;
        int pidfd; /* when ready: a pidfd for signals (no pid reuse race) until reaped, or -1 */
};

struct agent_container {
        struct agent_container *next;
        char *id;
        struct oci_config *config;
        char *rootfs;      /* absolute path of the rootfs */
        char *cgroup_path; /* absolute cgroupfs directory, NULL: none */
        enum container_state state;
        bool paused;
        bool removing; /* invisible to lookups, still reaped */
        bool starting; /* StartContainer is running the startContainer hooks */
        bool creating; /* CreateContainer is still setting it up: invisible to lookups, not removable */
        char *bundle;  /* the host's bundle path, for the hooks' state */
        int sync_fd;   /* to the held init until StartContainer, -1 */
        int refs;      /* handlers using it (RemoveContainer waits for 0) */
        struct agent_process *init;
        struct agent_process *execs;
};

extern pthread_mutex_t agent_lock; /* protects the container table and processes */
extern pthread_cond_t agent_cond;  /* broadcast when a process exits or a table changes */
extern pthread_mutex_t agent_reap_lock;

int agent_reaper_start (moat_error_t *err);
/* under agent_lock */
struct agent_container *agent_container_find (const char *id);
/* any entry, also one being created or removed (agent_lock held) */
struct agent_container *agent_container_find_any (const char *id);
/* every entry (hooks' and unpublished ones too) */
struct agent_process *agent_process_find (struct agent_container *c, const char *exec_id);
/* published entries only: what the API may touch */
struct agent_process *agent_process_get (struct agent_container *c, const char *exec_id);
/* Publishes p with a pidfd; agent_reap_lock and agent_lock held, p not reaped unless p->exited. */
void agent_process_publish_locked (struct agent_process *p);
/* Sends sig to p without a pid reuse race; -1 with errno ESRCH when p has exited. Takes the locks. */
int agent_process_kill (struct agent_process *p, int sig);
/* The same with agent_lock held (and agent_reap_lock: p may have no pidfd). */
int agent_process_signal_locked (struct agent_process *p, int sig);
/* Drops a reference taken under agent_lock (c->refs++); RemoveContainer waits for none. */
void agent_container_put (struct agent_container *c);
void agent_container_add (struct agent_container *c);
void agent_container_unlink (struct agent_container *c);
void agent_container_free (struct agent_container *c);
void agent_process_free (struct agent_process *p);
/* Drops process exec_id of c from the table (takes agent_lock). */
void agent_process_forget (struct agent_container *c, const char *exec_id);
/* Shell-style status: code, or 128+n when killed by signal n. */
int agent_status_code (int wait_status, bool *signaled, int *sig);
/* Waits (agent_lock held) until p exited; returns 0, or -1 on timeout (timeout_ms >= 0). */
int agent_process_wait_locked (struct agent_container *c, struct agent_process *p, int timeout_ms);

/* --- container.c --- */
struct agent_stdio {
        int fd[3];     /* stdin, stdout, stderr; -1 = /dev/null (no terminal) */
        bool terminal; /* the process gets a pty; the master comes back in *tty_master */
        unsigned rows, cols;
};

/* Creates the container's init: namespaces, cgroup, rootfs, everything up to
 * the execve, which waits for agent_container_start. On success *out comes
 * with a reference the caller drops with agent_container_put. */
/* bundle_dir: where relative paths of the config resolve (in the guest);
 * host_bundle: the bundle path the hooks' state reports (NULL: bundle_dir). */
/* A container of a pod (CreateContainerRequest.sandbox_id and
 * join_namespaces): the namespaces it joins, those of container sandbox_id's
 * init. NULL or no sandbox_id: none. */
struct agent_pod_join {
        const char *sandbox_id;
        char *const *types; /* OCI names: "network", "ipc", "uts", "pid" */
        size_t n_types;
        pid_t sandbox_pid; /* set by agent_container_create: the init it joined */
};
/* The sandbox's init that a pod container joined has not exited since
 * (else its pid may name another process). True without a join. */
bool agent_pod_join_valid (const struct agent_pod_join *join);
int agent_container_create (const char *id, const char *config_json, const char *bundle_dir, const char *host_bundle,
                            struct agent_pod_join *join, struct agent_stdio *stdio, struct agent_container **out,
                            int *tty_master, moat_error_t *err);
int agent_container_start (struct agent_container *c, moat_error_t *err);
/* Runs a process in a created or running container (ExecProcess). */
int agent_container_exec (struct agent_container *c, const char *exec_id, const char *process_json,
                          struct agent_stdio *stdio, pid_t *pid_out, int *tty_master, moat_error_t *err);
/* Kills everything in the container and waits for it (timeout_ms). */
int agent_container_kill_all (struct agent_container *c, int sig, moat_error_t *err);

/* --- spawn.c: the clone + child side --- */
struct spawn_request {
        struct oci_config *config;   /* container config (namespaces, seccomp...) */
        struct oci_process *process; /* what to run */
        const char *rootfs;          /* absolute */
        const char *cgroup_path;     /* NULL: stay in the agent's cgroup */
        const char *bundle_dir;      /* relative bind sources resolve here; may be NULL */
        pid_t join_pid;              /* exec: enter this process's namespaces; 0: create */
        struct agent_stdio *stdio;
        bool hold; /* wait for a START message before execve */
        /* a startContainer hook: exec this file as is (no $PATH lookup of
         * args[0]), no seccomp filter */
        const char *hook_path;
        /* for the createContainer hooks the init runs before pivot_root */
        const char *container_id;
        const char *host_bundle;
};
/* On success *pid is registered in the table as a process of c (under
 * agent_lock, with exec_id), *sync_fd is the held child's sync socket (when
 * hold) and *tty_master the pty master (when terminal). */
int agent_spawn (struct spawn_request *r, struct agent_container *c, const char *exec_id, pid_t *pid, int *sync_fd,
                 int *tty_master, moat_error_t *err);
/* Releases a held child: it execs. Returns the exec error if any. */
int agent_spawn_release (int sync_fd, moat_error_t *err);

/* --- seccomp.c --- */
int agent_seccomp_load (struct oci_seccomp *s, moat_error_t *err);
/* Compiles the filter without loading it: errors show at create time. */
int agent_seccomp_check (struct oci_seccomp *s, moat_error_t *err);
/* --- caps.c --- */
int agent_caps_drop_bounding (struct oci_caps *caps, moat_error_t *err);
int agent_caps_apply (struct oci_caps *caps, moat_error_t *err);

/* --- cgroup.c --- */
/* Root of the cgroup2 hierarchy: MOAT_AGENT_CGROUP_ROOT or /sys/fs/cgroup. */
const char *agent_cgroup_root (void);
int agent_cgroup_create (const char *id, struct oci_config *cfg, char **path_out, moat_error_t *err);
int agent_cgroup_apply (const char *path, struct oci_resources *r, moat_error_t *err);
int agent_cgroup_enter (const char *path, pid_t pid, moat_error_t *err);
int agent_cgroup_freeze (const char *path, bool frozen, moat_error_t *err);
int agent_cgroup_pids (const char *path, pid_t **pids, size_t *n, moat_error_t *err);
int agent_cgroup_kill (const char *path, int sig, moat_error_t *err);
int agent_cgroup_destroy (const char *path, moat_error_t *err);
int agent_cgroup_read_u64 (const char *path, const char *file, const char *key, uint64_t *out);

/* --- devices.c: linux.resources.devices as a cgroup v2 device program --- */
struct agent_dev_rule {
        bool allow;
        char type;            /* 'a', 'b', 'c' */
        int64_t major, minor; /* -1: any */
        unsigned access;      /* BPF_DEVCG_ACC_* bits */
};
struct bpf_insn;
/* The effective rule list: the config's (after the last "a *:* rwm" reset)
 * and the default devices; *default_allow is the verdict when none matches. */
int agent_devices_rules (const struct oci_device_rule *rules, size_t n, struct agent_dev_rule **out, size_t *n_out,
                         bool *default_allow, moat_error_t *err);
/* The BPF_PROG_TYPE_CGROUP_DEVICE program for those rules; returns its length. */
size_t agent_devices_program (const struct agent_dev_rule *rules, size_t n, bool default_allow, struct bpf_insn **out);
/* Loads and attaches it to the cgroup, replacing a previous one. */
int agent_devices_apply (const char *cgroup_path, const struct oci_device_rule *rules, size_t n, moat_error_t *err);

/* --- hooks.c: createContainer and startContainer hooks --- */
char *agent_hook_state_json (const char *id, const char *status, pid_t pid, const char *bundle, struct oci_config *cfg);
/* Runs the hooks of kind as children of the caller, in its namespaces (the
 * held init, before pivot_root). */
int agent_hooks_run_here (struct oci_config *cfg, int kind, const char *id, const char *bundle, moat_error_t *err);
/* Runs the hooks of kind in the namespaces of c's init (StartContainer). */
int agent_hooks_run_in_container (struct agent_container *c, int kind, moat_error_t *err);

/* --- stdio.c --- */
int agent_stdio_serve (int listen_fd);
/* Claims the parked streams for (cid, exec_id): waits up to AGENT_STDIO_WAIT_MS. */
int agent_stdio_claim (const char *cid, const char *exec_id, bool terminal, bool want_in, bool want_out, bool want_err,
                       int fds[4], moat_error_t *err);
/* Starts relaying a pty master <-> the tty connection (p->tty_master/tty_conn). */
int agent_tty_relay_start (struct agent_process *p, moat_error_t *err);

/* --- server.c --- */
int agent_server_run (moat_error_t *err);
/* accept4() that refuses vsock peers other than the host (errno ECONNABORTED) */
int agent_accept (int lfd, const char *what);

/* --- init.c --- */
bool agent_is_pid1 (void);
int agent_init_system (bool switched, char **argv, moat_error_t *err);
void agent_poweroff (bool reboot_);
/* Mounts the 9p share at MOAT_GUEST_SHARE (logs a failure). */
void agent_mount_share (void);

/* --- template.c --- */
/* Booted as a template (MOAT_TEMPLATE_CMDLINE): set by agent_init_system */
extern bool agent_template_mode;
/* Template mode: probes (saying so on the console, see agent_proto.h) until a
 * restore has attached the vsock device (probing the virtio-mmio slots the
 * template booted without), then mounts the share. */
void agent_template_wait (void);
/* Mixes host entropy into the guest's pool and reseeds the CRNG (PID 1
 * only; elsewhere nothing). */
int agent_reseed (const uint8_t *buf, size_t len, moat_error_t *err);

/* --- clock.c --- */
/* |offset| at or above this is stepped, below it slewed */
#define AGENT_CLOCK_STEP_NS 100000000LL
/* host time minus guest time */
int64_t agent_clock_offset_ns (int64_t host_sec, uint32_t host_nsec, const struct timespec *guest);
bool agent_clock_should_step (int64_t offset_ns, bool force);
/* Brings CLOCK_REALTIME to the host's (only as PID 1; elsewhere it reports
 * what it would do). *offset: host minus guest on arrival. */
int agent_clock_sync (int64_t host_sec, uint32_t host_nsec, bool force, int64_t *offset, bool *stepped,
                      moat_error_t *err);
/* Sets the guest's own hostname (only as PID 1); NULL or "": nothing. */
int agent_set_hostname (const char *name, moat_error_t *err);

/* --- standalone.c --- */
int agent_standalone (const char *bundle, const char *id);

/* --- preserved fds (--preserve-fds; stdio.c, spawn.c) --- */
struct agent_extra_fd {
        int fd;   /* the parked "fd<N>:<mode>" stream */
        int mode; /* O_RDONLY, O_WRONLY or O_RDWR, as the process sees it */
};
/* Waits up to AGENT_STDIO_WAIT_MS until streams fd3 .. fd<3+n-1> of (cid,
 * exec_id) are parked (StdioSpec.extra_fds). */
int agent_stdio_wait_extra (const char *cid, const char *exec_id, unsigned n, moat_error_t *err);
/* Takes every parked fd<N> stream of (cid, exec_id): fd3, fd4... in order
 * in *out (malloc'd; *n 0 when there are none). */
int agent_stdio_take_extra (const char *cid, const char *exec_id, struct agent_extra_fd **out, size_t *n,
                            moat_error_t *err);
/* Copies from -> to in a thread until EOF, then closes `to` (to_pipe) or
 * half-closes it (a stream); owns both fds, even when it fails. */
int agent_fd_relay_start (int from, int to, bool to_pipe, moat_error_t *err);

/* --- net.c: the container's network interfaces --- */
struct Moat__Agent__V1__NetInterface;
/* Gives the held init's network namespace the interfaces
 * (CreateContainerRequest.interfaces): the n-th virtio-net device of the VM
 * moves in as ifs[n] (name, MAC, MTU, addresses, up, routes), lo comes up.
 * The error names the interface and the step. */
int agent_net_setup (int nsfd, struct Moat__Agent__V1__NetInterface **ifs, size_t n, moat_error_t *err);

#endif

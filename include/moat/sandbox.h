/* SPDX-License-Identifier: Apache-2.0 */
/* Sandbox lifecycle: one microVM per sandbox, with its state directory,
 * guest share, moat-vsock helper and hypervisor process.
 *
 * moat_sandbox_create() validates the bundle, creates the state, stages the
 * share, starts moat-vsock and the VM and waits for the agent. Every step
 * it took is undone by moat_sandbox_destroy(), which works on a sandbox in
 * any state (it is the cleanup stack of every error path). */
#ifndef MOAT_SANDBOX_H
#define MOAT_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include "moat/agent_client.h"
#include "moat/error.h"
#include "moat/oci.h"
#include "moat/share.h"
#include "moat/state.h"

#define MOAT_BOOT_TIMEOUT_MS 30000

struct moat_sandbox_opts {
        const char *root;   /* state root (--root) */
        const char *id;     /* container id, also the sandbox id for now */
        const char *bundle; /* bundle directory (relative is fine) */
        /* Its config.json already loaded (taken over, even on failure);
         * NULL: moat_sandbox_create loads it. */
        struct oci_config *cfg;
        const char *hypervisor; /* NULL: auto */
        bool debug;             /* moat.debug=1 on the guest command line */
        bool die_with_parent;   /* run: the VM dies with this process; create: it outlives it */
        /* Polled while waiting for the guest: true aborts the boot (EINTR). */
        bool (*interrupted) (void *ctx);
        void *ictx;
        /* The VM gets a virtio-net device on a tap in network namespace
         * netns_fd (include/moat/net.h); false: no network device. */
        bool net_tap;
        int netns_fd;
};

struct moat_sandbox {
        char *root, *id, *dir, *bundle;
        int lock_fd;
        struct oci_config *cfg;
        char *guest_config; /* config JSON rewritten for the guest */
        struct moat_state state;
        bool state_created; /* create made dir in this process: destroy removes it, whatever fails */
        struct moat_share share;
        char *vhost_socket, *vsock_socket; /* absolute */
        char *console_log, *vmm_log, *vsockd_log;
        pid_t vmm_pid, vsockd_pid;
        int vmm_status; /* waitpid status once reaped */
        bool vmm_reaped;
        struct moat_agent *agent;
        char *kernel_release;
        int64_t t_launch, t_ready; /* now_ms() at VM launch, agent answered */
        char tap[16];              /* the VM's tap in the sandbox network namespace, "" for none */
        /* Called by moat_sandbox_destroy once the VM, moat-vsock, the share
         * and the host cgroup (state.cgroup) are gone, before the state
         * directory is removed and the lock released: where delete and
         * create's failure path run the poststop hooks (runtime.md: after
         * the container is deleted). NULL: nothing. */
        void (*on_destroyed) (struct moat_sandbox *sb, void *ctx);
        void *on_destroyed_ctx;
};

/* Checks what a VM cannot do (host devices...) before anything starts. */
int moat_sandbox_check_config (const struct oci_config *cfg, moat_error_t *err);

/* Boot timeout: guest.boot_timeout (MOAT_BOOT_TIMEOUT, seconds, may be
 * fractional; MOAT_BOOT_TIMEOUT_MS is its default). */
int moat_boot_timeout_ms (void);

int moat_sandbox_create (const struct moat_sandbox_opts *o, struct moat_sandbox **out, moat_error_t *err);

/* A container of a pod: instead of a VM of its own, it joins the running
 * VM of container sandbox_id (the pod's sandbox container, created or
 * running, under the same root): validates as moat_sandbox_create, makes
 * its state (naming the sandbox, its VM and sockets), stages its rootfs
 * and binds in the sandbox's share from inside the VMM's mount namespace
 * (this process stays in it: it must be single-threaded) and connects to
 * the agent. moat_sandbox_destroy of such a sandbox removes only that
 * container: from the agent, from the share, its cgroup and state. */
int moat_sandbox_join (const struct moat_sandbox_opts *o, const char *sandbox_id, struct moat_sandbox **out,
                       moat_error_t *err);
/* Persists sb->state. */
int moat_sandbox_save_state (struct moat_sandbox *sb, moat_error_t *err);

/* True (with *status) once the VMM exited; reaps it. */
bool moat_sandbox_vm_exited (struct moat_sandbox *sb, int *status);

/* The sandbox a previous command left (create exits and leaves the VM,
 * moat-vsock and the stand-in behind), from its state (taken over: st is
 * freed with sb) and the config saved at create, for moat_sandbox_destroy.
 * The caller holds the state lock. */
int moat_sandbox_load (const char *root, struct moat_state *st, struct moat_sandbox **out, moat_error_t *err);

/* The one teardown, of a sandbox in any state, made here (create's
 * cleanup stack) or loaded (delete), whatever is still alive: powers the
 * VM off (DestroySandbox, else SIGKILL; a loaded sandbox's container is
 * killed first), stops the stand-in of a loaded sandbox (create stops the
 * one it forked) and moat-vsock, then any process of the sandbox the state
 * does not name (a create killed before saving the pids: they run in the
 * state directory and name it on their command line), detaches the share
 * and removes the host cgroup (for a "creating" state without one, the
 * path its saved config names, if empty); then calls sb->on_destroyed and
 * removes the state dir. Every step is tried. A loaded sandbox returns the
 * first error and keeps its state (delete can retry) without calling
 * on_destroyed; create's cleanup warns and removes it. Frees sb. */
int moat_sandbox_destroy (struct moat_sandbox *sb, moat_error_t *err);

/* "...last lines of the console log..." for error messages (malloc'd). */
char *moat_sandbox_console_tail (struct moat_sandbox *sb, int lines);

#endif

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
        const char *root;       /* state root (--root) */
        const char *id;         /* container id, also the sandbox id for now */
        const char *bundle;     /* bundle directory (relative is fine) */
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
        bool state_created; /* we created dir: destroy removes it */
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
         * directory is removed and the lock released: where create's
         * failure path runs the poststop hooks (runtime.md: after the
         * container is deleted). NULL: nothing. */
        void (*on_destroyed) (struct moat_sandbox *sb, void *ctx);
        void *on_destroyed_ctx;
};

/* Checks what a VM cannot do (host devices...) before anything starts. */
int moat_sandbox_check_config (const struct oci_config *cfg, moat_error_t *err);

/* Boot timeout from MOAT_BOOT_TIMEOUT (seconds, may be fractional). */
int moat_boot_timeout_ms (void);

int moat_sandbox_create (const struct moat_sandbox_opts *o, struct moat_sandbox **out, moat_error_t *err);

/* Persists sb->state. */
int moat_sandbox_save_state (struct moat_sandbox *sb, moat_error_t *err);

/* True (with *status) once the VMM exited; reaps it. */
bool moat_sandbox_vm_exited (struct moat_sandbox *sb, int *status);

/* Tears everything down: asks the guest to power off (if the agent is
 * connected), waits for the VMM (bounded, then SIGKILL), stops moat-vsock,
 * detaches the staged mounts, removes the host cgroup (state.cgroup),
 * calls sb->on_destroyed, removes the state dir and frees sb. The caller
 * stops the stand-in it forked first. */
void moat_sandbox_destroy (struct moat_sandbox *sb);

/* "...last lines of the console log..." for error messages (malloc'd). */
char *moat_sandbox_console_tail (struct moat_sandbox *sb, int lines);

#endif

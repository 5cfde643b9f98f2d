/* SPDX-License-Identifier: Apache-2.0 */
/* The host side of the agent API, the one client every front end uses:
 * hybrid-vsock connections through the sandbox's Unix socket, ttrpc calls
 * to MOAT_AGENT_SERVICE (each with its timeout from one table, see
 * agent_client.c), and stdio stream connections. */
#ifndef MOAT_AGENT_CLIENT_H
#define MOAT_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"

#include "moat/agent_proto.h"

/* Connects to guest vsock `port` through the hybrid socket: "CONNECT
 * <port>\n" -> "OK <n>\n". Fails (ECONNREFUSED, ECONNRESET, ETIMEDOUT...)
 * if the guest does not accept within timeout_ms. Returns the fd
 * (blocking, close-on-exec). */
int moat_hybrid_connect (const char *hybrid_sock, uint32_t port, int timeout_ms, moat_error_t *err);

struct moat_agent;

/* Connects to the agent and calls Check, retrying until deadline (now_ms()
 * clock). *interrupted, if not NULL, is polled between attempts and stops
 * the wait (EINTR). Returns the kernel release the guest reported in
 * *release (malloc'd, may be NULL). */
int moat_agent_connect (const char *hybrid_sock, int64_t deadline_ms, bool (*interrupted) (void *), void *ictx,
                        struct moat_agent **out, char **release, moat_error_t *err);
/* One connection, without retrying: the guest must answer Check within
 * timeout_ms (for commands that find an existing sandbox). */
int moat_agent_open (const char *hybrid_sock, int timeout_ms, struct moat_agent **out, moat_error_t *err);
/* One more connection to the same agent (for blocking calls). */
int moat_agent_dup (struct moat_agent *a, struct moat_agent **out, moat_error_t *err);
void moat_agent_free (struct moat_agent *a);
/* The connection's fd (to shut it down and unblock a pending call). */
int moat_agent_fd (struct moat_agent *a);

struct moat_stdio_spec {
        bool terminal, in, out, err;
        uint32_t rows, cols;
        uint32_t extra_fds; /* --preserve-fds: streams "fd3:<mode>"... were opened */
};

int moat_agent_check (struct moat_agent *a, char **version, char **release, moat_error_t *err);
/* host_bundle: the bundle path on the host (the "bundle" in-guest hooks see). */
/* The hooks the next CreateContainer / StartContainer runs in the guest may
 * take up to ms: added to those calls' timeout (moat_hooks_time_ms). */
void moat_agent_set_hooks_time (struct moat_agent *a, int ms);

int moat_agent_create_container (struct moat_agent *a, const char *id, const char *config_json, const char *host_bundle,
                                 const struct moat_stdio_spec *stdio, uint32_t *pid, moat_error_t *err);
/* A container of a pod, added to the VM of its sandbox container
 * (CreateContainerRequest.sandbox_id, join_namespaces). */
struct moat_agent_pod {
        const char *sandbox_id;
        const char *const *join; /* OCI namespace types to share with the sandbox */
        size_t n_join;
};
/* The same, with the network interfaces the agent gives the container
 * (include/moat/net.h; CreateContainerRequest.interfaces) and, for a pod's
 * container, what it shares with the sandbox (NULL: a container of its
 * own, which also gives the guest the host's hostname). */
struct moat_net_iface;
int moat_agent_create_container_net (struct moat_agent *a, const char *id, const char *config_json,
                                     const char *host_bundle, const struct moat_stdio_spec *stdio,
                                     const struct moat_net_iface *ifs, size_t n_ifs, const struct moat_agent_pod *pod,
                                     uint32_t *pid, moat_error_t *err);
int moat_agent_start_container (struct moat_agent *a, const char *id, moat_error_t *err);
int moat_agent_signal (struct moat_agent *a, const char *id, const char *exec_id, int sig, bool all, moat_error_t *err);
/* *status: the code, or 128+n when killed by signal n. */
int moat_agent_wait (struct moat_agent *a, const char *id, const char *exec_id, int *status, moat_error_t *err);
/* The whole answer of WaitProcess. */
struct moat_exit {
        int status;    /* the code, or 128+n when killed by signal n */
        bool signaled; /* killed by `signal` */
        int signal;
};
int moat_agent_wait_exit (struct moat_agent *a, const char *id, const char *exec_id, struct moat_exit *ex,
                          moat_error_t *err);
int moat_agent_exec_process (struct moat_agent *a, const char *id, const char *exec_id, const char *process_json,
                             const struct moat_stdio_spec *stdio, uint32_t *pid, moat_error_t *err);
int moat_agent_remove_container (struct moat_agent *a, const char *id, bool force, moat_error_t *err);
int moat_agent_tty_resize (struct moat_agent *a, const char *id, const char *exec_id, uint32_t rows, uint32_t cols,
                           moat_error_t *err);
int moat_agent_close_stdin (struct moat_agent *a, const char *id, const char *exec_id, moat_error_t *err);
/* Asks the guest to power off; the VM exits. The reply may be lost when
 * the guest powers off first. */
int moat_agent_destroy_sandbox (struct moat_agent *a, moat_error_t *err);

/* Brings the guest's wall clock to the host's (SyncClock): step sets it at
 * once, otherwise the agent slews small offsets. *offset_ns (may be NULL):
 * host minus guest before the correction. */
int moat_agent_sync_clock (struct moat_agent *a, bool step, int64_t *offset_ns, moat_error_t *err);
/* How often a running container's stand-in repeats it. */
#define MOAT_CLOCK_SYNC_INTERVAL_MS 10000

/* Opens one stdio stream ("stdin", "stdout", "stderr", "tty", "fd3:r"...) of a process
 * (exec_id NULL: the init process) on port 1025. Returns the fd. */
int moat_agent_open_stream (const char *hybrid_sock, const char *id, const char *exec_id, const char *stream,
                            int timeout_ms, moat_error_t *err);

struct moat_stats {
        uint64_t memory_usage, memory_limit, memory_max_usage; /* bytes; limit 0 = none */
        uint64_t cpu_usage_usec, cpu_user_usec, cpu_system_usec;
        uint64_t pids_current, pids_limit; /* limit 0 = none */
        uint32_t *pids;                    /* guest pids */
        size_t n_pids;
};

int moat_agent_pause (struct moat_agent *a, const char *id, moat_error_t *err);
int moat_agent_resume (struct moat_agent *a, const char *id, moat_error_t *err);
int moat_agent_stats (struct moat_agent *a, const char *id, struct moat_stats *out, moat_error_t *err);
void moat_stats_clear (struct moat_stats *s);
/* resources_json: an OCI linux.resources object. */
int moat_agent_update (struct moat_agent *a, const char *id, const char *resources_json, moat_error_t *err);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* The one host-side client of moat-agent: hybrid-vsock connections through
 * the sandbox's Unix socket (Firecracker's convention, served by moat-vsock
 * or moat-vmm: "CONNECT <port>\n" -> "OK <host port>\n", then the stream is
 * the vsock connection), ttrpc calls to MOAT_AGENT_SERVICE on
 * MOAT_AGENT_PORT, and stdio streams on MOAT_STDIO_PORT. Every call goes
 * through call(), whose deadline comes from one table (timeouts[]). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "moat/agent_client.h"
#include "moat/log.h"
#include "moat/net.h"
#include "moat/paths.h"
#include "moat/ttrpc.h"
#include "moat/util.h"

/* the kernel's PID_MAX_LIMIT: no guest pid is above it */
#define MOAT_GUEST_PID_MAX 4194304u

/* Reads one '\n'-terminated line byte by byte (the bytes after it belong to
 * the connection), within the deadline. */
static int
read_line (int fd, char *buf, size_t len, int64_t deadline, moat_error_t *err)
{
        size_t n = 0;
        while (n + 1 < len) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int64_t left = deadline - now_ms ();
                ssize_t r;
                if (left <= 0)
                        return moat_make_error (err, ETIMEDOUT, "no answer");
                r = poll (&p, 1, left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return moat_make_error (err, errno, "poll");
                if (r == 0)
                        continue;
                r = read (fd, buf + n, 1);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r < 0)
                        return moat_make_error (err, errno, "read");
                if (r == 0)
                        return moat_make_error (err, ECONNRESET, "connection closed");
                if (buf[n] == '\n') {
                        buf[n] = '\0';
                        return 0;
                }
                n++;
        }
        return moat_make_error (err, EPROTO, "answer line too long");
}

int
moat_hybrid_connect (const char *hybrid_sock, uint32_t port, int timeout_ms, moat_error_t *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        cleanup_close int dirfd = -1;
        cleanup_close int fd = -1;
        int64_t deadline = now_ms () + timeout_ms;
        char line[128];
        int len;

        if (moat_unix_path (hybrid_sock, sun.sun_path, sizeof sun.sun_path, &dirfd, err) < 0)
                return -1;
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return moat_make_error (err, errno, "socket");
        if (connect (fd, (struct sockaddr *)&sun, sizeof sun) < 0)
                return moat_make_error (err, errno, "connect %s", hybrid_sock);
        len = snprintf (line, sizeof line, "CONNECT %u\n", port);
        if (send_all (fd, line, len) < 0)
                return moat_make_error (err, errno, "write %s", hybrid_sock);
        if (read_line (fd, line, sizeof line, deadline, err) < 0)
                return moat_error_wrap (err, "vsock port %u", port);
        if (strncmp (line, "OK ", 3) != 0) {
                cleanup_free char *why = moat_printable (line, -1, MOAT_PEER_TEXT_MAX);
                return moat_make_error (err, ECONNREFUSED, "vsock port %u: %s", port, why);
        }
        return steal_fd (&fd);
}

int
moat_agent_open_stream (const char *hybrid_sock, const char *id, const char *exec_id, const char *stream,
                        int timeout_ms, moat_error_t *err)
{
        cleanup_close int fd = -1;
        cleanup_free char *hdr = NULL;
        char line[512];

        fd = moat_hybrid_connect (hybrid_sock, MOAT_STDIO_PORT, timeout_ms, err);
        if (fd < 0)
                return moat_error_wrap (err, "open %s stream", stream);
        hdr = xasprintf_r ("STDIO %s %s %s\n", id, exec_id && *exec_id ? exec_id : "-", stream);
        if (send_all (fd, hdr, strlen (hdr)) < 0)
                return moat_make_error (err, errno, "open %s stream", stream);
        if (read_line (fd, line, sizeof line, now_ms () + timeout_ms, err) < 0)
                return moat_error_wrap (err, "open %s stream", stream);
        if (strcmp (line, "OK") != 0) {
                cleanup_free char *why =
                        moat_printable (strncmp (line, "ERR ", 4) == 0 ? line + 4 : line, -1, MOAT_PEER_TEXT_MAX);
                return moat_make_error (err, EIO, "open %s stream: %s", stream, why);
        }
        return steal_fd (&fd);
}

struct moat_agent {
        struct ttrpc_client *c;
        char *sock;
        int hooks_ms; /* added to CreateContainer/StartContainer's timeout */
};

void
moat_agent_set_hooks_time (struct moat_agent *a, int ms)
{
        a->hooks_ms = ms > 0 ? ms : 0;
}

/* The timeout policy: how long each call may take. Calls do their work at
 * once, within CALL_TIMEOUT_MS, except those named here; WaitProcess has no
 * deadline (0), and CreateContainer/StartContainer also get the time their
 * hooks may take (moat_agent_set_hooks_time). */
#define CALL_TIMEOUT_MS 60000
static const struct {
        const char *method;
        int timeout_ms;
        bool plus_hooks;
} timeouts[] = {
        {"Check", 5000, false},
        {"CreateContainer", CALL_TIMEOUT_MS, true},
        {"StartContainer", CALL_TIMEOUT_MS, true},
        {"WaitProcess", 0, false},
        {"RemoveContainer", 10000, false},
        /* a kill(2) in the guest: delete --force waits for it */
        {"SignalProcess", 10000, false},
        {"TtyWinResize", 5000, false},
        {"CloseStdin", 5000, false},
        /* the guest may power off before its reply leaves */
        {"DestroySandbox", 5000, false},
        {"PauseContainer", 30000, false},
        {"ResumeContainer", 30000, false},
        {"StatsContainer", 30000, false},
        {"UpdateContainer", 30000, false},
        {"SyncClock", 5000, false},
};

static int
call_timeout (const struct moat_agent *a, const char *method)
{
        for (size_t i = 0; i < ARRAY_SIZE (timeouts); i++)
                if (strcmp (timeouts[i].method, method) == 0)
                        return timeouts[i].timeout_ms + (timeouts[i].plus_hooks ? a->hooks_ms : 0);
        return CALL_TIMEOUT_MS;
}

static int
call (struct moat_agent *a, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
      ProtobufCMessage **resp, moat_error_t *err)
{
        ProtobufCMessage *r = NULL;
        if (ttrpc_call (a->c, MOAT_AGENT_SERVICE, method, req, rd ? rd : &moat__agent__v1__empty__descriptor, &r,
                        call_timeout (a, method), err) < 0)
                return -1;
        if (resp)
                *resp = r;
        else if (r)
                protobuf_c_message_free_unpacked (r, NULL);
        return 0;
}

static int
agent_open (const char *sock, int timeout_ms, struct moat_agent **out, moat_error_t *err)
{
        int fd = moat_hybrid_connect (sock, MOAT_AGENT_PORT, timeout_ms, err);
        struct moat_agent *a;
        if (fd < 0)
                return -1;
        a = xzalloc (sizeof *a);
        a->c = ttrpc_client_new (fd);
        a->sock = xstrdup (sock);
        *out = a;
        return 0;
}

void
moat_agent_free (struct moat_agent *a)
{
        if (a == NULL)
                return;
        if (a->c)
                ttrpc_client_free (a->c);
        free (a->sock);
        free (a);
}

int
moat_agent_fd (struct moat_agent *a)
{
        return a && a->c ? ttrpc_client_fd (a->c) : -1;
}

int
moat_agent_open (const char *hybrid_sock, int timeout_ms, struct moat_agent **out, moat_error_t *err)
{
        struct moat_agent *a = NULL;
        if (agent_open (hybrid_sock, timeout_ms, &a, err) < 0)
                return -1;
        if (moat_agent_check (a, NULL, NULL, err) < 0) {
                moat_agent_free (a);
                return -1;
        }
        *out = a;
        return 0;
}

int
moat_agent_dup (struct moat_agent *a, struct moat_agent **out, moat_error_t *err)
{
        return agent_open (a->sock, 10000, out, err);
}

int
moat_agent_check (struct moat_agent *a, char **version, char **release, moat_error_t *err)
{
        Moat__Agent__V1__CheckRequest req = MOAT__AGENT__V1__CHECK_REQUEST__INIT;
        Moat__Agent__V1__CheckResponse *resp = NULL;
        if (call (a, "Check", &req.base, &moat__agent__v1__check_response__descriptor, (ProtobufCMessage **)&resp,
                  err) < 0)
                return -1;
        /* the guest's words: they end up in logs and state */
        if (version)
                *version = moat_printable (resp->version, -1, 256);
        if (release)
                *release = moat_printable (resp->kernel_release, -1, 256);
        protobuf_c_message_free_unpacked (&resp->base, NULL);
        return 0;
}

int
moat_agent_connect (const char *hybrid_sock, int64_t deadline_ms, bool (*interrupted) (void *), void *ictx,
                    struct moat_agent **out, char **release, moat_error_t *err)
{
        cleanup_error moat_error_t last = NULL;
        int attempts = 0;

        for (;;) {
                struct moat_agent *a = NULL;
                int64_t left = deadline_ms - now_ms ();
                if (left <= 0)
                        break;
                if (interrupted && interrupted (ictx))
                        return moat_make_error (err, EINTR, "interrupted while waiting for the guest");
                attempts++;
                moat_error_release (&last);
                if (agent_open (hybrid_sock, left < 5000 ? left : 5000, &a, &last) == 0) {
                        if (moat_agent_check (a, NULL, release, &last) == 0) {
                                moat_debug ("agent answered after %d attempts", attempts);
                                *out = a;
                                return 0;
                        }
                        moat_agent_free (a);
                }
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep (&ts, NULL);
        }
        if (last)
                moat_debug ("last attempt: %s", last->msg);
        return moat_make_error (err, ETIMEDOUT, "no answer");
}

static void
stdio_spec_fill (Moat__Agent__V1__StdioSpec *s, const struct moat_stdio_spec *stdio)
{
        s->terminal = stdio->terminal;
        s->stdin = stdio->in;
        s->stdout = stdio->out;
        s->stderr = stdio->err;
        s->rows = stdio->rows;
        s->cols = stdio->cols;
        s->extra_fds = stdio->extra_fds;
}

static char *
ip_str (int family, const uint8_t *a)
{
        char buf[INET6_ADDRSTRLEN];
        if (inet_ntop (family, a, buf, sizeof buf) == NULL)
                return xstrdup ("");
        return xstrdup (buf);
}

/* The proto messages for ifs (freed by net_msgs_free). */
static Moat__Agent__V1__NetInterface **
net_msgs (const struct moat_net_iface *ifs, size_t n)
{
        Moat__Agent__V1__NetInterface **v = xzalloc ((n + 1) * sizeof *v);
        for (size_t i = 0; i < n; i++) {
                const struct moat_net_iface *f = &ifs[i];
                Moat__Agent__V1__NetInterface *m = xzalloc (sizeof *m);
                char mac[18];
                moat__agent__v1__net_interface__init (m);
                m->name = xstrdup (f->name);
                moat_net_mac_str (f->mac, mac);
                m->mac = xstrdup (mac);
                m->mtu = f->mtu;
                m->n_addresses = f->n_addrs;
                m->addresses = xzalloc ((f->n_addrs + 1) * sizeof *m->addresses);
                for (size_t j = 0; j < f->n_addrs; j++) {
                        Moat__Agent__V1__NetAddress *a = xzalloc (sizeof *a);
                        moat__agent__v1__net_address__init (a);
                        a->address = ip_str (f->addrs[j].family, f->addrs[j].addr);
                        a->prefix_len = f->addrs[j].prefix;
                        m->addresses[j] = a;
                }
                m->n_routes = f->n_routes;
                m->routes = xzalloc ((f->n_routes + 1) * sizeof *m->routes);
                for (size_t j = 0; j < f->n_routes; j++) {
                        const struct moat_net_route *ro = &f->routes[j];
                        Moat__Agent__V1__NetRoute *r = xzalloc (sizeof *r);
                        moat__agent__v1__net_route__init (r);
                        r->dest = ro->dst_len ? ip_str (ro->family, ro->dst) : xstrdup ("");
                        r->dest_prefix_len = ro->dst_len;
                        r->gateway = ro->has_gw ? ip_str (ro->family, ro->gw) : xstrdup ("");
                        r->device = xstrdup (f->name);
                        r->metric = ro->metric;
                        r->family = ro->family;
                        m->routes[j] = r;
                }
                v[i] = m;
        }
        return v;
}

static void
net_msgs_free (Moat__Agent__V1__NetInterface **v, size_t n)
{
        for (size_t i = 0; v && i < n; i++) {
                Moat__Agent__V1__NetInterface *m = v[i];
                for (size_t j = 0; j < m->n_addresses; j++) {
                        free (m->addresses[j]->address);
                        free (m->addresses[j]);
                }
                for (size_t j = 0; j < m->n_routes; j++) {
                        free (m->routes[j]->dest);
                        free (m->routes[j]->gateway);
                        free (m->routes[j]->device);
                        free (m->routes[j]);
                }
                free (m->addresses);
                free (m->routes);
                free (m->name);
                free (m->mac);
                free (m);
        }
        free (v);
}

int
moat_agent_create_container_net (struct moat_agent *a, const char *id, const char *config_json, const char *host_bundle,
                                 const struct moat_stdio_spec *stdio, const struct moat_net_iface *ifs, size_t n_ifs,
                                 const struct moat_agent_pod *pod, uint32_t *pid, moat_error_t *err)
{
        Moat__Agent__V1__CreateContainerRequest req = MOAT__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
        Moat__Agent__V1__StdioSpec s = MOAT__AGENT__V1__STDIO_SPEC__INIT;
        Moat__Agent__V1__CreateContainerResponse *resp = NULL;
        char host[HOST_NAME_MAX + 1] = "";
        int r;

        /* the guest takes the host's hostname (a container without its own
         * UTS namespace sees it, as under runc) */
        if (pod == NULL && gethostname (host, sizeof host) < 0)
                host[0] = '\0';
        host[HOST_NAME_MAX] = '\0';
        req.host_hostname = host;
        if (pod) {
                req.sandbox_id = (char *)pod->sandbox_id;
                req.join_namespaces = (char **)pod->join;
                req.n_join_namespaces = pod->n_join;
        }
        stdio_spec_fill (&s, stdio);
        req.container_id = (char *)id;
        req.config_json = (char *)config_json;
        req.bundle = (char *)(host_bundle ? host_bundle : "");
        req.stdio = &s;
        if (n_ifs) {
                req.n_interfaces = n_ifs;
                req.interfaces = net_msgs (ifs, n_ifs);
        }
        r = call (a, "CreateContainer", &req.base, &moat__agent__v1__create_container_response__descriptor,
                  (ProtobufCMessage **)&resp, err);
        net_msgs_free (req.interfaces, req.n_interfaces);
        if (r < 0)
                return -1;
        if (pid)
                *pid = resp->pid;
        protobuf_c_message_free_unpacked (&resp->base, NULL);
        return 0;
}

int
moat_agent_create_container (struct moat_agent *a, const char *id, const char *config_json, const char *host_bundle,
                             const struct moat_stdio_spec *stdio, uint32_t *pid, moat_error_t *err)
{
        return moat_agent_create_container_net (a, id, config_json, host_bundle, stdio, NULL, 0, NULL, pid, err);
}

int
moat_agent_start_container (struct moat_agent *a, const char *id, moat_error_t *err)
{
        Moat__Agent__V1__StartContainerRequest req = MOAT__AGENT__V1__START_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        return call (a, "StartContainer", &req.base, NULL, NULL, err);
}

int
moat_agent_signal (struct moat_agent *a, const char *id, const char *exec_id, int sig, bool all, moat_error_t *err)
{
        Moat__Agent__V1__SignalProcessRequest req = MOAT__AGENT__V1__SIGNAL_PROCESS_REQUEST__INIT;
        req.container_id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        req.signal = sig;
        req.all = all;
        return call (a, "SignalProcess", &req.base, NULL, NULL, err);
}

int
moat_agent_wait_exit (struct moat_agent *a, const char *id, const char *exec_id, struct moat_exit *ex,
                      moat_error_t *err)
{
        Moat__Agent__V1__WaitProcessRequest req = MOAT__AGENT__V1__WAIT_PROCESS_REQUEST__INIT;
        Moat__Agent__V1__WaitProcessResponse *resp = NULL;
        req.container_id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        if (call (a, "WaitProcess", &req.base, &moat__agent__v1__wait_process_response__descriptor,
                  (ProtobufCMessage **)&resp, err) < 0)
                return -1;
        ex->status = resp->status;
        ex->signaled = resp->signaled;
        ex->signal = resp->signal;
        protobuf_c_message_free_unpacked (&resp->base, NULL);
        return 0;
}

int
moat_agent_wait (struct moat_agent *a, const char *id, const char *exec_id, int *status, moat_error_t *err)
{
        struct moat_exit ex;
        if (moat_agent_wait_exit (a, id, exec_id, &ex, err) < 0)
                return -1;
        *status = ex.status;
        return 0;
}

int
moat_agent_exec_process (struct moat_agent *a, const char *id, const char *exec_id, const char *process_json,
                         const struct moat_stdio_spec *stdio, uint32_t *pid, moat_error_t *err)
{
        Moat__Agent__V1__ExecProcessRequest req = MOAT__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
        Moat__Agent__V1__StdioSpec s = MOAT__AGENT__V1__STDIO_SPEC__INIT;
        Moat__Agent__V1__ExecProcessResponse *resp = NULL;

        stdio_spec_fill (&s, stdio);
        req.container_id = (char *)id;
        req.exec_id = (char *)exec_id;
        req.process_json = (char *)process_json;
        req.stdio = &s;
        if (call (a, "ExecProcess", &req.base, &moat__agent__v1__exec_process_response__descriptor,
                  (ProtobufCMessage **)&resp, err) < 0)
                return -1;
        if (pid)
                *pid = resp->pid;
        protobuf_c_message_free_unpacked (&resp->base, NULL);
        return 0;
}

int
moat_agent_remove_container (struct moat_agent *a, const char *id, bool force, moat_error_t *err)
{
        Moat__Agent__V1__RemoveContainerRequest req = MOAT__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        req.force = force;
        return call (a, "RemoveContainer", &req.base, NULL, NULL, err);
}

int
moat_agent_tty_resize (struct moat_agent *a, const char *id, const char *exec_id, uint32_t rows, uint32_t cols,
                       moat_error_t *err)
{
        Moat__Agent__V1__TtyWinResizeRequest req = MOAT__AGENT__V1__TTY_WIN_RESIZE_REQUEST__INIT;
        req.container_id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        req.rows = rows;
        req.cols = cols;
        return call (a, "TtyWinResize", &req.base, NULL, NULL, err);
}

int
moat_agent_close_stdin (struct moat_agent *a, const char *id, const char *exec_id, moat_error_t *err)
{
        Moat__Agent__V1__CloseStdinRequest req = MOAT__AGENT__V1__CLOSE_STDIN_REQUEST__INIT;
        req.container_id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        return call (a, "CloseStdin", &req.base, NULL, NULL, err);
}

int
moat_agent_destroy_sandbox (struct moat_agent *a, moat_error_t *err)
{
        Moat__Agent__V1__DestroySandboxRequest req = MOAT__AGENT__V1__DESTROY_SANDBOX_REQUEST__INIT;
        req.reboot = false;
        /* The guest may power off before its reply leaves: callers treat a
         * failure as "probably gone" and check the VMM. */
        return call (a, "DestroySandbox", &req.base, NULL, NULL, err);
}

int
moat_agent_pause (struct moat_agent *a, const char *id, moat_error_t *err)
{
        Moat__Agent__V1__PauseContainerRequest req = MOAT__AGENT__V1__PAUSE_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        return call (a, "PauseContainer", &req.base, NULL, NULL, err);
}

int
moat_agent_resume (struct moat_agent *a, const char *id, moat_error_t *err)
{
        Moat__Agent__V1__ResumeContainerRequest req = MOAT__AGENT__V1__RESUME_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        return call (a, "ResumeContainer", &req.base, NULL, NULL, err);
}

int
moat_agent_update (struct moat_agent *a, const char *id, const char *resources_json, moat_error_t *err)
{
        Moat__Agent__V1__UpdateContainerRequest req = MOAT__AGENT__V1__UPDATE_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        req.resources_json = (char *)resources_json;
        return call (a, "UpdateContainer", &req.base, NULL, NULL, err);
}

int
moat_agent_stats (struct moat_agent *a, const char *id, struct moat_stats *out, moat_error_t *err)
{
        Moat__Agent__V1__StatsContainerRequest req = MOAT__AGENT__V1__STATS_CONTAINER_REQUEST__INIT;
        Moat__Agent__V1__StatsContainerResponse *r = NULL;

        req.container_id = (char *)id;
        if (call (a, "StatsContainer", &req.base, &moat__agent__v1__stats_container_response__descriptor,
                  (ProtobufCMessage **)&r, err) < 0)
                return -1;
        for (size_t i = 0; i < r->n_pids; i++)
                if (r->pids[i] == 0 || r->pids[i] > MOAT_GUEST_PID_MAX) {
                        moat_make_error (err, EPROTO, "StatsContainer: the agent answered pid %u (a pid is 1 to %u)",
                                         r->pids[i], MOAT_GUEST_PID_MAX);
                        protobuf_c_message_free_unpacked (&r->base, NULL);
                        return -1;
                }
        memset (out, 0, sizeof *out);
        out->memory_usage = r->memory_usage;
        out->memory_limit = r->memory_limit;
        out->memory_max_usage = r->memory_max_usage;
        out->cpu_usage_usec = r->cpu_usage_usec;
        out->cpu_user_usec = r->cpu_user_usec;
        out->cpu_system_usec = r->cpu_system_usec;
        out->pids_current = r->pids_current;
        out->pids_limit = r->pids_limit;
        out->n_pids = r->n_pids;
        out->pids = xmalloc ((r->n_pids ? r->n_pids : 1) * sizeof (uint32_t));
        for (size_t i = 0; i < r->n_pids; i++)
                out->pids[i] = r->pids[i];
        protobuf_c_message_free_unpacked (&r->base, NULL);
        return 0;
}

void
moat_stats_clear (struct moat_stats *s)
{
        free (s->pids);
        memset (s, 0, sizeof *s);
}

int
moat_agent_sync_clock (struct moat_agent *a, bool step, int64_t *offset_ns, moat_error_t *err)
{
        Moat__Agent__V1__SyncClockRequest req = MOAT__AGENT__V1__SYNC_CLOCK_REQUEST__INIT;
        Moat__Agent__V1__SyncClockResponse *resp = NULL;
        uint8_t entropy[64];
        struct timespec now;

        if (step) {
                /* the first sync, before any container: reseed the guest
                 * (a VM restored from a template has its siblings' RNG) */
                if (getrandom (entropy, sizeof entropy, 0) != (ssize_t)sizeof entropy)
                        return moat_make_error (err, errno, "getrandom");
                req.entropy.data = entropy;
                req.entropy.len = sizeof entropy;
        }
        /* as late as possible: the guest sets its clock to this on arrival */
        clock_gettime (CLOCK_REALTIME, &now);
        req.realtime_sec = now.tv_sec;
        req.realtime_nsec = now.tv_nsec;
        req.step = step;
        if (call (a, "SyncClock", &req.base, &moat__agent__v1__sync_clock_response__descriptor,
                  (ProtobufCMessage **)&resp, err) < 0)
                return moat_error_wrap (err, "set the guest's clock");
        if (offset_ns)
                *offset_ns = resp->offset_ns;
        protobuf_c_message_free_unpacked (&resp->base, NULL);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* ttrpc calls to moat-agent (service moat.agent.v1.Agent on vsock 1024). */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "moat/agent_client.h"
#include "moat/log.h"
#include "moat/net.h"
#include "moat/ttrpc.h"
#include "moat/util.h"

/* Calls that do their work at once; Wait has no deadline. */
#define CALL_TIMEOUT_MS 60000

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

static int
call (struct moat_agent *a, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
      ProtobufCMessage **resp, int timeout_ms, moat_error_t *err)
{
        ProtobufCMessage *r = NULL;
        if (ttrpc_call (a->c, MOAT_AGENT_SERVICE, method, req, rd ? rd : &moat__agent__v1__empty__descriptor, &r,
                        timeout_ms, err) < 0)
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
        if (call (a, "Check", &req.base, &moat__agent__v1__check_response__descriptor, (ProtobufCMessage **)&resp, 5000,
                  err) < 0)
                return -1;
        if (version)
                *version = xstrdup (resp->version);
        if (release)
                *release = xstrdup (resp->kernel_release);
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
                                 uint32_t *pid, moat_error_t *err)
{
        Moat__Agent__V1__CreateContainerRequest req = MOAT__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
        Moat__Agent__V1__StdioSpec s = MOAT__AGENT__V1__STDIO_SPEC__INIT;
        Moat__Agent__V1__CreateContainerResponse *resp = NULL;
        char host[HOST_NAME_MAX + 1] = "";
        int r;

        /* the guest takes the host's hostname (a container without its own
         * UTS namespace sees it, as under runc) */
        if (gethostname (host, sizeof host) < 0)
                host[0] = '\0';
        host[HOST_NAME_MAX] = '\0';
        req.host_hostname = host;
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
                  (ProtobufCMessage **)&resp, CALL_TIMEOUT_MS + a->hooks_ms, err);
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
        return moat_agent_create_container_net (a, id, config_json, host_bundle, stdio, NULL, 0, pid, err);
}

int
moat_agent_start_container (struct moat_agent *a, const char *id, moat_error_t *err)
{
        Moat__Agent__V1__StartContainerRequest req = MOAT__AGENT__V1__START_CONTAINER_REQUEST__INIT;
        req.container_id = (char *)id;
        return call (a, "StartContainer", &req.base, NULL, NULL, CALL_TIMEOUT_MS + a->hooks_ms, err);
}

int
moat_agent_signal (struct moat_agent *a, const char *id, const char *exec_id, int sig, bool all, moat_error_t *err)
{
        Moat__Agent__V1__SignalProcessRequest req = MOAT__AGENT__V1__SIGNAL_PROCESS_REQUEST__INIT;
        req.container_id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        req.signal = sig;
        req.all = all;
        return call (a, "SignalProcess", &req.base, NULL, NULL, CALL_TIMEOUT_MS, err);
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
                  (ProtobufCMessage **)&resp, 0, err) < 0)
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
                  (ProtobufCMessage **)&resp, CALL_TIMEOUT_MS, err) < 0)
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
        return call (a, "RemoveContainer", &req.base, NULL, NULL, 10000, err);
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
        return call (a, "TtyWinResize", &req.base, NULL, NULL, 5000, err);
}

int
moat_agent_close_stdin (struct moat_agent *a, const char *id, const char *exec_id, moat_error_t *err)
{
        Moat__Agent__V1__CloseStdinRequest req = MOAT__AGENT__V1__CLOSE_STDIN_REQUEST__INIT;
        req.container_id = (char *)id;
        req.exec_id = (char *)(exec_id ? exec_id : "");
        return call (a, "CloseStdin", &req.base, NULL, NULL, 5000, err);
}

int
moat_agent_destroy_sandbox (struct moat_agent *a, moat_error_t *err)
{
        Moat__Agent__V1__DestroySandboxRequest req = MOAT__AGENT__V1__DESTROY_SANDBOX_REQUEST__INIT;
        req.reboot = false;
        /* The guest may power off before its reply leaves: callers treat a
         * failure as "probably gone" and check the VMM. */
        return call (a, "DestroySandbox", &req.base, NULL, NULL, 5000, err);
}

int
moat_agent_sync_clock (struct moat_agent *a, bool step, int64_t *offset_ns, moat_error_t *err)
{
        Moat__Agent__V1__SyncClockRequest req = MOAT__AGENT__V1__SYNC_CLOCK_REQUEST__INIT;
        Moat__Agent__V1__SyncClockResponse *resp = NULL;
        struct timespec now;

        /* as late as possible: the guest sets its clock to this on arrival */
        clock_gettime (CLOCK_REALTIME, &now);
        req.realtime_sec = now.tv_sec;
        req.realtime_nsec = now.tv_nsec;
        req.step = step;
        if (call (a, "SyncClock", &req.base, &moat__agent__v1__sync_clock_response__descriptor,
                  (ProtobufCMessage **)&resp, 5000, err) < 0)
                return moat_error_wrap (err, "set the guest's clock");
        if (offset_ns)
                *offset_ns = resp->offset_ns;
        protobuf_c_message_free_unpacked (&resp->base, NULL);
        return 0;
}

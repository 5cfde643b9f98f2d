/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-vsock device logic: stream connections between guest sockets and
 * host Unix sockets (hybrid vsock), with per-connection credit flow control.
 *
 * Host -> guest data is read from the Unix socket straight into the guest's
 * rx buffers, only while the guest has credit for it. Guest -> host data is
 * written to the Unix socket; what does not fit is kept in a per-connection
 * buffer never larger than the buf_alloc we advertise (a guest that ignores
 * our credit gets RST). */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vsock.h"

#define DEFAULT_BUF_ALLOC (256 * 1024)
#define DEFAULT_TIMEOUT_MS 5000
#define LINGER_MS 10000
#define MAX_PKT_PAYLOAD (64 * 1024)
#define RST_QUEUE_SIZE 256
#define HANDSHAKE_MAX 64
#define FIRST_HOST_PORT (1u << 30)
/* A guest (or host) opening connections without end gets RST past this. */
#define MAX_CONNS 4096

enum conn_state {
        C_HANDSHAKE, /* host client accepted, waiting for "CONNECT <port>\n" */
        C_REQUEST,   /* REQUEST sent (or to send) to the guest, waiting for RESPONSE */
        C_CONNECTED,
        C_CLOSING, /* gone for the guest; flushing buffered bytes to the host socket */
};

struct conn {
        struct conn *next, *prev;
        struct moat_vsock *vs;
        int fd;
        enum conn_state state;
        bool keyed;          /* in the (local_port, peer_port) table */
        bool dead;           /* to be freed by reap() */
        uint32_t local_port; /* host side */
        uint32_t peer_port;  /* guest side */

        uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt; /* host -> guest */
        uint32_t fwd_cnt, last_fwd_cnt_sent;           /* guest -> host */

        bool send_request, send_response, send_credit_update;
        uint32_t send_shutdown; /* flags of a SHUTDOWN to send, 0: none */
        bool full_shutdown_sent;

        bool readable; /* EPOLLIN seen and not drained yet */
        bool host_eof; /* EOF read from the host socket (SHUTDOWN SEND sent) */
        bool guest_shut_send, guest_shut_rcv;
        bool fd_shut_wr;

        uint8_t *buf; /* guest -> host bytes the host socket did not take yet */
        size_t buf_start, buf_end, buf_cap;

        int64_t deadline; /* 0: none */
        uint32_t events;  /* registered epoll interest, 0: not registered */
};

struct rst {
        uint32_t local_port, peer_port;
};

struct moat_vsock {
        uint64_t guest_cid;
        char *uds_path;
        uint32_t buf_alloc;
        int timeout_ms;
        int epfd;
        int listen_fd;
        struct moat_virtq *vq[3];
        struct conn *conns;
        unsigned nconns;
        struct conn *rr; /* round-robin cursor for rx */
        uint32_t next_port;
        struct rst rstq[RST_QUEUE_SIZE];
        unsigned rst_head, rst_len;
        uint64_t guest_warnings; /* see GUEST_WARN */
        struct moat_virtq_elem elem;
        bool in_rx;
};

/* A warning that the guest can cause once per packet (a guest writing on
 * and on to closed connections, or sending bad packets, would otherwise
 * write the host's log without end): the first 16 are logged, then only the
 * 32nd, 64th, 128th... with the count. */
#define GUEST_WARN(vs, fmt, ...)                                                                                       \
        do {                                                                                                           \
                uint64_t n_ = ++(vs)->guest_warnings;                                                                  \
                if (n_ <= 16 || (n_ & (n_ - 1)) == 0)                                                                  \
                        moat_log (MOAT_LOG_WARNING, fmt " (guest warning %" PRIu64 ")", ##__VA_ARGS__, n_);            \
        } while (0)

void
moat_vsock_hdr_encode (const struct moat_vsock_hdr *h, uint8_t o[MOAT_VSOCK_HDR_SIZE])
{
        uint64_t v64;
        uint32_t v32;
        uint16_t v16;
#define PUT(off, bits, val)                                                                                            \
        do {                                                                                                           \
                v##bits = htole##bits (val);                                                                           \
                memcpy (o + (off), &v##bits, sizeof v##bits);                                                          \
        } while (0)
        PUT (0, 64, h->src_cid);
        PUT (8, 64, h->dst_cid);
        PUT (16, 32, h->src_port);
        PUT (20, 32, h->dst_port);
        PUT (24, 32, h->len);
        PUT (28, 16, h->type);
        PUT (30, 16, h->op);
        PUT (32, 32, h->flags);
        PUT (36, 32, h->buf_alloc);
        PUT (40, 32, h->fwd_cnt);
#undef PUT
}

void
moat_vsock_hdr_decode (const uint8_t in[MOAT_VSOCK_HDR_SIZE], struct moat_vsock_hdr *h)
{
        uint64_t v64;
        uint32_t v32;
        uint16_t v16;
#define GET(off, bits, field)                                                                                          \
        do {                                                                                                           \
                memcpy (&v##bits, in + (off), sizeof v##bits);                                                         \
                h->field = le##bits##toh (v##bits);                                                                    \
        } while (0)
        GET (0, 64, src_cid);
        GET (8, 64, dst_cid);
        GET (16, 32, src_port);
        GET (20, 32, dst_port);
        GET (24, 32, len);
        GET (28, 16, type);
        GET (30, 16, op);
        GET (32, 32, flags);
        GET (36, 32, buf_alloc);
        GET (40, 32, fwd_cnt);
#undef GET
}

/* ---- connection bookkeeping ---- */

static void
update_events (struct conn *c)
{
        uint32_t want = 0;

        if (c->fd < 0 || c->dead)
                want = 0;
        else if (c->state == C_HANDSHAKE)
                want = EPOLLIN;
        else if (c->state == C_CONNECTED) {
                if (!c->readable && !c->host_eof)
                        want |= EPOLLIN;
                if (c->buf_end > c->buf_start)
                        want |= EPOLLOUT;
        } else if (c->state == C_CLOSING) {
                if (c->buf_end > c->buf_start)
                        want |= EPOLLOUT;
        }
        if (want == c->events)
                return;
        /* An fd with nothing to wait for is not registered at all, so a hung-up
         * socket cannot spin the loop with EPOLLHUP. */
        struct epoll_event ev = {.events = want, .data.ptr = c};
        int op = c->events == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
        if (epoll_ctl (c->vs->epfd, op, c->fd, &ev) < 0)
                moat_log (MOAT_LOG_ERROR, "vsock: epoll_ctl fd %d: %s", c->fd, strerror (errno));
        c->events = want;
}

static struct conn *
conn_new (struct moat_vsock *vs, int fd, enum conn_state state)
{
        struct conn *c = xzalloc (sizeof *c);
        c->vs = vs;
        c->fd = fd;
        c->state = state;
        c->next = vs->conns;
        if (vs->conns)
                vs->conns->prev = c;
        vs->conns = c;
        vs->nconns++;
        return c;
}

static void
conn_close_fd (struct conn *c)
{
        if (c->fd >= 0) {
                if (c->events)
                        epoll_ctl (c->vs->epfd, EPOLL_CTL_DEL, c->fd, NULL);
                c->events = 0;
                close (c->fd);
                c->fd = -1;
        }
}

static void
conn_kill (struct conn *c)
{
        conn_close_fd (c);
        c->keyed = false;
        c->dead = true;
}

static void
reap (struct moat_vsock *vs)
{
        struct conn *c = vs->conns, *next;
        for (; c; c = next) {
                next = c->next;
                if (!c->dead)
                        continue;
                if (c->prev)
                        c->prev->next = c->next;
                else
                        vs->conns = c->next;
                if (c->next)
                        c->next->prev = c->prev;
                if (vs->rr == c)
                        vs->rr = NULL;
                free (c->buf);
                free (c);
                vs->nconns--;
        }
}

static struct conn *
lookup (struct moat_vsock *vs, uint32_t local_port, uint32_t peer_port)
{
        for (struct conn *c = vs->conns; c; c = c->next)
                if (c->keyed && c->local_port == local_port && c->peer_port == peer_port)
                        return c;
        return NULL;
}

static void
queue_rst (struct moat_vsock *vs, uint32_t local_port, uint32_t peer_port)
{
        if (vs->rst_len == RST_QUEUE_SIZE) {
                GUEST_WARN (vs, "vsock: RST queue full, dropping RST %u -> %u", local_port, peer_port);
                return;
        }
        struct rst *r = &vs->rstq[(vs->rst_head + vs->rst_len++) % RST_QUEUE_SIZE];
        r->local_port = local_port;
        r->peer_port = peer_port;
}

static size_t
buffered (const struct conn *c)
{
        return c->buf_end - c->buf_start;
}

/* The connection is gone for the guest: optionally RST it, keep the host
 * socket only as long as buffered bytes need flushing. */
static void
teardown (struct conn *c, bool rst)
{
        struct moat_vsock *vs = c->vs;

        if (c->dead)
                return;
        if (rst && c->keyed)
                queue_rst (vs, c->local_port, c->peer_port);
        c->keyed = false;
        c->send_request = c->send_response = c->send_credit_update = false;
        c->send_shutdown = 0;
        if (c->fd >= 0 && buffered (c) > 0 && c->state == C_CONNECTED) {
                c->state = C_CLOSING;
                c->deadline = now_ms () + LINGER_MS;
                update_events (c);
                return;
        }
        conn_kill (c);
}

static uint32_t
peer_credit (const struct conn *c)
{
        uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
        if (in_flight >= c->peer_buf_alloc)
                return 0;
        return c->peer_buf_alloc - in_flight;
}

static bool
can_send_data (const struct conn *c)
{
        return c->state == C_CONNECTED && c->readable && !c->host_eof && !c->guest_shut_rcv && peer_credit (c) > 0;
}

static bool
has_rx_work (const struct conn *c)
{
        if (c->dead || !c->keyed)
                return false;
        return c->send_request || c->send_response || c->send_credit_update || c->send_shutdown || can_send_data (c);
}

/* Both directions finished: tell the guest we are closing; it answers RST. */
static void
check_done (struct conn *c)
{
        if (c->dead || c->state != C_CONNECTED || c->full_shutdown_sent)
                return;
        if (c->host_eof && c->guest_shut_send && c->fd_shut_wr && buffered (c) == 0) {
                c->send_shutdown = MOAT_VSOCK_SHUTDOWN_RCV | MOAT_VSOCK_SHUTDOWN_SEND;
                c->full_shutdown_sent = true;
                c->deadline = now_ms () + LINGER_MS;
                conn_close_fd (c);
        }
}

static void
maybe_shut_wr (struct conn *c)
{
        if (c->guest_shut_send && !c->fd_shut_wr && buffered (c) == 0 && c->fd >= 0) {
                if (shutdown (c->fd, SHUT_WR) < 0 && errno != ENOTCONN)
                        moat_log (MOAT_LOG_WARNING, "vsock: shutdown port %u: %s", c->local_port, strerror (errno));
                c->fd_shut_wr = true;
        }
        check_done (c);
}

/* Writes to the host socket; returns bytes taken or -1 on a fatal error. */
static ssize_t
host_write (struct conn *c, const struct iovec *iov, unsigned n)
{
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = n};
        ssize_t r;

        if (n == 0)
                return 0;
        do
                r = sendmsg (c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
        return r;
}

static void
note_forwarded (struct conn *c, size_t n)
{
        c->fwd_cnt += (uint32_t)n;
        if (c->fwd_cnt - c->last_fwd_cnt_sent >= c->vs->buf_alloc / 4)
                c->send_credit_update = true;
}

/* Flushes the buffer; returns -1 if the host socket failed. */
static int
flush_buf (struct conn *c)
{
        while (buffered (c) > 0) {
                struct iovec iov = {.iov_base = c->buf + c->buf_start, .iov_len = buffered (c)};
                ssize_t r = host_write (c, &iov, 1);
                if (r < 0)
                        return -1;
                if (r == 0)
                        break;
                c->buf_start += r;
                if (c->state == C_CONNECTED)
                        note_forwarded (c, r);
        }
        if (buffered (c) == 0)
                c->buf_start = c->buf_end = 0;
        return 0;
}

static void
buf_append_iov (struct conn *c, const struct iovec *iov, unsigned n, size_t skip)
{
        size_t len = 0;
        for (unsigned i = 0; i < n; i++)
                len += iov[i].iov_len;
        if (skip >= len)
                return;
        len -= skip;
        if (c->buf_start > 0 && c->buf_end + len > c->buf_cap) {
                memmove (c->buf, c->buf + c->buf_start, buffered (c));
                c->buf_end -= c->buf_start;
                c->buf_start = 0;
        }
        if (c->buf_end + len > c->buf_cap) {
                size_t cap = c->buf_cap ? c->buf_cap : 4096;
                while (cap < c->buf_end + len)
                        cap *= 2;
                c->buf = xrealloc (c->buf, cap);
                c->buf_cap = cap;
        }
        c->buf_end += moat_iov_to_buf (iov, n, skip, c->buf + c->buf_end, len);
}

/* ---- guest -> host (tx queue) ---- */

static void
guest_connect (struct moat_vsock *vs, const struct moat_vsock_hdr *h)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        int n;
        cleanup_close int fd = -1;

        if (vs->uds_path == NULL)
                goto refuse;
        if (vs->nconns >= MAX_CONNS) {
                moat_log (MOAT_LOG_WARNING, "vsock: %u connections, refusing guest port %u", vs->nconns, h->src_port);
                goto refuse;
        }
        n = snprintf (sun.sun_path, sizeof sun.sun_path, "%s_%" PRIu32, vs->uds_path, h->dst_port);
        if (n < 0 || (size_t)n >= sizeof sun.sun_path)
                goto refuse;
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                goto refuse;
        if (connect (fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
                moat_debug ("vsock: guest port %u -> host port %u: connect %s: %s", h->src_port, h->dst_port,
                            sun.sun_path, strerror (errno));
                goto refuse;
        }
        struct conn *c = conn_new (vs, steal_fd (&fd), C_CONNECTED);
        c->local_port = h->dst_port;
        c->peer_port = h->src_port;
        c->keyed = true;
        c->peer_buf_alloc = h->buf_alloc;
        c->peer_fwd_cnt = h->fwd_cnt;
        c->send_response = true;
        update_events (c);
        moat_log (MOAT_LOG_INFO, "vsock: guest port %u connected to %s", h->src_port, sun.sun_path);
        return;
refuse:
        queue_rst (vs, h->dst_port, h->src_port);
}

static void
guest_rw (struct conn *c, const struct moat_virtq_elem *e, uint32_t len)
{
        struct iovec iov[MOAT_VIRTQ_MAX_IOV];
        unsigned n;
        ssize_t w = 0;

        if (len == 0)
                return;
        if (c->guest_shut_send) {
                GUEST_WARN (c->vs, "vsock: port %u: data after SHUTDOWN SEND, resetting", c->local_port);
                teardown (c, true);
                return;
        }
        if (buffered (c) + len > c->vs->buf_alloc) {
                GUEST_WARN (c->vs, "vsock: port %u: guest exceeded our credit (%zu + %u > %u), resetting",
                            c->local_port, buffered (c), len, c->vs->buf_alloc);
                teardown (c, true);
                return;
        }
        n = moat_iov_slice (e->iov, e->out_num, MOAT_VSOCK_HDR_SIZE, len, iov, MOAT_VIRTQ_MAX_IOV);
        if (buffered (c) == 0) {
                w = host_write (c, iov, n);
                if (w < 0) {
                        moat_debug ("vsock: port %u: write: %s", c->local_port, strerror (errno));
                        teardown (c, true);
                        return;
                }
                note_forwarded (c, w);
        }
        buf_append_iov (c, iov, n, w);
        update_events (c);
}

static void
handle_tx_packet (struct moat_vsock *vs, const struct moat_virtq_elem *e)
{
        uint8_t raw[MOAT_VSOCK_HDR_SIZE];
        struct moat_vsock_hdr h;
        struct conn *c;

        if (e->out_len < MOAT_VSOCK_HDR_SIZE) {
                GUEST_WARN (vs, "vsock: tx packet of %" PRIu64 " bytes is shorter than the header", e->out_len);
                return;
        }
        moat_iov_to_buf (e->iov, e->out_num, 0, raw, sizeof raw);
        moat_vsock_hdr_decode (raw, &h);
        if (h.src_cid != vs->guest_cid || h.dst_cid != MOAT_VSOCK_HOST_CID) {
                GUEST_WARN (vs, "vsock: dropping packet from cid %" PRIu64 " to cid %" PRIu64, h.src_cid, h.dst_cid);
                return;
        }
        c = lookup (vs, h.dst_port, h.src_port);
        if (h.type != MOAT_VSOCK_TYPE_STREAM || h.len > e->out_len - MOAT_VSOCK_HDR_SIZE) {
                GUEST_WARN (vs, "vsock: bad packet (type %u, len %u of %" PRIu64 ") %u -> %u", h.type, h.len,
                            e->out_len - MOAT_VSOCK_HDR_SIZE, h.src_port, h.dst_port);
                if (h.op == MOAT_VSOCK_OP_RST)
                        return;
                if (c)
                        teardown (c, true);
                else
                        queue_rst (vs, h.dst_port, h.src_port);
                return;
        }
        moat_debug ("vsock: tx op %u %u -> %u len %u flags %u", h.op, h.src_port, h.dst_port, h.len, h.flags);
        if (c) {
                c->peer_buf_alloc = h.buf_alloc;
                c->peer_fwd_cnt = h.fwd_cnt;
        }
        switch (h.op) {
        case MOAT_VSOCK_OP_REQUEST:
                if (c) {
                        teardown (c, true);
                        return;
                }
                guest_connect (vs, &h);
                return;
        case MOAT_VSOCK_OP_RST:
                if (c)
                        teardown (c, false);
                return;
        default:
                break;
        }
        if (c == NULL) {
                queue_rst (vs, h.dst_port, h.src_port);
                return;
        }
        switch (h.op) {
        case MOAT_VSOCK_OP_RESPONSE: {
                if (c->state != C_REQUEST) {
                        teardown (c, true);
                        return;
                }
                /* The socket is fresh and nothing else was written to it:
                 * the short line fits (and must not count as vsock data). */
                char line[32];
                int n = snprintf (line, sizeof line, "OK %" PRIu32 "\n", c->local_port);
                if (send (c->fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) != n) {
                        moat_log (MOAT_LOG_WARNING, "vsock: host port %u: cannot send OK to the client", c->local_port);
                        teardown (c, true);
                        return;
                }
                c->state = C_CONNECTED;
                c->deadline = 0;
                update_events (c);
                moat_log (MOAT_LOG_INFO, "vsock: host port %u connected to guest port %u", c->local_port, c->peer_port);
                return;
        }
        case MOAT_VSOCK_OP_SHUTDOWN:
                if (c->state != C_CONNECTED) {
                        teardown (c, true);
                        return;
                }
                if (h.flags & MOAT_VSOCK_SHUTDOWN_RCV)
                        c->guest_shut_rcv = true;
                if (h.flags & MOAT_VSOCK_SHUTDOWN_SEND)
                        c->guest_shut_send = true;
                if (c->guest_shut_rcv && c->guest_shut_send) {
                        teardown (c, true);
                        return;
                }
                maybe_shut_wr (c);
                return;
        case MOAT_VSOCK_OP_RW:
                if (c->state != C_CONNECTED) {
                        teardown (c, true);
                        return;
                }
                guest_rw (c, e, h.len);
                return;
        case MOAT_VSOCK_OP_CREDIT_UPDATE:
                return;
        case MOAT_VSOCK_OP_CREDIT_REQUEST:
                c->send_credit_update = true;
                return;
        default:
                GUEST_WARN (vs, "vsock: unknown op %u on port %u, resetting", h.op, c->local_port);
                teardown (c, true);
                return;
        }
}

static void process_rx (struct moat_vsock *vs);

static void
process_tx (struct moat_vsock *vs)
{
        struct moat_virtq *vq = vs->vq[MOAT_VSOCK_QUEUE_TX];
        bool pushed = false;

        if (vq == NULL)
                return;
        for (;;) {
                cleanup_error moat_error_t err = NULL;
                int r = moat_virtq_pop (vq, &vs->elem, &err);
                if (r < 0) {
                        moat_log (MOAT_LOG_ERROR, "vsock: tx queue: %s", err->msg);
                        break;
                }
                if (r == 0)
                        break;
                handle_tx_packet (vs, &vs->elem);
                moat_virtq_push (vq, &vs->elem, 0);
                pushed = true;
        }
        if (pushed)
                moat_virtq_notify (vq);
}

/* ---- host -> guest (rx queue) ---- */

static void
fill_hdr (struct moat_vsock *vs, struct conn *c, struct moat_vsock_hdr *h, uint16_t op)
{
        memset (h, 0, sizeof *h);
        h->src_cid = MOAT_VSOCK_HOST_CID;
        h->dst_cid = vs->guest_cid;
        h->type = MOAT_VSOCK_TYPE_STREAM;
        h->op = op;
        h->buf_alloc = vs->buf_alloc;
        if (c) {
                h->src_port = c->local_port;
                h->dst_port = c->peer_port;
                h->fwd_cnt = c->fwd_cnt;
                c->last_fwd_cnt_sent = c->fwd_cnt;
                c->send_credit_update = false;
        }
}

static struct conn *
next_rx_conn (struct moat_vsock *vs)
{
        struct conn *start = vs->rr && !vs->rr->dead ? vs->rr->next : NULL;
        if (start == NULL)
                start = vs->conns;
        struct conn *c = start;
        if (c == NULL)
                return NULL;
        do {
                if (has_rx_work (c)) {
                        vs->rr = c;
                        return c;
                }
                c = c->next ? c->next : vs->conns;
        } while (c != start);
        return NULL;
}

/* Fills one rx element for c; returns bytes of the packet, or 0 if nothing
 * was sent after all (the element must be given back). */
static uint32_t
rx_packet_for (struct moat_vsock *vs, struct conn *c, const struct moat_virtq_elem *e, struct moat_vsock_hdr *h)
{
        const struct iovec *in = &e->iov[e->out_num];

        if (c->send_request) {
                c->send_request = false;
                fill_hdr (vs, c, h, MOAT_VSOCK_OP_REQUEST);
                return MOAT_VSOCK_HDR_SIZE;
        }
        if (c->send_response) {
                c->send_response = false;
                fill_hdr (vs, c, h, MOAT_VSOCK_OP_RESPONSE);
                return MOAT_VSOCK_HDR_SIZE;
        }
        if (can_send_data (c)) {
                struct iovec iov[MOAT_VIRTQ_MAX_IOV];
                size_t max = e->in_len - MOAT_VSOCK_HDR_SIZE;
                uint32_t credit = peer_credit (c);
                if (max > credit)
                        max = credit;
                if (max > MAX_PKT_PAYLOAD)
                        max = MAX_PKT_PAYLOAD;
                if (max > 0) {
                        unsigned n = moat_iov_slice (in, e->in_num, MOAT_VSOCK_HDR_SIZE, max, iov, MOAT_VIRTQ_MAX_IOV);
                        ssize_t r;
                        do
                                r = readv (c->fd, iov, n);
                        while (r < 0 && errno == EINTR);
                        if (r > 0) {
                                fill_hdr (vs, c, h, MOAT_VSOCK_OP_RW);
                                h->len = r;
                                c->tx_cnt += r;
                                return MOAT_VSOCK_HDR_SIZE + r;
                        }
                        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                                c->readable = false;
                                update_events (c);
                        } else if (r == 0) {
                                c->host_eof = true;
                                c->readable = false;
                                update_events (c);
                                fill_hdr (vs, c, h, MOAT_VSOCK_OP_SHUTDOWN);
                                h->flags = MOAT_VSOCK_SHUTDOWN_SEND;
                                check_done (c);
                                return MOAT_VSOCK_HDR_SIZE;
                        } else {
                                moat_debug ("vsock: port %u: read: %s", c->local_port, strerror (errno));
                                fill_hdr (vs, c, h, MOAT_VSOCK_OP_RST);
                                teardown (c, false);
                                return MOAT_VSOCK_HDR_SIZE;
                        }
                }
        }
        if (c->send_shutdown) {
                fill_hdr (vs, c, h, MOAT_VSOCK_OP_SHUTDOWN);
                h->flags = c->send_shutdown;
                c->send_shutdown = 0;
                return MOAT_VSOCK_HDR_SIZE;
        }
        if (c->send_credit_update) {
                fill_hdr (vs, c, h, MOAT_VSOCK_OP_CREDIT_UPDATE);
                return MOAT_VSOCK_HDR_SIZE;
        }
        return 0;
}

static void
process_rx (struct moat_vsock *vs)
{
        struct moat_virtq *vq = vs->vq[MOAT_VSOCK_QUEUE_RX];
        struct moat_virtq_elem *e = &vs->elem;
        bool pushed = false;

        if (vq == NULL || vs->in_rx)
                return;
        vs->in_rx = true;
        for (;;) {
                cleanup_error moat_error_t err = NULL;
                struct moat_vsock_hdr h;
                struct conn *c = NULL;
                uint32_t len = 0;

                if (vs->rst_len == 0) {
                        c = next_rx_conn (vs);
                        if (c == NULL)
                                break;
                }
                int r = moat_virtq_pop (vq, e, &err);
                if (r < 0) {
                        moat_log (MOAT_LOG_ERROR, "vsock: rx queue: %s", err->msg);
                        break;
                }
                if (r == 0)
                        break;
                if (e->in_len < MOAT_VSOCK_HDR_SIZE || e->out_num > 0) {
                        moat_log (MOAT_LOG_WARNING, "vsock: rx buffer of %" PRIu64 " writable bytes is unusable",
                                  e->in_len);
                        moat_virtq_push (vq, e, 0);
                        pushed = true;
                        continue;
                }
                if (c == NULL) {
                        struct rst *rs = &vs->rstq[vs->rst_head];
                        fill_hdr (vs, NULL, &h, MOAT_VSOCK_OP_RST);
                        h.src_port = rs->local_port;
                        h.dst_port = rs->peer_port;
                        vs->rst_head = (vs->rst_head + 1) % RST_QUEUE_SIZE;
                        vs->rst_len--;
                        len = MOAT_VSOCK_HDR_SIZE;
                } else {
                        len = rx_packet_for (vs, c, e, &h);
                        if (len == 0) {
                                moat_virtq_unpop (vq);
                                /* c still has work this buffer cannot take (too
                                 * small for data): wait for other buffers. */
                                if (has_rx_work (c))
                                        break;
                                continue;
                        }
                }
                uint8_t raw[MOAT_VSOCK_HDR_SIZE];
                moat_vsock_hdr_encode (&h, raw);
                moat_iov_from_buf (&e->iov[e->out_num], e->in_num, 0, raw, sizeof raw);
                moat_debug ("vsock: rx op %u %u -> %u len %u flags %u", h.op, h.src_port, h.dst_port, h.len, h.flags);
                moat_virtq_push (vq, e, len);
                pushed = true;
        }
        if (pushed)
                moat_virtq_notify (vq);
        vs->in_rx = false;
}

/* ---- host sockets ---- */

static void
client_handshake (struct moat_vsock *vs, struct conn *c)
{
        char line[HANDSHAKE_MAX + 1];
        ssize_t n;
        char *nl, *end;
        unsigned long port;

        n = recv (c->fd, line, HANDSHAKE_MAX, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                conn_kill (c);
                return;
        }
        line[n] = '\0';
        nl = memchr (line, '\n', n);
        if (nl == NULL) {
                if (n == HANDSHAKE_MAX) {
                        moat_log (MOAT_LOG_WARNING, "vsock: host client sent no CONNECT line, closing");
                        conn_kill (c);
                }
                return;
        }
        if (recv (c->fd, line, nl - line + 1, MSG_DONTWAIT) != nl - line + 1) {
                conn_kill (c);
                return;
        }
        *nl = '\0';
        if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
        errno = 0;
        if (strncmp (line, "CONNECT ", 8) != 0 || line[8] < '0' || line[8] > '9' ||
            (port = strtoul (line + 8, &end, 10), errno != 0) || *end != '\0' || port > UINT32_MAX) {
                moat_log (MOAT_LOG_WARNING, "vsock: bad host handshake '%s', closing", line);
                conn_kill (c);
                return;
        }
        do
                vs->next_port = vs->next_port + 1 < FIRST_HOST_PORT ? FIRST_HOST_PORT : vs->next_port + 1;
        while (lookup (vs, vs->next_port, port));
        c->local_port = vs->next_port;
        c->peer_port = port;
        c->keyed = true;
        c->state = C_REQUEST;
        c->send_request = true;
        c->deadline = now_ms () + vs->timeout_ms;
        update_events (c);
        moat_debug ("vsock: host port %u: connecting to guest port %lu", c->local_port, port);
}

static void
accept_clients (struct moat_vsock *vs)
{
        for (;;) {
                cleanup_error moat_error_t err = NULL;
                int fd = accept4 (vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                moat_log (MOAT_LOG_ERROR, "vsock: accept on %s: %s", vs->uds_path, strerror (errno));
                        return;
                }
                if (moat_vsock_add_client (vs, fd, &err) < 0)
                        moat_log (MOAT_LOG_ERROR, "vsock: %s", err->msg);
        }
}

int
moat_vsock_add_client (struct moat_vsock *vs, int fd, moat_error_t *err)
{
        if (vs->nconns >= MAX_CONNS) {
                close (fd);
                return moat_make_error (err, EMFILE, "%u connections, refusing a host client", vs->nconns);
        }
        if (set_nonblock (fd, true) < 0) {
                int e = errno;
                close (fd);
                return moat_make_error (err, e, "set host client nonblocking");
        }
        struct conn *c = conn_new (vs, fd, C_HANDSHAKE);
        c->deadline = now_ms () + vs->timeout_ms;
        update_events (c);
        return 0;
}

static void
conn_event (struct conn *c, uint32_t events)
{
        if (c->dead)
                return;
        if (c->state == C_HANDSHAKE) {
                client_handshake (c->vs, c);
                return;
        }
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && buffered (c) > 0) {
                if (flush_buf (c) < 0) {
                        moat_debug ("vsock: port %u: write: %s", c->local_port, strerror (errno));
                        if (c->state == C_CLOSING)
                                conn_kill (c);
                        else
                                teardown (c, true);
                        return;
                }
                if (c->state == C_CLOSING && buffered (c) == 0) {
                        conn_kill (c);
                        return;
                }
                maybe_shut_wr (c);
        }
        if (c->state == C_CONNECTED && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !c->host_eof)
                c->readable = true;
        update_events (c);
}

static void
check_timeouts (struct moat_vsock *vs)
{
        int64_t now = now_ms ();
        for (struct conn *c = vs->conns; c; c = c->next) {
                if (c->dead || c->deadline == 0 || c->deadline > now)
                        continue;
                c->deadline = 0;
                switch (c->state) {
                case C_HANDSHAKE:
                        moat_log (MOAT_LOG_WARNING, "vsock: host client sent no CONNECT in time, closing");
                        conn_kill (c);
                        break;
                case C_REQUEST:
                        moat_log (MOAT_LOG_WARNING, "vsock: guest port %u did not answer in time, closing",
                                  c->peer_port);
                        teardown (c, true);
                        break;
                case C_CONNECTED: /* linger after the full shutdown */
                        teardown (c, true);
                        break;
                case C_CLOSING:
                        conn_kill (c);
                        break;
                }
        }
}

/* ---- public API ---- */

int
moat_vsock_new (const struct moat_vsock_config *cfg, struct moat_vsock **out, moat_error_t *err)
{
        struct moat_vsock *vs = xzalloc (sizeof *vs);

        vs->guest_cid = cfg->guest_cid ? cfg->guest_cid : MOAT_VSOCK_DEFAULT_GUEST_CID;
        vs->buf_alloc = cfg->buf_alloc ? cfg->buf_alloc : DEFAULT_BUF_ALLOC;
        vs->timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
        vs->listen_fd = -1;
        vs->next_port = FIRST_HOST_PORT - 1;
        vs->epfd = epoll_create1 (EPOLL_CLOEXEC);
        if (vs->epfd < 0) {
                moat_make_error (err, errno, "epoll_create1");
                free (vs);
                return -1;
        }
        if (cfg->uds_path) {
                struct sockaddr_un sun = {.sun_family = AF_UNIX};
                if (strlen (cfg->uds_path) >= sizeof sun.sun_path - MOAT_VSOCK_PORT_SUFFIX_MAX) {
                        moat_make_error (err, ENAMETOOLONG, "hybrid vsock socket path %s", cfg->uds_path);
                        goto fail;
                }
                vs->uds_path = xstrdup (cfg->uds_path);
                strcpy (sun.sun_path, cfg->uds_path);
                vs->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (vs->listen_fd < 0) {
                        moat_make_error (err, errno, "socket");
                        goto fail;
                }
                struct stat st;
                if (lstat (cfg->uds_path, &st) == 0 && S_ISSOCK (st.st_mode))
                        unlink (cfg->uds_path);
                if (bind (vs->listen_fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
                        moat_make_error (err, errno, "bind %s", cfg->uds_path);
                        goto fail;
                }
                if (listen (vs->listen_fd, 64) < 0) {
                        moat_make_error (err, errno, "listen %s", cfg->uds_path);
                        unlink (cfg->uds_path);
                        goto fail;
                }
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
                if (epoll_ctl (vs->epfd, EPOLL_CTL_ADD, vs->listen_fd, &ev) < 0) {
                        moat_make_error (err, errno, "epoll_ctl");
                        unlink (cfg->uds_path);
                        goto fail;
                }
        }
        *out = vs;
        return 0;
fail:
        if (vs->listen_fd >= 0)
                close (vs->listen_fd);
        close (vs->epfd);
        free (vs->uds_path);
        free (vs);
        return -1;
}

void
moat_vsock_free (struct moat_vsock *vs)
{
        if (vs == NULL)
                return;
        for (struct conn *c = vs->conns; c; c = c->next)
                conn_kill (c);
        reap (vs);
        if (vs->listen_fd >= 0) {
                close (vs->listen_fd);
                unlink (vs->uds_path);
        }
        close (vs->epfd);
        free (vs->uds_path);
        free (vs);
}

int
moat_vsock_get_fd (struct moat_vsock *vs)
{
        return vs->epfd;
}

int
moat_vsock_next_timeout (struct moat_vsock *vs)
{
        int64_t best = -1, now = now_ms ();
        for (struct conn *c = vs->conns; c; c = c->next) {
                if (c->dead || c->deadline == 0)
                        continue;
                int64_t d = c->deadline - now;
                if (d < 0)
                        d = 0;
                if (best < 0 || d < best)
                        best = d;
        }
        return best > INT32_MAX ? INT32_MAX : (int)best;
}

void
moat_vsock_poll (struct moat_vsock *vs)
{
        struct epoll_event evs[64];
        int n;

        do
                n = epoll_wait (vs->epfd, evs, ARRAY_SIZE (evs), 0);
        while (n < 0 && errno == EINTR);
        for (int i = 0; i < n; i++) {
                if (evs[i].data.ptr == NULL)
                        accept_clients (vs);
                else
                        conn_event (evs[i].data.ptr, evs[i].events);
        }
        check_timeouts (vs);
        process_rx (vs);
        reap (vs);
}

void
moat_vsock_set_queue (struct moat_vsock *vs, unsigned q, struct moat_virtq *vq)
{
        if (q >= ARRAY_SIZE (vs->vq))
                return;
        vs->vq[q] = vq;
        if (vq && q == MOAT_VSOCK_QUEUE_RX)
                process_rx (vs);
}

void
moat_vsock_kick (struct moat_vsock *vs, unsigned q)
{
        if (q == MOAT_VSOCK_QUEUE_TX)
                process_tx (vs);
        process_rx (vs);
        reap (vs);
}

void
moat_vsock_get_config (struct moat_vsock *vs, uint32_t off, uint8_t *buf, uint32_t len)
{
        uint8_t cfg[MOAT_VSOCK_CONFIG_SIZE];
        uint64_t cid = htole64 (vs->guest_cid);

        memcpy (cfg, &cid, sizeof cid);
        memset (buf, 0, len);
        if (off < sizeof cfg)
                memcpy (buf, cfg + off, len < sizeof cfg - off ? len : sizeof cfg - off);
}

void
moat_vsock_reset (struct moat_vsock *vs)
{
        for (struct conn *c = vs->conns; c; c = c->next)
                conn_kill (c);
        vs->rst_len = 0;
        reap (vs);
}

unsigned
moat_vsock_count_connections (struct moat_vsock *vs)
{
        unsigned n = 0;
        for (struct conn *c = vs->conns; c; c = c->next)
                n += !c->dead;
        return n;
}

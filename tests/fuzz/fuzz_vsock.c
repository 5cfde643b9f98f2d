/* SPDX-License-Identifier: Apache-2.0 */
/* The virtio-vsock device (src/vsock/vsock.c) between a hostile guest and
 * hostile host clients. The input is a program: guest packets on the tx
 * queue (headers with any op, ports, lengths, credit, split over several
 * descriptors), rx buffers of any size, host clients that write any
 * handshake ("CONNECT <port>\n" or not) and data, a host listener that the
 * guest can connect to, polls, resets. One device per input. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fuzz.h"
#include "moat/log.h"
#include "moat/util.h"
#include "moat/vsock.h"

#define GUEST_CID 3
#define QSIZE 64
#define LISTEN_PORT 1024
#define MAX_FDS 16
#define RX_POOL 0x14000 /* rx buffers: region 0 from here, on into region 1 */
#define TX_BUF 0x1f000  /* tx packets: across the end of region 0 */

static struct fguest g;
static char dir[64], path[128];
static int listen_fd = -1;
/* The host ends write with MSG_NOSIGNAL: SIGPIPE is not ignored, so one
 * raised by the device (whose programs may not ignore it) stops the run. */

/* libFuzzer ends with exit(): the temporary directory goes with it. */
static void
remove_tmp (void)
{
        moat_error_t err = NULL;
        if (rm_rf (dir, &err) < 0)
                moat_error_release (&err);
}

static int
init (void)
{
        moat_log_init ("/dev/null", 0, 1);
        fguest_init (&g);
        strcpy (dir, "/tmp/moat-fuzz-vsock.XXXXXX");
        if (mkdtemp (dir) == NULL)
                abort ();
        atexit (remove_tmp);
        snprintf (path, sizeof path, "%s/v.sock", dir);
        /* where a guest connecting to host port LISTEN_PORT lands */
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf (sun.sun_path, sizeof sun.sun_path, "%s_%d", path, LISTEN_PORT);
        listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (listen_fd < 0 || bind (listen_fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen (listen_fd, 64) < 0)
                abort ();
        return 0;
}

struct queue {
        struct moat_virtq vq;
        uint64_t desc, avail;
        uint16_t avail_idx, next;
};

static void
queue_init (struct queue *q, uint64_t base)
{
        memset (q, 0, sizeof *q);
        q->desc = base;
        q->avail = base + 16 * QSIZE;
        q->vq.size = QSIZE;
        q->vq.desc_gpa = q->desc;
        q->vq.avail_gpa = q->avail;
        q->vq.used_gpa = (q->avail + 6 + 2 * QSIZE + 3) & ~3ull;
        q->vq.event_idx = true;
        q->vq.indirect = true;
        q->vq.mem = &g.mem;
        moat_error_t err = NULL;
        if (moat_virtq_start (&q->vq, 0, &err) < 0)
                abort ();
}

/* Puts a chain of n buffers in the table and publishes it. */
static void
queue_add (struct queue *q, const uint64_t *addr, const uint32_t *len, const bool *write, int n)
{
        uint16_t head = q->next;
        for (int i = 0; i < n; i++) {
                uint16_t idx = (head + i) % QSIZE, next = (head + i + 1) % QSIZE;
                fguest_put_desc (&g, q->desc, idx, addr[i], len[i], (write[i] ? 2 : 0) | (i + 1 < n ? 1 : 0), next);
        }
        q->next = (head + n) % QSIZE;
        fguest_put16 (&g, q->avail + 4 + 2 * (q->avail_idx % QSIZE), head);
        q->avail_idx++;
        fguest_put16 (&g, q->avail + 2, q->avail_idx);
}

static void
close_all (int *fds)
{
        for (int i = 0; i < MAX_FDS; i++)
                if (fds[i] >= 0) {
                        close (fds[i]);
                        fds[i] = -1;
                }
}

static int
add_fd (int *fds, int fd)
{
        for (int i = 0; i < MAX_FDS; i++)
                if (fds[i] < 0) {
                        fds[i] = fd;
                        return 0;
                }
        close (fd);
        return -1;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        struct fz f = {data, size};
        struct queue rx, tx;
        struct moat_vsock *vs = NULL;
        moat_error_t err = NULL;
        int fds[MAX_FDS]; /* host ends: clients we started and connections the guest opened */
        uint64_t rx_at = RX_POOL;

        if (listen_fd < 0)
                init ();
        for (int i = 0; i < MAX_FDS; i++)
                fds[i] = -1;
        fguest_clear (&g);
        queue_init (&rx, 0x10000);
        queue_init (&tx, 0x11000);

        uint8_t cfg = fz_u8 (&f);
        struct moat_vsock_config c = {.guest_cid = GUEST_CID,
                                      .uds_path = (cfg & 1) ? NULL : path,
                                      .buf_alloc = (cfg & 2) ? 4096 : 0,
                                      .connect_timeout_ms = (cfg & 4) ? 1 : 0};
        if (moat_vsock_new (&c, &vs, &err) < 0) {
                fprintf (stderr, "moat_vsock_new: %s\n", err->msg);
                abort ();
        }
        moat_vsock_set_queue (vs, MOAT_VSOCK_QUEUE_RX, &rx.vq);
        moat_vsock_set_queue (vs, MOAT_VSOCK_QUEUE_TX, &tx.vq);

        for (int steps = 0; fz_more (&f) && steps < 128; steps++) {
                uint8_t op = fz_u8 (&f);
                switch (op % 10) {
                case 0: { /* a guest packet */
                        struct moat_vsock_hdr h = {0};
                        uint8_t sel = fz_u8 (&f);
                        h.src_cid = (sel & 1) ? fz_u64 (&f) : GUEST_CID;
                        h.dst_cid = (sel & 2) ? fz_u64 (&f) : MOAT_VSOCK_HOST_CID;
                        h.src_port = (sel & 4) ? fz_u32 (&f) : 5000 + fz_u8 (&f) % 4;
                        h.dst_port = (sel & 8) ? fz_u32 (&f) : ((sel & 16) ? (1u << 30) + fz_u8 (&f) % 4 : LISTEN_PORT);
                        h.type = (sel & 32) ? fz_u16 (&f) : MOAT_VSOCK_TYPE_STREAM;
                        h.op = fz_u8 (&f) % 9;
                        h.flags = fz_u8 (&f);
                        h.buf_alloc = (sel & 64) ? fz_u32 (&f) : 65536;
                        h.fwd_cnt = fz_u32 (&f);
                        size_t n;
                        const uint8_t *payload = fz_chunk (&f, 8192, &n);
                        h.len = (sel & 128) ? fz_u32 (&f) : (uint32_t)n;
                        uint64_t at = TX_BUF - fz_u16 (&f) % 0x2000;
                        moat_vsock_hdr_encode (&h, fguest_ptr (&g, at, MOAT_VSOCK_HDR_SIZE));
                        fguest_write (&g, at + MOAT_VSOCK_HDR_SIZE, payload, n);
                        /* header and payload in one, two or three buffers */
                        uint32_t total = MOAT_VSOCK_HDR_SIZE + n, cut = fz_u8 (&f) % (MOAT_VSOCK_HDR_SIZE + 1);
                        uint64_t a[3] = {at, at + cut, at + MOAT_VSOCK_HDR_SIZE};
                        uint32_t l[3] = {cut, MOAT_VSOCK_HDR_SIZE - cut, n};
                        bool w[3] = {false, false, op & 0x80};
                        if (op & 0x40)
                                queue_add (&tx, a, l, w, n ? 3 : 2);
                        else
                                queue_add (&tx, &at, &total, w, 1);
                        moat_vsock_kick (vs, MOAT_VSOCK_QUEUE_TX);
                        break;
                }
                case 1: { /* rx buffers */
                        int k = 1 + fz_u8 (&f) % 8;
                        for (int i = 0; i < k; i++) {
                                uint32_t len = fz_u16 (&f) % 8192;
                                if (rx_at + len > 0x28000)
                                        rx_at = RX_POOL;
                                uint64_t a = rx_at;
                                bool w = true;
                                queue_add (&rx, &a, &len, &w, 1);
                                rx_at += len;
                        }
                        moat_vsock_kick (vs, MOAT_VSOCK_QUEUE_RX);
                        break;
                }
                case 2: { /* a host client, with its first bytes */
                        int sv[2];
                        if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                                break;
                        if (moat_vsock_add_client (vs, sv[1], &err) < 0)
                                moat_error_release (&err);
                        if (add_fd (fds, sv[0]) < 0)
                                break;
                        char line[32];
                        int len = snprintf (line, sizeof line, "CONNECT %u\n", 5000 + fz_u8 (&f) % 4);
                        if (op & 0x80) { /* anything instead */
                                size_t n;
                                const uint8_t *p = fz_chunk (&f, 256, &n);
                                if (send (sv[0], p, n, MSG_NOSIGNAL) < 0)
                                        break;
                        } else if (send (sv[0], line, len, MSG_NOSIGNAL) < 0)
                                break;
                        break;
                }
                case 3: { /* a host end writes */
                        int fd = fds[fz_u8 (&f) % MAX_FDS];
                        size_t n;
                        const uint8_t *p = fz_chunk (&f, 65536, &n);
                        if (fd >= 0 && send (fd, p, n, MSG_NOSIGNAL) < 0)
                                break;
                        break;
                }
                case 4: { /* a host end closes or half-closes */
                        int i = fz_u8 (&f) % MAX_FDS;
                        if (fds[i] < 0)
                                break;
                        if (op & 0x80) {
                                shutdown (fds[i], SHUT_WR);
                        } else {
                                close (fds[i]);
                                fds[i] = -1;
                        }
                        break;
                }
                case 5: /* the event loop */
                        moat_vsock_poll (vs);
                        break;
                case 6: /* the host side takes the connections the guest made */
                        for (;;) {
                                int fd = accept4 (listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                                if (fd < 0 || add_fd (fds, fd) < 0)
                                        break;
                        }
                        break;
                case 7: { /* host ends read what came */
                        char buf[4096];
                        for (int i = 0; i < MAX_FDS; i++)
                                while (fds[i] >= 0 && read (fds[i], buf, sizeof buf) > 0)
                                        ;
                        break;
                }
                case 8: { /* config space */
                        uint8_t buf[64];
                        moat_vsock_get_config (vs, fz_u32 (&f), buf, fz_u8 (&f) % sizeof buf);
                        break;
                }
                case 9:
                        if (op & 0x80) {
                                moat_vsock_reset (vs);
                        } else { /* the transport stops the queues, then restarts them */
                                moat_vsock_set_queue (vs, MOAT_VSOCK_QUEUE_RX, NULL);
                                moat_vsock_set_queue (vs, MOAT_VSOCK_QUEUE_TX, NULL);
                                moat_vsock_kick (vs, MOAT_VSOCK_QUEUE_TX);
                                moat_vsock_poll (vs);
                                moat_vsock_set_queue (vs, MOAT_VSOCK_QUEUE_RX, &rx.vq);
                                moat_vsock_set_queue (vs, MOAT_VSOCK_QUEUE_TX, &tx.vq);
                        }
                        break;
                }
        }
        moat_vsock_poll (vs);
        moat_vsock_free (vs);
        close_all (fds);
        /* connections the guest made that nobody took */
        for (int fd; (fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0;)
                close (fd);
        return 0;
}

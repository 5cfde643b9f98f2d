/* SPDX-License-Identifier: Apache-2.0 */
/* The virtio-vsock device driven by a fake guest driver (rx/tx queues in fake
 * guest memory) and real host sockets: handshake both ways, data, credit
 * flow control, RST on unknown or bad packets, half close, timeouts. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_guest.h"
#include "moat/util.h"
#include "moat/vsock.h"

#define GUEST_CID 3
#define RX_BUFS 32
#define RX_BUF_SIZE (MOAT_VSOCK_HDR_SIZE + 4096)
#define TX_MAX (MOAT_VSOCK_HDR_SIZE + 65536)

struct fixture {
        struct fake_guest g;
        struct fake_queue rx, tx;
        uint64_t rx_pool, tx_buf;
        struct moat_vsock *vs;
        char dir[64];
        char path[96];
        uint32_t guest_buf_alloc, guest_fwd_cnt;
};

static void
repost_rx (struct fixture *f, uint64_t addr)
{
        struct fq_buf b = {addr, RX_BUF_SIZE, true};
        fq_add_chain (&f->rx, &b, 1);
}

static int
setup_cfg (void **state, uint32_t buf_alloc, int timeout_ms)
{
        struct fixture *f = calloc (1, sizeof *f);
        moat_error_t err = NULL;

        fg_init (&f->g);
        fq_init (&f->rx, &f->g, 0, 64, true, true);
        fq_init (&f->tx, &f->g, 1, 64, true, true);
        assert_int_equal (moat_virtq_start (&f->rx.vq, 0, &err), 0);
        assert_int_equal (moat_virtq_start (&f->tx.vq, 0, &err), 0);
        f->rx_pool = fg_alloc (&f->g, (uint64_t)RX_BUFS * RX_BUF_SIZE);
        f->tx_buf = fg_alloc (&f->g, TX_MAX);
        for (int i = 0; i < RX_BUFS; i++)
                repost_rx (f, f->rx_pool + (uint64_t)i * RX_BUF_SIZE);

        strcpy (f->dir, "/tmp/moat-test-vsock.XXXXXX");
        assert_non_null (mkdtemp (f->dir));
        snprintf (f->path, sizeof f->path, "%s/v.sock", f->dir);
        struct moat_vsock_config cfg = {
                .guest_cid = GUEST_CID, .uds_path = f->path, .buf_alloc = buf_alloc, .connect_timeout_ms = timeout_ms};
        if (moat_vsock_new (&cfg, &f->vs, &err) < 0)
                fail_msg ("moat_vsock_new: %s", err->msg);
        moat_vsock_set_queue (f->vs, MOAT_VSOCK_QUEUE_RX, &f->rx.vq);
        moat_vsock_set_queue (f->vs, MOAT_VSOCK_QUEUE_TX, &f->tx.vq);
        f->guest_buf_alloc = 65536;
        *state = f;
        return 0;
}

static int
setup (void **state)
{
        return setup_cfg (state, 0, 0);
}

static int
setup_small (void **state)
{
        return setup_cfg (state, 4096, 100);
}

static int
teardown (void **state)
{
        struct fixture *f = *state;
        moat_vsock_free (f->vs);
        /* the listening socket is removed */
        assert_int_equal (access (f->path, F_OK), -1);
        char p[160];
        snprintf (p, sizeof p, "%s_5000", f->path);
        unlink (p);
        rmdir (f->dir);
        fg_free (&f->g);
        free (f);
        return 0;
}

/* ---- fake guest driver ---- */

static void
guest_send_raw (struct fixture *f, const struct moat_vsock_hdr *h, const void *payload, size_t len, int split)
{
        uint8_t *p = fg_ptr (&f->g, f->tx_buf);
        moat_vsock_hdr_encode (h, p);
        if (len)
                memcpy (p + MOAT_VSOCK_HDR_SIZE, payload, len);
        if (split) {
                /* header in two pieces, payload in a third descriptor */
                struct fq_buf b[3] = {{f->tx_buf, 20, false},
                                      {f->tx_buf + 20, MOAT_VSOCK_HDR_SIZE - 20, false},
                                      {f->tx_buf + MOAT_VSOCK_HDR_SIZE, len, false}};
                fq_add_chain (&f->tx, b, len ? 3 : 2);
        } else {
                struct fq_buf b = {f->tx_buf, MOAT_VSOCK_HDR_SIZE + len, false};
                fq_add_chain (&f->tx, &b, 1);
        }
        moat_vsock_kick (f->vs, MOAT_VSOCK_QUEUE_TX);
        uint32_t id, l;
        assert_int_equal (fq_get_used (&f->tx, &id, &l), 1); /* consumed right away */
}

static void
guest_send (struct fixture *f, uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t flags, const void *payload,
            size_t len)
{
        struct moat_vsock_hdr h = {.src_cid = GUEST_CID,
                                   .dst_cid = MOAT_VSOCK_HOST_CID,
                                   .src_port = src_port,
                                   .dst_port = dst_port,
                                   .len = len,
                                   .type = MOAT_VSOCK_TYPE_STREAM,
                                   .op = op,
                                   .flags = flags,
                                   .buf_alloc = f->guest_buf_alloc,
                                   .fwd_cnt = f->guest_fwd_cnt};
        guest_send_raw (f, &h, payload, len, 0);
}

/* Takes the next packet the device put in the rx queue; 0 if none. */
static int
guest_recv (struct fixture *f, struct moat_vsock_hdr *h, void *payload, size_t cap)
{
        uint32_t id, len;
        if (!fq_get_used (&f->rx, &id, &len))
                return 0;
        assert_true (id < 64);
        uint64_t addr;
        memcpy (&addr, fg_ptr (&f->g, f->rx.desc + 16 * id), 8);
        addr = le64toh (addr);
        assert_true (len >= MOAT_VSOCK_HDR_SIZE);
        uint8_t *p = fg_ptr (&f->g, addr);
        moat_vsock_hdr_decode (p, h);
        assert_int_equal (h->len, len - MOAT_VSOCK_HDR_SIZE);
        assert_int_equal (h->src_cid, MOAT_VSOCK_HOST_CID);
        assert_int_equal (h->dst_cid, GUEST_CID);
        assert_int_equal (h->type, MOAT_VSOCK_TYPE_STREAM);
        assert_true (h->len <= cap);
        if (h->len)
                memcpy (payload, p + MOAT_VSOCK_HDR_SIZE, h->len);
        repost_rx (f, addr);
        moat_vsock_kick (f->vs, MOAT_VSOCK_QUEUE_RX);
        return 1;
}

static void
expect_pkt (struct fixture *f, uint16_t op, struct moat_vsock_hdr *h)
{
        static uint8_t junk[65536];
        if (!guest_recv (f, h, junk, sizeof junk))
                fail_msg ("expected op %u, the guest got nothing", op);
        if (h->op != op)
                fail_msg ("expected op %u, got op %u", op, h->op);
}

static void
expect_nothing (struct fixture *f)
{
        struct moat_vsock_hdr h;
        uint8_t junk[4096];
        moat_vsock_poll (f->vs);
        if (guest_recv (f, &h, junk, sizeof junk))
                fail_msg ("unexpected packet op %u %u -> %u", h.op, h.src_port, h.dst_port);
}

static void
host_read_exact (int fd, const char *want)
{
        char buf[256];
        size_t n = strlen (want);
        assert_true (n < sizeof buf);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        size_t got = 0;
        while (got < n) {
                assert_int_equal (poll (&p, 1, 2000), 1);
                ssize_t r = read (fd, buf + got, n - got);
                assert_true (r > 0);
                got += r;
        }
        assert_memory_equal (buf, want, n);
}

static void
host_expect_eof (struct fixture *f, int fd)
{
        char c;
        moat_vsock_poll (f->vs);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal (poll (&p, 1, 2000), 1);
        ssize_t r = read (fd, &c, 1);
        /* closing a socket with unread input resets it instead */
        if (!(r == 0 || (r < 0 && errno == ECONNRESET)))
                fail_msg ("expected EOF, read returned %zd", r);
}

/* Host client connects to guest port `port`; the guest accepts. Returns the
 * client fd and the host port. */
static int
host_connect (struct fixture *f, uint32_t port, uint32_t *host_port)
{
        int sv[2];
        moat_error_t err = NULL;
        char line[64];
        struct moat_vsock_hdr h;

        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal (moat_vsock_add_client (f->vs, sv[0], &err), 0);
        snprintf (line, sizeof line, "CONNECT %u\n", port);
        assert_int_equal (write (sv[1], line, strlen (line)), (ssize_t)strlen (line));
        moat_vsock_poll (f->vs);
        expect_pkt (f, MOAT_VSOCK_OP_REQUEST, &h);
        assert_int_equal (h.dst_port, port);
        assert_true (h.src_port >= 1024);
        *host_port = h.src_port;
        f->guest_fwd_cnt = 0;
        guest_send (f, MOAT_VSOCK_OP_RESPONSE, port, h.src_port, 0, NULL, 0);
        snprintf (line, sizeof line, "OK %u\n", h.src_port);
        host_read_exact (sv[1], line);
        return sv[1];
}

/* ---- tests ---- */

static void
test_hdr_roundtrip (void **state)
{
        struct moat_vsock_hdr h = {0x0102030405060708ull, 2, 1024, 0x40000000, 5, 1, 5, 3, 65536, 77}, h2;
        uint8_t raw[MOAT_VSOCK_HDR_SIZE];
        moat_vsock_hdr_encode (&h, raw);
        assert_int_equal (raw[0], 0x08); /* little-endian */
        assert_int_equal (raw[30], 5);   /* op at offset 30 */
        memset (&h2, 0xff, sizeof h2);
        moat_vsock_hdr_decode (raw, &h2);
        assert_true (h2.src_cid == h.src_cid && h2.dst_cid == h.dst_cid && h2.src_port == h.src_port &&
                     h2.dst_port == h.dst_port && h2.len == h.len && h2.type == h.type && h2.op == h.op &&
                     h2.flags == h.flags && h2.buf_alloc == h.buf_alloc && h2.fwd_cnt == h.fwd_cnt);
}

static void
test_config (void **state)
{
        struct fixture *f = *state;
        uint8_t cfg[12];
        moat_vsock_get_config (f->vs, 0, cfg, sizeof cfg);
        assert_int_equal (cfg[0], GUEST_CID);
        for (int i = 1; i < 12; i++)
                assert_int_equal (cfg[i], 0);
        moat_vsock_get_config (f->vs, 100, cfg, 4); /* past the end: zeros */
        assert_int_equal (cfg[0], 0);
}

static void
test_connect_and_data (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;
        char buf[64];

        int fd = host_connect (f, 1024, &hp);
        assert_int_equal (moat_vsock_count_connections (f->vs), 1);
        assert_int_equal (write (fd, "hello", 5), 5);
        moat_vsock_poll (f->vs);
        assert_int_equal (guest_recv (f, &h, buf, sizeof buf), 1);
        assert_int_equal (h.op, MOAT_VSOCK_OP_RW);
        assert_int_equal (h.src_port, hp);
        assert_int_equal (h.dst_port, 1024);
        assert_int_equal (h.len, 5);
        assert_int_equal (h.buf_alloc, 256 * 1024);
        assert_memory_equal (buf, "hello", 5);

        guest_send (f, MOAT_VSOCK_OP_RW, 1024, hp, 0, "world", 5);
        host_read_exact (fd, "world");
        /* header split over descriptors, payload in its own */
        struct moat_vsock_hdr s = {GUEST_CID, 2, 1024, hp, 3, 1, MOAT_VSOCK_OP_RW, 0, 65536, 0};
        guest_send_raw (f, &s, "abc", 3, 1);
        host_read_exact (fd, "abc");
        expect_nothing (f);
        close (fd);
}

static void
test_guest_credit_respected (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;
        char data[300], got[300];
        size_t n = 0;

        for (int i = 0; i < 300; i++)
                data[i] = (char)i;
        f->guest_buf_alloc = 100;
        int fd = host_connect (f, 1024, &hp);
        assert_int_equal (write (fd, data, 300), 300);
        moat_vsock_poll (f->vs);
        while (guest_recv (f, &h, got + n, sizeof got - n)) {
                assert_int_equal (h.op, MOAT_VSOCK_OP_RW);
                n += h.len;
        }
        assert_int_equal (n, 100); /* exactly the guest's credit */
        expect_nothing (f);

        f->guest_fwd_cnt = 100; /* the guest consumed it */
        guest_send (f, MOAT_VSOCK_OP_CREDIT_UPDATE, 1024, hp, 0, NULL, 0);
        moat_vsock_poll (f->vs);
        while (guest_recv (f, &h, got + n, sizeof got - n))
                n += h.len;
        assert_int_equal (n, 200);
        f->guest_fwd_cnt = 200;
        guest_send (f, MOAT_VSOCK_OP_CREDIT_UPDATE, 1024, hp, 0, NULL, 0);
        moat_vsock_poll (f->vs);
        while (guest_recv (f, &h, got + n, sizeof got - n))
                n += h.len;
        assert_int_equal (n, 300);
        assert_memory_equal (got, data, 300);
        close (fd);
}

static void
test_credit_request_and_update (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;
        static char data[4096];

        int fd = host_connect (f, 1024, &hp);
        guest_send (f, MOAT_VSOCK_OP_CREDIT_REQUEST, 1024, hp, 0, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_CREDIT_UPDATE, &h);
        assert_int_equal (h.buf_alloc, 4096);
        assert_int_equal (h.fwd_cnt, 0);
        /* the guest uses all its credit; once the host took it, we say so */
        memset (data, 'x', sizeof data);
        guest_send (f, MOAT_VSOCK_OP_RW, 1024, hp, 0, data, sizeof data);
        expect_pkt (f, MOAT_VSOCK_OP_CREDIT_UPDATE, &h);
        assert_int_equal (h.fwd_cnt, 4096);
        close (fd);
}

static void
test_credit_violation_rst (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;
        static uint8_t data[4096], back[65536];
        bool rst = false;
        uint64_t sent = 0;

        int fd = host_connect (f, 1024, &hp);
        /* the host does not read: a guest ignoring our 4 KiB credit (each
         * packet fits, the sum does not) gets RST once the socket is full */
        for (int i = 0; i < 2000 && !rst; i++) {
                for (size_t j = 0; j < sizeof data; j++)
                        data[j] = (uint8_t)((sent + j) % 251);
                guest_send (f, MOAT_VSOCK_OP_RW, 1024, hp, 0, data, sizeof data);
                sent += sizeof data;
                while (guest_recv (f, &h, back, sizeof back))
                        if (h.op == MOAT_VSOCK_OP_RST && h.src_port == hp && h.dst_port == 1024)
                                rst = true;
        }
        assert_true (rst);
        /* what reached the host is an intact prefix, then EOF */
        uint64_t total = 0;
        for (;;) {
                moat_vsock_poll (f->vs);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                assert_int_equal (poll (&p, 1, 2000), 1);
                ssize_t r = read (fd, back, sizeof back);
                assert_true (r >= 0);
                if (r == 0)
                        break;
                for (ssize_t i = 0; i < r; i++)
                        assert_int_equal (back[i], (uint8_t)((total + i) % 251));
                total += r;
        }
        assert_true (total > 4096 && total < sent);
        moat_vsock_poll (f->vs);
        assert_int_equal (moat_vsock_count_connections (f->vs), 0);
        close (fd);
}

static void
test_rst_unknown_connection (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;

        guest_send (f, MOAT_VSOCK_OP_RW, 1234, 7777, 0, "zz", 2);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        assert_int_equal (h.src_port, 7777);
        assert_int_equal (h.dst_port, 1234);
        guest_send (f, MOAT_VSOCK_OP_SHUTDOWN, 1234, 7777, 3, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        guest_send (f, MOAT_VSOCK_OP_RESPONSE, 1234, 7777, 0, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        /* never answer a RST with a RST */
        guest_send (f, MOAT_VSOCK_OP_RST, 1234, 7777, 0, NULL, 0);
        expect_nothing (f);
}

static void
test_rx_queue_starved (void **state)
{
        /* RSTs wait for rx buffers instead of being lost */
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint8_t junk[4096];
        int n = 0;
        for (int i = 0; i < 40; i++) /* more than the 32 posted rx buffers */
                guest_send (f, MOAT_VSOCK_OP_RW, 2000 + i, 7777, 0, "z", 1);
        /* take used entries without reposting */
        uint32_t id, len;
        while (fq_get_used (&f->rx, &id, &len))
                n++;
        assert_int_equal (n, RX_BUFS);
        for (int i = 0; i < 8; i++)
                repost_rx (f, f->rx_pool + (uint64_t)i * RX_BUF_SIZE);
        moat_vsock_kick (f->vs, MOAT_VSOCK_QUEUE_RX);
        for (int i = 0; i < 8; i++) {
                assert_int_equal (guest_recv (f, &h, junk, sizeof junk), 1);
                assert_int_equal (h.op, MOAT_VSOCK_OP_RST);
                assert_int_equal (h.dst_port, 2000 + RX_BUFS + i);
        }
}

static void
test_guest_connect (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        char buf[64];
        struct sockaddr_un sun = {.sun_family = AF_UNIX};

        assert_true (strlen (f->path) + 6 < sizeof sun.sun_path);
        memcpy (sun.sun_path, f->path, strlen (f->path));
        strcat (sun.sun_path, "_5000");
        int l = socket (AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal (bind (l, (struct sockaddr *)&sun, sizeof sun), 0);
        assert_int_equal (listen (l, 1), 0);

        guest_send (f, MOAT_VSOCK_OP_REQUEST, 3333, 5000, 0, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RESPONSE, &h);
        assert_int_equal (h.src_port, 5000);
        assert_int_equal (h.dst_port, 3333);
        int fd = accept (l, NULL, NULL);
        assert_true (fd >= 0);
        guest_send (f, MOAT_VSOCK_OP_RW, 3333, 5000, 0, "hi", 2);
        host_read_exact (fd, "hi");
        assert_int_equal (write (fd, "yo", 2), 2);
        moat_vsock_poll (f->vs);
        assert_int_equal (guest_recv (f, &h, buf, sizeof buf), 1);
        assert_int_equal (h.op, MOAT_VSOCK_OP_RW);
        assert_memory_equal (buf, "yo", 2);

        /* a second REQUEST on the same ports is refused */
        guest_send (f, MOAT_VSOCK_OP_REQUEST, 3333, 5000, 0, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        host_expect_eof (f, fd);
        close (fd);
        close (l);

        /* nobody listens on port 5001 */
        guest_send (f, MOAT_VSOCK_OP_REQUEST, 3334, 5001, 0, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        assert_int_equal (h.src_port, 5001);
        assert_int_equal (h.dst_port, 3334);
}

static void
test_half_close_host_first (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;

        int fd = host_connect (f, 1024, &hp);
        assert_int_equal (shutdown (fd, SHUT_WR), 0);
        moat_vsock_poll (f->vs);
        expect_pkt (f, MOAT_VSOCK_OP_SHUTDOWN, &h);
        assert_int_equal (h.flags, MOAT_VSOCK_SHUTDOWN_SEND);
        /* the other direction still works */
        guest_send (f, MOAT_VSOCK_OP_RW, 1024, hp, 0, "late", 4);
        host_read_exact (fd, "late");
        /* guest done too: the host sees EOF, the guest a full SHUTDOWN */
        guest_send (f, MOAT_VSOCK_OP_SHUTDOWN, 1024, hp, MOAT_VSOCK_SHUTDOWN_SEND, NULL, 0);
        host_expect_eof (f, fd);
        expect_pkt (f, MOAT_VSOCK_OP_SHUTDOWN, &h);
        assert_int_equal (h.flags, MOAT_VSOCK_SHUTDOWN_SEND | MOAT_VSOCK_SHUTDOWN_RCV);
        guest_send (f, MOAT_VSOCK_OP_RST, 1024, hp, 0, NULL, 0);
        expect_nothing (f);
        assert_int_equal (moat_vsock_count_connections (f->vs), 0);
        close (fd);
}

static void
test_half_close_guest_first (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;
        char buf[64];

        int fd = host_connect (f, 1024, &hp);
        guest_send (f, MOAT_VSOCK_OP_RW, 1024, hp, 0, "bye", 3);
        guest_send (f, MOAT_VSOCK_OP_SHUTDOWN, 1024, hp, MOAT_VSOCK_SHUTDOWN_SEND, NULL, 0);
        host_read_exact (fd, "bye");
        host_expect_eof (f, fd);
        /* host -> guest still flows */
        assert_int_equal (write (fd, "more", 4), 4);
        moat_vsock_poll (f->vs);
        assert_int_equal (guest_recv (f, &h, buf, sizeof buf), 1);
        assert_int_equal (h.op, MOAT_VSOCK_OP_RW);
        assert_memory_equal (buf, "more", 4);
        close (fd);
        moat_vsock_poll (f->vs);
        expect_pkt (f, MOAT_VSOCK_OP_SHUTDOWN, &h);
        assert_int_equal (h.flags, MOAT_VSOCK_SHUTDOWN_SEND);
        expect_pkt (f, MOAT_VSOCK_OP_SHUTDOWN, &h);
        assert_int_equal (h.flags, 3);
}

static void
test_guest_full_shutdown (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;

        int fd = host_connect (f, 1024, &hp);
        guest_send (f, MOAT_VSOCK_OP_SHUTDOWN, 1024, hp, 3, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        assert_int_equal (h.src_port, hp);
        host_expect_eof (f, fd);
        assert_int_equal (moat_vsock_count_connections (f->vs), 0);
        close (fd);
}

static void
test_bad_packets (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;

        int fd = host_connect (f, 1024, &hp);
        /* shorter than a header: dropped */
        struct fq_buf b = {f->tx_buf, 20, false};
        fq_add_chain (&f->tx, &b, 1);
        moat_vsock_kick (f->vs, MOAT_VSOCK_QUEUE_TX);
        expect_nothing (f);
        /* wrong cids: dropped */
        struct moat_vsock_hdr x = {GUEST_CID + 1, 2, 1024, hp, 0, 1, MOAT_VSOCK_OP_RW, 0, 65536, 0};
        guest_send_raw (f, &x, NULL, 0, 0);
        x.src_cid = GUEST_CID;
        x.dst_cid = 7;
        guest_send_raw (f, &x, NULL, 0, 0);
        expect_nothing (f);
        /* seqpacket is not offered */
        struct moat_vsock_hdr sp = {GUEST_CID, 2, 4444, 5000, 0, 2, MOAT_VSOCK_OP_REQUEST, 0, 65536, 0};
        guest_send_raw (f, &sp, NULL, 0, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        assert_int_equal (h.dst_port, 4444);
        /* unknown op on a live connection */
        guest_send (f, 99, 1024, hp, 0, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        host_expect_eof (f, fd);
        close (fd);

        /* len larger than the payload present */
        fd = host_connect (f, 1024, &hp);
        struct moat_vsock_hdr lie = {GUEST_CID, 2, 1024, hp, 1000, 1, MOAT_VSOCK_OP_RW, 0, 65536, 0};
        guest_send_raw (f, &lie, "0123456789", 10, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        host_expect_eof (f, fd);
        close (fd);
        assert_int_equal (moat_vsock_count_connections (f->vs), 0);
}

static void
test_rx_buffer_too_small (void **state)
{
        struct fixture *f = *state;
        uint32_t id, len;
        int n = 0;

        /* use up every posted rx buffer */
        for (int i = 0; i < RX_BUFS; i++)
                guest_send (f, MOAT_VSOCK_OP_RW, 100 + i, 7777, 0, "z", 1);
        while (fq_get_used (&f->rx, &id, &len))
                n++;
        assert_int_equal (n, RX_BUFS);
        /* a buffer too small for a header is returned unused, the next one is used */
        struct fq_buf tiny = {f->tx_buf + 1000, 8, true};
        struct fq_buf good = {f->rx_pool, RX_BUF_SIZE, true};
        uint16_t t = fq_add_chain (&f->rx, &tiny, 1);
        uint16_t g = fq_add_chain (&f->rx, &good, 1);
        guest_send (f, MOAT_VSOCK_OP_RW, 1, 2, 0, NULL, 0);
        assert_int_equal (fq_get_used (&f->rx, &id, &len), 1);
        assert_int_equal (id, t);
        assert_int_equal (len, 0);
        assert_int_equal (fq_get_used (&f->rx, &id, &len), 1);
        assert_int_equal (id, g);
        assert_int_equal (len, MOAT_VSOCK_HDR_SIZE);
        /* a device-readable rx buffer is refused too */
        struct fq_buf ro = {f->rx_pool, RX_BUF_SIZE, false};
        t = fq_add_chain (&f->rx, &ro, 1);
        guest_send (f, MOAT_VSOCK_OP_RW, 1, 2, 0, NULL, 0);
        assert_int_equal (fq_get_used (&f->rx, &id, &len), 1);
        assert_int_equal (id, t);
        assert_int_equal (len, 0);
}

static void
test_handshake_timeout (void **state)
{
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        int sv[2];
        moat_error_t err = NULL;

        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal (moat_vsock_add_client (f->vs, sv[0], &err), 0);
        assert_int_equal (write (sv[1], "CONNECT 1024\n", 13), 13);
        moat_vsock_poll (f->vs);
        expect_pkt (f, MOAT_VSOCK_OP_REQUEST, &h);
        int t = moat_vsock_next_timeout (f->vs);
        assert_true (t >= 0 && t <= 100);
        usleep (150 * 1000); /* the guest never answers */
        host_expect_eof (f, sv[1]);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        assert_int_equal (moat_vsock_next_timeout (f->vs), -1);
        /* a late RESPONSE is refused */
        guest_send (f, MOAT_VSOCK_OP_RESPONSE, 1024, h.src_port, 0, NULL, 0);
        expect_pkt (f, MOAT_VSOCK_OP_RST, &h);
        close (sv[1]);

        /* a client that never sends CONNECT is dropped too */
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal (moat_vsock_add_client (f->vs, sv[0], &err), 0);
        usleep (150 * 1000);
        host_expect_eof (f, sv[1]);
        close (sv[1]);
        expect_nothing (f);
}

static void
test_bad_handshake (void **state)
{
        struct fixture *f = *state;
        const char *bad[] = {"HELLO\n", "CONNECT\n", "CONNECT x\n", "CONNECT 99999999999\n", "CONNECT 12 \n"};
        for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
                int sv[2];
                moat_error_t err = NULL;
                assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
                assert_int_equal (moat_vsock_add_client (f->vs, sv[0], &err), 0);
                assert_int_equal (write (sv[1], bad[i], strlen (bad[i])), (ssize_t)strlen (bad[i]));
                host_expect_eof (f, sv[1]);
                close (sv[1]);
        }
        /* no newline within 64 bytes */
        int sv[2];
        moat_error_t err = NULL;
        char junk[100];
        memset (junk, 'A', sizeof junk);
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal (moat_vsock_add_client (f->vs, sv[0], &err), 0);
        assert_int_equal (write (sv[1], junk, sizeof junk), (ssize_t)sizeof junk);
        host_expect_eof (f, sv[1]);
        close (sv[1]);
        expect_nothing (f);
        assert_int_equal (moat_vsock_count_connections (f->vs), 0);
}

static void
test_listener (void **state)
{
        /* the real hybrid socket: connect, CONNECT, OK */
        struct fixture *f = *state;
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        struct moat_vsock_hdr h;
        strcpy (sun.sun_path, f->path);
        int fd = socket (AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal (connect (fd, (struct sockaddr *)&sun, sizeof sun), 0);
        assert_int_equal (write (fd, "CONNECT 1025\n", 13), 13);
        struct pollfd p = {.fd = moat_vsock_get_fd (f->vs), .events = POLLIN};
        uint8_t junk[64];
        int got = 0;
        for (int i = 0; i < 10 && !got; i++) {
                poll (&p, 1, 200);
                moat_vsock_poll (f->vs);
                got = guest_recv (f, &h, junk, sizeof junk);
        }
        assert_int_equal (got, 1);
        assert_int_equal (h.op, MOAT_VSOCK_OP_REQUEST);
        assert_int_equal (h.dst_port, 1025);
        guest_send (f, MOAT_VSOCK_OP_RESPONSE, 1025, h.src_port, 0, NULL, 0);
        char line[32];
        snprintf (line, sizeof line, "OK %u\n", h.src_port);
        host_read_exact (fd, line);
        close (fd);
}

static void
test_queue_detached (void **state)
{
        /* without an rx queue, packets wait; reset drops every connection */
        struct fixture *f = *state;
        struct moat_vsock_hdr h;
        uint32_t hp;
        char buf[16];
        int fd = host_connect (f, 1024, &hp);
        moat_vsock_set_queue (f->vs, MOAT_VSOCK_QUEUE_RX, NULL);
        assert_int_equal (write (fd, "q", 1), 1);
        moat_vsock_poll (f->vs);
        assert_int_equal (guest_recv (f, &h, buf, sizeof buf), 0);
        moat_vsock_set_queue (f->vs, MOAT_VSOCK_QUEUE_RX, &f->rx.vq);
        moat_vsock_poll (f->vs);
        assert_int_equal (guest_recv (f, &h, buf, sizeof buf), 1);
        assert_int_equal (h.op, MOAT_VSOCK_OP_RW);
        moat_vsock_reset (f->vs);
        assert_int_equal (moat_vsock_count_connections (f->vs), 0);
        char c;
        assert_int_equal (read (fd, &c, 1), 0);
        close (fd);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_hdr_roundtrip),
                cmocka_unit_test_setup_teardown (test_config, setup, teardown),
                cmocka_unit_test_setup_teardown (test_connect_and_data, setup, teardown),
                cmocka_unit_test_setup_teardown (test_guest_credit_respected, setup, teardown),
                cmocka_unit_test_setup_teardown (test_credit_request_and_update, setup_small, teardown),
                cmocka_unit_test_setup_teardown (test_credit_violation_rst, setup_small, teardown),
                cmocka_unit_test_setup_teardown (test_rst_unknown_connection, setup, teardown),
                cmocka_unit_test_setup_teardown (test_rx_queue_starved, setup, teardown),
                cmocka_unit_test_setup_teardown (test_guest_connect, setup, teardown),
                cmocka_unit_test_setup_teardown (test_half_close_host_first, setup, teardown),
                cmocka_unit_test_setup_teardown (test_half_close_guest_first, setup, teardown),
                cmocka_unit_test_setup_teardown (test_guest_full_shutdown, setup, teardown),
                cmocka_unit_test_setup_teardown (test_bad_packets, setup, teardown),
                cmocka_unit_test_setup_teardown (test_rx_buffer_too_small, setup, teardown),
                cmocka_unit_test_setup_teardown (test_handshake_timeout, setup_small, teardown),
                cmocka_unit_test_setup_teardown (test_bad_handshake, setup, teardown),
                cmocka_unit_test_setup_teardown (test_listener, setup, teardown),
                cmocka_unit_test_setup_teardown (test_queue_detached, setup, teardown),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

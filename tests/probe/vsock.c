/* SPDX-License-Identifier: Apache-2.0 */
/* Probe: a minimal virtio-vsock driver (virtio-mmio, polled, interrupts
 * off). Finds the device from virtio_mmio.device=4K@BASE:IRQ, negotiates
 * VERSION_1 only, sets up the rx, tx and event queues, then, with the
 * host's test client (tests/integration/vmm.sh) on the other side of the
 * hybrid-vsock socket:
 *   1. connects to CID 2 port 5999 (nobody listens): expects RST;
 *   2. connects to CID 2 port 5000 (the host listens on <socket>_5000),
 *      sends ECHO_BYTES bytes, expects them back, closes;
 *   3. waits for host-initiated connections: refuses (RST) any port but
 *      1024, accepts 1024 and echoes everything until the host shuts down
 *      its side, then closes.
 * probe.cid=N: the CID the config space must show. Exit status 0 if all
 * checks passed. */
#include "virtio_drv.h"

#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7
#define HOST_CID 2
#define BUF_ALLOC 65536
#define ECHO_BYTES 3000

#define QS 16
#define PAYLOAD 1024
#define RXQ 0
#define TXQ 1
#define EVQ 2
#define SPINS 400000000L

struct hdr {
        uint64_t src_cid, dst_cid;
        uint32_t src_port, dst_port, len;
        uint16_t type, op;
        uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__ ((packed));
_Static_assert(sizeof (struct hdr) == 44, "virtio_vsock_hdr is 44 bytes");

static struct vq vqs[3];
static uint8_t rxbuf[QS][sizeof (struct hdr) + PAYLOAD];
static uint8_t txbuf[QS][sizeof (struct hdr) + PAYLOAD];
static uint8_t evbuf[QS][8];

static uint64_t guest_cid;
static uint32_t fwd_cnt; /* bytes of the current connection consumed */
static uint16_t tx_sent;

static void
setup_queue (int qi)
{
        check (vq_select (qi) >= QS, qi == RXQ ? "rx queue size" : qi == TXQ ? "tx queue size" : "event queue size");
        vqs[qi].avail.flags = 1; /* VIRTQ_AVAIL_F_NO_INTERRUPT: we poll */
        vq_setup (&vqs[qi], qi, QS);
}

static void
fill_rx (void)
{
        vq_fill (&vqs[RXQ], rxbuf, sizeof rxbuf[0], QS);
        vq_fill (&vqs[EVQ], evbuf, sizeof evbuf[0], QS);
}

static bool
send_pkt (uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t flags, const void *data, uint32_t len)
{
        uint16_t d = tx_sent % QS;
        struct hdr h = {
                .src_cid = guest_cid,
                .dst_cid = HOST_CID,
                .src_port = src_port,
                .dst_port = dst_port,
                .len = len,
                .type = 1,
                .op = op,
                .flags = flags,
                .buf_alloc = BUF_ALLOC,
                .fwd_cnt = fwd_cnt,
        };
        memcpy (txbuf[d], &h, sizeof h);
        if (len)
                memcpy (txbuf[d] + sizeof h, data, len);
        vq_desc (&vqs[TXQ], d, txbuf[d], sizeof h + len, 0, 0);
        vq_offer (&vqs[TXQ], d);
        tx_sent++;
        return vq_wait (&vqs[TXQ], tx_sent, SPINS);
}

/* Takes the next packet the device put on the rx queue (payload copied to
 * data, at most PAYLOAD bytes) and gives the buffer back. */
static bool
recv_pkt (struct hdr *h, uint8_t *data)
{
        struct vq *q = &vqs[RXQ];
        for (long spin = 0; spin < SPINS; spin++) {
                uint32_t id, len;
                if (vq_poll (q, &id, &len)) {
                        if (id >= QS || len < sizeof *h)
                                return false;
                        memcpy (h, rxbuf[id], sizeof *h);
                        if (h->len > PAYLOAD || h->len > len - sizeof *h)
                                return false;
                        if (data)
                                memcpy (data, rxbuf[id] + sizeof *h, h->len);
                        vq_offer (q, id);
                        return true;
                }
                cpu_pause ();
        }
        return false;
}

/* Next packet that is not a credit update; answers credit requests. */
static bool
recv_conn_pkt (struct hdr *h, uint8_t *data)
{
        for (;;) {
                if (!recv_pkt (h, data))
                        return false;
                if (h->op == OP_CREDIT_UPDATE)
                        continue;
                if (h->op == OP_CREDIT_REQUEST) {
                        send_pkt (OP_CREDIT_UPDATE, h->dst_port, h->src_port, 0, NULL, 0);
                        continue;
                }
                return true;
        }
}

static void
put_pkt (const char *what, const struct hdr *h)
{
        put_str (what);
        put_str (" op=");
        put_dec (h->op);
        put_str (" ");
        put_dec (h->src_cid);
        put_str (":");
        put_dec (h->src_port);
        put_str (" -> ");
        put_dec (h->dst_cid);
        put_str (":");
        put_dec (h->dst_port);
        put_str (" len=");
        put_dec (h->len);
        put_char ('\n');
}

static uint8_t pattern[ECHO_BYTES], got[ECHO_BYTES + PAYLOAD];
static uint8_t pkt[PAYLOAD];

static void
test_refused (void)
{
        struct hdr h;
        fwd_cnt = 0;
        check (send_pkt (OP_REQUEST, 2999, 5999, 0, NULL, 0), "REQUEST to host port 5999 sent");
        bool r = recv_conn_pkt (&h, NULL);
        if (r)
                put_pkt ("got", &h);
        check (r && h.op == OP_RST && h.src_port == 5999 && h.dst_port == 2999 && h.src_cid == HOST_CID &&
                       h.dst_cid == guest_cid,
               "connect to an unserved host port is refused (RST)");
}

static void
test_guest_connect (void)
{
        struct hdr h;
        fwd_cnt = 0;
        check (send_pkt (OP_REQUEST, 3000, 5000, 0, NULL, 0), "REQUEST to host port 5000 sent");
        bool r = recv_conn_pkt (&h, NULL);
        if (r)
                put_pkt ("got", &h);
        if (!r || h.op != OP_RESPONSE || h.src_port != 5000 || h.dst_port != 3000) {
                check (false, "connected to host port 5000");
                return;
        }
        check (true, "connected to host port 5000");
        for (int i = 0; i < ECHO_BYTES; i++)
                pattern[i] = (uint8_t)(i * 7 + 3);
        bool sent = true;
        for (int off = 0; off < ECHO_BYTES; off += 1000)
                sent &= send_pkt (OP_RW, 3000, 5000, 0, pattern + off, 1000);
        check (sent, "sent 3000 bytes to host port 5000");
        uint32_t n = 0;
        while (n < ECHO_BYTES) {
                if (!recv_conn_pkt (&h, pkt) || h.op != OP_RW || h.dst_port != 3000) {
                        put_pkt ("unexpected", &h);
                        break;
                }
                memcpy (got + n, pkt, h.len);
                n += h.len;
                fwd_cnt += h.len;
        }
        put_str ("echoed bytes=");
        put_dec (n);
        put_char ('\n');
        check (n == ECHO_BYTES && memcmp (got, pattern, ECHO_BYTES) == 0, "host port 5000 echoed the 3000 bytes");
        send_pkt (OP_SHUTDOWN, 3000, 5000, 3, NULL, 0);
        r = recv_conn_pkt (&h, NULL);
        check (r && (h.op == OP_RST || h.op == OP_SHUTDOWN) && h.dst_port == 3000, "connection to port 5000 closed");
}

static void
test_host_connect (void)
{
        struct hdr h;
        uint32_t host_port = 0, echoed = 0;
        bool refused = false;
        /* Connection requests until the one for port 1024. */
        for (;;) {
                fwd_cnt = 0;
                if (!recv_conn_pkt (&h, NULL)) {
                        check (false, "a host connection request arrived");
                        return;
                }
                put_pkt ("got", &h);
                if (h.op != OP_REQUEST)
                        continue;
                if (h.dst_port != 1024) {
                        send_pkt (OP_RST, h.dst_port, h.src_port, 0, NULL, 0);
                        refused = true;
                        continue;
                }
                host_port = h.src_port;
                break;
        }
        check (refused, "host connection to a port nobody listens on was refused");
        check (h.src_cid == HOST_CID && h.dst_cid == guest_cid, "request from CID 2 to our CID");
        put_str ("host connected from port ");
        put_dec (host_port);
        put_char ('\n');
        send_pkt (OP_RESPONSE, 1024, host_port, 0, NULL, 0);
        for (;;) {
                if (!recv_conn_pkt (&h, pkt)) {
                        check (false, "host connection: packet");
                        return;
                }
                if (h.src_port != host_port || h.dst_port != 1024) {
                        put_pkt ("stray", &h);
                        continue;
                }
                if (h.op == OP_RW) {
                        fwd_cnt += h.len;
                        echoed += h.len;
                        send_pkt (OP_RW, 1024, host_port, 0, pkt, h.len);
                        continue;
                }
                put_pkt ("got", &h);
                break;
        }
        put_str ("echoed to host bytes=");
        put_dec (echoed);
        put_char ('\n');
        check (h.op == OP_SHUTDOWN && (h.flags & 2), "host shut down its sending side");
        check (echoed > 0, "echoed data to the host connection");
        send_pkt (OP_SHUTDOWN, 1024, host_port, 3, NULL, 0);
        bool r = recv_conn_pkt (&h, NULL);
        check (r && h.op == OP_RST && h.dst_port == 1024, "host connection closed");
}

int
probe_main (struct boot_params *bp)
{
        serial_init ();
        say ("moat-probe: vsock");
        if (!virtio_find (bp, NULL))
                return 1;
        check (rd (R_MAGIC) == VIRTIO_MAGIC && rd (R_VERSION) == 2, "virtio-mmio version 2");
        check (rd (R_DEVICE_ID) == 19, "device id 19 (vsock)");

        wr (R_STATUS, 0);
        wr (R_STATUS, 1);
        wr (R_STATUS, 1 | 2);
        check (virtio_dev_features (1) & 1, "device offers VERSION_1");
        check (virtio_set_features (1ull << 32), "FEATURES_OK with VERSION_1");
        guest_cid = rd (R_CONFIG) | (uint64_t)rd (R_CONFIG + 4) << 32;
        put_str ("guest_cid=");
        put_dec (guest_cid);
        put_char ('\n');
        char cid[24];
        if (cmdline_get (bp, "probe.cid", cid, sizeof cid)) {
                uint64_t want = 0;
                parse_num (cid, &want);
                check (guest_cid == want, "config space guest_cid matches probe.cid");
        }
        setup_queue (RXQ);
        setup_queue (TXQ);
        setup_queue (EVQ);
        wr (R_STATUS, 1 | 2 | 8 | 4);
        fill_rx ();

        test_refused ();
        test_guest_connect ();
        test_host_connect ();
        return probe_report ();
}

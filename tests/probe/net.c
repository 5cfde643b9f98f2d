/* SPDX-License-Identifier: Apache-2.0 */
/* Probe: a minimal virtio-net driver (virtio-mmio, polled). Finds the device
 * from virtio_mmio.device=4K@BASE:IRQ, checks the offered features (MAC, no
 * offloads), negotiates VERSION_1 + MAC, reads the MAC from the config space,
 * sets up the rx and tx queues, then talks to the host end of the tap
 * (tests/integration/vmm.sh):
 *   1. a header-only (short) tx chain: the device must hand it back and keep
 *      working;
 *   2. ARP: who-has probe.host_ip, expects the host's reply;
 *   3. UDP: sends "hello from the net probe" to probe.host_ip:probe.port from
 *      port 4000, expects "echo: " + that payload back.
 * ARP requests for probe.ip are answered all along; other frames (IPv6
 * neighbour discovery...) are ignored. probe.mac=xx:..: the MAC the config
 * space must show. Exit status 0 if all checks passed. */
#include "virtio_drv.h"

#define F_MAC 5
#define HDR 12
#define QS 16
#define BUFSZ 2048
#define RXQ 0
#define TXQ 1
#define SPINS 20000000L /* per wait; only reached when something is lost */
#define MY_PORT 4000

static struct vq vqs[2];
static uint8_t rxbuf[QS][BUFSZ];
static uint8_t txbuf[QS][BUFSZ];
static uint16_t tx_sent;

static uint8_t my_mac[6], host_mac[6];
static uint8_t my_ip[4], host_ip[4];
static uint16_t host_port;
static bool have_host_mac, rx_header_ok = true;
static char udp_reply[128];
static unsigned udp_reply_len;
static bool got_udp;
static unsigned arp_answered, ignored;

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const char payload[] = "hello from the net probe";

static void
put_be16 (uint8_t *p, uint16_t v)
{
        p[0] = v >> 8;
        p[1] = v & 0xff;
}
static uint16_t
get_be16 (const uint8_t *p)
{
        return (uint16_t)p[0] << 8 | p[1];
}

static void
put_mac (const uint8_t *m)
{
        for (int i = 0; i < 6; i++) {
                if (i)
                        put_char (':');
                put_char ("0123456789abcdef"[m[i] >> 4]);
                put_char ("0123456789abcdef"[m[i] & 15]);
        }
}

static bool
parse_ip (const char *s, uint8_t ip[4])
{
        for (int i = 0; i < 4; i++) {
                uint64_t v;
                const char *e = parse_num (s, &v);
                if (e == s || v > 255 || (i < 3 && *e != '.'))
                        return false;
                ip[i] = v;
                s = e + 1;
        }
        return true;
}

static int
hexval (char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static bool
parse_mac (const char *s, uint8_t mac[6])
{
        for (int i = 0; i < 6; i++) {
                int h = hexval (s[3 * i]), l = hexval (s[3 * i + 1]);
                if (h < 0 || l < 0 || (i < 5 && s[3 * i + 2] != ':'))
                        return false;
                mac[i] = h << 4 | l;
        }
        return true;
}

static void
setup_queue (int qi)
{
        check (vq_select (qi) >= QS, qi == RXQ ? "rx queue size" : "tx queue size");
        vq_setup (&vqs[qi], qi, QS);
}

/* Sends len bytes of txbuf[d] (virtio-net header included). */
static bool
send_raw (uint32_t len)
{
        uint16_t d = tx_sent % QS;
        vq_desc (&vqs[TXQ], d, txbuf[d], len, 0, 0);
        vq_offer (&vqs[TXQ], d);
        tx_sent++;
        if (!vq_wait (&vqs[TXQ], tx_sent, SPINS))
                return false;
        mb ();
        vqs[TXQ].last_used = tx_sent;
        return true;
}

/* The frame (from the Ethernet header) to go out next. */
static uint8_t *
tx_frame (void)
{
        uint8_t *b = txbuf[tx_sent % QS];
        memset (b, 0, BUFSZ);
        return b + HDR;
}

static bool
send_frame (uint32_t frame_len)
{
        if (frame_len < 60)
                frame_len = 60; /* Ethernet minimum, padded with zeros */
        return send_raw (HDR + frame_len);
}

static void
eth (uint8_t *f, const uint8_t *dst, uint16_t type)
{
        memcpy (f, dst, 6);
        memcpy (f + 6, my_mac, 6);
        put_be16 (f + 12, type);
}

static bool
send_arp (uint16_t op, const uint8_t *dst_mac, const uint8_t *target_mac, const uint8_t *target_ip)
{
        uint8_t *f = tx_frame ();
        eth (f, dst_mac, 0x0806);
        uint8_t *a = f + 14;
        put_be16 (a, 1);          /* Ethernet */
        put_be16 (a + 2, 0x0800); /* IPv4 */
        a[4] = 6;
        a[5] = 4;
        put_be16 (a + 6, op);
        memcpy (a + 8, my_mac, 6);
        memcpy (a + 14, my_ip, 4);
        memcpy (a + 18, target_mac, 6);
        memcpy (a + 24, target_ip, 4);
        return send_frame (14 + 28);
}

static uint16_t
ip_csum (const uint8_t *p, unsigned n)
{
        uint32_t s = 0;
        for (unsigned i = 0; i + 1 < n; i += 2)
                s += get_be16 (p + i);
        while (s >> 16)
                s = (s & 0xffff) + (s >> 16);
        return ~s & 0xffff;
}

static bool
send_udp (const void *data, unsigned len)
{
        uint8_t *f = tx_frame ();
        eth (f, host_mac, 0x0800);
        uint8_t *ip = f + 14;
        ip[0] = 0x45;
        put_be16 (ip + 2, 20 + 8 + len);
        put_be16 (ip + 4, 0x1234);
        put_be16 (ip + 6, 0x4000); /* DF */
        ip[8] = 64;
        ip[9] = 17;
        memcpy (ip + 12, my_ip, 4);
        memcpy (ip + 16, host_ip, 4);
        put_be16 (ip + 10, ip_csum (ip, 20));
        uint8_t *u = ip + 20;
        put_be16 (u, MY_PORT);
        put_be16 (u + 2, host_port);
        put_be16 (u + 4, 8 + len);
        /* checksum 0: none (allowed for UDP over IPv4) */
        memcpy (u + 8, data, len);
        return send_frame (14 + 20 + 8 + len);
}

/* One received frame. */
static void
handle (const uint8_t *f, uint32_t n)
{
        uint16_t type = get_be16 (f + 12);
        if (type == 0x0806 && n >= 14 + 28) {
                const uint8_t *a = f + 14;
                uint16_t op = get_be16 (a + 6);
                if (op == 2 && memcmp (a + 14, host_ip, 4) == 0 && memcmp (a + 24, my_ip, 4) == 0) {
                        memcpy (host_mac, a + 8, 6);
                        have_host_mac = true;
                        return;
                }
                if (op == 1 && memcmp (a + 24, my_ip, 4) == 0) {
                        uint8_t sha[6], spa[4];
                        memcpy (sha, a + 8, 6);
                        memcpy (spa, a + 14, 4);
                        send_arp (2, sha, sha, spa);
                        arp_answered++;
                        return;
                }
        }
        if (type == 0x0800 && n >= 14 + 28) {
                const uint8_t *ip = f + 14;
                unsigned ihl = (ip[0] & 15) * 4;
                if ((ip[0] >> 4) == 4 && ip[9] == 17 && ihl >= 20 && n >= 14 + ihl + 8 &&
                    memcmp (ip + 12, host_ip, 4) == 0 && memcmp (ip + 16, my_ip, 4) == 0) {
                        const uint8_t *u = ip + ihl;
                        unsigned ulen = get_be16 (u + 4);
                        if (get_be16 (u) == host_port && get_be16 (u + 2) == MY_PORT && ulen >= 8 &&
                            14 + ihl + ulen <= n && ulen - 8 < sizeof udp_reply) {
                                udp_reply_len = ulen - 8;
                                memcpy (udp_reply, u + 8, udp_reply_len);
                                udp_reply[udp_reply_len] = 0;
                                got_udp = true;
                                return;
                        }
                }
        }
        ignored++;
}

/* Handles received frames until *done or the time runs out. */
static bool
receive_until (bool *done)
{
        struct vq *q = &vqs[RXQ];
        for (long spin = 0; spin < SPINS && !*done; spin++) {
                uint32_t id, len;
                if (!vq_poll (q, &id, &len)) {
                        cpu_pause ();
                        continue;
                }
                if (id >= QS || len < HDR + 14 || len > BUFSZ) {
                        put_str ("bad used entry id=");
                        put_dec (id);
                        put_str (" len=");
                        put_dec (len);
                        put_char ('\n');
                        return false;
                }
                const uint8_t *h = rxbuf[id];
                /* No offloads negotiated: flags, gso_type, hdr_len, gso_size,
                 * csum fields zero; num_buffers 1. */
                for (int i = 0; i < 10; i++)
                        if (h[i])
                                rx_header_ok = false;
                if (h[10] != 1 || h[11] != 0)
                        rx_header_ok = false;
                handle (h + HDR, len - HDR);
                vq_offer (q, id);
        }
        return *done;
}

int
probe_main (struct boot_params *bp)
{
        char arg[64];
        serial_init ();
        say ("moat-probe: net");
        if (!virtio_find (bp, NULL))
                return 1;
        uint64_t port = 0;
        if (!cmdline_get (bp, "probe.ip", arg, sizeof arg) || !parse_ip (arg, my_ip) ||
            !cmdline_get (bp, "probe.host_ip", arg, sizeof arg) || !parse_ip (arg, host_ip) ||
            !cmdline_get (bp, "probe.port", arg, sizeof arg) || *parse_num (arg, &port) || port == 0 || port > 65535) {
                say ("FAIL need probe.ip=A.B.C.D probe.host_ip=A.B.C.D probe.port=N");
                return 1;
        }
        host_port = port;

        check (rd (R_MAGIC) == VIRTIO_MAGIC, "magic");
        check (rd (R_VERSION) == 2, "version 2");
        check (rd (R_DEVICE_ID) == 1, "device id 1 (network card)");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1);
        wr (R_STATUS, 1 | 2);
        uint32_t lo = virtio_dev_features (0);
        uint32_t hi = virtio_dev_features (1);
        put_str ("features ");
        put_hex ((uint64_t)hi << 32 | lo);
        put_char ('\n');
        check (hi & 1, "device offers VERSION_1");
        check (lo & (1u << F_MAC), "device offers MAC");
        /* CSUM, GUEST_CSUM (bits 0, 1), the TSO/ECN/UFO family and MRG_RXBUF
         * (bits 7 to 15): none offered. */
        check ((lo & 0xff83) == 0, "no offloads offered");
        /* An offload we were not offered is refused. */
        check (!virtio_set_features (1ull << 32 | 1u << F_MAC | 1 /* CSUM */), "unoffered CSUM refused");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1 | 2);
        check (virtio_set_features (1ull << 32 | 1u << F_MAC), "FEATURES_OK with VERSION_1 + MAC");

        for (int i = 0; i < 6; i++)
                my_mac[i] = *(volatile uint8_t *)(virtio_base + R_CONFIG + i);
        put_str ("mac=");
        put_mac (my_mac);
        put_char ('\n');
        uint8_t want[6];
        if (cmdline_get (bp, "probe.mac", arg, sizeof arg) && parse_mac (arg, want))
                check (memcmp (want, my_mac, 6) == 0, "config space MAC is the --mac given");
        check (!(my_mac[0] & 1), "MAC is unicast");

        setup_queue (RXQ);
        setup_queue (TXQ);
        wr (R_STATUS, 1 | 2 | 8 | 4);
        vq_fill (&vqs[RXQ], rxbuf, BUFSZ, QS);

        /* 1. A chain too short for a frame comes back; the device goes on. */
        memset (txbuf[0], 0, HDR);
        tx_sent = 0;
        check (send_raw (HDR), "header-only tx chain handed back");

        /* 2. ARP for the host. */
        static const uint8_t zero[6];
        check (send_arp (1, bcast, zero, host_ip), "ARP request sent");
        receive_until (&have_host_mac);
        check (have_host_mac, "ARP reply from the host");
        if (have_host_mac) {
                put_str ("host ");
                put_dec (host_ip[0]);
                put_char ('.');
                put_dec (host_ip[1]);
                put_char ('.');
                put_dec (host_ip[2]);
                put_char ('.');
                put_dec (host_ip[3]);
                put_str (" is-at ");
                put_mac (host_mac);
                put_char ('\n');

                /* 3. UDP there and back. */
                check (send_udp (payload, sizeof payload - 1), "UDP datagram sent");
                receive_until (&got_udp);
                check (got_udp, "UDP reply from the host");
                if (got_udp) {
                        put_str ("udp reply: ");
                        say (udp_reply);
                        check (udp_reply_len == 6 + sizeof payload - 1 && memcmp (udp_reply, "echo: ", 6) == 0 &&
                                       memcmp (udp_reply + 6, payload, sizeof payload - 1) == 0,
                               "UDP reply echoes the payload");
                }
        }
        check (rx_header_ok, "rx headers carry no offload state, num_buffers 1");
        uint32_t isr = rd (R_INT_STATUS);
        check (isr & 1, "used-buffer interrupt status");
        wr (R_INT_ACK, isr);
        put_str ("arp requests answered ");
        put_dec (arp_answered);
        put_str (", frames ignored ");
        put_dec (ignored);
        put_char ('\n');
        return probe_report ();
}

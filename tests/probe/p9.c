/* SPDX-License-Identifier: Apache-2.0 */
/* Probe (c): a minimal virtio-9p driver. Finds the device from
 * virtio_mmio.device=4K@BASE:IRQ, reads the mount tag from config space,
 * then speaks 9P2000.L: version, attach, walk to hello.txt, open and read
 * it, create from-guest.txt and write to it, and tries to leave the share
 * (walk "..", walk through the symlink "etc" -> /etc, open that symlink).
 * The test (tests/integration/vmm.sh) prepares the share and checks the
 * host side. Exit status 0 if all checks passed. */
#include "virtio_drv.h"

#define QSIZE 8
#define MSIZE 8192

#define TVERSION 100
#define TATTACH 104
#define TWALK 110
#define TLOPEN 12
#define TLCREATE 14
#define TREAD 116
#define TWRITE 118
#define TCLUNK 120
#define TREADLINK 22
#define RLERROR 7

static struct vq q;

static uint8_t req[MSIZE], resp[MSIZE];
static uint32_t req_len, resp_len;
static uint16_t tag = 1;

/* ---- message building ---- */
static void
put (uint64_t v, int n)
{
        for (int i = 0; i < n; i++, v >>= 8)
                req[req_len++] = v & 0xff;
}
static void
put_s (const char *s)
{
        uint32_t n = strlen (s);
        put (n, 2);
        memcpy (req + req_len, s, n);
        req_len += n;
}
static void
begin (uint8_t type)
{
        req_len = 0;
        put (0, 4);
        put (type, 1);
        put (tag++, 2);
}
static uint64_t
get (uint32_t off, int n)
{
        uint64_t v = 0;
        for (int i = n - 1; i >= 0; i--)
                v = (v << 8) | resp[off + i];
        return v;
}

/* Sends req, waits for the reply. Returns 0 (R-type as expected), the
 * Rlerror errno, or -1 if the device did not answer properly. */
static uint16_t n; /* requests answered since the queue started */

static int
rpc (void)
{
        uint8_t want = req[4] + 1;
        req[0] = req_len & 0xff;
        req[1] = req_len >> 8;
        req[2] = req[3] = 0;
        memset (resp, 0, 16);
        vq_desc (&q, 0, req, req_len, F_NEXT, 1);
        vq_desc (&q, 1, resp, MSIZE, F_WRITE, 0);
        vq_offer (&q, 0);
        n++;
        if (!vq_wait (&q, n, 2000000000L)) {
                say ("no reply from the device");
                return -1;
        }
        resp_len = q.used.ring[(n - 1) % QSIZE].len;
        if (resp_len < 7 || get (0, 4) != resp_len || get (5, 2) != req[5] + ((uint32_t)req[6] << 8))
                return -1;
        if (resp[4] == RLERROR) {
                put_str ("  Rlerror ");
                put_dec (get (7, 4));
                put_char ('\n');
                return (int)get (7, 4);
        }
        return resp[4] == want ? 0 : -1;
}

static int
walk (uint32_t fid, uint32_t newfid, int n, const char *a, const char *b)
{
        begin (TWALK);
        put (fid, 4);
        put (newfid, 4);
        put (n, 2);
        if (n > 0)
                put_s (a);
        if (n > 1)
                put_s (b);
        return rpc ();
}

static bool
setup_device (struct boot_params *bp)
{
        if (!virtio_find (bp, NULL))
                return false;
        check (rd (R_MAGIC) == VIRTIO_MAGIC, "magic");
        check (rd (R_DEVICE_ID) == 9, "device id 9 (9p)");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1 | 2);
        check (virtio_dev_features (0) & 1, "device offers MOUNT_TAG");
        if (!virtio_set_features (1ull << 32 | 1)) {
                say ("FAIL FEATURES_OK refused");
                return false;
        }
        /* config: le16 tag length, tag bytes (read a byte at a time) */
        volatile uint8_t *cfg = (volatile uint8_t *)(virtio_base + R_CONFIG);
        uint32_t tl = cfg[0] | cfg[1] << 8;
        char t[80];
        uint32_t i = 0;
        for (; i < tl && i < sizeof t - 1; i++)
                t[i] = cfg[2 + i];
        t[i] = 0;
        put_str ("tag=");
        say (t);
        check (tl > 0 && tl < 80, "mount tag length");

        check (vq_select (0) >= QSIZE, "queue size");
        vq_setup (&q, 0, QSIZE);
        wr (R_STATUS, 1 | 2 | 8 | 4);
        return true;
}

int
probe_main (struct boot_params *bp)
{
        serial_init ();
        say ("moat-probe: p9");
        if (!setup_device (bp))
                return 1;

        begin (TVERSION);
        put (MSIZE, 4);
        put_s ("9P2000.L");
        check (rpc () == 0 && get (7, 4) == MSIZE && get (11, 2) == 8 && memcmp (resp + 13, "9P2000.L", 8) == 0,
               "Tversion 9P2000.L msize 8192");
        begin (TATTACH);
        put (1, 4);
        put (0xffffffff, 4);
        put_s ("root");
        put_s ("");
        put (0, 4);
        check (rpc () == 0 && resp[7] == 0x80, "Tattach: root is a directory");

        /* read the host's file */
        check (walk (1, 2, 1, "hello.txt", 0) == 0 && get (7, 2) == 1, "Twalk hello.txt");
        begin (TLOPEN);
        put (2, 4);
        put (0, 4); /* O_RDONLY */
        check (rpc () == 0, "Tlopen hello.txt");
        begin (TREAD);
        put (2, 4);
        put (0, 8);
        put (4096, 4);
        bool got = rpc () == 0;
        uint32_t cnt = got ? get (7, 4) : 0;
        if (got && cnt < 200) {
                resp[11 + cnt] = 0;
                put_str ("read: ");
                put_str ((const char *)resp + 11);
        }
        check (got && cnt == 25 && memcmp (resp + 11, "hello from the host side\n", 25) == 0, "Tread hello.txt");
        begin (TCLUNK);
        put (2, 4);
        check (rpc () == 0, "Tclunk");

        /* write a file the host checks */
        check (walk (1, 3, 0, 0, 0) == 0, "Twalk clone root");
        begin (TLCREATE);
        put (3, 4);
        put_s ("from-guest.txt");
        put (01 | 0100, 4); /* O_WRONLY|O_CREAT */
        put (0644, 4);
        put (0, 4);
        check (rpc () == 0 && resp[7] == 0, "Tlcreate from-guest.txt");
        static const char msg[] = "written by the p9 probe\n";
        begin (TWRITE);
        put (3, 4);
        put (0, 8);
        put (sizeof msg - 1, 4);
        memcpy (req + req_len, msg, sizeof msg - 1);
        req_len += sizeof msg - 1;
        check (rpc () == 0 && get (7, 4) == sizeof msg - 1, "Twrite from-guest.txt");
        begin (TCLUNK);
        put (3, 4);
        check (rpc () == 0, "Tclunk written file");

        /* escapes */
        int r = walk (1, 4, 2, "..", "secret");
        check (r == 0 ? get (7, 2) == 1 : r > 0, "escape: walk .. secret stops inside the share");
        check (walk (1, 5, 1, "..", 0) == 0 && resp[9] == 0x80, "escape: .. of the root is a directory");
        begin (TCLUNK);
        put (5, 4);
        rpc ();
        r = walk (1, 6, 2, "etc", "passwd");
        check (r == 0 ? get (7, 2) == 1 : r > 0, "escape: walk through symlink etc -> /etc fails");
        check (walk (1, 7, 1, "etc", 0) == 0 && resp[9] == 0x02, "symlink etc walks to the link itself");
        begin (TLOPEN);
        put (7, 4);
        put (0, 4);
        check (rpc () == 40 /* ELOOP */, "escape: Tlopen of the symlink is refused (ELOOP)");
        begin (TREADLINK);
        put (7, 4);
        check (rpc () == 0 && get (7, 2) == 4 && memcmp (resp + 9, "/etc", 4) == 0, "Treadlink gives the text");
        check (walk (1, 8, 1, "../secret", 0) == 22 /* EINVAL */, "escape: a name with a slash is refused");

        /* Device reset mid-session: the device stops, forgets every fid, and
         * serves the re-initialised queue from its start. */
        wr (R_STATUS, 0);
        check (rd (R_STATUS) == 0, "reset: status reads 0");
        memset ((void *)&q.avail, 0, sizeof q.avail);
        memset ((void *)&q.used, 0, sizeof q.used);
        n = 0;
        if (!setup_device (bp))
                return 1;
        begin (TVERSION);
        put (MSIZE, 4);
        put_s ("9P2000.L");
        check (rpc () == 0, "reset: Tversion on the new queue");
        check (walk (1, 9, 0, 0, 0) > 0, "reset: fids from before the reset are forgotten");
        begin (TATTACH);
        put (1, 4);
        put (0xffffffff, 4);
        put_s ("root");
        put_s ("");
        put (0, 4);
        check (rpc () == 0 && resp[7] == 0x80, "reset: Tattach again");

        return probe_report ();
}

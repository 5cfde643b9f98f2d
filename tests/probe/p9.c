/* SPDX-License-Identifier: Apache-2.0 */
/* Probe (c): a minimal virtio-9p driver. Finds the device from
 * virtio_mmio.device=4K@BASE:IRQ, reads the mount tag from config space,
 * then speaks 9P2000.L: version, attach, walk to hello.txt, open and read
 * it, create from-guest.txt and write to it, and tries to leave the share
 * (walk "..", walk through the symlink "etc" -> /etc, open that symlink).
 * The test (tests/integration/vmm.sh) prepares the share and checks the
 * host side. Exit status 0 if all checks passed. */
#include "probe.h"

#define R_MAGIC 0x000
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_DRIVER_LO 0x090
#define R_DRIVER_HI 0x094
#define R_DEVICE_LO 0x0a0
#define R_DEVICE_HI 0x0a4
#define R_CONFIG 0x100

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

struct desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
};
static struct desc descs[QSIZE] __attribute__ ((aligned (16)));
static struct {
        uint16_t flags, idx, ring[QSIZE], used_event;
} avail __attribute__ ((aligned (2)));
static struct {
        uint16_t flags;
        volatile uint16_t idx;
        struct {
                uint32_t id, len;
        } ring[QSIZE];
        uint16_t avail_event;
} used __attribute__ ((aligned (4)));

static uint8_t req[MSIZE], resp[MSIZE];
static uint32_t req_len, resp_len;
static int failures;
static uint64_t base;
static uint16_t tag = 1;

static void
check (bool ok, const char *what)
{
        put_str (ok ? "ok " : "FAIL ");
        say (what);
        if (!ok)
                failures++;
}

static uint32_t
rd (uint32_t off)
{
        return mmio_read32 (base + off);
}
static void
wr (uint32_t off, uint32_t v)
{
        mmio_write32 (base + off, v);
}

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
        descs[0] = (struct desc){(uint64_t)(uintptr_t)req, req_len, 1 /* NEXT */, 1};
        descs[1] = (struct desc){(uint64_t)(uintptr_t)resp, MSIZE, 2 /* WRITE */, 0};
        avail.ring[avail.idx % QSIZE] = 0;
        __asm__ volatile("mfence" ::: "memory");
        avail.idx++;
        __asm__ volatile("mfence" ::: "memory");
        wr (R_QUEUE_NOTIFY, 0);
        n++;
        for (long spin = 0; spin < 2000000000L && used.idx != n; spin++)
                __asm__ volatile("pause" ::: "memory");
        if (used.idx != n) {
                say ("no reply from the device");
                return -1;
        }
        resp_len = used.ring[(n - 1) % QSIZE].len;
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
        char arg[64];
        if (!cmdline_get (bp, "virtio_mmio.device", arg, sizeof arg)) {
                say ("FAIL no virtio_mmio.device on the command line");
                return false;
        }
        const char *p = arg;
        while (*p && *p != '@')
                p++;
        parse_num (p + 1, &base);
        check (rd (R_MAGIC) == 0x74726976, "magic");
        check (rd (R_DEVICE_ID) == 9, "device id 9 (9p)");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1 | 2);
        wr (R_DEV_FEATURES_SEL, 0);
        check (rd (R_DEV_FEATURES) & 1, "device offers MOUNT_TAG");
        wr (R_DRV_FEATURES_SEL, 0);
        wr (R_DRV_FEATURES, 1);
        wr (R_DRV_FEATURES_SEL, 1);
        wr (R_DRV_FEATURES, 1);
        wr (R_STATUS, 1 | 2 | 8);
        if (!(rd (R_STATUS) & 8)) {
                say ("FAIL FEATURES_OK refused");
                return false;
        }
        /* config: le16 tag length, tag bytes (read a byte at a time) */
        volatile uint8_t *cfg = (volatile uint8_t *)(base + R_CONFIG);
        uint32_t tl = cfg[0] | cfg[1] << 8;
        char t[80];
        uint32_t i = 0;
        for (; i < tl && i < sizeof t - 1; i++)
                t[i] = cfg[2 + i];
        t[i] = 0;
        put_str ("tag=");
        say (t);
        check (tl > 0 && tl < 80, "mount tag length");

        wr (R_QUEUE_SEL, 0);
        check (rd (R_QUEUE_NUM_MAX) >= QSIZE, "queue size");
        wr (R_QUEUE_NUM, QSIZE);
        wr (R_DESC_LO, (uint32_t)(uintptr_t)descs);
        wr (R_DESC_HI, 0);
        wr (R_DRIVER_LO, (uint32_t)(uintptr_t)&avail);
        wr (R_DRIVER_HI, 0);
        wr (R_DEVICE_LO, (uint32_t)(uintptr_t)&used);
        wr (R_DEVICE_HI, 0);
        wr (R_QUEUE_READY, 1);
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
        memset ((void *)&avail, 0, sizeof avail);
        memset ((void *)&used, 0, sizeof used);
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

        say (failures ? "moat-probe: FAILED" : "moat-probe: all checks passed");
        return failures ? 1 : 0;
}

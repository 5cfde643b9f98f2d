/* SPDX-License-Identifier: Apache-2.0 */
/* Probe (b): a virtio-mmio driver for the entropy device. Finds the device
 * from virtio_mmio.device=4K@BASE:IRQ on the command line, negotiates
 * VERSION_1, sets up queue 0, asks twice for 64 random bytes and checks the
 * used ring and the interrupt status register. Exit status 0 if all passed. */
#include "probe.h"

#define R_MAGIC 0x000
#define R_VERSION 0x004
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
#define R_INT_STATUS 0x060
#define R_INT_ACK 0x064
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_DRIVER_LO 0x090
#define R_DRIVER_HI 0x094
#define R_DEVICE_LO 0x0a0
#define R_DEVICE_HI 0x0a4

#define QSIZE 8

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
static uint8_t bufs[2][64];

static int failures;
static uint64_t base;

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

static bool
request (int n)
{
        uint8_t *b = bufs[n];
        memset (b, 0, 64);
        descs[n] = (struct desc){(uint64_t)(uintptr_t)b, 64, 2 /* WRITE */, 0};
        avail.ring[avail.idx % QSIZE] = n;
        __asm__ volatile("mfence" ::: "memory");
        avail.idx++;
        __asm__ volatile("mfence" ::: "memory");
        wr (R_QUEUE_NOTIFY, 0);
        for (long spin = 0; spin < 200000000L; spin++) {
                if (used.idx == n + 1)
                        break;
                __asm__ volatile("pause" ::: "memory");
        }
        if (used.idx != n + 1)
                return false;
        int nonzero = 0;
        for (int i = 0; i < 64; i++)
                nonzero += b[i] != 0;
        put_str ("used id=");
        put_dec (used.ring[n].id);
        put_str (" len=");
        put_dec (used.ring[n].len);
        put_str (" nonzero=");
        put_dec (nonzero);
        put_char ('\n');
        return used.ring[n].id == (uint32_t)n && used.ring[n].len == 64 && nonzero > 32;
}

int
probe_main (struct boot_params *bp)
{
        char arg[64];
        serial_init ();
        say ("moat-probe: virtio");
        if (!cmdline_get (bp, "virtio_mmio.device", arg, sizeof arg)) {
                say ("FAIL no virtio_mmio.device on the command line");
                return 1;
        }
        /* 4K@0xd0000000:5 */
        const char *p = arg;
        while (*p && *p != '@')
                p++;
        uint64_t irq = 0;
        p = parse_num (p + 1, &base);
        if (*p == ':')
                parse_num (p + 1, &irq);
        put_str ("device at ");
        put_hex (base);
        put_str (" irq ");
        put_dec (irq);
        put_char ('\n');

        check (rd (R_MAGIC) == 0x74726976, "magic");
        check (rd (R_VERSION) == 2, "version 2");
        check (rd (R_DEVICE_ID) == 4, "device id 4 (entropy)");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1);
        wr (R_STATUS, 1 | 2);
        wr (R_DEV_FEATURES_SEL, 1);
        uint32_t hi = rd (R_DEV_FEATURES);
        check (hi & 1, "device offers VERSION_1");
        /* Features we do not offer must be refused. */
        wr (R_DRV_FEATURES_SEL, 0);
        wr (R_DRV_FEATURES, 1u << 27);
        wr (R_DRV_FEATURES_SEL, 1);
        wr (R_DRV_FEATURES, 1);
        wr (R_STATUS, 1 | 2 | 8);
        check (!(rd (R_STATUS) & 8), "unoffered feature refused (FEATURES_OK stays clear)");
        wr (R_STATUS, 0);
        check (rd (R_STATUS) == 0, "reset");
        wr (R_STATUS, 1 | 2);
        wr (R_DRV_FEATURES_SEL, 0);
        wr (R_DRV_FEATURES, 0);
        wr (R_DRV_FEATURES_SEL, 1);
        wr (R_DRV_FEATURES, 1);
        wr (R_STATUS, 1 | 2 | 8);
        check (rd (R_STATUS) & 8, "FEATURES_OK accepted with VERSION_1");

        wr (R_QUEUE_SEL, 0);
        uint32_t max = rd (R_QUEUE_NUM_MAX);
        check (max >= QSIZE, "queue 0 size");
        check (rd (R_QUEUE_READY) == 0, "queue 0 not ready before setup");
        wr (R_QUEUE_NUM, QSIZE);
        wr (R_DESC_LO, (uint32_t)(uintptr_t)descs);
        wr (R_DESC_HI, 0);
        wr (R_DRIVER_LO, (uint32_t)(uintptr_t)&avail);
        wr (R_DRIVER_HI, 0);
        wr (R_DEVICE_LO, (uint32_t)(uintptr_t)&used);
        wr (R_DEVICE_HI, 0);
        wr (R_QUEUE_READY, 1);
        check (rd (R_QUEUE_READY) == 1, "queue 0 ready");
        wr (R_STATUS, 1 | 2 | 8 | 4);

        check (request (0), "first 64 random bytes");
        uint32_t isr = rd (R_INT_STATUS);
        check (isr & 1, "used-buffer interrupt status");
        wr (R_INT_ACK, isr);
        check (rd (R_INT_STATUS) == 0, "interrupt acknowledged");
        check (request (1), "second 64 random bytes");
        check (memcmp (bufs[0], bufs[1], 64) != 0, "the two reads differ");
        check (rd (R_INT_STATUS) & 1, "second interrupt");
        say (failures ? "moat-probe: FAILED" : "moat-probe: all checks passed");
        return failures ? 1 : 0;
}

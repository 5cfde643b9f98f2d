/* SPDX-License-Identifier: Apache-2.0 */
/* Probe: a minimal virtio-console driver (virtio-mmio, polled, single port).
 * Negotiates VERSION_1, sets up the receive (0) and transmit (1) queues and
 * writes on the transmit queue:
 *   "console: hello from the console probe\n" in one buffer,
 *   "console: chained " + "buffers\n" as a two-descriptor chain,
 *   a chain whose device-writable tail must be ignored,
 *   finally a descriptor pointing outside guest RAM (the device must not
 *   crash; the queue stops).
 * The serial port gets the check lines; the host compares the console log. */
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
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_DRIVER_LO 0x090
#define R_DRIVER_HI 0x094
#define R_DEVICE_LO 0x0a0
#define R_DEVICE_HI 0x0a4

#define QS 8
#define SPINS 20000000L
#define F_NEXT 1
#define F_WRITE 2

struct desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
};
struct vq {
        struct desc desc[QS] __attribute__ ((aligned (16)));
        struct {
                uint16_t flags, idx, ring[QS], used_event;
        } avail __attribute__ ((aligned (2)));
        struct {
                uint16_t flags, idx;
                struct {
                        uint32_t id, len;
                } ring[QS];
                uint16_t avail_event;
        } used __attribute__ ((aligned (4)));
};
static struct vq vqs[2];
static uint8_t rxbuf[QS][64];
static char scratch[64];

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
static void
mb (void)
{
        __asm__ volatile("mfence" ::: "memory");
}

static void
setup_queue (int qi)
{
        struct vq *q = &vqs[qi];
        wr (R_QUEUE_SEL, qi);
        check (rd (R_QUEUE_NUM_MAX) >= QS, qi == 0 ? "receive queue size" : "transmit queue size");
        wr (R_QUEUE_NUM, QS);
        wr (R_DESC_LO, (uint32_t)(uintptr_t)q->desc);
        wr (R_DESC_HI, 0);
        wr (R_DRIVER_LO, (uint32_t)(uintptr_t)&q->avail);
        wr (R_DRIVER_HI, 0);
        wr (R_DEVICE_LO, (uint32_t)(uintptr_t)&q->used);
        wr (R_DEVICE_HI, 0);
        wr (R_QUEUE_READY, 1);
}

/* Offers the chain starting at descriptor head on the transmit queue and
 * waits for the device to hand it back. */
static bool
transmit (uint16_t head)
{
        struct vq *q = &vqs[1];
        uint16_t want = q->avail.idx + 1;
        q->avail.ring[q->avail.idx % QS] = head;
        mb ();
        q->avail.idx++;
        mb ();
        wr (R_QUEUE_NOTIFY, 1);
        for (long spin = 0; spin < SPINS; spin++) {
                if (*(volatile uint16_t *)&q->used.idx == want)
                        return q->used.ring[(want - 1) % QS].id == head;
                __asm__ volatile("pause" ::: "memory");
        }
        return false;
}

static void
set (uint16_t i, const void *addr, uint32_t len, uint16_t flags, uint16_t next)
{
        vqs[1].desc[i] = (struct desc){(uint64_t)(uintptr_t)addr, len, flags, next};
}

int
probe_main (struct boot_params *bp)
{
        char arg[64];
        serial_init ();
        say ("moat-probe: console");
        if (!cmdline_get (bp, "virtio_mmio.device", arg, sizeof arg)) {
                say ("FAIL no virtio_mmio.device on the command line");
                return 1;
        }
        const char *p = arg;
        while (*p && *p != '@')
                p++;
        parse_num (p + 1, &base);

        check (rd (R_MAGIC) == 0x74726976, "magic");
        check (rd (R_DEVICE_ID) == 3, "device id 3 (console)");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1 | 2);
        wr (R_DEV_FEATURES_SEL, 0);
        uint32_t lo = rd (R_DEV_FEATURES);
        /* SIZE, MULTIPORT, EMERG_WRITE (bits 0-2): not offered. */
        check ((lo & 7) == 0, "single port, no size, no emergency write");
        wr (R_DRV_FEATURES_SEL, 0);
        wr (R_DRV_FEATURES, 0);
        wr (R_DRV_FEATURES_SEL, 1);
        wr (R_DRV_FEATURES, 1);
        wr (R_STATUS, 1 | 2 | 8);
        check (rd (R_STATUS) & 8, "FEATURES_OK with VERSION_1");
        setup_queue (0);
        setup_queue (1);
        wr (R_STATUS, 1 | 2 | 8 | 4);
        /* Input buffers, which an output-only device never fills. */
        for (uint16_t i = 0; i < QS; i++) {
                vqs[0].desc[i] = (struct desc){(uint64_t)(uintptr_t)rxbuf[i], sizeof rxbuf[i], F_WRITE, 0};
                vqs[0].avail.ring[i] = i;
        }
        mb ();
        vqs[0].avail.idx = QS;
        mb ();
        wr (R_QUEUE_NOTIFY, 0);

        static const char m1[] = "console: hello from the console probe\n";
        set (0, m1, sizeof m1 - 1, 0, 0);
        check (transmit (0), "one-buffer message handed back");
        static const char m2a[] = "console: chained ", m2b[] = "buffers\n";
        set (1, m2a, sizeof m2a - 1, F_NEXT, 2);
        set (2, m2b, sizeof m2b - 1, 0, 0);
        check (transmit (1), "two-buffer message handed back");
        static const char m3[] = "console: writable tail ignored\n";
        memset (scratch, 'X', sizeof scratch);
        set (3, m3, sizeof m3 - 1, F_NEXT, 4);
        set (4, scratch, sizeof scratch, F_WRITE, 0);
        check (transmit (3), "message with a writable tail handed back");
        check (*(volatile uint16_t *)&vqs[0].used.idx == 0, "receive buffers untouched");
        check (rd (R_INT_STATUS) & 1, "used-buffer interrupt status");
        /* Hostile: a buffer far outside guest RAM. The device gives up on
         * the queue (it is never handed back) and the VM goes on. */
        set (5, (const void *)0x7000000000ULL, 16, 0, 0);
        struct vq *q = &vqs[1];
        q->avail.ring[q->avail.idx % QS] = 5;
        mb ();
        q->avail.idx++;
        mb ();
        wr (R_QUEUE_NOTIFY, 1);
        /* A short pause (the event loop answers in microseconds; a paused
         * spin is slow under emulation): then the ring must be unchanged. */
        for (long spin = 0; spin < 100000; spin++)
                __asm__ volatile("pause" ::: "memory");
        check (*(volatile uint16_t *)&q->used.idx == 3, "bad buffer not handed back, VM still running");
        say (failures ? "moat-probe: FAILED" : "moat-probe: all checks passed");
        return failures ? 1 : 0;
}

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
#include "virtio_drv.h"

#define QS 8
#define SPINS 20000000L

static struct vq vqs[2];
static uint8_t rxbuf[QS][64];
static char scratch[64];

static void
setup_queue (int qi)
{
        check (vq_select (qi) >= QS, qi == 0 ? "receive queue size" : "transmit queue size");
        vq_setup (&vqs[qi], qi, QS);
}

/* Offers the chain starting at descriptor head on the transmit queue and
 * waits for the device to hand it back. */
static bool
transmit (uint16_t head)
{
        struct vq *q = &vqs[1];
        uint16_t want = q->avail.idx + 1;
        vq_offer (q, head);
        if (!vq_wait (q, want, SPINS))
                return false;
        return q->used.ring[(want - 1) % QS].id == head;
}

static void
set (uint16_t i, const void *addr, uint32_t len, uint16_t flags, uint16_t next)
{
        vq_desc (&vqs[1], i, addr, len, flags, next);
}

int
probe_main (struct boot_params *bp)
{
        serial_init ();
        say ("moat-probe: console");
        if (!virtio_find (bp, NULL))
                return 1;

        check (rd (R_MAGIC) == VIRTIO_MAGIC, "magic");
        check (rd (R_DEVICE_ID) == 3, "device id 3 (console)");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1 | 2);
        /* SIZE, MULTIPORT, EMERG_WRITE (bits 0-2): not offered. */
        check ((virtio_dev_features (0) & 7) == 0, "single port, no size, no emergency write");
        check (virtio_set_features (1ull << 32), "FEATURES_OK with VERSION_1");
        setup_queue (0);
        setup_queue (1);
        wr (R_STATUS, 1 | 2 | 8 | 4);
        /* Input buffers, which an output-only device never fills. */
        vq_fill (&vqs[0], rxbuf, sizeof rxbuf[0], QS);

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
        check (vq_used_idx (&vqs[0]) == 0, "receive buffers untouched");
        check (rd (R_INT_STATUS) & 1, "used-buffer interrupt status");
        /* Hostile: a buffer far outside guest RAM. The device gives up on
         * the queue (it is never handed back) and the VM goes on. */
        set (5, (const void *)0x7000000000ULL, 16, 0, 0);
        struct vq *q = &vqs[1];
        vq_offer (q, 5);
        /* A short pause (the event loop answers in microseconds; a paused
         * spin is slow under emulation): then the ring must be unchanged. */
        for (long spin = 0; spin < 100000; spin++)
                __asm__ volatile("pause" ::: "memory");
        check (vq_used_idx (q) == 3, "bad buffer not handed back, VM still running");
        return probe_report ();
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Probe (b): a virtio-mmio driver for the entropy device. Finds the device
 * from virtio_mmio.device=4K@BASE:IRQ on the command line, negotiates
 * VERSION_1, sets up queue 0, asks twice for 64 random bytes and checks the
 * used ring and the interrupt status register. Exit status 0 if all passed. */
#include "virtio_drv.h"

#define QSIZE 8

static struct vq q;
static uint8_t bufs[2][64];

static bool
request (int n)
{
        uint8_t *b = bufs[n];
        memset (b, 0, 64);
        vq_desc (&q, n, b, 64, F_WRITE, 0);
        vq_offer (&q, n);
        if (!vq_wait (&q, n + 1, 200000000L))
                return false;
        int nonzero = 0;
        for (int i = 0; i < 64; i++)
                nonzero += b[i] != 0;
        put_str ("used id=");
        put_dec (q.used.ring[n].id);
        put_str (" len=");
        put_dec (q.used.ring[n].len);
        put_str (" nonzero=");
        put_dec (nonzero);
        put_char ('\n');
        return q.used.ring[n].id == (uint32_t)n && q.used.ring[n].len == 64 && nonzero > 32;
}

int
probe_main (struct boot_params *bp)
{
        serial_init ();
        say ("moat-probe: virtio");
        uint64_t irq = 0;
        if (!virtio_find (bp, &irq))
                return 1;
        put_str ("device at ");
        put_hex (virtio_base);
        put_str (" irq ");
        put_dec (irq);
        put_char ('\n');

        check (rd (R_MAGIC) == VIRTIO_MAGIC, "magic");
        check (rd (R_VERSION) == 2, "version 2");
        check (rd (R_DEVICE_ID) == 4, "device id 4 (entropy)");
        wr (R_STATUS, 0);
        wr (R_STATUS, 1);
        wr (R_STATUS, 1 | 2);
        check (virtio_dev_features (1) & 1, "device offers VERSION_1");
        /* Features we do not offer must be refused. */
        check (!virtio_set_features (1ull << 32 | 1u << 27), "unoffered feature refused (FEATURES_OK stays clear)");
        wr (R_STATUS, 0);
        check (rd (R_STATUS) == 0, "reset");
        wr (R_STATUS, 1 | 2);
        check (virtio_set_features (1ull << 32), "FEATURES_OK accepted with VERSION_1");

        check (vq_select (0) >= QSIZE, "queue 0 size");
        check (rd (R_QUEUE_READY) == 0, "queue 0 not ready before setup");
        vq_setup (&q, 0, QSIZE);
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
        return probe_report ();
}

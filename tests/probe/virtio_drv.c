/* SPDX-License-Identifier: Apache-2.0 */
#include "virtio_drv.h"

uint64_t virtio_base;

bool
virtio_find (const struct boot_params *bp, uint64_t *irq)
{
        char arg[64];
        if (!cmdline_get (bp, "virtio_mmio.device", arg, sizeof arg)) {
                say ("FAIL no virtio_mmio.device on the command line");
                return false;
        }
        /* 4K@0xd0000000:5 */
        const char *p = arg;
        while (*p && *p != '@')
                p++;
        p = parse_num (p + 1, &virtio_base);
        if (irq && *p == ':')
                parse_num (p + 1, irq);
        return true;
}

uint32_t
virtio_dev_features (uint32_t sel)
{
        wr (R_DEV_FEATURES_SEL, sel);
        return rd (R_DEV_FEATURES);
}

bool
virtio_set_features (uint64_t features)
{
        wr (R_DRV_FEATURES_SEL, 0);
        wr (R_DRV_FEATURES, (uint32_t)features);
        wr (R_DRV_FEATURES_SEL, 1);
        wr (R_DRV_FEATURES, (uint32_t)(features >> 32));
        wr (R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
        return rd (R_STATUS) & S_FEATURES_OK;
}

uint32_t
vq_select (uint16_t index)
{
        wr (R_QUEUE_SEL, index);
        return rd (R_QUEUE_NUM_MAX);
}

void
vq_setup (struct vq *q, uint16_t index, uint16_t size)
{
        q->index = index;
        q->size = size;
        wr (R_QUEUE_SEL, index);
        wr (R_QUEUE_NUM, size);
        wr (R_DESC_LO, (uint32_t)(uintptr_t)q->desc);
        wr (R_DESC_HI, 0);
        wr (R_DRIVER_LO, (uint32_t)(uintptr_t)&q->avail);
        wr (R_DRIVER_HI, 0);
        wr (R_DEVICE_LO, (uint32_t)(uintptr_t)&q->used);
        wr (R_DEVICE_HI, 0);
        wr (R_QUEUE_READY, 1);
}

void
vq_desc (struct vq *q, uint16_t i, const void *addr, uint32_t len, uint16_t flags, uint16_t next)
{
        q->desc[i] = (struct desc){(uint64_t)(uintptr_t)addr, len, flags, next};
}

void
vq_offer (struct vq *q, uint16_t head)
{
        q->avail.ring[q->avail.idx % q->size] = head;
        mb ();
        q->avail.idx++;
        mb ();
        wr (R_QUEUE_NOTIFY, q->index);
}

void
vq_fill (struct vq *q, void *bufs, uint32_t size, uint16_t count)
{
        for (uint16_t i = 0; i < count; i++) {
                vq_desc (q, i, (uint8_t *)bufs + (uint64_t)i * size, size, F_WRITE, 0);
                q->avail.ring[i] = i;
        }
        mb ();
        q->avail.idx = count;
        mb ();
        wr (R_QUEUE_NOTIFY, q->index);
}

bool
vq_wait (const struct vq *q, uint16_t idx, long spins)
{
        for (long spin = 0; spin < spins; spin++) {
                if (vq_used_idx (q) == idx)
                        return true;
                cpu_pause ();
        }
        return vq_used_idx (q) == idx;
}

bool
vq_poll (struct vq *q, uint32_t *id, uint32_t *len)
{
        if (vq_used_idx (q) == q->last_used)
                return false;
        mb ();
        *id = q->used.ring[q->last_used % q->size].id;
        *len = q->used.ring[q->last_used % q->size].len;
        q->last_used++;
        return true;
}

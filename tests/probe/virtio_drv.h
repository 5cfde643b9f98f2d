/* SPDX-License-Identifier: Apache-2.0 */
/* Polled virtio-mmio driver pieces shared by the probe guests: finding the
 * device from virtio_mmio.device=4K@BASE:IRQ, register access, feature
 * negotiation, split virtqueues (setup, offer, wait, poll). */
#ifndef VIRTIO_DRV_H
#define VIRTIO_DRV_H

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
#define R_CONFIG 0x100

#define VIRTIO_MAGIC 0x74726976
/* status bits */
#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
/* descriptor flags */
#define F_NEXT 1
#define F_WRITE 2

/* The largest queue a probe uses; a queue runs with the size given to
 * vq_setup (at most VQ_MAX). */
#define VQ_MAX 16

struct desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags, next;
};
struct vq {
        struct desc desc[VQ_MAX] __attribute__ ((aligned (16)));
        struct {
                uint16_t flags, idx, ring[VQ_MAX], used_event;
        } avail __attribute__ ((aligned (2)));
        struct {
                uint16_t flags, idx;
                struct {
                        uint32_t id, len;
                } ring[VQ_MAX];
                uint16_t avail_event;
        } used __attribute__ ((aligned (4)));
        uint16_t index, size, last_used;
};

/* The device's register base (set by virtio_find). */
extern uint64_t virtio_base;

static inline uint32_t
rd (uint32_t off)
{
        return mmio_read32 (virtio_base + off);
}
static inline void
wr (uint32_t off, uint32_t v)
{
        mmio_write32 (virtio_base + off, v);
}
static inline void
mb (void)
{
        __asm__ volatile("mfence" ::: "memory");
}
static inline void
cpu_pause (void)
{
        __asm__ volatile("pause" ::: "memory");
}

/* Sets virtio_base (and *irq if not NULL) from virtio_mmio.device= on the
 * command line; says FAIL and returns false if there is none. */
bool virtio_find (const struct boot_params *bp, uint64_t *irq);
/* Device feature word sel (0: bits 0-31, 1: bits 32-63). */
uint32_t virtio_dev_features (uint32_t sel);
/* Writes the driver features, sets FEATURES_OK (with ACK and DRIVER) and
 * returns whether the device kept it. */
bool virtio_set_features (uint64_t features);

/* Selects queue index, returns its QUEUE_NUM_MAX. */
uint32_t vq_select (uint16_t index);
/* Sets up the selected queue index with size entries in q and makes it
 * ready. */
void vq_setup (struct vq *q, uint16_t index, uint16_t size);
/* Fills the descriptor i of q. */
void vq_desc (struct vq *q, uint16_t i, const void *addr, uint32_t len, uint16_t flags, uint16_t next);
/* Offers the chain starting at head and notifies the device. */
void vq_offer (struct vq *q, uint16_t head);
/* Offers count device-writable buffers of size bytes, laid out one after the
 * other from bufs, as descriptors 0..count-1, and notifies the device. */
void vq_fill (struct vq *q, void *bufs, uint32_t size, uint16_t count);
static inline uint16_t
vq_used_idx (const struct vq *q)
{
        return *(volatile const uint16_t *)&q->used.idx;
}
/* Spins (at most spins times) until the used index reaches idx. */
bool vq_wait (const struct vq *q, uint16_t idx, long spins);
/* Takes the next used entry not seen yet, if any. */
bool vq_poll (struct vq *q, uint32_t *id, uint32_t *len);

#endif

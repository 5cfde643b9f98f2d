/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueues (virtio 1.x, section 2.7) over a table of guest memory
 * regions. Independent of the transport: vhost-user and virtio-mmio both
 * describe guest RAM with a moat_guest_mem and rings by guest physical
 * address. Every guest-supplied value is checked: a bad chain is reported
 * through moat_error_t and marks the queue broken, never crashes. */
#ifndef MOAT_VIRTQUEUE_H
#define MOAT_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "moat/error.h"

#define MOAT_VIRTIO_F_INDIRECT_DESC 28
#define MOAT_VIRTIO_F_EVENT_IDX 29
#define MOAT_VIRTIO_F_VERSION_1 32

/* Largest queue size the split ring format allows. */
#define MOAT_VIRTQ_MAX_SIZE 32768
/* Most buffers (after splitting at region boundaries) one element may hold. */
#define MOAT_VIRTQ_MAX_IOV 1024

struct moat_guest_region {
        uint64_t gpa;   /* guest physical address */
        uint64_t size;  /* bytes */
        void *host;     /* where it is mapped here */
        uint64_t uaddr; /* vhost-user only: the frontend's userspace address */
};

struct moat_guest_mem {
        struct moat_guest_region *regions;
        size_t nregions;
};

/* Host pointer for [gpa, gpa+len) if it lies entirely in one region, else NULL. */
void *moat_gmem_ptr (const struct moat_guest_mem *mem, uint64_t gpa, uint64_t len);
/* vhost-user: frontend userspace address -> guest physical address. */
int moat_gmem_uaddr_to_gpa (const struct moat_guest_mem *mem, uint64_t uaddr, uint64_t len, uint64_t *gpa);

struct moat_virtq;
typedef void (*moat_virtq_notify_fn) (struct moat_virtq *vq, void *opaque);

struct moat_virtq {
        /* set by the transport */
        uint16_t size;
        uint64_t desc_gpa, avail_gpa, used_gpa;
        bool event_idx; /* VIRTIO_RING_F_EVENT_IDX negotiated */
        bool indirect;  /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
        const struct moat_guest_mem *mem;
        moat_virtq_notify_fn notify; /* raise the used-buffer interrupt */
        void *notify_opaque;

        /* state */
        bool ready;  /* mapped and running */
        bool broken; /* the driver handed us garbage: stop touching the ring */
        uint16_t last_avail;
        uint16_t used_idx;
        uint16_t signalled_used;
        bool signalled_used_valid;
        volatile uint8_t *desc;   /* struct virtq_desc[size] */
        volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
        volatile uint8_t *used;   /* flags, idx, {id,len}[size], avail_event */
};

struct moat_virtq_elem {
        uint16_t head;
        unsigned out_num; /* device-readable buffers: iov[0 .. out_num) */
        unsigned in_num;  /* device-writable buffers: iov[out_num .. out_num+in_num) */
        uint64_t out_len, in_len;
        struct iovec iov[MOAT_VIRTQ_MAX_IOV];
};

/* Resolves the ring addresses against vq->mem and starts the queue at
 * last_avail = avail_base; used_idx is read from the ring. */
int moat_virtq_start (struct moat_virtq *vq, uint16_t avail_base, moat_error_t *err);
void moat_virtq_stop (struct moat_virtq *vq);

/* 1: an element was taken; 0: the queue is empty (or not ready);
 * -1: the driver's chain is invalid (err set, queue marked broken). */
int moat_virtq_pop (struct moat_virtq *vq, struct moat_virtq_elem *elem, moat_error_t *err);
/* Gives back the element popped last (not yet pushed). */
void moat_virtq_unpop (struct moat_virtq *vq);
/* Returns an element to the driver with `len` bytes written into it. */
void moat_virtq_push (struct moat_virtq *vq, const struct moat_virtq_elem *elem, uint32_t len);
/* Whether the driver wants an interrupt for what was pushed since the last call. */
bool moat_virtq_should_notify (struct moat_virtq *vq);
/* Calls vq->notify if moat_virtq_should_notify(). */
void moat_virtq_notify (struct moat_virtq *vq);
/* True if the driver made buffers available that we did not pop yet. */
bool moat_virtq_has_avail (struct moat_virtq *vq);

/* iovec helpers: copy between a flat buffer and an iovec array at an offset.
 * Return the bytes copied. */
size_t moat_iov_to_buf (const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len);
size_t moat_iov_from_buf (const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len);
/* Fills out[] with the part of iov starting at byte `off`, at most `len`
 * bytes; returns the number of entries. */
unsigned moat_iov_slice (const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out,
                         unsigned max_out);

#endif

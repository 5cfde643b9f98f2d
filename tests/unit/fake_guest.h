/* SPDX-License-Identifier: Apache-2.0 */
/* A fake guest for virtqueue and device tests: guest RAM in two adjacent
 * regions, and a minimal split-ring driver writing descriptors the way a
 * (possibly hostile) guest would. */
#ifndef MOAT_TEST_FAKE_GUEST_H
#define MOAT_TEST_FAKE_GUEST_H

#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/virtqueue.h"

#define G_BASE 0x100000ull
#define G_HALF (1u << 20) /* each region */
#define G_SIZE (2 * G_HALF)
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4

struct fake_guest {
        uint8_t *ram[2];
        struct moat_guest_region regions[2];
        struct moat_guest_mem mem;
        uint64_t bump; /* next free guest address for buffers */
};

struct fake_queue {
        struct fake_guest *g;
        struct moat_virtq vq;
        uint16_t size;
        uint64_t desc, avail, used;
        uint16_t avail_idx, used_seen;
        uint16_t next_free; /* next descriptor to hand out */
        int notified;
};

static inline void
fg_init (struct fake_guest *g)
{
        memset (g, 0, sizeof *g);
        for (int i = 0; i < 2; i++) {
                /* two separate allocations: a buffer crossing them must be split */
                g->ram[i] = calloc (1, G_HALF);
                g->regions[i].gpa = G_BASE + (uint64_t)i * G_HALF;
                g->regions[i].size = G_HALF;
                g->regions[i].host = g->ram[i];
                g->regions[i].uaddr = 0x7f0000000000ull + (uint64_t)i * G_HALF;
        }
        g->mem.regions = g->regions;
        g->mem.nregions = 2;
        g->bump = G_BASE + 0x40000;
}

static inline void
fg_free (struct fake_guest *g)
{
        free (g->ram[0]);
        free (g->ram[1]);
}

static inline void *
fg_ptr (struct fake_guest *g, uint64_t gpa)
{
        return moat_gmem_ptr (&g->mem, gpa, 1);
}

static inline uint64_t
fg_alloc (struct fake_guest *g, uint64_t len)
{
        uint64_t a = g->bump;
        g->bump += (len + 15) & ~15ull;
        if (g->bump > G_BASE + G_SIZE)
                abort ();
        return a;
}

static inline void
fg_put16 (struct fake_guest *g, uint64_t gpa, uint16_t v)
{
        v = htole16 (v);
        memcpy (fg_ptr (g, gpa), &v, 2);
}

static inline uint16_t
fg_get16 (struct fake_guest *g, uint64_t gpa)
{
        uint16_t v;
        memcpy (&v, fg_ptr (g, gpa), 2);
        return le16toh (v);
}

static inline uint32_t
fg_get32 (struct fake_guest *g, uint64_t gpa)
{
        uint32_t v;
        memcpy (&v, fg_ptr (g, gpa), 4);
        return le32toh (v);
}

static void
fq_notify_cb (struct moat_virtq *vq, void *opaque)
{
        ((struct fake_queue *)opaque)->notified++;
}

/* Rings of queue `slot` live in the first 64 KiB slots of region 0. */
static inline void
fq_init (struct fake_queue *q, struct fake_guest *g, int slot, uint16_t size, bool event_idx, bool indirect)
{
        memset (q, 0, sizeof *q);
        q->g = g;
        q->size = size;
        q->desc = G_BASE + (uint64_t)slot * 0x10000;
        q->avail = q->desc + 16 * (uint64_t)size;
        q->used = (q->avail + 6 + 2 * size + 3) & ~3ull;
        q->vq.size = size;
        q->vq.desc_gpa = q->desc;
        q->vq.avail_gpa = q->avail;
        q->vq.used_gpa = q->used;
        q->vq.event_idx = event_idx;
        q->vq.indirect = indirect;
        q->vq.mem = &g->mem;
        q->vq.notify = fq_notify_cb;
        q->vq.notify_opaque = q;
}

static inline void
fq_set_desc_at (struct fake_guest *g, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                uint16_t next)
{
        uint8_t *d = fg_ptr (g, table + 16 * (uint64_t)i);
        uint64_t a = htole64 (addr);
        uint32_t l = htole32 (len);
        uint16_t f = htole16 (flags), n = htole16 (next);
        memcpy (d, &a, 8);
        memcpy (d + 8, &l, 4);
        memcpy (d + 12, &f, 2);
        memcpy (d + 14, &n, 2);
}

static inline void
fq_set_desc (struct fake_queue *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        fq_set_desc_at (q->g, q->desc, i, addr, len, flags, next);
}

static inline void
fq_publish (struct fake_queue *q, uint16_t head)
{
        fg_put16 (q->g, q->avail + 4 + 2 * (uint64_t)(q->avail_idx % q->size), head);
        q->avail_idx++;
        __atomic_thread_fence (__ATOMIC_RELEASE);
        fg_put16 (q->g, q->avail + 2, q->avail_idx);
}

/* Makes a chain of n buffers (writable ones after readable ones) and publishes it. */
struct fq_buf {
        uint64_t addr;
        uint32_t len;
        bool write;
};

static inline uint16_t
fq_add_chain (struct fake_queue *q, const struct fq_buf *bufs, unsigned n)
{
        uint16_t head = q->next_free;
        for (unsigned i = 0; i < n; i++) {
                uint16_t idx = (uint16_t)((head + i) % q->size);
                uint16_t next = (uint16_t)((head + i + 1) % q->size);
                fq_set_desc (q, idx, bufs[i].addr, bufs[i].len,
                             (bufs[i].write ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0), next);
        }
        q->next_free = (uint16_t)((head + n) % q->size);
        fq_publish (q, head);
        return head;
}

/* 1 and the element if the device returned one. */
static inline int
fq_get_used (struct fake_queue *q, uint32_t *id, uint32_t *len)
{
        uint16_t idx = fg_get16 (q->g, q->used + 2);
        if (idx == q->used_seen)
                return 0;
        uint64_t e = q->used + 4 + 8 * (uint64_t)(q->used_seen % q->size);
        *id = fg_get32 (q->g, e);
        *len = fg_get32 (q->g, e + 4);
        q->used_seen++;
        return 1;
}

#endif

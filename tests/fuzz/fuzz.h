/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): a reader
 * that takes integers and byte strings off the fuzzer's input (zeros once
 * it runs out, so every input is a valid program) and a small fake guest
 * RAM whose regions are separate allocations of their exact size, so that
 * AddressSanitizer catches any access past a region. */
#ifndef MOAT_FUZZ_H
#define MOAT_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "moat/virtqueue.h"

struct fz {
        const uint8_t *p;
        size_t n;
};

static inline bool
fz_more (const struct fz *f)
{
        return f->n > 0;
}

static inline uint64_t
fz_int (struct fz *f, int bytes)
{
        uint64_t v = 0;
        for (int i = 0; i < bytes; i++) {
                uint8_t b = 0;
                if (f->n > 0) {
                        b = *f->p++;
                        f->n--;
                }
                v |= (uint64_t)b << (8 * i);
        }
        return v;
}

static inline uint8_t
fz_u8 (struct fz *f)
{
        return (uint8_t)fz_int (f, 1);
}

static inline uint16_t
fz_u16 (struct fz *f)
{
        return (uint16_t)fz_int (f, 2);
}

static inline uint32_t
fz_u32 (struct fz *f)
{
        return (uint32_t)fz_int (f, 4);
}

static inline uint64_t
fz_u64 (struct fz *f)
{
        return fz_int (f, 8);
}

/* Up to max bytes (fewer if the input ends): *len is set, the bytes stay in the input. */
static inline const uint8_t *
fz_bytes (struct fz *f, size_t max, size_t *len)
{
        size_t n = max < f->n ? max : f->n;
        const uint8_t *p = f->p;
        f->p += n;
        f->n -= n;
        *len = n;
        return p;
}

/* A length-prefixed (u16) chunk of at most max bytes. */
static inline const uint8_t *
fz_chunk (struct fz *f, size_t max, size_t *len)
{
        size_t want = fz_u16 (f);
        return fz_bytes (f, want < max ? want : max, len);
}

/* ---- fake guest RAM: FG_NREGIONS regions; 0 and 1 are adjacent (a buffer
 * crossing them is split), 2 stands apart. ---- */
#define FG_NREGIONS 3
static const uint64_t fg_gpa[FG_NREGIONS] = {0x10000, 0x20000, 0x80000};
static const uint64_t fg_size[FG_NREGIONS] = {0x10000, 0x8000, 0x1000};

struct fguest {
        struct moat_guest_region r[FG_NREGIONS];
        struct moat_guest_mem mem;
};

static inline void
fguest_init (struct fguest *g)
{
        for (int i = 0; i < FG_NREGIONS; i++) {
                g->r[i].gpa = fg_gpa[i];
                g->r[i].size = fg_size[i];
                g->r[i].host = calloc (1, fg_size[i]);
                g->r[i].uaddr = 0x7f0000000000ull + fg_gpa[i];
                if (g->r[i].host == NULL)
                        abort ();
        }
        g->mem.regions = g->r;
        g->mem.nregions = FG_NREGIONS;
}

static inline void
fguest_clear (struct fguest *g)
{
        for (int i = 0; i < FG_NREGIONS; i++)
                memset (g->r[i].host, 0, fg_size[i]);
}

/* Host pointer for [gpa, gpa+len) (in one region), NULL if outside. */
static inline uint8_t *
fguest_ptr (struct fguest *g, uint64_t gpa, uint64_t len)
{
        return moat_gmem_ptr (&g->mem, gpa, len);
}

static inline void
fguest_write (struct fguest *g, uint64_t gpa, const void *buf, size_t len)
{
        uint8_t *p = fguest_ptr (g, gpa, len);
        if (p != NULL)
                memcpy (p, buf, len);
}

static inline void
fguest_put16 (struct fguest *g, uint64_t gpa, uint16_t v)
{
        uint8_t b[2] = {v & 0xff, v >> 8};
        fguest_write (g, gpa, b, 2);
}

static inline void
fguest_put32 (struct fguest *g, uint64_t gpa, uint32_t v)
{
        uint8_t b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
        fguest_write (g, gpa, b, 4);
}

static inline void
fguest_put_desc (struct fguest *g, uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next)
{
        uint8_t d[16];
        for (int k = 0; k < 8; k++)
                d[k] = (addr >> (8 * k)) & 0xff;
        for (int k = 0; k < 4; k++)
                d[8 + k] = (len >> (8 * k)) & 0xff;
        d[12] = flags & 0xff;
        d[13] = flags >> 8;
        d[14] = next & 0xff;
        d[15] = next >> 8;
        fguest_write (g, table + 16 * (uint64_t)i, d, 16);
}

/* Touches every byte of an element's buffers: reads the device-readable
 * ones, writes the device-writable ones (ASan reports a buffer outside RAM). */
static inline unsigned
fz_touch_elem (const struct moat_virtq_elem *e)
{
        unsigned sum = 0;
        for (unsigned i = 0; i < e->out_num; i++)
                for (size_t k = 0; k < e->iov[i].iov_len; k++)
                        sum += ((volatile uint8_t *)e->iov[i].iov_base)[k];
        for (unsigned i = e->out_num; i < e->out_num + e->in_num; i++)
                memset (e->iov[i].iov_base, 0xa5, e->iov[i].iov_len);
        return sum;
}

#endif

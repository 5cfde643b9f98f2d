/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueues (src/virtio/virtqueue.c) driven by a hostile driver: the
 * input is a program that writes descriptors, indirect tables and ring
 * indexes into fake guest RAM and makes the device pop, touch, push and
 * notify. Every buffer popped is read or written in full, so a descriptor
 * that escapes guest RAM is an ASan report. */
#include <stdio.h>

#include "fuzz.h"
#include "moat/virtqueue.h"

static struct fguest g;
static struct moat_virtq_elem elem;
static int notified;

static void
on_notify (struct moat_virtq *vq, void *opaque)
{
        (void)vq;
        (void)opaque;
        notified++;
}

/* A guest address: mostly inside (or just past) one of the regions. */
static uint64_t
fz_gpa (struct fz *f)
{
        uint8_t sel = fz_u8 (f);
        if (sel >= 0xf0)
                return fz_u64 (f);
        return fg_gpa[sel % FG_NREGIONS] + fz_u16 (f);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        struct fz f = {data, size};
        struct moat_virtq vq = {0};
        bool popped = false;

        if (g.mem.regions == NULL)
                fguest_init (&g);
        fguest_clear (&g);

        uint8_t cfg = fz_u8 (&f);
        uint16_t qsize = (uint16_t)1 << (cfg & 7);
        vq.size = (cfg & 0x80) ? fz_u16 (&f) : qsize; /* sometimes not a power of two */
        vq.event_idx = cfg & 8;
        vq.indirect = cfg & 16;
        vq.mem = &g.mem;
        vq.notify = on_notify;
        if (cfg & 32) {
                vq.desc_gpa = fz_gpa (&f);
                vq.avail_gpa = fz_gpa (&f);
                vq.used_gpa = fz_gpa (&f);
        } else {
                vq.desc_gpa = fg_gpa[0];
                vq.avail_gpa = vq.desc_gpa + 16 * (uint64_t)vq.size;
                vq.used_gpa = (vq.avail_gpa + 6 + 2 * (uint64_t)vq.size + 3) & ~3ull;
        }
        uint16_t avail_idx = fz_u16 (&f);
        moat_error_t err = NULL;
        if (moat_virtq_start (&vq, avail_idx, &err) < 0) {
                moat_error_release (&err);
                return 0;
        }

        for (int steps = 0; fz_more (&f) && steps < 256; steps++) {
                uint8_t op = fz_u8 (&f);
                switch (op % 9) {
                case 0: { /* a descriptor in the ring's table */
                        uint16_t i = fz_u16 (&f) % vq.size;
                        uint64_t addr = fz_gpa (&f);
                        uint32_t len = (op & 0x80) ? fz_u32 (&f) : fz_u16 (&f);
                        uint16_t flags = fz_u8 (&f);
                        uint16_t next = fz_u16 (&f);
                        fguest_put_desc (&g, vq.desc_gpa, i, addr, len, flags, next);
                        break;
                }
                case 1: { /* a descriptor anywhere (indirect tables) */
                        uint64_t table = fz_gpa (&f);
                        uint16_t i = fz_u8 (&f);
                        uint64_t addr = fz_gpa (&f);
                        uint32_t len = fz_u16 (&f);
                        uint16_t flags = fz_u8 (&f);
                        uint16_t next = fz_u16 (&f);
                        fguest_put_desc (&g, table, i, addr, len, flags, next);
                        break;
                }
                case 2: { /* publish a head */
                        uint16_t head = fz_u16 (&f);
                        fguest_put16 (&g, vq.avail_gpa + 4 + 2 * (uint64_t)(avail_idx % (vq.size ? vq.size : 1)), head);
                        avail_idx++;
                        fguest_put16 (&g, vq.avail_gpa + 2, avail_idx);
                        break;
                }
                case 3: /* any avail index, flags or used_event */
                        fguest_put16 (&g, vq.avail_gpa + 2, fz_u16 (&f));
                        fguest_put16 (&g, vq.avail_gpa, fz_u8 (&f) & 1);
                        fguest_put16 (&g, vq.avail_gpa + 4 + 2 * (uint64_t)vq.size, fz_u16 (&f));
                        break;
                case 4: { /* the device takes what it can */
                        for (int k = 0; k < 64; k++) {
                                int r = moat_virtq_pop (&vq, &elem, &err);
                                moat_error_release (&err);
                                if (r <= 0)
                                        break;
                                popped = true;
                                fz_touch_elem (&elem);
                                uint32_t len = (op & 0x80) ? fz_u32 (&f) : (uint32_t)elem.in_len;
                                moat_virtq_push (&vq, &elem, len);
                                moat_virtq_notify (&vq);
                        }
                        break;
                }
                case 5: { /* pop, then give it back */
                        int r = moat_virtq_pop (&vq, &elem, &err);
                        moat_error_release (&err);
                        if (r > 0) {
                                popped = true;
                                moat_virtq_unpop (&vq);
                        }
                        break;
                }
                case 6: /* iovec helpers on the last element */
                        if (popped) {
                                uint8_t buf[512];
                                struct iovec out[8];
                                size_t off = fz_u16 (&f), len = fz_u16 (&f) % sizeof buf;
                                unsigned n = elem.out_num + elem.in_num;
                                moat_iov_to_buf (elem.iov, elem.out_num, off, buf, len);
                                memset (buf, 0x5a, sizeof buf);
                                moat_iov_from_buf (elem.iov + elem.out_num, elem.in_num, off, buf, len);
                                unsigned k = moat_iov_slice (elem.iov, n, off, len, out, 8);
                                for (unsigned i = 0; i < k; i++)
                                        memset (out[i].iov_base, 0x3c, out[i].iov_len);
                        }
                        break;
                case 7: /* raw bytes anywhere */ {
                        uint64_t at = fz_gpa (&f);
                        size_t n;
                        const uint8_t *p = fz_chunk (&f, 256, &n);
                        fguest_write (&g, at, p, n);
                        break;
                }
                case 8: /* the transport restarts the queue */
                        moat_virtq_stop (&vq);
                        popped = false;
                        if (moat_virtq_start (&vq, fz_u16 (&f), &err) < 0) {
                                moat_error_release (&err);
                                return 0;
                        }
                        break;
                }
                (void)moat_virtq_has_avail (&vq);
        }
        moat_virtq_stop (&vq);
        return 0;
}

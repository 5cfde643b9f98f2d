/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueue processing over moat_guest_mem. The driver (the guest) is
 * untrusted: descriptors are copied once before use, every address is
 * translated with bounds checks, chains are bounded by the queue size. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "moat/virtqueue.h"

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define DESC_SIZE 16

struct desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};

void *
moat_gmem_ptr (const struct moat_guest_mem *mem, uint64_t gpa, uint64_t len)
{
        if (mem == NULL)
                return NULL;
        for (size_t i = 0; i < mem->nregions; i++) {
                const struct moat_guest_region *r = &mem->regions[i];
                if (gpa < r->gpa || gpa - r->gpa >= r->size)
                        continue;
                if (len > r->size - (gpa - r->gpa))
                        return NULL;
                return (uint8_t *)r->host + (gpa - r->gpa);
        }
        return NULL;
}

int
moat_gmem_uaddr_to_gpa (const struct moat_guest_mem *mem, uint64_t uaddr, uint64_t len, uint64_t *gpa)
{
        for (size_t i = 0; mem && i < mem->nregions; i++) {
                const struct moat_guest_region *r = &mem->regions[i];
                if (uaddr < r->uaddr || uaddr - r->uaddr >= r->size)
                        continue;
                if (len > r->size - (uaddr - r->uaddr))
                        return -1;
                *gpa = r->gpa + (uaddr - r->uaddr);
                return 0;
        }
        return -1;
}

/* Finds the region holding gpa; returns host pointer and bytes available from there. */
static void *
gmem_ptr_partial (const struct moat_guest_mem *mem, uint64_t gpa, uint64_t *avail)
{
        for (size_t i = 0; mem && i < mem->nregions; i++) {
                const struct moat_guest_region *r = &mem->regions[i];
                if (gpa < r->gpa || gpa - r->gpa >= r->size)
                        continue;
                *avail = r->size - (gpa - r->gpa);
                return (uint8_t *)r->host + (gpa - r->gpa);
        }
        return NULL;
}

static inline uint16_t
load16 (volatile const void *p)
{
        uint16_t v;
        memcpy (&v, (const void *)p, sizeof v);
        return le16toh (v);
}

static inline void
store16 (volatile void *p, uint16_t v)
{
        v = htole16 (v);
        memcpy ((void *)p, &v, sizeof v);
}

static inline void
store32 (volatile void *p, uint32_t v)
{
        v = htole32 (v);
        memcpy ((void *)p, &v, sizeof v);
}

static uint16_t
avail_idx (struct moat_virtq *vq)
{
        uint16_t v = __atomic_load_n (&vq->avail[1], __ATOMIC_ACQUIRE);
        return le16toh (v);
}

/* Whether guest ranges [a, a+alen) and [b, b+blen) share a byte (neither wraps). */
static bool
overlaps (uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
        return alen > 0 && blen > 0 && a < b + blen && b < a + alen;
}

int
moat_virtq_start (struct moat_virtq *vq, uint16_t avail_base, moat_error_t *err)
{
        uint64_t n = vq->size;

        vq->ready = false;
        vq->broken = false;
        if (n == 0 || n > MOAT_VIRTQ_MAX_SIZE || (n & (n - 1)) != 0)
                return moat_make_error (err, EINVAL, "virtqueue size %u is not a power of two up to %u", (unsigned)n,
                                        MOAT_VIRTQ_MAX_SIZE);
        vq->desc = moat_gmem_ptr (vq->mem, vq->desc_gpa, n * DESC_SIZE);
        vq->avail = moat_gmem_ptr (vq->mem, vq->avail_gpa, 6 + 2 * n);
        vq->used = moat_gmem_ptr (vq->mem, vq->used_gpa, 6 + 8 * n);
        if (vq->desc == NULL || vq->avail == NULL || vq->used == NULL)
                return moat_make_error (err, EFAULT,
                                        "virtqueue rings (desc 0x%llx, avail 0x%llx, used 0x%llx, size %u) are "
                                        "outside guest memory",
                                        (unsigned long long)vq->desc_gpa, (unsigned long long)vq->avail_gpa,
                                        (unsigned long long)vq->used_gpa, (unsigned)n);
        if (((uintptr_t)vq->avail & 1) || ((uintptr_t)vq->used & 3))
                return moat_make_error (err, EINVAL, "virtqueue rings are misaligned");
        /* The device writes the used ring: on top of the avail ring (or the
         * table), every push could publish one more buffer and the queue
         * would never empty. */
        if (overlaps (vq->used_gpa, 6 + 8 * n, vq->avail_gpa, 6 + 2 * n) ||
            overlaps (vq->used_gpa, 6 + 8 * n, vq->desc_gpa, n * DESC_SIZE))
                return moat_make_error (err, EINVAL, "virtqueue used ring overlaps the avail ring or the table");
        vq->last_avail = avail_base;
        vq->used_idx = load16 (vq->used + 2);
        vq->signalled_used_valid = false;
        vq->ready = true;
        return 0;
}

void
moat_virtq_stop (struct moat_virtq *vq)
{
        vq->ready = false;
        vq->desc = NULL;
        vq->avail = NULL;
        vq->used = NULL;
}

static void
set_avail_event (struct moat_virtq *vq)
{
        if (vq->event_idx)
                store16 (vq->used + 4 + 8 * vq->size, vq->last_avail);
}

bool
moat_virtq_has_avail (struct moat_virtq *vq)
{
        if (!vq->ready || vq->broken)
                return false;
        return avail_idx (vq) != vq->last_avail;
}

static int
broken (struct moat_virtq *vq, moat_error_t *err, int errno_, const char *what, uint16_t head)
{
        vq->broken = true;
        return moat_make_error (err, errno_, "virtqueue: chain at head %u: %s", head, what);
}

/* Appends [addr, addr+len) to elem, split at region boundaries. */
static int
add_buffer (struct moat_virtq *vq, struct moat_virtq_elem *elem, uint64_t addr, uint32_t len, bool writable,
            uint16_t head, moat_error_t *err)
{
        uint64_t left = len;

        if (addr + (uint64_t)len < addr)
                return broken (vq, err, EFAULT, "buffer address wraps around", head);
        /* What the device writes must not land in the avail ring or the
         * table (a reply there could publish buffers without end). */
        if (writable && (overlaps (addr, len, vq->avail_gpa, 6 + 2 * (uint64_t)vq->size) ||
                         overlaps (addr, len, vq->desc_gpa, (uint64_t)vq->size * DESC_SIZE)))
                return broken (vq, err, EFAULT, "writable buffer over the avail ring or the table", head);
        while (left > 0) {
                uint64_t avail = 0;
                void *p = gmem_ptr_partial (vq->mem, addr, &avail);
                if (p == NULL) {
                        vq->broken = true;
                        return moat_make_error (err, EFAULT,
                                                "virtqueue: chain at head %u: buffer 0x%llx+%u is outside guest memory",
                                                head, (unsigned long long)addr, len);
                }
                if (elem->out_num + elem->in_num >= MOAT_VIRTQ_MAX_IOV)
                        return broken (vq, err, E2BIG, "too many buffers", head);
                uint64_t chunk = left < avail ? left : avail;
                struct iovec *iov = &elem->iov[elem->out_num + elem->in_num];
                iov->iov_base = p;
                iov->iov_len = chunk;
                if (writable) {
                        elem->in_num++;
                        elem->in_len += chunk;
                } else {
                        elem->out_num++;
                        elem->out_len += chunk;
                }
                addr += chunk;
                left -= chunk;
        }
        return 0;
}

int
moat_virtq_pop (struct moat_virtq *vq, struct moat_virtq_elem *elem, moat_error_t *err)
{
        uint16_t idx, head, n_avail;

        if (!vq->ready || vq->broken)
                return 0;
        idx = avail_idx (vq);
        if (idx == vq->last_avail) {
                set_avail_event (vq);
                __atomic_thread_fence (__ATOMIC_SEQ_CST);
                idx = avail_idx (vq);
                if (idx == vq->last_avail)
                        return 0;
        }
        n_avail = (uint16_t)(idx - vq->last_avail);
        if (n_avail > vq->size) {
                vq->broken = true;
                return moat_make_error (err, EINVAL, "virtqueue: avail index %u is %u ahead of %u (size %u)", idx,
                                        n_avail, vq->last_avail, vq->size);
        }
        head = load16 (&vq->avail[2 + vq->last_avail % vq->size]);
        if (head >= vq->size) {
                vq->broken = true;
                return moat_make_error (err, EINVAL, "virtqueue: head %u is out of range (size %u)", head, vq->size);
        }

        elem->head = head;
        elem->out_num = elem->in_num = 0;
        elem->out_len = elem->in_len = 0;

        const volatile uint8_t *table = vq->desc;
        uint32_t table_size = vq->size;
        uint32_t max = vq->size, count = 0;
        bool in_indirect = false;
        uint16_t i = head;

        for (;;) {
                struct desc d;

                if (count++ >= max)
                        return broken (vq, err, ELOOP, "chain is longer than the queue (loop?)", head);
                memcpy (&d, (const void *)(table + (size_t)i * DESC_SIZE), sizeof d);
                d.addr = le64toh (d.addr);
                d.len = le32toh (d.len);
                d.flags = le16toh (d.flags);
                d.next = le16toh (d.next);

                if (d.flags & VRING_DESC_F_INDIRECT) {
                        if (!vq->indirect)
                                return broken (vq, err, EINVAL, "indirect descriptor without INDIRECT_DESC", head);
                        if (in_indirect)
                                return broken (vq, err, EINVAL, "nested indirect descriptor", head);
                        if (d.flags & VRING_DESC_F_NEXT)
                                return broken (vq, err, EINVAL, "indirect descriptor with NEXT", head);
                        if (d.len == 0 || d.len % DESC_SIZE != 0 || d.len / DESC_SIZE > vq->size)
                                return broken (vq, err, EINVAL, "bad indirect table length", head);
                        table = moat_gmem_ptr (vq->mem, d.addr, d.len);
                        if (table == NULL)
                                return broken (vq, err, EFAULT, "indirect table outside guest memory", head);
                        table_size = d.len / DESC_SIZE;
                        max = table_size;
                        count = 0;
                        in_indirect = true;
                        i = 0;
                        continue;
                }
                if (d.flags & VRING_DESC_F_WRITE) {
                        if (add_buffer (vq, elem, d.addr, d.len, true, head, err) < 0)
                                return -1;
                } else {
                        if (elem->in_num > 0)
                                return broken (vq, err, EINVAL, "readable buffer after a writable one", head);
                        if (add_buffer (vq, elem, d.addr, d.len, false, head, err) < 0)
                                return -1;
                }
                if (!(d.flags & VRING_DESC_F_NEXT))
                        break;
                if (d.next >= table_size)
                        return broken (vq, err, EINVAL, "next index out of range", head);
                i = d.next;
        }
        vq->last_avail++;
        set_avail_event (vq);
        return 1;
}

void
moat_virtq_unpop (struct moat_virtq *vq)
{
        vq->last_avail--;
        set_avail_event (vq);
}

void
moat_virtq_push (struct moat_virtq *vq, const struct moat_virtq_elem *elem, uint32_t len)
{
        if (!vq->ready)
                return;
        volatile uint8_t *e = vq->used + 4 + 8 * (size_t)(vq->used_idx % vq->size);
        store32 (e, elem->head);
        store32 (e + 4, len);
        vq->used_idx++;
        __atomic_thread_fence (__ATOMIC_RELEASE);
        store16 (vq->used + 2, vq->used_idx);
}

bool
moat_virtq_should_notify (struct moat_virtq *vq)
{
        if (!vq->ready)
                return false;
        __atomic_thread_fence (__ATOMIC_SEQ_CST);
        if (!vq->event_idx)
                return !(load16 (&vq->avail[0]) & VRING_AVAIL_F_NO_INTERRUPT);

        uint16_t old = vq->signalled_used, new = vq->used_idx;
        bool valid = vq->signalled_used_valid;
        vq->signalled_used = new;
        vq->signalled_used_valid = true;
        if (!valid)
                return true;
        uint16_t used_event = load16 (&vq->avail[2 + vq->size]);
        /* vring_need_event() */
        return (uint16_t)(new - used_event - 1) < (uint16_t)(new - old);
}

void
moat_virtq_notify (struct moat_virtq *vq)
{
        if (moat_virtq_should_notify (vq) && vq->notify)
                vq->notify (vq, vq->notify_opaque);
}

size_t
moat_iov_to_buf (const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len)
{
        size_t done = 0;
        for (unsigned i = 0; i < n && done < len; i++) {
                if (off >= iov[i].iov_len) {
                        off -= iov[i].iov_len;
                        continue;
                }
                size_t c = iov[i].iov_len - off;
                if (c > len - done)
                        c = len - done;
                memcpy ((uint8_t *)buf + done, (uint8_t *)iov[i].iov_base + off, c);
                done += c;
                off = 0;
        }
        return done;
}

size_t
moat_iov_from_buf (const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len)
{
        size_t done = 0;
        for (unsigned i = 0; i < n && done < len; i++) {
                if (off >= iov[i].iov_len) {
                        off -= iov[i].iov_len;
                        continue;
                }
                size_t c = iov[i].iov_len - off;
                if (c > len - done)
                        c = len - done;
                memcpy ((uint8_t *)iov[i].iov_base + off, (const uint8_t *)buf + done, c);
                done += c;
                off = 0;
        }
        return done;
}

unsigned
moat_iov_slice (const struct iovec *iov, unsigned n, size_t off, size_t len, struct iovec *out, unsigned max_out)
{
        unsigned k = 0;
        for (unsigned i = 0; i < n && len > 0 && k < max_out; i++) {
                if (off >= iov[i].iov_len) {
                        off -= iov[i].iov_len;
                        continue;
                }
                size_t c = iov[i].iov_len - off;
                if (c > len)
                        c = len;
                out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
                out[k].iov_len = c;
                k++;
                len -= c;
                off = 0;
        }
        return k;
}

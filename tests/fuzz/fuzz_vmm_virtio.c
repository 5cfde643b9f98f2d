/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's virtio-mmio transport (src/vmm/virtio_mmio.c) with its
 * virtio-net and virtio-9p devices (virtio_net.c, virtio_9p.c), driven the
 * way a hostile guest driver would: any register write or read at any
 * width, any feature and status sequence, queues at any address and size,
 * descriptors and buffers written into fake guest RAM, kicks, and for
 * virtio-net frames arriving from the "tap" (a SOCK_SEQPACKET pair). No
 * KVM, no thread: virtio-9p serves its queue on this thread
 * (vmm_virtio_9p_new_sync). One device per input, picked by its first
 * byte. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm_virtio.h"

static struct fguest g;
static char share[64], sharefile[96];
static uint8_t tapbuf[70000];

static void
fake_raise (struct vmm_virtio_mmio *m)
{
        (void)m;
}

/* libFuzzer ends with exit(): the temporary directory goes with it. */
static void
remove_tmp (void)
{
        moat_error_t err = NULL;
        if (rm_rf (share, &err) < 0)
                moat_error_release (&err);
}

static void
init (void)
{
        moat_log_init ("/dev/null", 0, 1);
        fguest_init (&g);
        strcpy (share, "/tmp/moat-fuzz-vmm9p.XXXXXX");
        if (mkdtemp (share) == NULL)
                abort ();
        atexit (remove_tmp);
        snprintf (sharefile, sizeof sharefile, "%s/file", share);
}

static void
build_share (void)
{
        moat_error_t err = NULL;
        chmod (share, 0755);
        if (rm_rf (share, &err) < 0 || mkdir (share, 0755) < 0)
                abort ();
        if (write_file (sharefile, "hello\n", 6, 0644, &err) < 0)
                abort ();
}

static uint32_t
rd (struct vmm_virtio_mmio *m, uint32_t off, uint32_t len)
{
        uint8_t v[8] = {0}; /* a KVM MMIO exit carries up to 8 bytes */
        uint32_t r;
        vmm_virtio_mmio_io (m, off, v, len, false);
        memcpy (&r, v, 4);
        return r;
}

static void
wr (struct vmm_virtio_mmio *m, uint32_t off, uint32_t v, uint32_t len)
{
        uint8_t b[8] = {0};
        memcpy (b, &v, 4);
        vmm_virtio_mmio_io (m, off, b, len, true);
}

static uint64_t
fz_gpa (struct fz *f)
{
        uint8_t sel = fz_u8 (f);
        if (sel >= 0xf0)
                return fz_u64 (f);
        return fg_gpa[sel % FG_NREGIONS] + fz_u16 (f);
}

/* Queue q's rings in the default layout. */
static uint64_t
qdesc (int q)
{
        return 0x10000 + (uint64_t)q * 0x4000;
}
#define QAVAIL(q) (qdesc (q) + 0x1000)
#define QUSED(q) (qdesc (q) + 0x2000)

static const uint32_t widths[4] = {4, 1, 2, 8};

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        struct fz f = {data, size};
        struct vmm_virtio_mmio *m;
        moat_error_t err = NULL;
        int tap[2] = {-1, -1};
        uint16_t avail_idx[2] = {0, 0}, num[2] = {0, 0}, next[2] = {0, 0};
        static const uint8_t mac[6] = {0x02, 0x4d, 0x54, 0x01, 0x02, 0x03};

        if (g.mem.regions == NULL)
                init ();
        fguest_clear (&g);
        bool is_9p = fz_u8 (&f) & 1;
        if (is_9p) {
                build_share ();
                m = vmm_virtio_9p_new_sync (&g.mem, "moatshare", share, 0xd0000000, 5, &err);
                if (m == NULL) {
                        fprintf (stderr, "vmm_virtio_9p_new_sync: %s\n", err->msg);
                        abort ();
                }
        } else {
                if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tap) < 0)
                        abort ();
                m = vmm_virtio_net_new (&g.mem, tap[1], mac, 0xd0000000, 5);
        }
        m->raise_irq = fake_raise;
        int nq = m->ops->nqueues;

        for (int steps = 0; fz_more (&f) && steps < 128; steps++) {
                uint8_t op = fz_u8 (&f);
                int q = (op >> 7) % nq;
                switch (op % 12) {
                case 0: { /* any register write */
                        uint32_t off = (op & 0x40) ? 0x100 + fz_u8 (&f) : fz_u8 (&f) * 4u;
                        uint32_t len = widths[fz_u8 (&f) % 4];
                        wr (m, off, fz_u32 (&f), len);
                        break;
                }
                case 1: { /* any register read */
                        uint32_t off = (op & 0x40) ? 0x100 + fz_u8 (&f) : fz_u16 (&f) % 0x200;
                        rd (m, off, widths[fz_u8 (&f) % 4]);
                        break;
                }
                case 2: /* driver init up to FEATURES_OK, with fuzzed features */
                        wr (m, VIRTIO_MMIO_STATUS, 0, 4);
                        wr (m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 4);
                        wr (m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0, 4);
                        wr (m, VIRTIO_MMIO_DRIVER_FEATURES, (op & 0x40) ? fz_u32 (&f) : rd (m, 0x10, 4), 4);
                        wr (m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1, 4);
                        wr (m, VIRTIO_MMIO_DRIVER_FEATURES, 1, 4);
                        wr (m, VIRTIO_MMIO_STATUS, 1 | 2 | VIRTIO_STATUS_FEATURES_OK, 4);
                        break;
                case 3: { /* a queue: size, rings, ready */
                        num[q] = (op & 0x40) ? fz_u16 (&f) : (uint16_t)(1u << (fz_u8 (&f) % 9));
                        wr (m, VIRTIO_MMIO_QUEUE_SEL, q, 4);
                        wr (m, VIRTIO_MMIO_QUEUE_NUM, num[q], 4);
                        bool any = fz_u8 (&f) & 1;
                        uint64_t a[3] = {qdesc (q), QAVAIL (q), QUSED (q)};
                        if (any)
                                for (int i = 0; i < 3; i++)
                                        a[i] = fz_gpa (&f);
                        wr (m, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)a[0], 4);
                        wr (m, VIRTIO_MMIO_QUEUE_DESC_HIGH, a[0] >> 32, 4);
                        wr (m, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a[1], 4);
                        wr (m, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, a[1] >> 32, 4);
                        wr (m, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)a[2], 4);
                        wr (m, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, a[2] >> 32, 4);
                        wr (m, VIRTIO_MMIO_QUEUE_READY, 1, 4);
                        avail_idx[q] = next[q] = 0;
                        break;
                }
                case 4: /* DRIVER_OK (or any status) */
                        wr (m, VIRTIO_MMIO_STATUS, (op & 0x40) ? fz_u8 (&f) : 1 | 2 | 4 | 8, 4);
                        break;
                case 5: { /* a descriptor in queue q's table */
                        uint16_t i = fz_u16 (&f) % (num[q] ? num[q] : 1);
                        uint64_t addr = fz_gpa (&f);
                        uint32_t len = fz_u16 (&f);
                        uint16_t flags = fz_u8 (&f), nx = fz_u16 (&f);
                        fguest_put_desc (&g, qdesc (q), i, addr, len, flags, nx);
                        break;
                }
                case 6: { /* publish a head */
                        uint16_t n = num[q] ? num[q] : 1;
                        fguest_put16 (&g, QAVAIL (q) + 4 + 2 * (avail_idx[q] % n), fz_u16 (&f) % n);
                        avail_idx[q]++;
                        fguest_put16 (&g, QAVAIL (q) + 2, avail_idx[q]);
                        break;
                }
                case 7: { /* bytes anywhere in guest RAM */
                        uint64_t at = fz_gpa (&f);
                        size_t n;
                        const uint8_t *p = fz_chunk (&f, 4096, &n);
                        fguest_write (&g, at, p, n);
                        break;
                }
                case 8: { /* a request: readable bytes then a writable buffer, published, kicked */
                        uint16_t n = num[q] ? num[q] : 1;
                        uint64_t out = 0x18000 + fz_u16 (&f) % 0x8000, in = 0x20000 + fz_u16 (&f) % 0x7000;
                        size_t len;
                        const uint8_t *p = fz_chunk (&f, 4096, &len);
                        fguest_write (&g, out, p, len);
                        uint16_t a = next[q] % n, b = (next[q] + 1) % n;
                        fguest_put_desc (&g, qdesc (q), a, out, len, 1, b);
                        fguest_put_desc (&g, qdesc (q), b, in, 0x1000, 2, 0);
                        next[q] = (next[q] + 2) % n;
                        fguest_put16 (&g, QAVAIL (q) + 4 + 2 * (avail_idx[q] % n), a);
                        avail_idx[q]++;
                        fguest_put16 (&g, QAVAIL (q) + 2, avail_idx[q]);
                }
                        /* fall through */
                case 9: /* kick */
                        wr (m, VIRTIO_MMIO_QUEUE_NOTIFY, (op & 0x40) ? fz_u32 (&f) : (uint32_t)q, 4);
                        if (is_9p)
                                vmm_virtio_9p_serve_pending (m);
                        break;
                case 10: /* a frame from the tap */
                        if (!is_9p) {
                                size_t n;
                                const uint8_t *p = fz_chunk (&f, 4096, &n);
                                if (send (tap[0], p, n, MSG_NOSIGNAL) < 0)
                                        break;
                                if (op & 0x40) { /* a large one */
                                        memset (tapbuf, 0x11, sizeof tapbuf);
                                        memcpy (tapbuf, p, n);
                                        if (send (tap[0], tapbuf, 12 + 14 + fz_u16 (&f), MSG_NOSIGNAL) < 0)
                                                break;
                                }
                        }
                        /* fall through */
                case 11: /* the device's own loop */
                        if (is_9p) {
                                vmm_virtio_9p_serve_pending (m);
                        } else {
                                vmm_virtio_net_poll (m);
                                while (recv (tap[0], tapbuf, sizeof tapbuf, MSG_DONTWAIT) > 0)
                                        ;
                                struct vmm_virtio_net_stats st;
                                vmm_virtio_net_get_stats (m, &st);
                        }
                        wr (m, VIRTIO_MMIO_INTERRUPT_ACK, rd (m, VIRTIO_MMIO_INTERRUPT_STATUS, 4), 4);
                        break;
                }
        }
        m->ops->free (m);
        pthread_mutex_destroy (&m->lock);
        free (m);
        if (tap[0] >= 0)
                close (tap[0]);
        return 0;
}

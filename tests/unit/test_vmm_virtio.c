/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-mmio transport registers and the virtio-rng device, driven the way
 * a guest driver would, over fake guest memory (no KVM). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "moat/util.h"
#include "moat/vmm_virtio.h"

static uint8_t ram[1 << 16] __attribute__ ((aligned (4096)));
static struct moat_guest_region region = {0, sizeof ram, ram, 0};
static struct moat_guest_mem mem = {&region, 1};
static int raised;

static void
fake_raise (struct vmm_virtio_mmio *m)
{
        raised++;
}

static uint32_t
rd (struct vmm_virtio_mmio *m, uint32_t off)
{
        uint32_t v;
        vmm_virtio_mmio_io (m, off, (uint8_t *)&v, 4, false);
        return v;
}

static void
wr (struct vmm_virtio_mmio *m, uint32_t off, uint32_t v)
{
        vmm_virtio_mmio_io (m, off, (uint8_t *)&v, 4, true);
}

static struct vmm_virtio_mmio *
new_rng (void)
{
        struct vmm_virtio_mmio *m = vmm_virtio_rng_new (&mem);
        m->raise_irq = fake_raise;
        raised = 0;
        return m;
}

static void
free_rng (struct vmm_virtio_mmio *m)
{
        m->ops->free (m);
        free (m);
}

static void
negotiate (struct vmm_virtio_mmio *m, uint32_t lo, uint32_t hi)
{
        wr (m, VIRTIO_MMIO_STATUS, 0);
        wr (m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES, lo);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES, hi);
        wr (m, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static void
test_identity (void **state)
{
        struct vmm_virtio_mmio *m = new_rng ();
        assert_int_equal (rd (m, VIRTIO_MMIO_MAGIC), 0x74726976);
        assert_int_equal (rd (m, VIRTIO_MMIO_VERSION), 2);
        assert_int_equal (rd (m, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
        wr (m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        assert_int_equal (rd (m, VIRTIO_MMIO_DEVICE_FEATURES) & 1, 1); /* VERSION_1 */
        wr (m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
        assert_int_equal (rd (m, VIRTIO_MMIO_DEVICE_FEATURES), 0);
        /* sub-word register access is ignored / reads zero */
        uint8_t b = 0x55;
        vmm_virtio_mmio_io (m, VIRTIO_MMIO_MAGIC, &b, 1, false);
        assert_int_equal (b, 0);
        free_rng (m);
}

static void
test_features (void **state)
{
        struct vmm_virtio_mmio *m = new_rng ();
        negotiate (m, 0, 0); /* legacy interface only: refused */
        assert_false (rd (m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
        negotiate (m, 1u << 5, 1); /* a feature we never offered */
        assert_false (rd (m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
        negotiate (m, 1u << MOAT_VIRTIO_F_EVENT_IDX, 1);
        assert_true (rd (m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
        /* features are frozen after FEATURES_OK */
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES, 0);
        assert_int_equal (m->driver_features, (1ULL << 32) | (1ULL << MOAT_VIRTIO_F_EVENT_IDX));
        wr (m, VIRTIO_MMIO_STATUS, 0);
        assert_int_equal (rd (m, VIRTIO_MMIO_STATUS), 0);
        assert_int_equal (m->driver_features, 0);
        free_rng (m);
}

#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x4000

static void
setup_queue (struct vmm_virtio_mmio *m, uint32_t num)
{
        wr (m, VIRTIO_MMIO_QUEUE_SEL, 0);
        wr (m, VIRTIO_MMIO_QUEUE_NUM, num);
        wr (m, VIRTIO_MMIO_QUEUE_DESC_LOW, DESC);
        wr (m, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
        wr (m, VIRTIO_MMIO_QUEUE_DRIVER_LOW, AVAIL);
        wr (m, VIRTIO_MMIO_QUEUE_DEVICE_LOW, USED);
        wr (m, VIRTIO_MMIO_QUEUE_READY, 1);
}

static void
test_rng_queue (void **state)
{
        struct vmm_virtio_mmio *m = new_rng ();
        memset (ram, 0, sizeof ram);
        negotiate (m, 0, 1);
        wr (m, VIRTIO_MMIO_QUEUE_SEL, 5);
        assert_int_equal (rd (m, VIRTIO_MMIO_QUEUE_NUM_MAX), 0); /* no such queue */
        wr (m, VIRTIO_MMIO_QUEUE_SEL, 0);
        assert_int_equal (rd (m, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
        setup_queue (m, 8);
        assert_int_equal (rd (m, VIRTIO_MMIO_QUEUE_READY), 1);
        assert_int_equal (rd (m, VIRTIO_MMIO_QUEUE_DESC_LOW), DESC);
        /* layout is frozen while ready */
        wr (m, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x8000);
        assert_int_equal (rd (m, VIRTIO_MMIO_QUEUE_DESC_LOW), DESC);
        wr (m, VIRTIO_MMIO_STATUS, 1 | 2 | 8 | 4);

        /* one device-writable 128-byte buffer */
        uint64_t addr = BUF;
        uint32_t len = 128;
        uint16_t flags = 2;
        memcpy (ram + DESC, &addr, 8);
        memcpy (ram + DESC + 8, &len, 4);
        memcpy (ram + DESC + 12, &flags, 2);
        uint16_t idx = 1, head = 0;
        memcpy (ram + AVAIL + 4, &head, 2);
        memcpy (ram + AVAIL + 2, &idx, 2);
        wr (m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);

        uint16_t used_idx;
        uint32_t used_len;
        memcpy (&used_idx, ram + USED + 2, 2);
        memcpy (&used_len, ram + USED + 8, 4);
        assert_int_equal (used_idx, 1);
        assert_int_equal (used_len, 128);
        int nonzero = 0;
        for (int i = 0; i < 128; i++)
                nonzero += ram[BUF + i] != 0;
        assert_true (nonzero > 100);
        assert_int_equal (ram[BUF + 128], 0); /* nothing past the buffer */
        assert_int_equal (raised, 1);
        assert_int_equal (rd (m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_VRING);
        wr (m, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_VRING);
        assert_int_equal (rd (m, VIRTIO_MMIO_INTERRUPT_STATUS), 0);

        /* a descriptor pointing outside guest memory breaks the queue, not the VMM */
        addr = sizeof ram - 16;
        memcpy (ram + DESC, &addr, 8);
        idx = 2;
        memcpy (ram + AVAIL + 6, &head, 2);
        memcpy (ram + AVAIL + 2, &idx, 2);
        wr (m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        memcpy (&used_idx, ram + USED + 2, 2);
        assert_int_equal (used_idx, 1);
        free_rng (m);
}

/* A guest that offers more than a notification may take: chains of
 * 256 KiB get 64 KiB each, 16 chains per notification, and the device
 * kicks its own queue to serve the rest on the next turn of the loop. */
#define BIG (8u << 20)
static void
test_rng_bounded (void **state)
{
        uint8_t *big = mmap (NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true (big != MAP_FAILED);
        struct moat_guest_region r = {0, BIG, big, 0};
        struct moat_guest_mem bigmem = {&r, 1};
        struct vmm_virtio_mmio *m = vmm_virtio_rng_new (&bigmem);
        m->raise_irq = fake_raise;
        m->q[0].ioeventfd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true (m->q[0].ioeventfd >= 0);
        negotiate (m, 0, 1);
        setup_queue (m, 32);
        wr (m, VIRTIO_MMIO_STATUS, 1 | 2 | 8 | 4);
        /* 20 chains: 19 of one 256 KiB buffer, the last of four 32 KiB ones */
        const uint32_t chunk = 256 * 1024;
        uint16_t ndesc = 0, idx = 0;
        for (uint16_t c = 0; c < 20; c++) {
                uint16_t head = ndesc;
                int parts = c == 19 ? 4 : 1;
                for (int k = 0; k < parts; k++, ndesc++) {
                        uint64_t addr = 0x100000 + (uint64_t)c * chunk + (uint64_t)k * (chunk / 8);
                        uint32_t len = parts == 1 ? chunk : chunk / 8;
                        uint16_t flags = 2 | (k + 1 < parts ? 1 : 0), next = ndesc + 1;
                        memcpy (big + DESC + 16 * ndesc, &addr, 8);
                        memcpy (big + DESC + 16 * ndesc + 8, &len, 4);
                        memcpy (big + DESC + 16 * ndesc + 12, &flags, 2);
                        memcpy (big + DESC + 16 * ndesc + 14, &next, 2);
                }
                memcpy (big + AVAIL + 4 + 2 * idx, &head, 2);
                idx++;
        }
        memcpy (big + AVAIL + 2, &idx, 2);
        wr (m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);

        uint16_t used;
        memcpy (&used, big + USED + 2, 2);
        assert_int_equal (used, VMM_VIRTIO_RNG_MAX_CHAINS);
        for (int i = 0; i < used; i++) {
                uint32_t len;
                memcpy (&len, big + USED + 4 + 8 * i + 4, 4);
                assert_int_equal (len, VMM_VIRTIO_RNG_MAX_CHAIN);
        }
        /* nothing written past what the used length says */
        const uint8_t *b0 = big + 0x100000;
        int nonzero = 0;
        for (uint32_t i = VMM_VIRTIO_RNG_MAX_CHAIN; i < chunk; i++)
                nonzero += b0[i] != 0;
        assert_int_equal (nonzero, 0);
        /* the rest is not lost: the device kicked itself; the event loop
         * reads the ioeventfd and notifies the device again */
        uint64_t v = 0;
        assert_int_equal (read (m->q[0].ioeventfd, &v, sizeof v), sizeof v);
        assert_int_equal (v, 1);
        wr (m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        memcpy (&used, big + USED + 2, 2);
        assert_int_equal (used, 20);
        uint32_t len;
        memcpy (&len, big + USED + 4 + 8 * 19 + 4, 4);
        assert_int_equal (len, VMM_VIRTIO_RNG_MAX_CHAIN); /* two of the four 32 KiB buffers */
        const uint8_t *last = big + 0x100000 + 19 * (uint64_t)chunk;
        nonzero = 0;
        for (uint32_t i = 2 * (chunk / 8); i < 4 * (chunk / 8); i++)
                nonzero += last[i] != 0;
        assert_int_equal (nonzero, 0);
        assert_int_equal (read (m->q[0].ioeventfd, &v, sizeof v), -1); /* nothing left: no kick */
        close (m->q[0].ioeventfd);
        free_rng (m);
        munmap (big, BIG);
}

static void
test_bad_queue (void **state)
{
        struct vmm_virtio_mmio *m = new_rng ();
        negotiate (m, 0, 1);
        setup_queue (m, 6); /* not a power of two */
        assert_int_equal (rd (m, VIRTIO_MMIO_QUEUE_READY), 0);
        assert_true (rd (m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
        wr (m, VIRTIO_MMIO_STATUS, 0);
        negotiate (m, 0, 1);
        wr (m, VIRTIO_MMIO_QUEUE_NUM, 1024); /* above QueueNumMax: ignored */
        assert_int_equal (m->q[0].num, 0);
        free_rng (m);
}

/* A device that lives in another process (the 9p worker): it learns of
 * queue start/stop through queue_ready, is reset before the interrupt status
 * is cleared (so a late interrupt cannot survive the reset), and its
 * interrupt status word may live outside the transport. */
static int hook_calls[2];
static uint32_t isr_seen_at_reset;

static void
hook_queue_ready (struct vmm_virtio_mmio *m, int q, bool on)
{
        assert_int_equal (q, 0);
        hook_calls[on]++;
}

static void
hook_reset (struct vmm_virtio_mmio *m)
{
        isr_seen_at_reset = *m->isrp;
}

static const struct vmm_virtio_ops hook_ops = {
        .name = "hooked",
        .device_id = 42,
        .nqueues = 1,
        .queue_max = 16,
        .reset = hook_reset,
        .queue_ready = hook_queue_ready,
};

static void
test_device_hooks (void **state)
{
        struct vmm_virtio_mmio m;
        uint32_t shared_isr = 0;
        vmm_virtio_mmio_init (&m, &hook_ops, NULL, &mem, 0xd0000000, 5);
        m.raise_irq = fake_raise;
        m.isrp = &shared_isr;
        memset (hook_calls, 0, sizeof hook_calls);
        memset (ram, 0, sizeof ram);
        negotiate (&m, 0, 1);
        setup_queue (&m, 8);
        assert_int_equal (hook_calls[1], 1);
        wr (&m, VIRTIO_MMIO_QUEUE_READY, 1); /* already ready: no second start */
        assert_int_equal (hook_calls[1], 1);
        wr (&m, VIRTIO_MMIO_QUEUE_READY, 0);
        assert_int_equal (hook_calls[0], 1);
        setup_queue (&m, 8);
        assert_int_equal (hook_calls[1], 2);

        /* the device raises an interrupt by itself: the transport reports it */
        __atomic_or_fetch (&shared_isr, VIRTIO_INT_VRING, __ATOMIC_SEQ_CST);
        assert_int_equal (rd (&m, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_INT_VRING);
        assert_int_equal (m.isr, 0);
        wr (&m, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_VRING);
        assert_int_equal (shared_isr, 0);

        shared_isr = VIRTIO_INT_VRING;
        wr (&m, VIRTIO_MMIO_STATUS, 0);
        assert_int_equal (isr_seen_at_reset, VIRTIO_INT_VRING); /* device reset first */
        assert_int_equal (shared_isr, 0);                       /* then the status cleared */
        assert_int_equal (rd (&m, VIRTIO_MMIO_QUEUE_READY), 0);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_identity),  cmocka_unit_test (test_features),
                cmocka_unit_test (test_rng_queue), cmocka_unit_test (test_rng_bounded),
                cmocka_unit_test (test_bad_queue), cmocka_unit_test (test_device_hooks),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

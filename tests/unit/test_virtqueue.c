/* SPDX-License-Identifier: Apache-2.0 */
/* Split virtqueue against a fake guest, including hostile descriptor chains:
 * every bad chain must be reported (and the queue marked broken), never crash
 * or touch memory outside the guest regions (run it under ASan too). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "fake_guest.h"
#include "moat/virtqueue.h"

struct fixture {
        struct fake_guest g;
        struct fake_queue q;
        struct moat_virtq_elem e;
};

static int
setup_opts (void **state, uint16_t size, bool event_idx, bool indirect)
{
        struct fixture *f = calloc (1, sizeof *f);
        fg_init (&f->g);
        fq_init (&f->q, &f->g, 0, size, event_idx, indirect);
        moat_error_t err = NULL;
        assert_int_equal (moat_virtq_start (&f->q.vq, 0, &err), 0);
        *state = f;
        return 0;
}

static int
setup (void **state)
{
        return setup_opts (state, 16, false, true);
}

static int
setup_event_idx (void **state)
{
        return setup_opts (state, 16, true, false);
}

static int
teardown (void **state)
{
        struct fixture *f = *state;
        fg_free (&f->g);
        free (f);
        return 0;
}

/* pops and expects a chain error mentioning `what` */
static void
expect_bad (struct fixture *f, const char *what)
{
        moat_error_t err = NULL;
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), -1);
        assert_non_null (err);
        if (what && strstr (err->msg, what) == NULL)
                fail_msg ("error '%s' does not mention '%s'", err->msg, what);
        assert_true (f->q.vq.broken);
        moat_error_release (&err);
        /* a broken queue is left alone */
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 0);
}

static void
test_simple_chain (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        uint64_t a = fg_alloc (&f->g, 64), b = fg_alloc (&f->g, 64);
        memcpy (fg_ptr (&f->g, a), "hello", 5);
        struct fq_buf bufs[] = {{a, 5, false}, {b, 64, true}};

        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 0); /* empty */
        uint16_t head = fq_add_chain (&f->q, bufs, 2);
        assert_true (moat_virtq_has_avail (&f->q.vq));
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
        assert_int_equal (f->e.head, head);
        assert_int_equal (f->e.out_num, 1);
        assert_int_equal (f->e.in_num, 1);
        assert_int_equal (f->e.out_len, 5);
        assert_int_equal (f->e.in_len, 64);
        assert_memory_equal (f->e.iov[0].iov_base, "hello", 5);
        assert_ptr_equal (f->e.iov[1].iov_base, fg_ptr (&f->g, b));
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 0);

        moat_virtq_push (&f->q.vq, &f->e, 17);
        uint32_t id, len;
        assert_int_equal (fq_get_used (&f->q, &id, &len), 1);
        assert_int_equal (id, head);
        assert_int_equal (len, 17);
        moat_virtq_notify (&f->q.vq);
        assert_int_equal (f->q.notified, 1);
}

static void
test_unpop (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        struct fq_buf bufs[] = {{fg_alloc (&f->g, 8), 8, true}};
        fq_add_chain (&f->q, bufs, 1);
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
        moat_virtq_unpop (&f->q.vq);
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 0);
}

/* The used ring on the avail ring: every push would publish one more
 * buffer, and a device that pops until the queue is empty would never stop
 * (virtio-net's tx did, found by tests/fuzz/fuzz_vmm_virtio). Refused. */
static void
test_used_over_avail (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        moat_virtq_stop (&f->q.vq);
        f->q.vq.used_gpa = f->q.avail;
        assert_int_equal (moat_virtq_start (&f->q.vq, 0, &err), -1);
        assert_non_null (strstr (err->msg, "overlaps"));
        moat_error_release (&err);
        f->q.vq.used_gpa = f->q.desc + 16;
        assert_int_equal (moat_virtq_start (&f->q.vq, 0, &err), -1);
        moat_error_release (&err);
        /* right after the avail ring is fine */
        f->q.vq.used_gpa = (f->q.avail + 6 + 2 * f->q.size + 3) & ~3ull;
        assert_int_equal (moat_virtq_start (&f->q.vq, 0, &err), 0);
}

/* A writable buffer over the avail ring or the table: a reply written there
 * could publish buffers without end. */
static void
test_writable_over_rings (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, f->q.avail, 8, DESC_F_WRITE, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "writable buffer over the avail ring");
}

static void
test_writable_over_table (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, f->q.desc + 16 * 3, 16, DESC_F_WRITE, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "writable buffer over the avail ring or the table");
        /* readable buffers there are harmless: the device only reads them */
}

static void
test_loop (void **state)
{
        struct fixture *f = *state;
        uint64_t a = fg_alloc (&f->g, 16);
        fq_set_desc (&f->q, 0, a, 16, DESC_F_NEXT, 1);
        fq_set_desc (&f->q, 1, a, 16, DESC_F_NEXT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "longer than the queue");
}

static void
test_self_loop (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 3, fg_alloc (&f->g, 16), 16, DESC_F_NEXT | DESC_F_WRITE, 3);
        fq_publish (&f->q, 3);
        expect_bad (f, "longer than the queue");
}

static void
test_out_of_range_address (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, G_BASE + G_SIZE + 4096, 16, 0, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "outside guest memory");
}

static void
test_below_ram (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, 0, 16, DESC_F_WRITE, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "outside guest memory");
}

static void
test_straddles_end_of_ram (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, G_BASE + G_SIZE - 8, 16, 0, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "outside guest memory");
}

static void
test_address_wraps (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, UINT64_MAX - 8, 64, 0, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, NULL);
}

static void
test_split_across_regions (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        /* the two regions are adjacent in guest physical space but not in ours */
        uint64_t a = G_BASE + G_HALF - 10;
        fq_set_desc (&f->q, 0, a, 30, DESC_F_WRITE, 0);
        fq_publish (&f->q, 0);
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
        assert_int_equal (f->e.in_num, 2);
        assert_int_equal (f->e.in_len, 30);
        assert_int_equal (f->e.iov[0].iov_len, 10);
        assert_ptr_equal (f->e.iov[0].iov_base, f->g.ram[0] + G_HALF - 10);
        assert_int_equal (f->e.iov[1].iov_len, 20);
        assert_ptr_equal (f->e.iov[1].iov_base, f->g.ram[1]);
        char buf[30];
        memset (buf, 'x', sizeof buf);
        assert_int_equal (moat_iov_from_buf (&f->e.iov[0], 2, 0, buf, 30), 30);
        assert_int_equal (f->g.ram[1][19], 'x');
        assert_int_equal (f->g.ram[1][20], 0);
}

static void
test_zero_length (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        uint64_t a = fg_alloc (&f->g, 16);
        fq_set_desc (&f->q, 0, a, 0, DESC_F_NEXT, 1);
        fq_set_desc (&f->q, 1, a, 16, DESC_F_WRITE, 0);
        fq_publish (&f->q, 0);
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
        assert_int_equal (f->e.out_num, 0);
        assert_int_equal (f->e.in_num, 1);
        assert_int_equal (f->e.in_len, 16);
}

static void
test_huge_length (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, fg_alloc (&f->g, 16), UINT32_MAX, DESC_F_WRITE, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "outside guest memory");
}

static void
test_next_out_of_range (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, fg_alloc (&f->g, 16), 16, DESC_F_NEXT, 16);
        fq_publish (&f->q, 0);
        expect_bad (f, "next index out of range");
}

static void
test_head_out_of_range (void **state)
{
        struct fixture *f = *state;
        fq_publish (&f->q, 200);
        expect_bad (f, "out of range");
}

static void
test_avail_idx_too_far (void **state)
{
        struct fixture *f = *state;
        fg_put16 (&f->g, f->q.avail + 2, 17); /* 17 new buffers in a queue of 16 */
        expect_bad (f, "ahead");
}

static void
test_readable_after_writable (void **state)
{
        struct fixture *f = *state;
        uint64_t a = fg_alloc (&f->g, 16);
        struct fq_buf bufs[] = {{a, 16, true}, {a, 16, false}};
        fq_add_chain (&f->q, bufs, 2);
        expect_bad (f, "readable buffer after a writable");
}

static void
test_too_many_buffers (void **state)
{
        /* a queue of 2048 lets a loop-free chain exceed MOAT_VIRTQ_MAX_IOV */
        struct fixture *f = *state;
        moat_error_t err = NULL;
        teardown (state);
        setup_opts (state, 2048, false, false);
        f = *state;
        f->q.desc = G_BASE + G_HALF; /* needs 32 KiB of descriptors: use region 1 */
        f->q.vq.desc_gpa = f->q.desc;
        assert_int_equal (moat_virtq_start (&f->q.vq, 0, &err), 0);
        uint64_t a = fg_alloc (&f->g, 16);
        for (int i = 0; i < 2048; i++)
                fq_set_desc (&f->q, i, a, 1, DESC_F_NEXT, i + 1);
        fq_set_desc (&f->q, 2047, a, 1, 0, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "too many buffers");
}

static void
test_indirect (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        uint64_t t = fg_alloc (&f->g, 3 * 16), a = fg_alloc (&f->g, 100);
        fq_set_desc_at (&f->g, t, 0, a, 10, DESC_F_NEXT, 1);
        fq_set_desc_at (&f->g, t, 1, a + 10, 20, DESC_F_NEXT | DESC_F_WRITE, 2);
        fq_set_desc_at (&f->g, t, 2, a + 30, 30, DESC_F_WRITE, 0);
        fq_set_desc (&f->q, 5, t, 3 * 16, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 5);
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
        assert_int_equal (f->e.head, 5);
        assert_int_equal (f->e.out_num, 1);
        assert_int_equal (f->e.in_num, 2);
        assert_int_equal (f->e.out_len, 10);
        assert_int_equal (f->e.in_len, 50);
}

static void
test_indirect_not_negotiated (void **state)
{
        struct fixture *f = *state;
        uint64_t t = fg_alloc (&f->g, 16);
        fq_set_desc_at (&f->g, t, 0, fg_alloc (&f->g, 8), 8, 0, 0);
        f->q.vq.indirect = false;
        fq_set_desc (&f->q, 0, t, 16, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "without INDIRECT_DESC");
}

static void
test_indirect_nested (void **state)
{
        struct fixture *f = *state;
        uint64_t t = fg_alloc (&f->g, 16);
        fq_set_desc_at (&f->g, t, 0, t, 16, DESC_F_INDIRECT, 0);
        fq_set_desc (&f->q, 0, t, 16, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "nested");
}

static void
test_indirect_bad_len (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, fg_alloc (&f->g, 32), 17, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "bad indirect table length");
}

static void
test_indirect_zero_len (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, fg_alloc (&f->g, 32), 0, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "bad indirect table length");
}

static void
test_indirect_too_big (void **state)
{
        struct fixture *f = *state;
        /* 17 entries > queue size 16 */
        fq_set_desc (&f->q, 0, fg_alloc (&f->g, 17 * 16), 17 * 16, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "bad indirect table length");
}

static void
test_indirect_outside (void **state)
{
        struct fixture *f = *state;
        fq_set_desc (&f->q, 0, G_BASE + G_SIZE - 16, 64, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "indirect table outside guest memory");
}

static void
test_indirect_with_next (void **state)
{
        struct fixture *f = *state;
        uint64_t t = fg_alloc (&f->g, 16);
        fq_set_desc_at (&f->g, t, 0, fg_alloc (&f->g, 8), 8, 0, 0);
        fq_set_desc (&f->q, 0, t, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1);
        fq_set_desc (&f->q, 1, t, 16, 0, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "indirect descriptor with NEXT");
}

static void
test_indirect_loop (void **state)
{
        struct fixture *f = *state;
        uint64_t t = fg_alloc (&f->g, 32), a = fg_alloc (&f->g, 8);
        fq_set_desc_at (&f->g, t, 0, a, 8, DESC_F_NEXT, 1);
        fq_set_desc_at (&f->g, t, 1, a, 8, DESC_F_NEXT, 0);
        fq_set_desc (&f->q, 0, t, 32, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "longer than the queue");
}

static void
test_indirect_next_out_of_table (void **state)
{
        struct fixture *f = *state;
        uint64_t t = fg_alloc (&f->g, 32), a = fg_alloc (&f->g, 8);
        fq_set_desc_at (&f->g, t, 0, a, 8, DESC_F_NEXT, 2); /* table has 2 entries */
        fq_set_desc (&f->q, 0, t, 32, DESC_F_INDIRECT, 0);
        fq_publish (&f->q, 0);
        expect_bad (f, "next index out of range");
}

static void
test_rings_outside_memory (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        f->q.vq.used_gpa = G_BASE + G_SIZE - 8;
        assert_int_equal (moat_virtq_start (&f->q.vq, 0, &err), -1);
        assert_non_null (strstr (err->msg, "outside guest memory"));
        moat_error_release (&err);
        f->q.vq.used_gpa = f->q.used;
        f->q.vq.size = 12; /* not a power of two */
        assert_int_equal (moat_virtq_start (&f->q.vq, 0, &err), -1);
        moat_error_release (&err);
        struct moat_virtq_elem e;
        assert_int_equal (moat_virtq_pop (&f->q.vq, &e, &err), 0);
}

static void
test_no_interrupt_flag (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        struct fq_buf bufs[] = {{fg_alloc (&f->g, 8), 8, true}};
        fg_put16 (&f->g, f->q.avail, 1); /* VRING_AVAIL_F_NO_INTERRUPT */
        fq_add_chain (&f->q, bufs, 1);
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
        moat_virtq_push (&f->q.vq, &f->e, 0);
        assert_false (moat_virtq_should_notify (&f->q.vq));
}

static void
test_event_idx (void **state)
{
        struct fixture *f = *state;
        moat_error_t err = NULL;
        uint64_t used_event = f->q.avail + 4 + 2 * f->q.size;
        uint64_t avail_event = f->q.used + 4 + 8 * f->q.size;

        for (int i = 0; i < 4; i++) {
                struct fq_buf bufs[] = {{fg_alloc (&f->g, 8), 8, true}};
                fq_add_chain (&f->q, bufs, 1);
        }
        /* the driver wants an interrupt only once used idx passes 2 */
        fg_put16 (&f->g, used_event, 2);
        bool notes[4];
        for (int i = 0; i < 4; i++) {
                assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 1);
                moat_virtq_push (&f->q.vq, &f->e, 8);
                notes[i] = moat_virtq_should_notify (&f->q.vq);
        }
        assert_true (notes[0]); /* first one always (nothing signalled yet) */
        assert_false (notes[1]);
        assert_true (notes[2]); /* used idx went 2 -> 3 */
        assert_false (notes[3]);
        /* the device asks to be kicked for the next buffer */
        assert_int_equal (moat_virtq_pop (&f->q.vq, &f->e, &err), 0);
        assert_int_equal (fg_get16 (&f->g, avail_event), 4);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_simple_chain, setup, teardown),
                cmocka_unit_test_setup_teardown (test_unpop, setup, teardown),
                cmocka_unit_test_setup_teardown (test_loop, setup, teardown),
                cmocka_unit_test_setup_teardown (test_used_over_avail, setup, teardown),
                cmocka_unit_test_setup_teardown (test_writable_over_rings, setup, teardown),
                cmocka_unit_test_setup_teardown (test_writable_over_table, setup, teardown),
                cmocka_unit_test_setup_teardown (test_self_loop, setup, teardown),
                cmocka_unit_test_setup_teardown (test_out_of_range_address, setup, teardown),
                cmocka_unit_test_setup_teardown (test_below_ram, setup, teardown),
                cmocka_unit_test_setup_teardown (test_straddles_end_of_ram, setup, teardown),
                cmocka_unit_test_setup_teardown (test_address_wraps, setup, teardown),
                cmocka_unit_test_setup_teardown (test_split_across_regions, setup, teardown),
                cmocka_unit_test_setup_teardown (test_zero_length, setup, teardown),
                cmocka_unit_test_setup_teardown (test_huge_length, setup, teardown),
                cmocka_unit_test_setup_teardown (test_next_out_of_range, setup, teardown),
                cmocka_unit_test_setup_teardown (test_head_out_of_range, setup, teardown),
                cmocka_unit_test_setup_teardown (test_avail_idx_too_far, setup, teardown),
                cmocka_unit_test_setup_teardown (test_readable_after_writable, setup, teardown),
                cmocka_unit_test_setup_teardown (test_too_many_buffers, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_not_negotiated, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_nested, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_bad_len, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_zero_len, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_too_big, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_outside, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_with_next, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_loop, setup, teardown),
                cmocka_unit_test_setup_teardown (test_indirect_next_out_of_table, setup, teardown),
                cmocka_unit_test_setup_teardown (test_rings_outside_memory, setup, teardown),
                cmocka_unit_test_setup_teardown (test_no_interrupt_flag, setup, teardown),
                cmocka_unit_test_setup_teardown (test_event_idx, setup_event_idx, teardown),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

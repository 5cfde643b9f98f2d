/* SPDX-License-Identifier: Apache-2.0 */
/* The vhost-user backend fed by a fake frontend over a socketpair: memory
 * tables that do not fit their memfds, wrap around or overlap are refused
 * (mapping them would SIGBUS moat-vsock on the first access past the end of
 * the file), and a good one, at an offset into its memfd, maps the right
 * bytes and runs a ring. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "moat/util.h"
#include "moat/vhost_user.h"

#define VU_SET_FEATURES 2
#define VU_SET_MEM_TABLE 5
#define VU_SET_VRING_NUM 8
#define VU_SET_VRING_ADDR 9
#define VU_SET_VRING_KICK 12
#define VU_SET_PROTOCOL_FEATURES 16
#define VU_NEED_REPLY 8
#define MEMFD_SIZE (64 * 1024)

struct region {
        uint64_t gpa, size, uaddr, off;
};

static struct moat_vhost_user *vu;
static int fe; /* the frontend's end */
static struct moat_virtq *running;
static int set_queue_calls;

static void
dev_set_queue (void *opaque, unsigned q, struct moat_virtq *vq)
{
        if (q == 0) {
                running = vq;
                set_queue_calls++;
        }
}

static void
dev_kick (void *opaque, unsigned q)
{
}

/* Sends one message (fds attached) and lets the backend handle it;
 * returns the REPLY_ACK status (0 ok) if need_reply, else 0. */
static uint64_t
send_msg (uint32_t request, const void *payload, uint32_t size, const int *fds, int nfds, bool need_reply)
{
        uint8_t buf[12 + 512];
        uint32_t hdr[3] = {request, 1 | (need_reply ? VU_NEED_REPLY : 0), size};
        assert_true (size <= 512);
        memcpy (buf, hdr, 12);
        memcpy (buf + 12, payload, size);
        struct iovec iov = {buf, 12 + size};
        char control[CMSG_SPACE (8 * sizeof (int))];
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (nfds > 0) {
                mh.msg_control = control;
                mh.msg_controllen = CMSG_SPACE (nfds * sizeof (int));
                struct cmsghdr *c = CMSG_FIRSTHDR (&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN (nfds * sizeof (int));
                memcpy (CMSG_DATA (c), fds, nfds * sizeof (int));
        }
        assert_int_equal (sendmsg (fe, &mh, 0), (ssize_t)(12 + size));
        cleanup_error moat_error_t err = NULL;
        assert_int_equal (moat_vhost_user_poll (vu, &err), 0);
        if (!need_reply)
                return 0;
        uint8_t reply[20];
        assert_int_equal (recv (fe, reply, sizeof reply, MSG_DONTWAIT), 20);
        uint64_t status;
        memcpy (&status, reply + 12, 8);
        return status;
}

static uint64_t
set_mem_table (const struct region *r, int n, const int *fds)
{
        uint8_t p[8 + 32 * 8] = {0};
        uint32_t nregions = n;
        memcpy (p, &nregions, 4);
        for (int i = 0; i < n; i++)
                memcpy (p + 8 + 32 * i, &r[i], 32);
        return send_msg (VU_SET_MEM_TABLE, p, 8 + 32 * n, fds, n, true);
}

/* Starts ring 0 (size 8) at frontend addresses base, base+0x100, base+0x200. */
static void
start_ring (uint64_t base)
{
        uint32_t num[2] = {0, 8};
        send_msg (VU_SET_VRING_NUM, num, 8, NULL, 0, false);
        uint64_t addr[5] = {0, base, base + 0x200, base + 0x100, 0}; /* index+flags, desc, used, avail, log */
        send_msg (VU_SET_VRING_ADDR, addr, 40, NULL, 0, false);
        int kick = eventfd (0, EFD_CLOEXEC);
        uint64_t idx = 0;
        send_msg (VU_SET_VRING_KICK, &idx, 8, &kick, 1, false);
        close (kick);
}

static int
memfd (size_t size)
{
        int fd = memfd_create ("moat-test-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true (fd >= 0);
        assert_int_equal (ftruncate (fd, size), 0);
        assert_int_equal (fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
        return fd;
}

static int
setup (void **state)
{
        int sv[2];
        cleanup_error moat_error_t err = NULL;
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        struct moat_vhost_user_device dev = {
                .name = "test", .num_queues = 2, .set_queue = dev_set_queue, .kick = dev_kick};
        assert_int_equal (moat_vhost_user_new (sv[1], &dev, &vu, &err), 0);
        fe = sv[0];
        running = NULL;
        set_queue_calls = 0;
        uint64_t features = (1ULL << 32) | (1ULL << 30); /* VERSION_1, PROTOCOL_FEATURES */
        send_msg (VU_SET_FEATURES, &features, 8, NULL, 0, false);
        uint64_t protocol = 1ULL << 3; /* REPLY_ACK */
        send_msg (VU_SET_PROTOCOL_FEATURES, &protocol, 8, NULL, 0, false);
        uint32_t enable[2] = {0, 1};
        send_msg (18 /* SET_VRING_ENABLE */, enable, 8, NULL, 0, false);
        return 0;
}

static int
teardown (void **state)
{
        moat_vhost_user_free (vu);
        close (fe);
        return 0;
}

static void
test_region_past_end_of_file (void **state)
{
        int fd = memfd (MEMFD_SIZE);
        /* 1 MiB from a 64 KiB memfd */
        struct region r = {0, 1 << 20, 0x7f0000000000, 0};
        assert_int_equal (set_mem_table (&r, 1, &fd), 1);
        /* a ring past the end of the file: nothing runs (it would SIGBUS) */
        start_ring (r.uaddr + 512 * 1024);
        assert_null (running);
        /* the offset pushes it past the end */
        r.size = MEMFD_SIZE / 2;
        r.off = MEMFD_SIZE / 2 + 4096;
        assert_int_equal (set_mem_table (&r, 1, &fd), 1);
        r.off = MEMFD_SIZE * 2;
        r.size = 4096;
        assert_int_equal (set_mem_table (&r, 1, &fd), 1);
        /* sizes that wrap around */
        r.off = 8192;
        r.size = UINT64_MAX - 4095;
        assert_int_equal (set_mem_table (&r, 1, &fd), 1);
        r.off = 0;
        r.size = 4096;
        r.gpa = UINT64_MAX - 1024;
        assert_int_equal (set_mem_table (&r, 1, &fd), 1);
        r.gpa = 0;
        r.uaddr = UINT64_MAX - 1024;
        assert_int_equal (set_mem_table (&r, 1, &fd), 1);
        r.uaddr = 0x7f0000000000;
        r.size = 0;
        assert_int_equal (set_mem_table (&r, 1, &fd), 1);
        /* not a file */
        int p[2];
        assert_int_equal (pipe (p), 0);
        r.size = 4096;
        assert_int_equal (set_mem_table (&r, 1, &p[0]), 1);
        close (p[0]);
        close (p[1]);
        /* exactly the file: accepted, the ring runs */
        r.size = MEMFD_SIZE;
        assert_int_equal (set_mem_table (&r, 1, &fd), 0);
        start_ring (r.uaddr + 0x1000);
        assert_non_null (running);
        assert_true (running->ready);
        close (fd);
}

static void
test_regions_overlap (void **state)
{
        int fds[2] = {memfd (MEMFD_SIZE), memfd (MEMFD_SIZE)};
        struct region r[2] = {{0, 0x8000, 0x10000, 0}, {0x4000, 0x8000, 0x40000, 0}};
        assert_int_equal (set_mem_table (r, 2, fds), 1); /* guest addresses */
        r[1].gpa = 0x100000;
        r[1].uaddr = 0x17000;
        assert_int_equal (set_mem_table (r, 2, fds), 1); /* frontend addresses */
        r[1].uaddr = 0x18000;
        assert_int_equal (set_mem_table (r, 2, fds), 0); /* adjacent is fine */
        close (fds[0]);
        close (fds[1]);
}

/* A region at an offset into its memfd (not page aligned) maps the bytes
 * of the file at that offset. */
static void
test_region_at_offset (void **state)
{
        int fd = memfd (MEMFD_SIZE);
        uint64_t off = 0x8000 + 0x100;
        assert_int_equal (pwrite (fd, "moat", 4, off + 0x2000), 4);
        struct region r[2] = {{0, 0x8000, 0x10000, 0}, {0x100000, 0x4000, 0x20000, off}};
        int fds[2] = {fd, fd};
        assert_int_equal (set_mem_table (r, 2, fds), 0);
        start_ring (0x20000 + 0x1000);
        assert_non_null (running);
        assert_int_equal (running->desc_gpa, 0x101000);
        const uint8_t *p = moat_gmem_ptr (running->mem, 0x102000, 4);
        assert_non_null (p);
        assert_memory_equal (p, "moat", 4);
        assert_null (moat_gmem_ptr (running->mem, 0x100000 + 0x4000 - 2, 4)); /* past the region */
        close (fd);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_region_past_end_of_file, setup, teardown),
                cmocka_unit_test_setup_teardown (test_regions_overlap, setup, teardown),
                cmocka_unit_test_setup_teardown (test_region_at_offset, setup, teardown),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

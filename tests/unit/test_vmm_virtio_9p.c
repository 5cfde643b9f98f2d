/* SPDX-License-Identifier: Apache-2.0 */
/* The virtio-9p device over the virtio-mmio transport and fake guest memory
 * (no KVM): config space, requests answered by the worker thread, a chain
 * pointing outside guest memory, a reset while the guest is talking; and
 * moat-vmm's worker process: a guest cannot hang it with a fifo, and a
 * worker that stops answering cannot hang the vCPU that talks to it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "moat/p9.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_virtio.h"

/* MAP_SHARED: the worker process sees it after fork, as guest RAM from a memfd. */
#define RAM_SIZE (1 << 16)
static uint8_t *ram;
static struct moat_guest_region region = {0, RAM_SIZE, NULL, 0};
static struct moat_guest_mem mem = {&region, 1};
static char dir[64];

#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define REQ 0x4000
#define RESP 0x8000
#define QN 8

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

static void
fake_raise (struct vmm_virtio_mmio *m)
{
}

static void
start (struct vmm_virtio_mmio *m)
{
        memset (ram, 0, RAM_SIZE);
        wr (m, VIRTIO_MMIO_STATUS, 0);
        wr (m, VIRTIO_MMIO_STATUS, 1 | 2);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES, 1);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        wr (m, VIRTIO_MMIO_DRIVER_FEATURES, 1);
        wr (m, VIRTIO_MMIO_STATUS, 1 | 2 | 8);
        assert_true (rd (m, VIRTIO_MMIO_STATUS) & 8);
        wr (m, VIRTIO_MMIO_QUEUE_SEL, 0);
        wr (m, VIRTIO_MMIO_QUEUE_NUM, QN);
        wr (m, VIRTIO_MMIO_QUEUE_DESC_LOW, DESC);
        wr (m, VIRTIO_MMIO_QUEUE_DRIVER_LOW, AVAIL);
        wr (m, VIRTIO_MMIO_QUEUE_DEVICE_LOW, USED);
        wr (m, VIRTIO_MMIO_QUEUE_READY, 1);
        wr (m, VIRTIO_MMIO_STATUS, 1 | 2 | 8 | 4);
}

static void
put_desc (int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        uint8_t *d = ram + DESC + 16 * i;
        memcpy (d, &addr, 8);
        memcpy (d + 8, &len, 4);
        memcpy (d + 12, &flags, 2);
        memcpy (d + 14, &next, 2);
}

static uint16_t
used_idx (void)
{
        return __atomic_load_n ((uint16_t *)(ram + USED + 2), __ATOMIC_ACQUIRE);
}

/* Queues req (len bytes at REQ) with out_addr/in_addr, kicks, waits for the
 * used index to move. Returns the used length or -1 on timeout. */
static int
kick_wait (struct vmm_virtio_mmio *m, uint64_t out_addr, uint32_t len, uint64_t in_addr, int ms)
{
        uint16_t *avail = (uint16_t *)(ram + AVAIL);
        uint16_t before = used_idx ();
        put_desc (0, out_addr, len, 1, 1);
        put_desc (1, in_addr, 4096, 2, 0);
        avail[2 + avail[1] % QN] = 0;
        __atomic_store_n (&avail[1], avail[1] + 1, __ATOMIC_RELEASE);
        wr (m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
        for (int i = 0; i < ms && used_idx () == before; i++)
                usleep (1000);
        if (used_idx () == before)
                return -1;
        uint32_t l;
        memcpy (&l, ram + USED + 4 + 8 * (before % QN) + 4, 4);
        return l;
}

static int
kick (struct vmm_virtio_mmio *m, uint64_t out_addr, uint32_t len, uint64_t in_addr)
{
        return kick_wait (m, out_addr, len, in_addr, 5000);
}

static uint32_t
build (uint8_t type, const char *s1, uint32_t pre)
{
        uint8_t *p = ram + REQ;
        uint32_t n = 7;
        p[4] = type;
        p[5] = 1;
        p[6] = 0;
        memcpy (p + n, &pre, 4);
        n += 4;
        uint16_t l = strlen (s1);
        memcpy (p + n, &l, 2);
        memcpy (p + n + 2, s1, l);
        n += 2 + l;
        memcpy (p, &n, 4);
        return n;
}

static int
setup (void **state)
{
        strcpy (dir, "/tmp/moat-v9p-XXXXXX");
        assert_non_null (mkdtemp (dir));
        return 0;
}

static int
teardown (void **state)
{
        moat_error_t err = NULL;
        assert_int_equal (rm_rf (dir, &err), 0);
        return 0;
}

static void
test_config_and_requests (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct vmm_virtio_mmio *m = vmm_virtio_9p_new (&mem, "moatshare", dir, 0, 0, &err);
        assert_non_null (m);
        m->raise_irq = fake_raise;
        assert_int_equal (rd (m, VIRTIO_MMIO_DEVICE_ID), 9);
        assert_int_equal (rd (m, VIRTIO_MMIO_DEVICE_FEATURES) & 1, 1);
        uint8_t cfg[16] = {0};
        for (int i = 0; i < 16; i++)
                vmm_virtio_mmio_io (m, VIRTIO_MMIO_CONFIG + i, cfg + i, 1, false);
        assert_int_equal (cfg[0] | cfg[1] << 8, 9);
        assert_memory_equal (cfg + 2, "moatshare", 9);
        assert_int_equal (cfg[11], 0);

        start (m);
        uint32_t n = build (100, "9P2000.L", 8192);
        int l = kick (m, REQ, n, RESP);
        assert_int_equal (l, 21);
        assert_int_equal (ram[RESP + 4], 101);
        assert_memory_equal (ram + RESP + 13, "9P2000.L", 8);
        assert_int_equal (vmm_virtio_9p_requests (m), 1);

        /* a request buffer outside guest memory: the queue breaks, nothing crashes */
        l = kick_wait (m, RAM_SIZE + 0x1000, n, RESP, 200);
        assert_int_equal (l, -1);
        assert_true (m->q[0].vq.broken);

        /* a reset brings it back */
        start (m);
        l = kick (m, REQ, build (100, "9P2000.L", 8192), RESP);
        assert_int_equal (l, 21);
        /* truncated message: Rlerror */
        l = kick (m, REQ, 5, RESP);
        assert_int_equal (l, 11);
        assert_int_equal (ram[RESP + 4], 7);
        m->ops->free (m);
        free (m);
}

static void
test_bad_share (void **state)
{
        cleanup_error moat_error_t err = NULL;
        assert_null (vmm_virtio_9p_new (&mem, "t", "/nonexistent/moat", 0, 0, &err));
        assert_non_null (strstr (err->msg, "/nonexistent/moat"));
        moat_error_release (&err);
        assert_null (vmm_virtio_9p_new (&mem, "", dir, 0, 0, &err));
        moat_error_release (&err);
        char *tag = NULL, *path = NULL;
        assert_int_equal (vmm_virtio_9p_parse_share ("moatshare=/a=b", &tag, &path, &err), 0);
        assert_string_equal (tag, "moatshare");
        assert_string_equal (path, "/a=b");
        free (tag);
        free (path);
        assert_int_equal (vmm_virtio_9p_parse_share ("=/x", &tag, &path, &err), -1);
        moat_error_release (&err);
        assert_int_equal (vmm_virtio_9p_parse_share ("tag", &tag, &path, &err), -1);
        moat_error_release (&err);
        assert_int_equal (vmm_virtio_9p_parse_share ("a b=/x", &tag, &path, &err), -1);
}

/* ---- the worker process of moat-vmm ---- */

static struct vmm vm;

static void
on_alarm (int sig)
{
        static const char msg[] = "# blocked: the 9p worker or a control call to it hangs\n";
        (void)sig;
        if (write (2, msg, sizeof msg - 1) < 0)
                _exit (99);
        _exit (99);
}

static struct vmm_virtio_mmio *
new_worker (int timeout_ms)
{
        cleanup_error moat_error_t err = NULL;
        memset (&vm, 0, sizeof vm);
        vm.mem = mem;
        vm.mem_fd = -1;
        vm.stop_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
        vm.epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
        pthread_mutex_init (&vm.lock, NULL);
        vm.helper_seccomp = VMM_SECCOMP_KILL; /* the worker's own filter, as in moat-vmm */
        struct vmm_virtio_mmio *m = vmm_virtio_9p_new_worker (&vm, "moatshare", dir, timeout_ms, &err);
        if (m == NULL)
                fail_msg ("vmm_virtio_9p_new_worker: %s", err->msg);
        signal (SIGALRM, on_alarm);
        alarm (30);
        return m;
}

static void
free_worker (struct vmm_virtio_mmio *m)
{
        pid_t pid = vmm_virtio_9p_worker_pid (m);
        vmm_virtio_9p_free_worker (m);
        assert_int_equal (kill (pid, 0), -1); /* killed and reaped */
        alarm (0);
        close (vm.stop_fd);
        close (vm.epoll_fd);
        free (vm.watches);
        free (vm.exit_msg);
        pthread_mutex_destroy (&vm.lock);
}

/* A 9P message at REQ: header, then fields put with p32/p16/ps. */
static uint32_t req_n;
static void
p_le (uint64_t v, int n)
{
        for (int i = 0; i < n; i++, v >>= 8)
                ram[REQ + req_n++] = v & 0xff;
}
static void
ps (const char *s)
{
        p_le (strlen (s), 2);
        memcpy (ram + REQ + req_n, s, strlen (s));
        req_n += strlen (s);
}
static void
msg (uint8_t type)
{
        req_n = 0;
        p_le (0, 4);
        p_le (type, 1);
        p_le (1, 2);
}
/* Sends the message; returns 0 (reply type T+1), the Rlerror errno, or -1
 * if no answer came within ms. */
static int
rpc (struct vmm_virtio_mmio *m, int ms)
{
        uint8_t type = ram[REQ + 4];
        memcpy (ram + REQ, &req_n, 4);
        int l = kick_wait (m, REQ, req_n, RESP, ms);
        if (l < 0)
                return -1;
        if (ram[RESP + 4] == P9_RLERROR) {
                uint32_t e;
                memcpy (&e, ram + RESP + 7, 4);
                return e;
        }
        assert_int_equal (ram[RESP + 4], type + 1);
        return 0;
}

static void
test_worker_fifo (void **state)
{
        struct vmm_virtio_mmio *m = new_worker (2000);
        start (m);
        msg (P9_TVERSION), p_le (8192, 4), ps ("9P2000.L");
        assert_int_equal (rpc (m, 5000), 0);
        msg (P9_TATTACH), p_le (1, 4), p_le (MOAT_P9_NOFID, 4), ps ("root"), ps (""), p_le (0, 4);
        assert_int_equal (rpc (m, 5000), 0);
        /* the reproducer: Tmknod a fifo, clone the fid, Tlcreate it read-only */
        msg (P9_TMKNOD), p_le (1, 4), ps ("f"), p_le (S_IFIFO | 0644, 4), p_le (0, 4), p_le (0, 4), p_le (0, 4);
        assert_int_equal (rpc (m, 5000), 0);
        msg (P9_TWALK), p_le (1, 4), p_le (2, 4), p_le (0, 2);
        assert_int_equal (rpc (m, 5000), 0);
        msg (P9_TLCREATE), p_le (2, 4), ps ("f"), p_le (O_RDONLY, 4), p_le (0644, 4), p_le (0, 4);
        assert_int_equal (rpc (m, 5000), EPERM);
        /* the worker still answers: requests, and the control calls of a reset */
        msg (P9_TWALK), p_le (1, 4), p_le (3, 4), p_le (1, 2), ps ("f");
        assert_int_equal (rpc (m, 5000), 0);
        msg (P9_TLOPEN), p_le (3, 4), p_le (O_WRONLY, 4);
        assert_int_equal (rpc (m, 5000), EPERM);
        /* regular files still open, under the worker's seccomp filter */
        msg (P9_TWALK), p_le (1, 4), p_le (4, 4), p_le (0, 2);
        assert_int_equal (rpc (m, 5000), 0);
        msg (P9_TLCREATE), p_le (4, 4), ps ("new"), p_le (O_RDWR, 4), p_le (04755, 4), p_le (0, 4);
        assert_int_equal (rpc (m, 5000), 0);
        msg (P9_TWALK), p_le (1, 4), p_le (5, 4), p_le (1, 2), ps ("new");
        assert_int_equal (rpc (m, 5000), 0);
        msg (P9_TLOPEN), p_le (5, 4), p_le (O_WRONLY | O_TRUNC, 4);
        assert_int_equal (rpc (m, 5000), 0);
        char p[128];
        struct stat st;
        snprintf (p, sizeof p, "%s/new", dir);
        assert_int_equal (stat (p, &st), 0);
        assert_true (S_ISREG (st.st_mode));
        assert_int_equal (st.st_mode & 07000, 0);
        wr (m, VIRTIO_MMIO_STATUS, 0);
        start (m);
        msg (P9_TVERSION), p_le (8192, 4), ps ("9P2000.L");
        assert_int_equal (rpc (m, 5000), 0);
        assert_int_equal (atomic_load (&vm.stopping), 0);
        free_worker (m);
}

static void
test_worker_unresponsive (void **state)
{
        struct vmm_virtio_mmio *m = new_worker (300);
        start (m);
        msg (P9_TVERSION), p_le (8192, 4), ps ("9P2000.L");
        assert_int_equal (rpc (m, 5000), 0);
        /* a worker that does not answer (stuck in the file system; here
         * stopped): the reset a vCPU asks for returns after the deadline,
         * the VM is told to stop, the worker is killed */
        pid_t pid = vmm_virtio_9p_worker_pid (m);
        assert_int_equal (kill (pid, SIGSTOP), 0);
        int64_t t0 = now_ms ();
        wr (m, VIRTIO_MMIO_STATUS, 0);
        int64_t took = now_ms () - t0;
        assert_true (took >= 250);
        assert_true (took < 3000);
        assert_int_equal (atomic_load (&vm.stopping), 1);
        assert_int_equal (vm.exit_code, VMM_EXIT_ERROR);
        assert_non_null (strstr (vm.exit_msg, "does not answer"));
        /* the device is dead now: no further waits */
        t0 = now_ms ();
        start (m);
        assert_true (now_ms () - t0 < 250);
        free_worker (m);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_config_and_requests, setup, teardown),
                cmocka_unit_test_setup_teardown (test_bad_share, setup, teardown),
                cmocka_unit_test_setup_teardown (test_worker_fifo, setup, teardown),
                cmocka_unit_test_setup_teardown (test_worker_unresponsive, setup, teardown),
        };
        ram = mmap (NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true (ram != MAP_FAILED);
        region.host = ram;
        return cmocka_run_group_tests (tests, NULL, NULL);
}

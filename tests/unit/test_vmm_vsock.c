/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm: vsock/memfd/seccomp configuration, memfd guest RAM, the seccomp
 * allowlist (built, listed; loading it is tested by tests/integration/vmm.sh
 * since it confines the whole process). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_virtio.h"

static void
test_config_vsock (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct vmm_config c;
        vmm_config_init (&c);
        assert_int_equal (vmm_config_load_json (&c,
                                                "{\"kernel\": \"/k\", \"vsock_socket\": \"/run/v.sock\","
                                                " \"guest_cid\": 42, \"memfd\": true, \"seccomp\": \"errno\"}",
                                                &err),
                          0);
        assert_string_equal (c.vsock_socket, "/run/v.sock");
        assert_int_equal (c.guest_cid, 42);
        assert_true (c.memfd);
        assert_int_equal (c.seccomp, VMM_SECCOMP_ERRNO);
        assert_int_equal (vmm_config_validate (&c, &err), 0);

        /* Host CID and the reserved ones are refused. */
        c.guest_cid = 2;
        assert_int_equal (vmm_config_validate (&c, &err), -1);
        assert_non_null (strstr (err->msg, "guest CID 2"));
        moat_error_release (&err);

        assert_int_equal (vmm_config_load_json (&c, "{\"guest_cid\": \"3\"}", &err), -1);
        assert_non_null (strstr (err->msg, "`guest_cid`"));
        moat_error_release (&err);
        assert_int_equal (vmm_config_load_json (&c, "{\"vsock_socket\": 3}", &err), -1);
        assert_non_null (strstr (err->msg, "`vsock_socket`"));
        moat_error_release (&err);
        assert_int_equal (vmm_config_load_json (&c, "{\"seccomp\": \"lax\"}", &err), -1);
        assert_non_null (strstr (err->msg, "seccomp mode `lax`"));
        moat_error_release (&err);
        vmm_config_free (&c);

        /* A CID without a vsock device is a mistake. */
        vmm_config_init (&c);
        assert_int_equal (vmm_config_load_json (&c, "{\"kernel\": \"/k\", \"guest_cid\": 5}", &err), 0);
        assert_int_equal (vmm_config_validate (&c, &err), -1);
        assert_non_null (strstr (err->msg, "--vsock-socket"));
        vmm_config_free (&c);
}

static void
test_memfd_ram (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct moat_guest_mem mem = {0};
        int fd = -1;
        assert_int_equal (vmm_mem_alloc_memfd (&mem, 64ULL << 20, &fd, &err), 0);
        assert_true (fd >= 0);
        assert_int_equal (mem.nregions, 1);
        /* Guest writes are visible through the file: the RAM is shared. */
        uint8_t *p = moat_gmem_ptr (&mem, 0x123000, 4);
        assert_non_null (p);
        memcpy (p, "moat", 4);
        char buf[4];
        assert_int_equal (pread (fd, buf, 4, 0x123000), 4);
        assert_memory_equal (buf, "moat", 4);
        assert_int_equal (lseek (fd, 0, SEEK_END), 64 << 20);
        vmm_mem_free (&mem);
        close (fd);
}

static void
test_memfd_ram_above_4g (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct moat_guest_mem mem = {0};
        int fd = -1;
        /* 3.5 GiB: 3 GiB below the hole, 512 MiB from 4 GiB at file offset 3 GiB. */
        assert_int_equal (vmm_mem_alloc_memfd (&mem, 3584ULL << 20, &fd, &err), 0);
        assert_int_equal (mem.nregions, 2);
        assert_int_equal (mem.regions[1].gpa, VMM_MMIO_GAP_END);
        uint8_t *p = moat_gmem_ptr (&mem, VMM_MMIO_GAP_END + 0x1000, 2);
        assert_non_null (p);
        memcpy (p, "hi", 2);
        char buf[2];
        assert_int_equal (pread (fd, buf, 2, VMM_MMIO_GAP_START + 0x1000), 2);
        assert_memory_equal (buf, "hi", 2);
        assert_null (moat_gmem_ptr (&mem, VMM_MMIO_GAP_START + 0x1000, 2));
        vmm_mem_free (&mem);
        close (fd);
}

static void
test_seccomp_list (void **state)
{
        cleanup_error moat_error_t err = NULL;
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream (&text, &len);
        assert_non_null (f);
        int n = vmm_seccomp_print (f, NULL, &err);
        fclose (f);
        assert_true (n > 10 && n < 50);
        char last[32];
        snprintf (last, sizeof last, "\n%d syscalls\n", n);
        assert_non_null (strstr (text, last));
        /* Run-time needs only; nothing that makes VMs, processes or programs. */
        assert_non_null (strstr (text, "\nioctl (KVM_RUN, KVM_IRQ_LINE)\n"));
        assert_non_null (strstr (text, "\nsocket (AF_UNIX)\n"));
        assert_null (strstr (text, "execve"));
        assert_null (strstr (text, "\nopenat"));
        assert_null (strstr (text, "clone"));
        free (text);

        /* Device extras are added once, and names are checked. */
        static const char *const extra[] = {"openat", "fcntl", "openat", NULL};
        f = open_memstream (&text, &len);
        assert_int_equal (vmm_seccomp_print (f, extra, &err), n + 1);
        fclose (f);
        assert_non_null (strstr (text, "\nopenat (device)\n"));
        free (text);
        static const char *const bad[] = {"no_such_syscall", NULL};
        f = open_memstream (&text, &len);
        assert_int_equal (vmm_seccomp_print (f, bad, &err), -1);
        fclose (f);
        free (text);
        assert_non_null (strstr (err->msg, "no_such_syscall"));

        enum vmm_seccomp_mode m;
        moat_error_release (&err);
        assert_int_equal (vmm_seccomp_parse_mode ("kill", &m, &err), 0);
        assert_int_equal (m, VMM_SECCOMP_KILL);
        assert_int_equal (vmm_seccomp_parse_mode ("trap", &m, &err), 0);
        assert_int_equal (m, VMM_SECCOMP_TRAP);
        assert_int_equal (vmm_seccomp_parse_mode ("permissive", &m, &err), -1);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_config_vsock),
                cmocka_unit_test (test_memfd_ram),
                cmocka_unit_test (test_memfd_ram_above_4g),
                cmocka_unit_test (test_seccomp_list),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

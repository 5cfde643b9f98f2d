/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm boot: memory layout, ELF loading, e820, initrd placement, zero page. */
#include <elf.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <asm/bootparam.h>
#include <linux/kvm.h>
#include <cmocka.h>

#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_boot.h"

static void
test_layout (void **state)
{
        cleanup_error moat_error_t err = NULL;
        struct moat_guest_region r[2];
        size_t n;
        assert_int_equal (vmm_mem_layout (256ULL << 20, r, &n, &err), 0);
        assert_int_equal (n, 1);
        assert_int_equal (r[0].size, 256ULL << 20);
        assert_int_equal (vmm_mem_layout (3ULL << 30, r, &n, &err), 0);
        assert_int_equal (n, 1);
        assert_int_equal (vmm_mem_layout (5ULL << 30, r, &n, &err), 0);
        assert_int_equal (n, 2);
        assert_int_equal (r[0].size, 3ULL << 30);
        assert_int_equal (r[1].gpa, 4ULL << 30);
        assert_int_equal (r[1].size, 2ULL << 30);
        assert_int_equal (vmm_mem_layout (1 << 20, r, &n, &err), -1);
        assert_non_null (strstr (err->msg, "at least 2 MiB"));
}

struct fixture {
        struct moat_guest_mem mem;
};

static int
setup (void **state)
{
        struct fixture *f = xzalloc (sizeof *f);
        cleanup_error moat_error_t err = NULL;
        assert_int_equal (vmm_mem_alloc (&f->mem, 64ULL << 20, &err), 0);
        *state = f;
        return 0;
}

static int
teardown (void **state)
{
        struct fixture *f = *state;
        vmm_mem_free (&f->mem);
        free (f);
        return 0;
}

/* A minimal ELF64 executable with one PT_LOAD: 16 bytes of code + 4096 of bss. */
static size_t
make_elf (uint8_t *buf, uint64_t paddr, uint64_t entry)
{
        memset (buf, 0, 512);
        Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
        memcpy (eh->e_ident, ELFMAG, SELFMAG);
        eh->e_ident[EI_CLASS] = ELFCLASS64;
        eh->e_ident[EI_DATA] = ELFDATA2LSB;
        eh->e_type = ET_EXEC;
        eh->e_machine = EM_X86_64;
        eh->e_entry = entry;
        eh->e_phoff = sizeof *eh;
        eh->e_phentsize = sizeof (Elf64_Phdr);
        eh->e_phnum = 1;
        Elf64_Phdr *ph = (Elf64_Phdr *)(eh + 1);
        ph->p_type = PT_LOAD;
        ph->p_offset = 256;
        ph->p_paddr = paddr;
        ph->p_vaddr = paddr + 0xffffffff80000000ULL;
        ph->p_filesz = 16;
        ph->p_memsz = 16 + 4096;
        memset (buf + 256, 0xcc, 16);
        return 272;
}

static void
test_elf (void **state)
{
        struct fixture *f = *state;
        cleanup_error moat_error_t err = NULL;
        uint8_t buf[512];
        struct vmm_boot_info info = {0};
        uint8_t *dst = moat_gmem_ptr (&f->mem, 0x1000000, 4112);
        memset (dst, 0x55, 4112); /* bss must be zeroed */
        size_t len = make_elf (buf, 0x1000000, 0x1000004);
        assert_int_equal (vmm_load_elf (&f->mem, buf, len, &info, &err), 0);
        assert_int_equal (info.entry, 0x1000004);
        assert_int_equal (info.kernel_end, 0x1000000 + 4112);
        assert_int_equal (dst[0], 0xcc);
        assert_int_equal (dst[15], 0xcc);
        assert_int_equal (dst[16], 0);
        assert_int_equal (dst[4111], 0);

        make_elf (buf, 0x1000000, 0x2000000);
        assert_int_equal (vmm_load_elf (&f->mem, buf, len, &info, &err), -1);
        assert_non_null (strstr (err->msg, "entry 0x2000000 is not in a loaded segment"));
        moat_error_release (&err);

        make_elf (buf, 63ULL << 20, 63ULL << 20); /* bss runs past the end of RAM */
        ((Elf64_Phdr *)(buf + sizeof (Elf64_Ehdr)))->p_memsz = 2 << 20;
        assert_int_equal (vmm_load_elf (&f->mem, buf, len, &info, &err), -1);
        assert_non_null (strstr (err->msg, "outside guest RAM"));
        moat_error_release (&err);

        make_elf (buf, 0x1000000, 0x1000000);
        ((Elf64_Phdr *)(buf + sizeof (Elf64_Ehdr)))->p_filesz = 1 << 20; /* beyond the file */
        assert_int_equal (vmm_load_elf (&f->mem, buf, len, &info, &err), -1);
        assert_non_null (strstr (err->msg, "outside the file"));
        moat_error_release (&err);

        assert_int_equal (vmm_load_elf (&f->mem, "#!/bin/sh\n", 10, &info, &err), -1);
        assert_string_equal (err->msg, "not an ELF file");
}

static void
test_e820 (void **state)
{
        struct vmm_e820 e[8];
        struct moat_guest_region r[2] = {{0, 3ULL << 30, NULL, 0}, {4ULL << 30, 1ULL << 30, NULL, 0}};
        struct moat_guest_mem m = {r, 2};
        size_t n = vmm_build_e820 (&m, e, 8);
        assert_int_equal (n, 4);
        assert_int_equal (e[0].addr, 0);
        assert_int_equal (e[0].size, BOOT_EBDA_START);
        assert_int_equal (e[1].type, BOOT_E820_RESERVED);
        assert_int_equal (e[2].addr, BOOT_HIMEM_START);
        assert_int_equal (e[2].addr + e[2].size, 3ULL << 30);
        assert_int_equal (e[3].addr, 4ULL << 30);
        assert_int_equal (e[3].type, BOOT_E820_RAM);
}

static void
test_initrd_and_zero_page (void **state)
{
        struct fixture *f = *state;
        cleanup_error moat_error_t err = NULL;
        struct vmm_boot_info info = {.entry = 0x1000000, .kernel_end = 0x1200000};
        char rd[5000];
        memset (rd, 'r', sizeof rd);
        assert_int_equal (vmm_place_initrd (&f->mem, rd, sizeof rd, &info, &err), 0);
        assert_int_equal (info.initrd_addr & 0xfff, 0);
        assert_true (info.initrd_addr + sizeof rd <= 64ULL << 20);
        assert_true (info.initrd_addr >= (64ULL << 20) - 8192);
        assert_memory_equal (moat_gmem_ptr (&f->mem, info.initrd_addr, sizeof rd), rd, sizeof rd);

        assert_int_equal (vmm_setup_boot (&f->mem, "console=ttyS0 quiet", 2, &info, &err), 0);
        struct boot_params *bp = moat_gmem_ptr (&f->mem, BOOT_ZERO_PAGE_ADDR, sizeof *bp);
        assert_int_equal (bp->hdr.boot_flag, 0xaa55);
        assert_int_equal (bp->hdr.header, 0x53726448);
        assert_int_equal (bp->hdr.type_of_loader, 0xff);
        assert_int_equal (bp->hdr.ramdisk_image, info.initrd_addr);
        assert_int_equal (bp->hdr.ramdisk_size, sizeof rd);
        assert_int_equal (bp->hdr.cmdline_size, strlen ("console=ttyS0 quiet"));
        assert_string_equal (moat_gmem_ptr (&f->mem, bp->hdr.cmd_line_ptr, 1), "console=ttyS0 quiet");
        assert_int_equal (bp->e820_entries, 3);
        assert_int_equal (bp->e820_table[2].addr + bp->e820_table[2].size, 64ULL << 20);
        /* identity map: 2 MiB page n maps n * 2 MiB */
        uint64_t *pd = moat_gmem_ptr (&f->mem, BOOT_PD_ADDR, 4 * 4096);
        assert_int_equal (pd[3], (3ULL << 21) | 0x83);
        assert_int_equal (pd[2047], (2047ULL << 21) | 0x83);
        uint64_t *pml4 = moat_gmem_ptr (&f->mem, BOOT_PML4_ADDR, 8);
        assert_int_equal (pml4[0], BOOT_PDPT_ADDR | 3);
        assert_memory_equal (moat_gmem_ptr (&f->mem, BOOT_MPTABLE_ADDR, 4), "_MP_", 4);

        /* an initrd that cannot fit above the kernel */
        info.kernel_end = 63ULL << 20;
        static char big[2 << 20];
        assert_int_equal (vmm_place_initrd (&f->mem, big, sizeof big, &info, &err), -1);
        assert_non_null (strstr (err->msg, "does not fit"));
        moat_error_release (&err);
        /* an overlong command line */
        cleanup_free char *cl = xmalloc (BOOT_CMDLINE_MAX + 1);
        memset (cl, 'x', BOOT_CMDLINE_MAX);
        cl[BOOT_CMDLINE_MAX] = 0;
        assert_int_equal (vmm_setup_boot (&f->mem, cl, 1, &info, &err), -1);
        assert_non_null (strstr (err->msg, "kernel command line"));
}

static void
test_regs (void **state)
{
        struct kvm_sregs s;
        memset (&s, 0, sizeof s);
        vmm_boot_sregs (&s);
        assert_true (s.cr0 & 1);
        assert_true (s.cr0 & (1u << 31));
        assert_true (s.cr4 & (1u << 5));
        assert_int_equal (s.efer & 0x500, 0x500);
        assert_int_equal (s.cr3, BOOT_PML4_ADDR);
        assert_int_equal (s.cs.selector, 8);
        assert_int_equal (s.cs.l, 1);
        assert_int_equal (s.cs.db, 0);
        assert_int_equal (s.cs.type, 0xb);
        assert_int_equal (s.ds.selector, 0x10);
        assert_int_equal (s.ds.limit, 0xffffffff);
        assert_int_equal (s.tr.selector, 0x18);
        struct kvm_regs r;
        vmm_boot_regs (&r, 0x1000000);
        assert_int_equal (r.rip, 0x1000000);
        assert_int_equal (r.rsi, BOOT_ZERO_PAGE_ADDR);
        assert_int_equal (r.rflags, 2);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_layout),
                cmocka_unit_test_setup_teardown (test_elf, setup, teardown),
                cmocka_unit_test (test_e820),
                cmocka_unit_test_setup_teardown (test_initrd_and_zero_page, setup, teardown),
                cmocka_unit_test (test_regs),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Direct 64-bit boot of an ELF vmlinux (Firecracker's way): PT_LOAD
 * segments at their physical addresses, a zero page (struct boot_params)
 * with the e820 map, command line and initrd, a GDT, identity page tables
 * for the first 4 GiB and long-mode registers with rsi = &boot_params.
 * Everything here writes guest memory only, so it is testable without KVM. */
#ifndef MOAT_VMM_BOOT_H
#define MOAT_VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"
#include "moat/virtqueue.h"

/* Fixed low-memory layout. */
#define BOOT_GDT_ADDR 0x500ULL
#define BOOT_ZERO_PAGE_ADDR 0x7000ULL
#define BOOT_STACK_TOP 0x8ff0ULL
#define BOOT_PML4_ADDR 0x9000ULL
#define BOOT_PDPT_ADDR 0xa000ULL
#define BOOT_PD_ADDR 0xb000ULL       /* 4 pages: 0xb000..0xefff map 4 GiB with 2 MiB pages */
#define BOOT_MPTABLE_ADDR 0x9fc00ULL /* EBDA: MP floating pointer + table */
#define BOOT_EBDA_START 0x9fc00ULL
#define BOOT_CMDLINE_ADDR 0x20000ULL
#define BOOT_CMDLINE_MAX 0x10000ULL
#define BOOT_HIMEM_START 0x100000ULL /* 1 MiB: kernels load above */

#define BOOT_E820_RAM 1
#define BOOT_E820_RESERVED 2

struct vmm_e820 {
        uint64_t addr, size;
        uint32_t type;
};

struct vmm_boot_info {
        uint64_t entry;      /* ELF e_entry (physical) */
        uint64_t kernel_end; /* highest byte loaded + 1 */
        uint64_t initrd_addr, initrd_size;
};

/* Loads an ELF64 x86-64 executable's PT_LOAD segments at p_paddr. */
int vmm_load_elf (const struct moat_guest_mem *mem, const void *buf, size_t len, struct vmm_boot_info *info,
                  moat_error_t *err);
/* e820 map for the RAM regions; returns the count (max n). */
size_t vmm_build_e820 (const struct moat_guest_mem *mem, struct vmm_e820 *out, size_t n);
/* Places the initrd at the top of RAM below 4 GiB (page aligned, above the kernel). */
int vmm_place_initrd (const struct moat_guest_mem *mem, const void *buf, size_t len, struct vmm_boot_info *info,
                      moat_error_t *err);
/* Writes zero page, command line, GDT, page tables and the MP table. */
int vmm_setup_boot (const struct moat_guest_mem *mem, const char *cmdline, int ncpus, const struct vmm_boot_info *info,
                    moat_error_t *err);

struct kvm_regs;
struct kvm_sregs;
/* Long mode register state for the boot CPU. */
void vmm_boot_sregs (struct kvm_sregs *sregs);
void vmm_boot_regs (struct kvm_regs *regs, uint64_t rip);

#endif

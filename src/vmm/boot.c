/* SPDX-License-Identifier: Apache-2.0 */
/* Direct 64-bit boot: the ELF loader, the zero page, the e820 map, the
 * initrd, the GDT, identity page tables, the MP table (so an SMP guest
 * finds its CPUs and the IOAPIC without ACPI) and long-mode registers. */
#include <elf.h>
#include <string.h>
#include <asm/bootparam.h>
#include <linux/kvm.h>

#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_boot.h"

int
vmm_load_elf (const struct moat_guest_mem *mem, const void *buf, size_t len, struct vmm_boot_info *info,
              moat_error_t *err)
{
        const Elf64_Ehdr *eh = buf;
        if (len < sizeof *eh || memcmp (eh->e_ident, ELFMAG, SELFMAG) != 0)
                return moat_make_error (err, 0, "not an ELF file");
        if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64)
                return moat_make_error (err, 0, "not a little-endian x86-64 ELF64 file");
        if (eh->e_type != ET_EXEC)
                return moat_make_error (err, 0, "ELF type %u: need an executable (ET_EXEC) like vmlinux", eh->e_type);
        if (eh->e_phentsize != sizeof (Elf64_Phdr) || eh->e_phnum == 0 || eh->e_phoff > len ||
            (len - eh->e_phoff) / sizeof (Elf64_Phdr) < eh->e_phnum)
                return moat_make_error (err, 0, "bad ELF program header table");
        const Elf64_Phdr *ph = (const Elf64_Phdr *)((const uint8_t *)buf + eh->e_phoff);
        bool entry_ok = false;
        int loaded = 0;
        info->kernel_end = 0;
        for (unsigned i = 0; i < eh->e_phnum; i++) {
                const Elf64_Phdr *p = &ph[i];
                if (p->p_type != PT_LOAD || p->p_memsz == 0)
                        continue;
                if (p->p_filesz > p->p_memsz || p->p_offset > len || p->p_filesz > len - p->p_offset)
                        return moat_make_error (err, 0, "ELF segment %u lies outside the file", i);
                if (p->p_paddr < BOOT_HIMEM_START)
                        return moat_make_error (err, 0, "ELF segment %u at 0x%llx: below 1 MiB", i,
                                                (unsigned long long)p->p_paddr);
                uint8_t *dst = moat_gmem_ptr (mem, p->p_paddr, p->p_memsz);
                if (dst == NULL)
                        return moat_make_error (err, 0, "ELF segment %u at 0x%llx+0x%llx: outside guest RAM", i,
                                                (unsigned long long)p->p_paddr, (unsigned long long)p->p_memsz);
                memcpy (dst, (const uint8_t *)buf + p->p_offset, p->p_filesz);
                memset (dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
                if (eh->e_entry >= p->p_paddr && eh->e_entry - p->p_paddr < p->p_memsz)
                        entry_ok = true;
                if (p->p_paddr + p->p_memsz > info->kernel_end)
                        info->kernel_end = p->p_paddr + p->p_memsz;
                loaded++;
        }
        if (loaded == 0)
                return moat_make_error (err, 0, "ELF file has no loadable segment");
        if (!entry_ok)
                return moat_make_error (err, 0, "ELF entry 0x%llx is not in a loaded segment",
                                        (unsigned long long)eh->e_entry);
        info->entry = eh->e_entry;
        return 0;
}

size_t
vmm_build_e820 (const struct moat_guest_mem *mem, struct vmm_e820 *out, size_t n)
{
        size_t k = 0;
#define ADD(a, s, t)                                                                                                   \
        do {                                                                                                           \
                if (k < n)                                                                                             \
                        out[k++] = (struct vmm_e820){(a), (s), (t)};                                                   \
        } while (0)
        ADD (0, BOOT_EBDA_START, BOOT_E820_RAM);
        ADD (BOOT_EBDA_START, BOOT_HIMEM_START - BOOT_EBDA_START, BOOT_E820_RESERVED);
        for (size_t i = 0; i < mem->nregions; i++) {
                uint64_t a = mem->regions[i].gpa, e = a + mem->regions[i].size;
                if (a < BOOT_HIMEM_START)
                        a = BOOT_HIMEM_START;
                if (e > a)
                        ADD (a, e - a, BOOT_E820_RAM);
        }
#undef ADD
        return k;
}

int
vmm_place_initrd (const struct moat_guest_mem *mem, const void *buf, size_t len, struct vmm_boot_info *info,
                  moat_error_t *err)
{
        uint64_t top = 0;
        for (size_t i = 0; i < mem->nregions; i++)
                if (mem->regions[i].gpa < VMM_MMIO_GAP_START && mem->regions[i].gpa + mem->regions[i].size > top)
                        top = mem->regions[i].gpa + mem->regions[i].size;
        uint64_t lowest = (info->kernel_end + 0xfff) & ~0xfffULL;
        if (len == 0 || len > top || ((top - len) & ~0xfffULL) < lowest)
                return moat_make_error (err, 0,
                                        "initrd of %zu bytes does not fit between the kernel end 0x%llx and 0x%llx",
                                        len, (unsigned long long)lowest, (unsigned long long)top);
        uint64_t addr = (top - len) & ~0xfffULL;
        uint8_t *dst = moat_gmem_ptr (mem, addr, len);
        if (dst == NULL)
                return moat_make_error (err, 0, "initrd at 0x%llx: outside guest RAM", (unsigned long long)addr);
        memcpy (dst, buf, len);
        info->initrd_addr = addr;
        info->initrd_size = len;
        return 0;
}

static uint64_t
gdt_entry (uint16_t flags, uint32_t base, uint32_t limit)
{
        return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
               ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
               (uint64_t)(limit & 0x0000ffffu);
}

static void
gdt_to_seg (uint64_t e, unsigned index, struct kvm_segment *s)
{
        memset (s, 0, sizeof *s);
        s->base = ((e >> 16) & 0xffffff) | (((e >> 56) & 0xff) << 24);
        uint32_t limit = (e & 0xffff) | (((e >> 48) & 0xf) << 16);
        s->g = (e >> 55) & 1;
        s->limit = s->g ? (limit << 12) | 0xfff : limit;
        s->selector = index * 8;
        s->type = (e >> 40) & 0xf;
        s->s = (e >> 44) & 1;
        s->dpl = (e >> 45) & 3;
        s->present = (e >> 47) & 1;
        s->avl = (e >> 52) & 1;
        s->l = (e >> 53) & 1;
        s->db = (e >> 54) & 1;
        s->unusable = !s->present;
}

static void
gdt_fill (uint64_t gdt[4])
{
        gdt[0] = 0;                              /* null */
        gdt[1] = gdt_entry (0xa09b, 0, 0xfffff); /* 64-bit code */
        gdt[2] = gdt_entry (0xc093, 0, 0xfffff); /* data */
        gdt[3] = gdt_entry (0x808b, 0, 0xfffff); /* TSS */
}

/* Intel MultiProcessor Specification 1.4 tables. */
struct __attribute__ ((packed)) mpf {
        char sig[4];
        uint32_t physptr;
        uint8_t length, rev, checksum, feature[5];
};
struct __attribute__ ((packed)) mpc_table {
        char sig[4];
        uint16_t length;
        uint8_t rev, checksum;
        char oem[8], product[12];
        uint32_t oemptr;
        uint16_t oemsize, count;
        uint32_t lapic;
        uint16_t ext_length;
        uint8_t ext_checksum, reserved;
};
struct __attribute__ ((packed)) mpc_cpu {
        uint8_t type, apicid, apicver, cpuflag;
        uint32_t cpufeature, featureflag, reserved[2];
};
struct __attribute__ ((packed)) mpc_bus {
        uint8_t type, busid;
        char bustype[6];
};
struct __attribute__ ((packed)) mpc_ioapic {
        uint8_t type, apicid, apicver, flags;
        uint32_t apicaddr;
};
struct __attribute__ ((packed)) mpc_irq {
        uint8_t type, irqtype;
        uint16_t irqflag;
        uint8_t srcbus, srcbusirq, dstapic, dstirq;
};

static uint8_t
mp_checksum (const void *p, size_t n)
{
        uint8_t s = 0;
        for (size_t i = 0; i < n; i++)
                s += ((const uint8_t *)p)[i];
        return -s;
}

#define MP_IOAPIC_PINS 24

static int
write_mptable (const struct moat_guest_mem *mem, int ncpus, moat_error_t *err)
{
        size_t size = sizeof (struct mpf) + sizeof (struct mpc_table) + ncpus * sizeof (struct mpc_cpu) +
                      sizeof (struct mpc_bus) + sizeof (struct mpc_ioapic) +
                      (MP_IOAPIC_PINS + 2) * sizeof (struct mpc_irq);
        uint8_t *base = moat_gmem_ptr (mem, BOOT_MPTABLE_ADDR, size);
        if (base == NULL)
                return moat_make_error (err, 0, "MP table does not fit in guest memory");
        memset (base, 0, size);
        struct mpf *f = (struct mpf *)base;
        struct mpc_table *t = (struct mpc_table *)(f + 1);
        uint8_t *p = (uint8_t *)(t + 1);
        uint8_t ioapic_id = ncpus;
        uint16_t count = 0;

        for (int i = 0; i < ncpus; i++, count++) {
                struct mpc_cpu *c = (struct mpc_cpu *)p;
                *c = (struct mpc_cpu){.type = 0,
                                      .apicid = i,
                                      .apicver = 0x14,
                                      .cpuflag = 1 | (i == 0 ? 2 : 0),
                                      .cpufeature = 0x600,
                                      .featureflag = 0x201};
                p += sizeof *c;
        }
        struct mpc_bus *b = (struct mpc_bus *)p;
        b->type = 1;
        memcpy (b->bustype, "ISA   ", 6);
        p += sizeof *b;
        count++;
        struct mpc_ioapic *io = (struct mpc_ioapic *)p;
        *io = (struct mpc_ioapic){.type = 2, .apicid = ioapic_id, .apicver = 0x11, .flags = 1, .apicaddr = 0xfec00000};
        p += sizeof *io;
        count++;
        for (int i = 0; i < MP_IOAPIC_PINS; i++, count++) {
                struct mpc_irq *q = (struct mpc_irq *)p;
                *q = (struct mpc_irq){.type = 3, .irqtype = 0, .srcbusirq = i, .dstapic = ioapic_id, .dstirq = i};
                p += sizeof *q;
        }
        struct mpc_irq *l = (struct mpc_irq *)p;
        *l = (struct mpc_irq){.type = 4, .irqtype = 3 /* ExtINT */, .dstapic = 0xff, .dstirq = 0};
        p += sizeof *l;
        l = (struct mpc_irq *)p;
        *l = (struct mpc_irq){.type = 4, .irqtype = 1 /* NMI */, .dstapic = 0xff, .dstirq = 1};
        p += sizeof *l;
        count += 2;

        memcpy (t->sig, "PCMP", 4);
        t->length = p - (uint8_t *)t;
        t->rev = 4;
        memcpy (t->oem, "MOAT    ", 8);
        memcpy (t->product, "MOAT-VMM    ", 12);
        t->count = count;
        t->lapic = 0xfee00000;
        t->checksum = mp_checksum (t, t->length);

        memcpy (f->sig, "_MP_", 4);
        f->physptr = BOOT_MPTABLE_ADDR + sizeof *f;
        f->length = 1;
        f->rev = 4;
        f->checksum = mp_checksum (f, sizeof *f);
        return 0;
}

int
vmm_setup_boot (const struct moat_guest_mem *mem, const char *cmdline, int ncpus, const struct vmm_boot_info *info,
                moat_error_t *err)
{
        size_t clen = strlen (cmdline);
        if (clen + 1 > BOOT_CMDLINE_MAX)
                return moat_make_error (err, 0, "kernel command line of %zu bytes: longer than %llu", clen,
                                        (unsigned long long)BOOT_CMDLINE_MAX - 1);
        char *cl = moat_gmem_ptr (mem, BOOT_CMDLINE_ADDR, clen + 1);
        struct boot_params *bp = moat_gmem_ptr (mem, BOOT_ZERO_PAGE_ADDR, sizeof *bp);
        uint64_t *gdt = moat_gmem_ptr (mem, BOOT_GDT_ADDR, 4 * sizeof (uint64_t));
        uint64_t *pml4 = moat_gmem_ptr (mem, BOOT_PML4_ADDR, 4096);
        uint64_t *pdpt = moat_gmem_ptr (mem, BOOT_PDPT_ADDR, 4096);
        uint64_t *pd = moat_gmem_ptr (mem, BOOT_PD_ADDR, 4 * 4096);
        if (!cl || !bp || !gdt || !pml4 || !pdpt || !pd)
                return moat_make_error (err, 0, "guest memory too small for the boot structures");
        if (info->kernel_end > 0 && info->initrd_size &&
            (info->initrd_addr < info->kernel_end || info->initrd_addr < BOOT_HIMEM_START))
                return moat_make_error (err, 0, "initrd at 0x%llx overlaps the kernel",
                                        (unsigned long long)info->initrd_addr);
        memcpy (cl, cmdline, clen + 1);

        memset (bp, 0, sizeof *bp);
        bp->hdr.type_of_loader = 0xff;
        bp->hdr.boot_flag = 0xaa55;
        bp->hdr.header = 0x53726448; /* "HdrS" */
        bp->hdr.version = 0x020f;
        bp->hdr.cmd_line_ptr = BOOT_CMDLINE_ADDR;
        bp->hdr.cmdline_size = clen;
        bp->hdr.kernel_alignment = 0x01000000;
        bp->hdr.ramdisk_image = info->initrd_addr;
        bp->hdr.ramdisk_size = info->initrd_size;
        struct vmm_e820 e[E820_MAX_ENTRIES_ZEROPAGE];
        size_t n = vmm_build_e820 (mem, e, ARRAY_SIZE (e));
        for (size_t i = 0; i < n; i++) {
                bp->e820_table[i].addr = e[i].addr;
                bp->e820_table[i].size = e[i].size;
                bp->e820_table[i].type = e[i].type;
        }
        bp->e820_entries = n;

        gdt_fill (gdt);
        uint64_t *idt = moat_gmem_ptr (mem, BOOT_GDT_ADDR + 0x20, 8);
        *idt = 0;

        memset (pml4, 0, 4096);
        memset (pdpt, 0, 4096);
        pml4[0] = BOOT_PDPT_ADDR | 0x3; /* present, writable */
        for (int i = 0; i < 4; i++)
                pdpt[i] = (BOOT_PD_ADDR + i * 4096ULL) | 0x3;
        for (uint64_t j = 0; j < 4 * 512; j++)
                pd[j] = (j << 21) | 0x83; /* present, writable, 2 MiB page */

        return write_mptable (mem, ncpus, err);
}

void
vmm_boot_sregs (struct kvm_sregs *s)
{
        uint64_t gdt[4];
        gdt_fill (gdt);
        struct kvm_segment code, data, tss;
        gdt_to_seg (gdt[1], 1, &code);
        gdt_to_seg (gdt[2], 2, &data);
        gdt_to_seg (gdt[3], 3, &tss);
        s->gdt.base = BOOT_GDT_ADDR;
        s->gdt.limit = sizeof gdt - 1;
        s->idt.base = BOOT_GDT_ADDR + 0x20;
        s->idt.limit = 7;
        s->cs = code;
        s->ds = s->es = s->fs = s->gs = s->ss = data;
        s->tr = tss;
        s->cr3 = BOOT_PML4_ADDR;
        s->cr4 |= 1u << 5;                 /* PAE */
        s->cr0 |= 1u | (1u << 31);         /* PE, PG */
        s->efer |= (1u << 8) | (1u << 10); /* LME, LMA */
}

void
vmm_boot_regs (struct kvm_regs *r, uint64_t rip)
{
        memset (r, 0, sizeof *r);
        r->rflags = 2;
        r->rip = rip;
        r->rsp = BOOT_STACK_TOP;
        r->rbp = BOOT_STACK_TOP;
        r->rsi = BOOT_ZERO_PAGE_ADDR;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* CPUID for each vCPU: KVM's supported table, the user's masks, and the
 * per-CPU fields (initial APIC id, logical count, x2APIC id, hypervisor bit). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <linux/kvm.h>

#include "moat/vmm.h"

static int
parse_u32 (const char *s, uint32_t *out)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull (s, &end, 0);
        if (errno || end == s || *end || v > UINT32_MAX)
                return -1;
        *out = v;
        return 0;
}

int
vmm_cpuid_mask_parse (const char *s, struct vmm_cpuid_mask *out, moat_error_t *err)
{
        static const char *regs[] = {"eax", "ebx", "ecx", "edx"};
        char buf[128];
        if (strlen (s) >= sizeof buf)
                return moat_make_error (err, 0, "cpuid mask `%s`: too long", s);
        strcpy (buf, s);
        char *leaf = buf, *reg = strchr (buf, ':'), *bits = NULL;
        if (reg) {
                *reg++ = '\0';
                bits = strchr (reg, ':');
                if (bits)
                        *bits++ = '\0';
        }
        if (reg == NULL || bits == NULL)
                return moat_make_error (err, 0, "cpuid mask `%s`: expected LEAF:REG:BITS (e.g. 0x1:ecx:0x20)", s);
        if (parse_u32 (leaf, &out->leaf) < 0)
                return moat_make_error (err, 0, "cpuid mask `%s`: bad leaf `%s`", s, leaf);
        out->reg = -1;
        for (int i = 0; i < 4; i++)
                if (strcasecmp (reg, regs[i]) == 0)
                        out->reg = i;
        if (out->reg < 0)
                return moat_make_error (err, 0, "cpuid mask `%s`: register `%s` is not eax, ebx, ecx or edx", s, reg);
        if (parse_u32 (bits, &out->clear) < 0)
                return moat_make_error (err, 0, "cpuid mask `%s`: bad bits `%s`", s, bits);
        return 0;
}

static uint32_t *
reg_of (struct kvm_cpuid_entry2 *e, int reg)
{
        switch (reg) {
        case 0:
                return &e->eax;
        case 1:
                return &e->ebx;
        case 2:
                return &e->ecx;
        default:
                return &e->edx;
        }
}

void
vmm_cpuid_fixup (struct kvm_cpuid2 *c, int cpu, int ncpus, const struct vmm_cpuid_mask *masks, size_t nmasks)
{
        for (uint32_t i = 0; i < c->nent; i++) {
                struct kvm_cpuid_entry2 *e = &c->entries[i];
                switch (e->function) {
                case 1:
                        /* EBX[31:24] initial APIC id, [23:16] logical processors per package */
                        e->ebx = (e->ebx & 0x0000ffff) | ((uint32_t)cpu << 24) | ((uint32_t)ncpus << 16);
                        if (ncpus > 1)
                                e->edx |= 1u << 28; /* HTT: the count above is valid */
                        e->ecx |= 1u << 31;         /* running under a hypervisor */
                        break;
                case 0xb:
                case 0x1f:
                        e->edx = cpu; /* x2APIC id */
                        break;
                }
                for (size_t m = 0; m < nmasks; m++)
                        if (masks[m].leaf == e->function)
                                *reg_of (e, masks[m].reg) &= ~masks[m].clear;
        }
}

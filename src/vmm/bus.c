/* SPDX-License-Identifier: Apache-2.0 */
/* Port I/O and MMIO dispatch: a small table of ranges filled before the
 * vCPUs start. */
#include <string.h>

#include "moat/util.h"
#include "moat/vmm.h"

int
vmm_bus_add (struct vmm_io_bus *bus, uint64_t base, uint64_t len, vmm_io_fn fn, void *opaque, const char *name,
             moat_error_t *err)
{
        if (len == 0 || base + len < base)
                return moat_make_error (err, 0, "device %s: bad range 0x%llx+0x%llx", name, (unsigned long long)base,
                                        (unsigned long long)len);
        for (size_t i = 0; i < bus->n; i++) {
                struct vmm_io_range *r = &bus->ranges[i];
                if (base < r->base + r->len && r->base < base + len)
                        return moat_make_error (err, 0, "device %s at 0x%llx overlaps %s at 0x%llx", name,
                                                (unsigned long long)base, r->name, (unsigned long long)r->base);
        }
        bus->ranges = xrealloc (bus->ranges, (bus->n + 1) * sizeof *bus->ranges);
        bus->ranges[bus->n++] = (struct vmm_io_range){base, len, fn, opaque, name};
        return 0;
}

bool
vmm_bus_access (struct vmm_io_bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
        for (size_t i = 0; i < bus->n; i++) {
                struct vmm_io_range *r = &bus->ranges[i];
                if (addr >= r->base && addr - r->base < r->len) {
                        if (len > r->len - (addr - r->base))
                                break;
                        r->fn (r->opaque, addr - r->base, data, len, is_write);
                        return true;
                }
        }
        if (!is_write)
                memset (data, 0xff, len);
        return false;
}

void
vmm_bus_free (struct vmm_io_bus *bus)
{
        free (bus->ranges);
        bus->ranges = NULL;
        bus->n = 0;
}

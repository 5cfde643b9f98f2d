/* SPDX-License-Identifier: Apache-2.0 */
/* Guest RAM: one anonymous reservation covering [0, end), with the x86
 * 32-bit MMIO hole [3 GiB, 4 GiB) left PROT_NONE when RAM exceeds 3 GiB.
 * MAP_NORESERVE: the host commits pages only when the guest touches them.
 * With a memfd, the RAM regions are MAP_SHARED windows of the file laid
 * over the same reservation. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "moat/util.h"
#include "moat/vmm.h"

int
vmm_mem_layout (uint64_t mem_size, struct moat_guest_region *regions, size_t *nregions, moat_error_t *err)
{
        if (mem_size < (2ULL << 20) || mem_size % 4096)
                return moat_make_error (err, 0,
                                        "guest memory size %llu: must be a multiple of 4 KiB and at least 2 MiB",
                                        (unsigned long long)mem_size);
        if (mem_size > (1ULL << 40))
                return moat_make_error (err, 0, "guest memory size %llu: more than 1 TiB",
                                        (unsigned long long)mem_size);
        memset (regions, 0, 2 * sizeof *regions);
        if (mem_size <= VMM_MMIO_GAP_START) {
                regions[0].gpa = 0;
                regions[0].size = mem_size;
                *nregions = 1;
                return 0;
        }
        regions[0].gpa = 0;
        regions[0].size = VMM_MMIO_GAP_START;
        regions[1].gpa = VMM_MMIO_GAP_END;
        regions[1].size = mem_size - VMM_MMIO_GAP_START;
        *nregions = 2;
        return 0;
}

int
vmm_mem_alloc (struct moat_guest_mem *mem, uint64_t mem_size, moat_error_t *err)
{
        struct moat_guest_region r[2];
        size_t n;
        if (vmm_mem_layout (mem_size, r, &n, err) < 0)
                return -1;
        uint64_t span = r[n - 1].gpa + r[n - 1].size;
        uint8_t *base = mmap (NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED)
                return moat_make_error (err, errno, "reserve %llu bytes of guest memory", (unsigned long long)span);
        for (size_t i = 0; i < n; i++) {
                r[i].host = base + r[i].gpa;
                r[i].uaddr = (uint64_t)(uintptr_t)r[i].host;
                if (mprotect (r[i].host, r[i].size, PROT_READ | PROT_WRITE) < 0) {
                        int e = errno;
                        munmap (base, span);
                        return moat_make_error (err, e, "map guest memory at 0x%llx", (unsigned long long)r[i].gpa);
                }
                madvise (r[i].host, r[i].size, MADV_DONTDUMP);
        }
        mem->regions = xmalloc (n * sizeof *mem->regions);
        memcpy (mem->regions, r, n * sizeof *r);
        mem->nregions = n;
        return 0;
}

int
vmm_mem_alloc_memfd (struct moat_guest_mem *mem, uint64_t mem_size, int *fd_out, moat_error_t *err)
{
        struct moat_guest_region r[2];
        size_t n;
        if (vmm_mem_layout (mem_size, r, &n, err) < 0)
                return -1;
        cleanup_close int fd = memfd_create ("moat-guest-ram", MFD_CLOEXEC);
        if (fd < 0)
                return moat_make_error (err, errno, "memfd_create");
        if (ftruncate (fd, mem_size) < 0)
                return moat_make_error (err, errno, "size the guest memory memfd to %llu bytes",
                                        (unsigned long long)mem_size);
        uint64_t span = r[n - 1].gpa + r[n - 1].size;
        uint8_t *base = mmap (NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED)
                return moat_make_error (err, errno, "reserve %llu bytes of guest memory", (unsigned long long)span);
        uint64_t off = 0;
        for (size_t i = 0; i < n; i++) {
                r[i].host = base + r[i].gpa;
                r[i].uaddr = (uint64_t)(uintptr_t)r[i].host;
                if (mmap (r[i].host, r[i].size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd,
                          off) == MAP_FAILED) {
                        int e = errno;
                        munmap (base, span);
                        return moat_make_error (err, e, "map guest memory at 0x%llx from the memfd",
                                                (unsigned long long)r[i].gpa);
                }
                madvise (r[i].host, r[i].size, MADV_DONTDUMP);
                off += r[i].size;
        }
        mem->regions = xmalloc (n * sizeof *mem->regions);
        memcpy (mem->regions, r, n * sizeof *r);
        mem->nregions = n;
        *fd_out = steal_fd (&fd);
        return 0;
}

void
vmm_mem_free (struct moat_guest_mem *mem)
{
        if (mem->regions == NULL)
                return;
        const struct moat_guest_region *last = &mem->regions[mem->nregions - 1];
        munmap (mem->regions[0].host, last->gpa + last->size);
        free (mem->regions);
        mem->regions = NULL;
        mem->nregions = 0;
}

uint64_t
vmm_mem_low_end (const struct moat_guest_mem *mem)
{
        uint64_t end = 0;
        for (size_t i = 0; i < mem->nregions; i++)
                if (mem->regions[i].gpa < VMM_MMIO_GAP_END && mem->regions[i].gpa + mem->regions[i].size > end)
                        end = mem->regions[i].gpa + mem->regions[i].size;
        return end;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Probe (a): serial output and the boot protocol. Prints what it finds and
 * checks it against probe.* parameters on its own command line:
 *   probe.mem=MiB          e820 RAM must end at that size (or at 4 GiB + rest)
 *   probe.initrd_size=N    ramdisk_size must be N
 *   probe.initrd_fnv=0x..  FNV-1a 32 of the initrd bytes
 *   probe.cpus=N           the MP table lists N processors
 * Exits with status 0 if every check passed, else 1. */
#include "probe.h"

static uint32_t
fnv1a (const uint8_t *p, uint64_t n)
{
        uint32_t h = 2166136261u;
        while (n--) {
                h ^= *p++;
                h *= 16777619u;
        }
        return h;
}

static int
mp_cpus (void)
{
        const uint8_t *f = (const uint8_t *)0x9fc00;
        if (memcmp (f, "_MP_", 4) != 0)
                return -1;
        uint32_t table;
        memcpy (&table, f + 4, 4);
        const uint8_t *t = (const uint8_t *)(uintptr_t)table;
        if (memcmp (t, "PCMP", 4) != 0)
                return -1;
        uint16_t len, count;
        memcpy (&len, t + 4, 2);
        memcpy (&count, t + 34, 2);
        uint8_t sum = 0;
        for (int i = 0; i < len; i++)
                sum += t[i];
        if (sum != 0)
                return -2;
        const uint8_t *e = t + 44;
        int cpus = 0;
        for (int i = 0; i < count; i++) {
                if (e[0] == 0) {
                        cpus++;
                        e += 20;
                } else {
                        e += 8;
                }
        }
        return cpus;
}

int
probe_main (struct boot_params *bp)
{
        char buf[64];
        uint64_t want;
        serial_init ();
        say ("moat-probe: hello");
        check (bp->hdr.boot_flag == 0xaa55 && bp->hdr.header == 0x53726448, "boot_params header");
        put_str ("cmdline=");
        say (cmdline (bp));
        check (strlen (cmdline (bp)) == bp->hdr.cmdline_size, "cmdline_size");

        uint64_t total = 0, top = 0;
        bool above4g = false;
        for (int i = 0; i < bp->e820_entries; i++) {
                struct boot_e820_entry *e = &bp->e820_table[i];
                put_str ("e820 ");
                put_hex (e->addr);
                put_str (" ");
                put_hex (e->size);
                put_str (" ");
                put_dec (e->type);
                put_char ('\n');
                if (e->type != 1)
                        continue;
                total += e->size;
                if (e->addr + e->size > top)
                        top = e->addr + e->size;
                if (e->addr == 0x100000000ULL)
                        above4g = true;
        }
        put_str ("ram_total_kib=");
        put_dec (total >> 10);
        put_char ('\n');
        if (cmdline_get (bp, "probe.mem", buf, sizeof buf)) {
                parse_num (buf, &want);
                uint64_t bytes = want << 20;
                if (bytes <= 0xc0000000ULL)
                        check (top == bytes, "e820 RAM ends at --memory");
                else
                        check (above4g && top == bytes + 0x40000000ULL, "e820 RAM skips the 3-4 GiB hole");
                /* everything but the EBDA-to-1MiB gap is usable */
                check (total == bytes - (0x100000 - 0x9fc00), "e820 usable RAM matches --memory");
        }
        if (cmdline_get (bp, "probe.initrd_size", buf, sizeof buf)) {
                parse_num (buf, &want);
                put_str ("initrd at ");
                put_hex (bp->hdr.ramdisk_image);
                put_str (" size ");
                put_dec (bp->hdr.ramdisk_size);
                put_char ('\n');
                check (bp->hdr.ramdisk_size == want, "initrd size");
                check ((bp->hdr.ramdisk_image & 0xfff) == 0 && bp->hdr.ramdisk_image >= 0x1000000, "initrd placement");
                if (cmdline_get (bp, "probe.initrd_fnv", buf, sizeof buf)) {
                        parse_num (buf, &want);
                        uint32_t h = fnv1a ((const uint8_t *)(uintptr_t)bp->hdr.ramdisk_image, bp->hdr.ramdisk_size);
                        check (h == want, "initrd bytes");
                }
        }
        if (cmdline_get (bp, "probe.cpus", buf, sizeof buf)) {
                parse_num (buf, &want);
                int n = mp_cpus ();
                put_str ("mptable cpus=");
                put_dec (n < 0 ? 0 : n);
                put_char ('\n');
                check (n == (int)want, "MP table processors");
        }
        return probe_report ();
}

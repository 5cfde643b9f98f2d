/* SPDX-License-Identifier: Apache-2.0 */
/* Probe (c): ends the VM the way probe.mode says:
 *   exit:N   write N to the moat exit device
 *   triple   load an empty IDT and fault: triple fault, a reset
 *   i8042    command 0xfe on port 0x64: a reset
 *   hang     spin forever (the host stops the VMM with a signal) */
#include "probe.h"

int
probe_main (struct boot_params *bp)
{
        char mode[32];
        serial_init ();
        if (!cmdline_get (bp, "probe.mode", mode, sizeof mode)) {
                say ("moat-probe: no probe.mode");
                return 1;
        }
        put_str ("moat-probe: shutdown mode ");
        say (mode);
        if (memcmp (mode, "exit:", 5) == 0) {
                uint64_t n;
                parse_num (mode + 5, &n);
                probe_exit (n);
        }
        if (memcmp (mode, "triple", 7) == 0) {
                struct __attribute__ ((packed)) {
                        uint16_t limit;
                        uint64_t base;
                } idt = {0, 0};
                __asm__ volatile("lidt %0; ud2" : : "m"(idt));
        }
        if (memcmp (mode, "i8042", 6) == 0)
                outb (0x64, 0xfe);
        if (memcmp (mode, "hang", 5) == 0) {
                say ("moat-probe: spinning");
                for (;;)
                        __asm__ volatile("pause");
        }
        say ("moat-probe: still running after the shutdown attempt");
        return 1;
}

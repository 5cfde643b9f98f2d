/* SPDX-License-Identifier: Apache-2.0 */
/* Probe for bench/vmm.sh: one line on COM1, then spin until killed. Does
 * not read boot_params (under PVH there are none). */
#include "probe.h"

int
probe_main (struct boot_params *bp)
{
        say ("moat-probe: up");
        for (;;)
                __asm__ volatile("pause");
        return 0;
}

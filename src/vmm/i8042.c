/* SPDX-License-Identifier: Apache-2.0 */
/* The i8042 keyboard controller, reduced to what a guest uses to reset:
 * command 0xfe on port 0x64 pulses the CPU reset line. Status reads say
 * "no data"; everything else is ignored. */
#include "moat/vmm.h"
#include "moat/vmm_dev.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_CMD_RESET 0xfe

static void
i8042_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
        struct vmm *vm = opaque;
        if (!is_write) {
                for (uint32_t i = 0; i < len; i++)
                        data[i] = 0;
                return;
        }
        if (off == I8042_CMD - I8042_DATA && data[0] == I8042_CMD_RESET)
                vmm_request_stop (vm, VMM_EXIT_REBOOT, "guest reset through the i8042");
}

int
vmm_i8042_attach (struct vmm *vm, moat_error_t *err)
{
        return vmm_bus_add (&vm->pio, I8042_DATA, 5, i8042_io, vm, "i8042", err);
}

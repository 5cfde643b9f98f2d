/* SPDX-License-Identifier: Apache-2.0 */
/* The moat exit device: a guest (a probe, or a kernel with a tiny driver)
 * writes one status byte to port 0x501 and moat-vmm exits: 0 is a power
 * off (exit 0), s in 1..111 exits with 16+s, larger values with 127.
 * Reading the port returns 'M' so a guest can detect the device. */
#include "moat/vmm.h"
#include "moat/vmm_dev.h"
#include "moat/vmm_devices.h"

int
vmm_exit_status_code (uint8_t status)
{
        if (status == 0)
                return VMM_EXIT_POWEROFF;
        if (status > VMM_EXIT_STATUS_MAX - VMM_EXIT_STATUS_BASE)
                return VMM_EXIT_STATUS_MAX;
        return VMM_EXIT_STATUS_BASE + status;
}

static void
exitdev_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
        struct vmm *vm = opaque;
        if (!is_write) {
                for (uint32_t i = 0; i < len; i++)
                        data[i] = 'M';
                return;
        }
        int code = vmm_exit_status_code (data[0]);
        if (code == VMM_EXIT_POWEROFF)
                vmm_request_stop (vm, code, NULL);
        else
                vmm_request_stop (vm, code, "guest exit status %u", data[0]);
}

static int
exitdev_attach (struct vmm *vm, struct vmm_dev_env *env, size_t i, moat_error_t *err)
{
        return vmm_bus_add (&vm->pio, VMM_EXIT_PORT, 1, exitdev_io, vm, "exit", err);
}

const struct vmm_device vmm_dev_exit = {
        .name = "exit",
        .attach = exitdev_attach,
};

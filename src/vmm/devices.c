/* SPDX-License-Identifier: Apache-2.0 */
/* The device registry (moat/vmm_devices.h): which devices moat-vmm has, in
 * which order they attach, and the one place that hands virtio-mmio
 * devices their window and IRQ and announces them to the guest kernel. */
#include <string.h>

#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_devices.h"
#include "moat/vmm_virtio.h"

const struct vmm_device *const vmm_devices[] = {
        &vmm_dev_serial,       &vmm_dev_i8042,     &vmm_dev_exit,       &vmm_dev_virtio_rng,
        &vmm_dev_virtio_vsock, &vmm_dev_virtio_9p, &vmm_dev_virtio_net, &vmm_dev_virtio_console,
};
const size_t vmm_ndevices = sizeof vmm_devices / sizeof vmm_devices[0];

static void
append_arg (char **cmdline, const char *arg)
{
        char *n = xasprintf_r ("%s%s%s", *cmdline, **cmdline ? " " : "", arg);
        free (*cmdline);
        *cmdline = n;
}

static int
attach_virtio (struct vmm *vm, const struct vmm_device *d, struct vmm_dev_env *env, size_t i, char **cmdline,
               moat_error_t *err)
{
        uint64_t base;
        uint32_t irq;
        vmm_alloc_mmio (vm, &base, &irq);
        struct vmm_virtio_mmio *m = d->virtio_new (vm, env, i, base, irq, err);
        if (m == NULL)
                return -1;
        /* From here on vmm_virtio_free_all frees m. */
        if (vmm_virtio_mmio_attach (vm, m, err) < 0)
                return -1;
        if (d->virtio_start && d->virtio_start (vm, m, err) < 0)
                return -1;
        append_arg (cmdline, m->cmdline_arg);
        return 0;
}

int
vmm_devices_attach (struct vmm *vm, struct vmm_dev_env *env, char **cmdline, moat_error_t *err)
{
        *cmdline = xstrdup (env->cfg->cmdline ? env->cfg->cmdline : "");
        for (size_t k = 0; k < vmm_ndevices; k++) {
                const struct vmm_device *d = vmm_devices[k];
                size_t n = d->count ? d->count (env) : 1;
                for (size_t i = 0; i < n; i++) {
                        if (d->attach) {
                                if (d->attach (vm, env, i, err) < 0)
                                        return -1;
                                continue;
                        }
                        if (attach_virtio (vm, d, env, i, cmdline, err) < 0) {
                                char label[VMM_VIRTIO_9P_TAG_MAX + 32];
                                if (d->label)
                                        d->label (env, i, label, sizeof label);
                                else
                                        snprintf (label, sizeof label, "%s", d->name);
                                return moat_error_wrap (err, "%s", label);
                        }
                }
        }
        return 0;
}

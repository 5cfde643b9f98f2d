/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's device registry. Every device file declares one struct
 * vmm_device; src/vmm/devices.c lists them in attach order. For each device
 * the configuration asks for, vmm_devices_attach puts the instances on the
 * VM: port-I/O devices attach themselves at their fixed ports; virtio-mmio
 * devices get the next 4 KiB MMIO window and IRQ from the registry, are
 * placed on the MMIO bus, started, and announced on the kernel command line
 * (virtio_mmio.device=4K@BASE:IRQ) in that order. */
#ifndef MOAT_VMM_DEVICES_H
#define MOAT_VMM_DEVICES_H

#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"
#include "moat/vmm_dev.h"

struct vmm;
struct vmm_config;
struct vmm_virtio_mmio;

/* What the devices are made from: the configuration, the fds main opened
 * for it, and the state of the port-I/O devices (it must outlive the VM). */
struct vmm_dev_env {
        const struct vmm_config *cfg;
        int serial_fd;  /* COM1 output */
        int console_fd; /* virtio-console output; -1: no virtio-console */
        struct vmm_serial serial;
        struct vmm_i8042 i8042;
};

struct vmm_device {
        const char *name; /* "virtio-9p"; errors of virtio devices start with it */
        /* Instances the configuration asks for; NULL: always one. */
        size_t (*count) (const struct vmm_dev_env *env);
        /* A port-I/O device: attaches instance i. */
        int (*attach) (struct vmm *vm, struct vmm_dev_env *env, size_t i, moat_error_t *err);
        /* A virtio-mmio device: makes instance i for the window at base and
         * the interrupt irq; NULL with err on failure. */
        struct vmm_virtio_mmio *(*virtio_new) (struct vmm *vm, struct vmm_dev_env *env, size_t i, uint64_t base,
                                               uint32_t irq, moat_error_t *err);
        /* Optional: once the device is on the bus (threads, worker processes,
         * event-loop fds). */
        int (*virtio_start) (struct vmm *vm, struct vmm_virtio_mmio *m, moat_error_t *err);
        /* Optional: the name errors give instance i ("virtio-9p TAG"). */
        void (*label) (const struct vmm_dev_env *env, size_t i, char *buf, size_t len);
};

/* Each in its device's file. */
extern const struct vmm_device vmm_dev_serial, vmm_dev_i8042, vmm_dev_exit;
extern const struct vmm_device vmm_dev_virtio_rng, vmm_dev_virtio_vsock, vmm_dev_virtio_9p, vmm_dev_virtio_net,
        vmm_dev_virtio_console;

/* The registry, in attach order (which fixes MMIO windows and IRQs). */
extern const struct vmm_device *const vmm_devices[];
extern const size_t vmm_ndevices;

/* Attaches every configured device; *cmdline (malloc'd) is the configured
 * kernel command line with the devices' arguments appended. */
int vmm_devices_attach (struct vmm *vm, struct vmm_dev_env *env, char **cmdline, moat_error_t *err);

#endif

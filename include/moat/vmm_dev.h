/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's legacy devices: 8250 UART, i8042 reset line, moat exit device.
 * Each is a state machine behind a bus callback; the VM is reached only
 * through the callbacks given at init, so they are testable without KVM. */
#ifndef MOAT_VMM_DEV_H
#define MOAT_VMM_DEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"

struct vmm;

/* ---- 8250/16550A UART ---- */
#define SERIAL_RX_SIZE 64
typedef void (*vmm_irq_fn) (void *opaque, int level);
struct vmm_serial {
        pthread_mutex_t lock;
        uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
        bool thr_ipending;
        uint8_t rx[SERIAL_RX_SIZE];
        unsigned rx_head, rx_len;
        int out_fd; /* -1: output dropped */
        vmm_irq_fn irq;
        void *irq_opaque;
        int irq_level;
        uint64_t tx_bytes;
};
void vmm_serial_init (struct vmm_serial *s, int out_fd, vmm_irq_fn irq, void *irq_opaque);
void vmm_serial_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* Queues input bytes for the guest; returns how many fit. */
size_t vmm_serial_input (struct vmm_serial *s, const uint8_t *buf, size_t n);
/* COM1 on the VM's port bus, IRQ 4 through KVM_IRQ_LINE; in_fd >= 0 feeds input. */
int vmm_serial_attach (struct vmm *vm, struct vmm_serial *s, int out_fd, int in_fd, moat_error_t *err);

/* ---- i8042: only the CPU reset line (port 0x64, command 0xfe) ---- */
int vmm_i8042_attach (struct vmm *vm, moat_error_t *err);

/* ---- moat exit device: 1 byte at port 0x501; writing s stops the VM ---- */
/* Maps a guest status byte to moat-vmm's exit code. */
int vmm_exit_status_code (uint8_t status);
int vmm_exitdev_attach (struct vmm *vm, moat_error_t *err);

#endif

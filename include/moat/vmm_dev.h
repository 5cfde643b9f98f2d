/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's legacy devices: 8250 UART, i8042 controller, moat exit device.
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
/* On the VM: vmm_dev_serial (moat/vmm_devices.h), COM1 with IRQ 4. */

/* ---- i8042: a PS/2 controller with both ports empty (src/vmm/i8042.c);
 * command 0xfe on port 0x64 resets the CPU ---- */
#define VMM_I8042_KBD_IRQ 1
#define VMM_I8042_AUX_IRQ 12
typedef void (*vmm_irq_line_fn) (void *opaque, uint32_t irq, int level);
struct vmm_i8042 {
        pthread_mutex_t lock;
        uint8_t ctr;     /* configuration byte (commands 0x20, 0x60) */
        uint8_t outport; /* output port (0xd0, 0xd1) */
        uint8_t out;     /* output buffer, read on port 0x60 */
        bool out_full, out_aux, out_timeout;
        uint8_t pending; /* command waiting for its parameter byte, 0: none */
        bool last_was_cmd;
        int kbd_irq_level, aux_irq_level;
        vmm_irq_line_fn irq;
        void (*reset) (void *opaque); /* the guest pulsed the reset line */
        void *opaque;
};
void vmm_i8042_init (struct vmm_i8042 *k, vmm_irq_line_fn irq, void (*reset) (void *opaque), void *opaque);
/* The bus callback for ports 0x60-0x64 (offset 0 is 0x60). */
void vmm_i8042_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write);
/* On the VM: vmm_dev_i8042 (moat/vmm_devices.h). */

/* ---- moat exit device: 1 byte at port 0x501; writing s stops the VM ---- */
/* Maps a guest status byte to moat-vmm's exit code. */
int vmm_exit_status_code (uint8_t status);
/* On the VM: vmm_dev_exit (moat/vmm_devices.h). */

#endif

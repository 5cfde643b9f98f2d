/* SPDX-License-Identifier: Apache-2.0 */
/* The i8042 keyboard controller (ports 0x60 and 0x64), a PS/2 controller
 * with nothing plugged into either port. It answers the controller commands
 * a guest driver sends while probing (read/write the configuration byte,
 * self-test, interface tests, port enable/disable, loopback), so Linux's
 * i8042 probe finishes at once instead of waiting 0.5 s for a reply; a byte
 * sent to the keyboard or the mouse gets the controller's "no device"
 * answer (0xfe with the time-out status bit) and the guest finds nothing.
 * Command 0xfe on port 0x64 pulses the CPU reset line: moat-vmm stops with
 * "guest reset". Ports 0x61-0x63 read 0 and ignore writes. */
#include <string.h>

#include "moat/vmm.h"
#include "moat/vmm_dev.h"
#include "moat/vmm_devices.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64

/* status register */
#define STR_OBF 0x01
#define STR_SYS 0x04
#define STR_CMDDAT 0x08
#define STR_KEYLOCK 0x10 /* set: keyboard not inhibited */
#define STR_AUXDATA 0x20
#define STR_TIMEOUT 0x40

/* controller configuration byte (CTR) */
#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20

/* controller commands */
#define CMD_READ_CTR 0x20
#define CMD_WRITE_CTR 0x60
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE 0xa8
#define CMD_AUX_TEST 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST 0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_READ_OUTPORT 0xd0
#define CMD_WRITE_OUTPORT 0xd1
#define CMD_KBD_LOOP 0xd2
#define CMD_AUX_LOOP 0xd3
#define CMD_AUX_SEND 0xd4
#define CMD_RESET 0xfe

#define SELF_TEST_OK 0x55
#define NO_DEVICE 0xfe /* with STR_TIMEOUT: the device did not answer */

/* Both ports disabled, no interrupts, no scancode translation. */
#define CTR_INITIAL (CTR_SYS | CTR_KBDDIS | CTR_AUXDIS)
#define OUTPORT_INITIAL 0x03 /* A20 on, reset line high */

static void
update_irqs (struct vmm_i8042 *k)
{
        int kbd = k->out_full && !k->out_aux && (k->ctr & CTR_KBDINT);
        int aux = k->out_full && k->out_aux && (k->ctr & CTR_AUXINT);
        if (kbd != k->kbd_irq_level) {
                k->kbd_irq_level = kbd;
                if (k->irq)
                        k->irq (k->opaque, VMM_I8042_KBD_IRQ, kbd);
        }
        if (aux != k->aux_irq_level) {
                k->aux_irq_level = aux;
                if (k->irq)
                        k->irq (k->opaque, VMM_I8042_AUX_IRQ, aux);
        }
}

/* Puts a byte in the output buffer (a newer one replaces an unread one). */
static void
output (struct vmm_i8042 *k, uint8_t v, bool aux, bool timeout)
{
        k->out = v;
        k->out_full = true;
        k->out_aux = aux;
        k->out_timeout = timeout;
}

static uint8_t
status (const struct vmm_i8042 *k)
{
        uint8_t s = STR_KEYLOCK | (k->ctr & CTR_SYS ? STR_SYS : 0);
        if (k->out_full)
                s |= STR_OBF;
        if (k->out_full && k->out_aux)
                s |= STR_AUXDATA;
        if (k->out_full && k->out_timeout)
                s |= STR_TIMEOUT;
        if (k->last_was_cmd)
                s |= STR_CMDDAT;
        return s;
}

/* false: the reset line was pulsed. */
static bool
command (struct vmm_i8042 *k, uint8_t cmd)
{
        k->pending = 0;
        switch (cmd) {
        case CMD_READ_CTR:
                output (k, k->ctr, false, false);
                break;
        case CMD_WRITE_CTR:
        case CMD_WRITE_OUTPORT:
        case CMD_KBD_LOOP:
        case CMD_AUX_LOOP:
        case CMD_AUX_SEND:
                k->pending = cmd; /* the parameter follows on port 0x60 */
                break;
        case CMD_AUX_DISABLE:
                k->ctr |= CTR_AUXDIS;
                break;
        case CMD_AUX_ENABLE:
                k->ctr &= ~CTR_AUXDIS;
                break;
        case CMD_AUX_TEST:
        case CMD_KBD_TEST:
                output (k, 0x00, false, false); /* interface lines fine */
                break;
        case CMD_SELF_TEST:
                k->ctr |= CTR_SYS;
                output (k, SELF_TEST_OK, false, false);
                break;
        case CMD_KBD_DISABLE:
                k->ctr |= CTR_KBDDIS;
                break;
        case CMD_KBD_ENABLE:
                k->ctr &= ~CTR_KBDDIS;
                break;
        case CMD_READ_OUTPORT:
                output (k, k->outport, false, false);
                break;
        case CMD_RESET:
                return false;
        default:
                break; /* unknown: ignored, as before */
        }
        return true;
}

static void
data_write (struct vmm_i8042 *k, uint8_t v)
{
        uint8_t cmd = k->pending;
        k->pending = 0;
        switch (cmd) {
        case CMD_WRITE_CTR:
                k->ctr = v;
                break;
        case CMD_WRITE_OUTPORT:
                k->outport = v;
                break;
        case CMD_KBD_LOOP:
                output (k, v, false, false);
                break;
        case CMD_AUX_LOOP:
                output (k, v, true, false);
                break;
        case CMD_AUX_SEND:
                output (k, NO_DEVICE, true, true); /* no mouse */
                break;
        default:
                output (k, NO_DEVICE, false, true); /* no keyboard */
                break;
        }
}

void
vmm_i8042_init (struct vmm_i8042 *k, vmm_irq_line_fn irq, void (*reset) (void *opaque), void *opaque)
{
        memset (k, 0, sizeof *k);
        pthread_mutex_init (&k->lock, NULL);
        k->ctr = CTR_INITIAL;
        k->outport = OUTPORT_INITIAL;
        k->irq = irq;
        k->reset = reset;
        k->opaque = opaque;
}

void
vmm_i8042_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
        struct vmm_i8042 *k = opaque;
        bool reset = false;

        if (off != 0 && off != I8042_CMD - I8042_DATA) {
                if (!is_write)
                        memset (data, 0, len);
                return;
        }
        pthread_mutex_lock (&k->lock);
        if (!is_write && off == 0) {
                data[0] = k->out;
                k->out_full = false;
        } else if (!is_write) {
                data[0] = status (k);
        } else if (off == 0) {
                k->last_was_cmd = false;
                data_write (k, data[0]);
        } else {
                k->last_was_cmd = true;
                reset = !command (k, data[0]);
        }
        if (!is_write && len > 1)
                memset (data + 1, 0, len - 1);
        update_irqs (k);
        pthread_mutex_unlock (&k->lock);
        if (reset && k->reset)
                k->reset (k->opaque);
}

static void
i8042_irq (void *opaque, uint32_t irq, int level)
{
        vmm_irq_line (opaque, irq, level);
}

static void
i8042_reset (void *opaque)
{
        vmm_request_stop (opaque, VMM_EXIT_REBOOT, "guest reset through the i8042");
}

/* On the VM's port bus, IRQs 1 and 12 through KVM_IRQ_LINE; a reset stops
 * the VM with VMM_EXIT_REBOOT. */
static int
i8042_attach (struct vmm *vm, struct vmm_dev_env *env, size_t i, moat_error_t *err)
{
        vmm_i8042_init (&env->i8042, i8042_irq, i8042_reset, vm);
        return vmm_bus_add (&vm->pio, I8042_DATA, 5, vmm_i8042_io, &env->i8042, "i8042", err);
}

const struct vmm_device vmm_dev_i8042 = {
        .name = "i8042",
        .attach = i8042_attach,
};

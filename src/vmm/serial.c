/* SPDX-License-Identifier: Apache-2.0 */
/* 8250/16550A UART at COM1. Transmission is instant (THR is always empty),
 * input comes from an fd through the event loop, the interrupt line follows
 * IIR (level: raised while an interrupt is pending). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_dev.h"
#include "moat/vmm_devices.h"

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };
#define IER_RDI 0x01
#define IER_THRI 0x02
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02

void
vmm_serial_init (struct vmm_serial *s, int out_fd, vmm_irq_fn irq, void *irq_opaque)
{
        memset (s, 0, sizeof *s);
        pthread_mutex_init (&s->lock, NULL);
        s->out_fd = out_fd;
        s->irq = irq;
        s->irq_opaque = irq_opaque;
        s->lsr = LSR_THRE | LSR_TEMT;
        s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
        s->mcr = 0x08; /* OUT2 */
        s->dll = 0x0c; /* 9600 baud */
}

static uint8_t
iir (struct vmm_serial *s)
{
        uint8_t fifo = (s->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
        if ((s->ier & IER_RDI) && s->rx_len)
                return IIR_RDI | fifo;
        if ((s->ier & IER_THRI) && s->thr_ipending)
                return IIR_THRI | fifo;
        return IIR_NONE | fifo;
}

static void
update_irq (struct vmm_serial *s)
{
        int level = (iir (s) & IIR_NONE) == 0;
        if (level != s->irq_level) {
                s->irq_level = level;
                if (s->irq)
                        s->irq (s->irq_opaque, level);
        }
}

static uint8_t
msr (struct vmm_serial *s)
{
        if (!(s->mcr & MCR_LOOP))
                return s->msr;
        /* Loopback: the modem outputs come back as inputs (Linux probes this). */
        uint8_t v = 0;
        if (s->mcr & 0x02)
                v |= MSR_CTS;
        if (s->mcr & 0x01)
                v |= MSR_DSR;
        if (s->mcr & 0x04)
                v |= MSR_RI;
        if (s->mcr & 0x08)
                v |= MSR_DCD;
        return v;
}

static void
push_rx (struct vmm_serial *s, uint8_t b)
{
        if (s->rx_len == SERIAL_RX_SIZE)
                return;
        s->rx[(s->rx_head + s->rx_len) % SERIAL_RX_SIZE] = b;
        s->rx_len++;
}

static void
write_reg (struct vmm_serial *s, unsigned off, uint8_t v)
{
        bool dlab = s->lcr & LCR_DLAB;
        switch (off) {
        case RBR_THR:
                if (dlab) {
                        s->dll = v;
                        break;
                }
                if (s->mcr & MCR_LOOP) {
                        push_rx (s, v);
                } else if (s->out_fd >= 0) {
                        if (write_all (s->out_fd, &v, 1) == 1)
                                s->tx_bytes++;
                }
                s->thr_ipending = true;
                break;
        case IER:
                if (dlab) {
                        s->dlm = v;
                        break;
                }
                if ((v & IER_THRI) && !(s->ier & IER_THRI))
                        s->thr_ipending = true; /* THR is empty: an enabled THRI fires at once */
                s->ier = v & 0x0f;
                break;
        case IIR_FCR:
                s->fcr = v & 0xc9;
                if (v & FCR_CLEAR_RX)
                        s->rx_head = s->rx_len = 0;
                break;
        case LCR:
                s->lcr = v;
                break;
        case MCR:
                s->mcr = v & 0x1f;
                break;
        case SCR:
                s->scr = v;
                break;
        default: /* LSR, MSR: read-only */
                break;
        }
}

static uint8_t
read_reg (struct vmm_serial *s, unsigned off)
{
        bool dlab = s->lcr & LCR_DLAB;
        uint8_t v;
        switch (off) {
        case RBR_THR:
                if (dlab)
                        return s->dll;
                if (s->rx_len == 0)
                        return 0;
                v = s->rx[s->rx_head];
                s->rx_head = (s->rx_head + 1) % SERIAL_RX_SIZE;
                s->rx_len--;
                return v;
        case IER:
                return dlab ? s->dlm : s->ier;
        case IIR_FCR:
                v = iir (s);
                if ((v & 0x0f) == IIR_THRI)
                        s->thr_ipending = false; /* reading IIR acknowledges THRI */
                return v;
        case LCR:
                return s->lcr;
        case MCR:
                return s->mcr;
        case LSR:
                return s->lsr | (s->rx_len ? LSR_DR : 0);
        case MSR:
                return msr (s);
        default:
                return s->scr;
        }
}

void
vmm_serial_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
        struct vmm_serial *s = opaque;
        pthread_mutex_lock (&s->lock);
        for (uint32_t i = 0; i < len && off + i < 8; i++) {
                if (is_write)
                        write_reg (s, off + i, data[i]);
                else
                        data[i] = read_reg (s, off + i);
        }
        update_irq (s);
        pthread_mutex_unlock (&s->lock);
}

size_t
vmm_serial_input (struct vmm_serial *s, const uint8_t *buf, size_t n)
{
        pthread_mutex_lock (&s->lock);
        size_t k = 0;
        while (k < n && s->rx_len < SERIAL_RX_SIZE)
                push_rx (s, buf[k++]);
        update_irq (s);
        pthread_mutex_unlock (&s->lock);
        return k;
}

static void
serial_irq (void *opaque, int level)
{
        vmm_irq_line (opaque, VMM_SERIAL_IRQ, level);
}

static void
serial_readable (void *opaque, int fd)
{
        struct vmm_serial *s = opaque;
        uint8_t buf[SERIAL_RX_SIZE];
        pthread_mutex_lock (&s->lock);
        size_t room = SERIAL_RX_SIZE - s->rx_len;
        pthread_mutex_unlock (&s->lock);
        if (room == 0)
                return; /* the guest reads slowly: level-triggered epoll calls again */
        ssize_t n = read (fd, buf, room);
        if (n > 0)
                vmm_serial_input (s, buf, n);
}

/* COM1 on the VM's port bus, IRQ 4 through KVM_IRQ_LINE; --serial-stdin
 * feeds stdin to it. */
static int
serial_attach (struct vmm *vm, struct vmm_dev_env *env, size_t i, moat_error_t *err)
{
        struct vmm_serial *s = &env->serial;
        vmm_serial_init (s, env->serial_fd, serial_irq, vm);
        if (vmm_bus_add (&vm->pio, VMM_SERIAL_COM1, 8, vmm_serial_io, s, "serial", err) < 0)
                return -1;
        if (env->cfg->serial_stdin && vmm_watch_fd (vm, STDIN_FILENO, serial_readable, s, err) < 0)
                return moat_error_wrap (err, "serial input");
        return 0;
}

const struct vmm_device vmm_dev_serial = {
        .name = "serial",
        .attach = serial_attach,
};

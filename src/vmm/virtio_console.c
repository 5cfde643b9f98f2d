/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-console (device id 3): one port, no features (no MULTIPORT, SIZE or
 * EMERG_WRITE), output only. The guest's transmit queue (1) is drained to an
 * fd from the event loop (queue ioeventfd); the receive queue (0) is never
 * filled, so the guest reads nothing. A Linux guest uses it as hvc0. */
#include <errno.h>
#include <string.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_devices.h"
#include "moat/vmm_virtio.h"

#define CONSOLE_RXQ 0
#define CONSOLE_TXQ 1

struct console {
        int out_fd;
        bool out_broken; /* write failed: keep consuming, stop writing */
        uint64_t bytes;
        struct moat_virtq_elem elem;
};

/* m->lock held. */
static void
console_notify (struct vmm_virtio_mmio *m, int q)
{
        struct console *c = m->dev;
        if (q != CONSOLE_TXQ)
                return; /* receive buffers stay with us until there is input: never */
        struct moat_virtq *vq = &m->q[CONSOLE_TXQ].vq;
        cleanup_error moat_error_t err = NULL;
        int got;
        while ((got = moat_virtq_pop (vq, &c->elem, &err)) > 0) {
                struct moat_virtq_elem *e = &c->elem;
                /* Only the device-readable part is output; writable buffers
                 * in a transmit chain are ignored. */
                for (unsigned i = 0; i < e->out_num && !c->out_broken; i++) {
                        ssize_t n = write_all (c->out_fd, e->iov[i].iov_base, e->iov[i].iov_len);
                        if (n < 0) {
                                moat_warn ("virtio-console: write: %s; output dropped from now on", strerror (errno));
                                c->out_broken = true;
                                break;
                        }
                        c->bytes += n;
                }
                moat_virtq_push (vq, e, 0);
        }
        if (got < 0)
                moat_warn ("virtio-console: %s", err->msg);
        moat_virtq_notify (vq);
}

static void
console_free (struct vmm_virtio_mmio *m)
{
        free (m->dev);
        m->dev = NULL;
}

const struct vmm_virtio_ops vmm_virtio_console_ops = {
        .name = "virtio-console",
        .device_id = VIRTIO_ID_CONSOLE,
        .features = (1ULL << MOAT_VIRTIO_F_EVENT_IDX) | (1ULL << MOAT_VIRTIO_F_INDIRECT_DESC),
        .nqueues = 2,
        .queue_max = 256,
        .queue_notify = console_notify,
        .free = console_free,
};

uint64_t
vmm_virtio_console_bytes (struct vmm_virtio_mmio *m)
{
        struct console *c = m->dev;
        pthread_mutex_lock (&m->lock);
        uint64_t n = c->bytes;
        pthread_mutex_unlock (&m->lock);
        return n;
}

struct vmm_virtio_mmio *
vmm_virtio_console_new (const struct moat_guest_mem *mem, int out_fd, uint64_t base, uint32_t irq)
{
        struct console *c = xzalloc (sizeof *c);
        c->out_fd = out_fd;
        struct vmm_virtio_mmio *m = xzalloc (sizeof *m);
        vmm_virtio_mmio_init (m, &vmm_virtio_console_ops, c, mem, base, irq);
        return m;
}

static size_t
console_count (const struct vmm_dev_env *env)
{
        return env->console_fd >= 0;
}

static struct vmm_virtio_mmio *
console_new (struct vmm *vm, struct vmm_dev_env *env, size_t i, uint64_t base, uint32_t irq, moat_error_t *err)
{
        return vmm_virtio_console_new (&vm->mem, env->console_fd, base, irq);
}

const struct vmm_device vmm_dev_virtio_console = {
        .name = "virtio-console",
        .count = console_count,
        .virtio_new = console_new,
};

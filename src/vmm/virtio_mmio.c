/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-mmio version 2 transport. */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_virtio.h"

static void
default_raise_irq (struct vmm_virtio_mmio *m)
{
        uint64_t one = 1;
        if (m->irqfd >= 0 && write (m->irqfd, &one, sizeof one) < 0)
                moat_warn ("virtio %s: irqfd: %s", m->ops->name, strerror (errno));
}

void
vmm_virtio_mmio_signal (struct vmm_virtio_mmio *m, uint32_t why)
{
        __atomic_or_fetch (m->isrp, why, __ATOMIC_SEQ_CST);
        __atomic_add_fetch (&m->interrupts, 1, __ATOMIC_SEQ_CST);
        m->raise_irq (m);
}

static void
vq_notify (struct moat_virtq *vq, void *opaque)
{
        (void)vq;
        vmm_virtio_mmio_signal (opaque, VIRTIO_INT_VRING);
}

void
vmm_virtio_mmio_init (struct vmm_virtio_mmio *m, const struct vmm_virtio_ops *ops, void *dev,
                      const struct moat_guest_mem *mem, uint64_t base, uint32_t irq)
{
        memset (m, 0, sizeof *m);
        pthread_mutex_init (&m->lock, NULL);
        m->ops = ops;
        m->dev = dev;
        m->mem = mem;
        m->base = base;
        m->irq = irq;
        m->irqfd = -1;
        m->isrp = &m->isr;
        m->raise_irq = default_raise_irq;
        m->device_features = ops->features | (1ULL << MOAT_VIRTIO_F_VERSION_1);
        for (int i = 0; i < VMM_VIRTIO_MAX_QUEUES; i++) {
                m->q[i].ioeventfd = -1;
                m->q[i].owner = m;
                m->q[i].index = i;
        }
        snprintf (m->cmdline_arg, sizeof m->cmdline_arg, "virtio_mmio.device=4K@0x%llx:%u", (unsigned long long)base,
                  irq);
}

static void
reset (struct vmm_virtio_mmio *m)
{
        for (int i = 0; i < VMM_VIRTIO_MAX_QUEUES; i++) {
                struct vmm_virtio_queue *q = &m->q[i];
                moat_virtq_stop (&q->vq);
                memset (&q->vq, 0, sizeof q->vq);
                q->num = 0;
                q->ready = false;
        }
        m->driver_features = 0;
        m->dev_feat_sel = m->drv_feat_sel = m->queue_sel = 0;
        m->status = 0;
        /* The device first (a worker process stops touching the rings and
         * raising interrupts), then the interrupt status. */
        if (m->ops->reset)
                m->ops->reset (m);
        __atomic_store_n (m->isrp, 0, __ATOMIC_SEQ_CST);
}

static struct vmm_virtio_queue *
cur_queue (struct vmm_virtio_mmio *m)
{
        return m->queue_sel < (uint32_t)m->ops->nqueues ? &m->q[m->queue_sel] : NULL;
}

static void
set_half (uint64_t *v, bool high, uint32_t x)
{
        if (high)
                *v = (*v & 0xffffffffULL) | ((uint64_t)x << 32);
        else
                *v = (*v & ~0xffffffffULL) | x;
}

static void
queue_ready (struct vmm_virtio_mmio *m, struct vmm_virtio_queue *q, uint32_t v)
{
        if (!v) {
                bool was = q->ready;
                moat_virtq_stop (&q->vq);
                q->ready = false;
                if (was && m->ops->queue_ready)
                        m->ops->queue_ready (m, q->index, false);
                return;
        }
        if (q->ready)
                return;
        cleanup_error moat_error_t err = NULL;
        q->vq.size = q->num;
        q->vq.mem = m->mem;
        q->vq.event_idx = m->driver_features & (1ULL << MOAT_VIRTIO_F_EVENT_IDX);
        q->vq.indirect = m->driver_features & (1ULL << MOAT_VIRTIO_F_INDIRECT_DESC);
        q->vq.notify = vq_notify;
        q->vq.notify_opaque = m;
        if (moat_virtq_start (&q->vq, 0, &err) < 0) {
                moat_warn ("virtio %s queue %d: %s", m->ops->name, q->index, err->msg);
                m->status |= VIRTIO_STATUS_NEEDS_RESET;
                vmm_virtio_mmio_signal (m, VIRTIO_INT_CONFIG);
                return;
        }
        q->ready = true;
        if (m->ops->queue_ready)
                m->ops->queue_ready (m, q->index, true);
}

static void
set_status (struct vmm_virtio_mmio *m, uint32_t v)
{
        if (v == 0) {
                reset (m);
                return;
        }
        if ((v & VIRTIO_STATUS_FEATURES_OK) && !(m->status & VIRTIO_STATUS_FEATURES_OK)) {
                /* Accept only what we offered, and only the modern interface. */
                if ((m->driver_features & ~m->device_features) ||
                    !(m->driver_features & (1ULL << MOAT_VIRTIO_F_VERSION_1)))
                        v &= ~VIRTIO_STATUS_FEATURES_OK;
        }
        m->status = v;
}

static uint32_t
read_reg (struct vmm_virtio_mmio *m, uint64_t off)
{
        struct vmm_virtio_queue *q = cur_queue (m);
        switch (off) {
        case VIRTIO_MMIO_MAGIC:
                return VIRTIO_MMIO_MAGIC_VALUE;
        case VIRTIO_MMIO_VERSION:
                return 2;
        case VIRTIO_MMIO_DEVICE_ID:
                return m->ops->device_id;
        case VIRTIO_MMIO_VENDOR_ID:
                return VIRTIO_MMIO_VENDOR;
        case VIRTIO_MMIO_DEVICE_FEATURES:
                return m->dev_feat_sel > 1 ? 0 : (uint32_t)(m->device_features >> (32 * m->dev_feat_sel));
        case VIRTIO_MMIO_QUEUE_NUM_MAX:
                return q ? m->ops->queue_max : 0;
        case VIRTIO_MMIO_QUEUE_READY:
                return q ? q->ready : 0;
        case VIRTIO_MMIO_INTERRUPT_STATUS:
                return __atomic_load_n (m->isrp, __ATOMIC_SEQ_CST);
        case VIRTIO_MMIO_STATUS:
                return m->status;
        case VIRTIO_MMIO_QUEUE_DESC_LOW:
                return q ? (uint32_t)q->vq.desc_gpa : 0;
        case VIRTIO_MMIO_QUEUE_DESC_HIGH:
                return q ? q->vq.desc_gpa >> 32 : 0;
        case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
                return q ? (uint32_t)q->vq.avail_gpa : 0;
        case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
                return q ? q->vq.avail_gpa >> 32 : 0;
        case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
                return q ? (uint32_t)q->vq.used_gpa : 0;
        case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
                return q ? q->vq.used_gpa >> 32 : 0;
        case VIRTIO_MMIO_CONFIG_GENERATION:
                return m->config_generation;
        default:
                return 0;
        }
}

static void
write_reg (struct vmm_virtio_mmio *m, uint64_t off, uint32_t v)
{
        struct vmm_virtio_queue *q = cur_queue (m);
        /* Queue layout may change only while the queue is not ready. */
        bool q_writable = q && !q->ready;
        switch (off) {
        case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
                m->dev_feat_sel = v;
                break;
        case VIRTIO_MMIO_DRIVER_FEATURES:
                if (m->drv_feat_sel <= 1 && !(m->status & VIRTIO_STATUS_FEATURES_OK))
                        set_half (&m->driver_features, m->drv_feat_sel == 1, v);
                break;
        case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
                m->drv_feat_sel = v;
                break;
        case VIRTIO_MMIO_QUEUE_SEL:
                m->queue_sel = v;
                break;
        case VIRTIO_MMIO_QUEUE_NUM:
                if (q_writable && v <= m->ops->queue_max)
                        q->num = v;
                break;
        case VIRTIO_MMIO_QUEUE_READY:
                if (q)
                        queue_ready (m, q, v);
                break;
        case VIRTIO_MMIO_QUEUE_NOTIFY:
                /* Only reached without an ioeventfd (tests) or for a bad index. */
                if (v < (uint32_t)m->ops->nqueues && m->q[v].ready && (m->status & VIRTIO_STATUS_DRIVER_OK))
                        m->ops->queue_notify (m, v);
                break;
        case VIRTIO_MMIO_INTERRUPT_ACK:
                __atomic_and_fetch (m->isrp, ~v, __ATOMIC_SEQ_CST);
                break;
        case VIRTIO_MMIO_STATUS:
                set_status (m, v);
                break;
        case VIRTIO_MMIO_QUEUE_DESC_LOW:
        case VIRTIO_MMIO_QUEUE_DESC_HIGH:
                if (q_writable)
                        set_half (&q->vq.desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
                break;
        case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
                if (q_writable)
                        set_half (&q->vq.avail_gpa, off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH, v);
                break;
        case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
                if (q_writable)
                        set_half (&q->vq.used_gpa, off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH, v);
                break;
        default:
                break;
        }
}

void
vmm_virtio_mmio_io (void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
        struct vmm_virtio_mmio *m = opaque;
        pthread_mutex_lock (&m->lock);
        if (off >= VIRTIO_MMIO_CONFIG) {
                if (is_write)
                        ; /* no device has writable config yet */
                else if (m->ops->config_read)
                        m->ops->config_read (m, off - VIRTIO_MMIO_CONFIG, data, len);
                else
                        memset (data, 0, len);
        } else if (len != 4 || (off & 3)) {
                if (!is_write)
                        memset (data, 0, len); /* registers are 32-bit only */
        } else if (is_write) {
                uint32_t v;
                memcpy (&v, data, 4);
                write_reg (m, off, le32toh (v));
        } else {
                uint32_t v = htole32 (read_reg (m, off));
                memcpy (data, &v, 4);
        }
        pthread_mutex_unlock (&m->lock);
}

static void
ioeventfd_ready (void *opaque, int fd)
{
        struct vmm_virtio_queue *q = opaque;
        struct vmm_virtio_mmio *m = q->owner;
        uint64_t n;
        if (read (fd, &n, sizeof n) != sizeof n)
                return;
        pthread_mutex_lock (&m->lock);
        if (q->ready && (m->status & VIRTIO_STATUS_DRIVER_OK))
                m->ops->queue_notify (m, q->index);
        pthread_mutex_unlock (&m->lock);
}

int
vmm_virtio_mmio_attach (struct vmm *vm, struct vmm_virtio_mmio *m, moat_error_t *err)
{
        m->next = vm->virtio;
        vm->virtio = m; /* freed by vmm_virtio_free_all from here on */
        if (vmm_bus_add (&vm->mmio, m->base, VMM_VIRTIO_MMIO_SIZE, vmm_virtio_mmio_io, m, m->ops->name, err) < 0)
                return -1;
        for (int i = 0; i < m->ops->nqueues; i++) {
                int fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (fd < 0)
                        return moat_make_error (err, errno, "eventfd");
                m->q[i].ioeventfd = fd;
                struct kvm_ioeventfd ioe = {
                        .datamatch = i,
                        .addr = m->base + VIRTIO_MMIO_QUEUE_NOTIFY,
                        .len = 4,
                        .fd = fd,
                        .flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
                };
                if (ioctl (vm->vm_fd, KVM_IOEVENTFD, &ioe) < 0)
                        return moat_make_error (err, errno, "KVM_IOEVENTFD for queue %d", i);
                if (!m->external_notify && vmm_watch_fd (vm, fd, ioeventfd_ready, &m->q[i], err) < 0)
                        return -1;
        }
        m->irqfd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->irqfd < 0)
                return moat_make_error (err, errno, "eventfd");
        struct kvm_irqfd irqfd = {.fd = m->irqfd, .gsi = m->irq};
        if (ioctl (vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
                return moat_make_error (err, errno, "KVM_IRQFD for GSI %u", m->irq);
        return 0;
}

void
vmm_virtio_free_all (struct vmm *vm)
{
        while (vm->virtio) {
                struct vmm_virtio_mmio *m = vm->virtio;
                vm->virtio = m->next;
                for (int i = 0; i < VMM_VIRTIO_MAX_QUEUES; i++) {
                        moat_virtq_stop (&m->q[i].vq);
                        moat_cleanup_closep (&m->q[i].ioeventfd);
                }
                moat_cleanup_closep (&m->irqfd);
                if (m->ops->free)
                        m->ops->free (m);
                free (m);
        }
}

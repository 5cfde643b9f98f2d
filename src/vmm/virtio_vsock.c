/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-vsock (device id 19) over virtio-mmio: moat's transport-independent
 * vsock device (moat/vsock.h) attached in-process. The host side is the
 * hybrid-vsock Unix socket.
 *
 * Threads: everything the device does runs under the transport's lock
 * (m->lock). Queue kicks arrive from the event loop through the queue
 * ioeventfds (the transport takes the lock); host socket activity and the
 * device's timeouts arrive through two more fds on the same event loop: the
 * device's epoll fd and a timerfd re-armed from moat_vsock_next_timeout after
 * every call into the device. vCPU threads only take the lock for register
 * accesses (reset included). */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_devices.h"
#include "moat/vmm_virtio.h"
#include "moat/vsock.h"

#define VSOCK_NQUEUES 3

struct vsockdev {
        struct moat_vsock *vs;
        struct vmm_virtio_mmio *m;
        bool attached[VSOCK_NQUEUES];
        int timer_fd;
};

/* Hands the device the queues the driver made ready (once DRIVER_OK is set)
 * and takes back the ones it stopped. m->lock held. */
static void
sync_queues (struct vmm_virtio_mmio *m)
{
        struct vsockdev *d = m->dev;
        bool running = m->status & VIRTIO_STATUS_DRIVER_OK;
        for (unsigned i = 0; i < VSOCK_NQUEUES; i++) {
                bool want = running && m->q[i].ready && m->q[i].vq.ready;
                if (want == d->attached[i])
                        continue;
                d->attached[i] = want;
                moat_vsock_set_queue (d->vs, i, want ? &m->q[i].vq : NULL);
        }
}

/* m->lock held. */
static void
rearm_timer (struct vsockdev *d)
{
        int ms = moat_vsock_next_timeout (d->vs);
        struct itimerspec its = {0};
        if (ms >= 0) {
                /* 0 would disarm: an expired deadline fires at once instead. */
                its.it_value.tv_sec = ms / 1000;
                its.it_value.tv_nsec = (ms % 1000) * 1000000L + (ms == 0);
        }
        if (timerfd_settime (d->timer_fd, 0, &its, NULL) < 0)
                moat_warn ("virtio-vsock: timerfd_settime: %s", strerror (errno));
}

static void
vsock_config_read (struct vmm_virtio_mmio *m, uint64_t off, uint8_t *data, uint32_t len)
{
        struct vsockdev *d = m->dev;
        if (off > UINT32_MAX) {
                memset (data, 0, len);
                return;
        }
        moat_vsock_get_config (d->vs, off, data, len);
}

static void
vsock_queue_notify (struct vmm_virtio_mmio *m, int q)
{
        struct vsockdev *d = m->dev;
        sync_queues (m);
        if (q < VSOCK_NQUEUES && d->attached[q])
                moat_vsock_kick (d->vs, q);
        rearm_timer (d);
}

static void
vsock_reset (struct vmm_virtio_mmio *m)
{
        struct vsockdev *d = m->dev;
        for (unsigned i = 0; i < VSOCK_NQUEUES; i++) {
                if (d->attached[i])
                        moat_vsock_set_queue (d->vs, i, NULL);
                d->attached[i] = false;
        }
        moat_vsock_reset (d->vs);
        rearm_timer (d);
}

static void
vsock_free (struct vmm_virtio_mmio *m)
{
        struct vsockdev *d = m->dev;
        if (d == NULL)
                return;
        moat_vsock_free (d->vs);
        moat_cleanup_closep (&d->timer_fd);
        free (d);
        m->dev = NULL;
}

const struct vmm_virtio_ops vmm_virtio_vsock_ops = {
        .name = "virtio-vsock",
        .device_id = VIRTIO_ID_VSOCK,
        .features = (1ULL << MOAT_VIRTIO_F_EVENT_IDX) | (1ULL << MOAT_VIRTIO_F_INDIRECT_DESC),
        .nqueues = VSOCK_NQUEUES,
        .queue_max = 256,
        .config_read = vsock_config_read,
        .queue_notify = vsock_queue_notify,
        .reset = vsock_reset,
        .free = vsock_free,
};

/* Event loop: a host socket needs attention, or a deadline passed. */
static void
host_ready (void *opaque, int fd)
{
        struct vmm_virtio_mmio *m = opaque;
        struct vsockdev *d = m->dev;
        if (fd == d->timer_fd) {
                uint64_t n;
                if (read (fd, &n, sizeof n) < 0 && errno != EAGAIN)
                        moat_warn ("virtio-vsock: read timerfd: %s", strerror (errno));
        }
        pthread_mutex_lock (&m->lock);
        sync_queues (m);
        moat_vsock_poll (d->vs);
        rearm_timer (d);
        pthread_mutex_unlock (&m->lock);
}

static size_t
vsock_count (const struct vmm_dev_env *env)
{
        return env->cfg->vsock_socket != NULL;
}

static struct vmm_virtio_mmio *
vsock_new (struct vmm *vm, struct vmm_dev_env *env, size_t i, uint64_t base, uint32_t irq, moat_error_t *err)
{
        const char *uds_path = env->cfg->vsock_socket;
        uint64_t guest_cid = env->cfg->guest_cid ? env->cfg->guest_cid : MOAT_VSOCK_DEFAULT_GUEST_CID;
        if (guest_cid < 3 || guest_cid >= UINT32_MAX) {
                moat_make_error (err, 0, "guest CID %llu: must be 3 to %u", (unsigned long long)guest_cid,
                                 UINT32_MAX - 1);
                return NULL;
        }
        struct vsockdev *d = xzalloc (sizeof *d);
        d->timer_fd = timerfd_create (CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (d->timer_fd < 0) {
                free (d);
                moat_make_error (err, errno, "timerfd_create");
                return NULL;
        }
        struct moat_vsock_config cfg = {.guest_cid = guest_cid, .uds_path = uds_path};
        if (moat_vsock_new (&cfg, &d->vs, err) < 0) {
                close (d->timer_fd);
                free (d);
                moat_error_wrap (err, "hybrid vsock socket %s", uds_path);
                return NULL;
        }
        struct vmm_virtio_mmio *m = xzalloc (sizeof *m);
        vmm_virtio_mmio_init (m, &vmm_virtio_vsock_ops, d, &vm->mem, base, irq);
        d->m = m;
        return m;
}

/* The host side (the hybrid-vsock socket and the retransmit timer) is
 * served from the event loop. */
static int
vsock_start (struct vmm *vm, struct vmm_virtio_mmio *m, moat_error_t *err)
{
        struct vsockdev *d = m->dev;
        if (vmm_watch_fd (vm, moat_vsock_get_fd (d->vs), host_ready, m, err) < 0 ||
            vmm_watch_fd (vm, d->timer_fd, host_ready, m, err) < 0)
                return -1;
        return 0;
}

const struct vmm_device vmm_dev_virtio_vsock = {
        .name = "virtio-vsock",
        .count = vsock_count,
        .virtio_new = vsock_new,
        .virtio_start = vsock_start,
};

/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-rng (entropy device, id 4): fills the device-writable buffers the
 * driver offers with getrandom() bytes. Served from the event loop, so the
 * work per notification is bounded whatever the guest queues: at most
 * RNG_MAX_CHAIN bytes per chain (the used length says how many; the driver
 * asks again for more) and RNG_MAX_CHAINS chains per notification. When
 * chains are left, the device kicks its own queue (the ioeventfd the event
 * loop watches), so they are served after the loop's other work, without
 * the guest having to notify again. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_devices.h"
#include "moat/vmm_virtio.h"

struct rng {
        struct moat_virtq_elem elem;
        uint64_t bytes; /* handed out so far */
};

/* Fills at most max bytes of e's writable buffers; returns how many. */
static uint32_t
fill (struct moat_virtq_elem *e, size_t max)
{
        size_t written = 0;
        for (unsigned i = e->out_num; i < e->out_num + e->in_num && written < max; i++) {
                struct iovec *iov = &e->iov[i];
                size_t want = iov->iov_len < max - written ? iov->iov_len : max - written;
                size_t done = 0;
                while (done < want) {
                        ssize_t n = getrandom ((uint8_t *)iov->iov_base + done, want - done, 0);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                return written + done;
                        done += n;
                }
                written += done;
        }
        return written;
}

static void
rng_notify (struct vmm_virtio_mmio *m, int qi)
{
        struct rng *r = m->dev;
        struct moat_virtq *vq = &m->q[qi].vq;
        cleanup_error moat_error_t err = NULL;
        int got = 0;
        for (int chains = 0; chains < VMM_VIRTIO_RNG_MAX_CHAINS; chains++) {
                if ((got = moat_virtq_pop (vq, &r->elem, &err)) <= 0)
                        break;
                uint32_t written = fill (&r->elem, VMM_VIRTIO_RNG_MAX_CHAIN);
                r->bytes += written;
                moat_virtq_push (vq, &r->elem, written);
        }
        if (got < 0)
                moat_warn ("virtio-rng: %s", err->msg);
        moat_virtq_notify (vq);
        /* More than one notification's worth: continue on the next turn
         * of the event loop. */
        uint64_t one = 1;
        if (got > 0 && moat_virtq_has_avail (vq) && m->q[qi].ioeventfd >= 0 &&
            write (m->q[qi].ioeventfd, &one, sizeof one) < 0 && errno != EAGAIN)
                moat_warn ("virtio-rng: kick: %s", strerror (errno));
}

static void
rng_free (struct vmm_virtio_mmio *m)
{
        free (m->dev);
        m->dev = NULL;
}

const struct vmm_virtio_ops vmm_virtio_rng_ops = {
        .name = "virtio-rng",
        .device_id = VIRTIO_ID_RNG,
        .features = (1ULL << MOAT_VIRTIO_F_EVENT_IDX) | (1ULL << MOAT_VIRTIO_F_INDIRECT_DESC),
        .nqueues = 1,
        .queue_max = 256,
        .queue_notify = rng_notify,
        .free = rng_free,
};

struct vmm_virtio_mmio *
vmm_virtio_rng_new (const struct moat_guest_mem *mem)
{
        struct vmm_virtio_mmio *m = xzalloc (sizeof *m);
        vmm_virtio_mmio_init (m, &vmm_virtio_rng_ops, xzalloc (sizeof (struct rng)), mem, 0, 0);
        return m;
}

static size_t
rng_count (const struct vmm_dev_env *env)
{
        return env->cfg->rng;
}

static struct vmm_virtio_mmio *
rng_new (struct vmm *vm, struct vmm_dev_env *env, size_t i, uint64_t base, uint32_t irq, moat_error_t *err)
{
        struct vmm_virtio_mmio *m = xzalloc (sizeof *m);
        vmm_virtio_mmio_init (m, &vmm_virtio_rng_ops, xzalloc (sizeof (struct rng)), &vm->mem, base, irq);
        return m;
}

const struct vmm_device vmm_dev_virtio_rng = {
        .name = "virtio-rng",
        .count = rng_count,
        .virtio_new = rng_new,
};

/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-rng (entropy device, id 4): fills every device-writable buffer
 * the driver offers with getrandom() bytes. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

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

static void
rng_notify (struct vmm_virtio_mmio *m, int qi)
{
        struct rng *r = m->dev;
        struct moat_virtq *vq = &m->q[qi].vq;
        cleanup_error moat_error_t err = NULL;
        int got;
        while ((got = moat_virtq_pop (vq, &r->elem, &err)) > 0) {
                uint32_t written = 0;
                for (unsigned i = r->elem.out_num; i < r->elem.out_num + r->elem.in_num; i++) {
                        struct iovec *iov = &r->elem.iov[i];
                        size_t done = 0;
                        while (done < iov->iov_len) {
                                ssize_t n = getrandom ((uint8_t *)iov->iov_base + done, iov->iov_len - done, 0);
                                if (n < 0 && errno == EINTR)
                                        continue;
                                if (n <= 0)
                                        break;
                                done += n;
                        }
                        written += done;
                }
                r->bytes += written;
                moat_virtq_push (vq, &r->elem, written);
        }
        if (got < 0)
                moat_warn ("virtio-rng: %s", err->msg);
        moat_virtq_notify (vq);
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

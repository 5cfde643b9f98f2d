/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-9p (device id 9): one request queue carrying 9P2000.L messages,
 * served by moat's 9P server (moat/p9.h) confined to one host directory.
 * Config space: tag length (le16) and the mount tag. Requests are handled
 * by a worker thread: the queue notify (from the ioeventfd, on the event
 * loop) only wakes it, so slow file I/O never stalls a vCPU or the loop.
 * The worker holds the transport lock only to pop and push; a device reset
 * while a request is in flight bumps a generation so the stale reply is
 * dropped, and the server forgets its fids before the next request. */
#include <errno.h>
#include <string.h>

#include "moat/log.h"
#include "moat/p9.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_virtio.h"

#define VIRTIO_9P_MOUNT_TAG 0

struct p9dev {
        struct vmm_virtio_mmio *m;
        struct moat_p9_server *srv;
        uint8_t config[2 + VMM_VIRTIO_9P_TAG_MAX];
        size_t config_len;

        pthread_t thread;
        bool started;
        pthread_mutex_t wlock; /* kicked, stop */
        pthread_cond_t wcond;
        bool kicked, stop;

        /* under m->lock */
        uint64_t generation;
        bool reset_pending;

        uint64_t requests; /* served, for stats and tests */
        struct moat_virtq_elem elem;
        uint8_t *req, *resp;
};

static void
p9_config_read (struct vmm_virtio_mmio *m, uint64_t off, uint8_t *data, uint32_t len)
{
        struct p9dev *d = m->dev;
        for (uint32_t i = 0; i < len; i++)
                data[i] = off + i < d->config_len ? d->config[off + i] : 0;
}

/* With m->lock held, from the event loop. */
static void
p9_queue_notify (struct vmm_virtio_mmio *m, int q)
{
        struct p9dev *d = m->dev;
        (void)q;
        pthread_mutex_lock (&d->wlock);
        d->kicked = true;
        pthread_cond_signal (&d->wcond);
        pthread_mutex_unlock (&d->wlock);
}

/* With m->lock held. */
static void
p9_reset (struct vmm_virtio_mmio *m)
{
        struct p9dev *d = m->dev;
        d->generation++;
        d->reset_pending = true;
}

/* Serves the queue until it is empty. */
static void
serve (struct p9dev *d)
{
        struct vmm_virtio_mmio *m = d->m;
        struct moat_virtq *vq = &m->q[0].vq;
        for (;;) {
                cleanup_error moat_error_t err = NULL;
                pthread_mutex_lock (&m->lock);
                if (d->reset_pending) {
                        d->reset_pending = false;
                        moat_p9_reset (d->srv); /* only this thread uses srv */
                }
                uint64_t gen = d->generation;
                int got = m->q[0].ready ? moat_virtq_pop (vq, &d->elem, &err) : 0;
                pthread_mutex_unlock (&m->lock);
                if (got < 0)
                        moat_warn ("virtio-9p: %s", err->msg);
                if (got <= 0)
                        return;

                struct moat_virtq_elem *e = &d->elem;
                size_t req_len = e->out_len < MOAT_P9_MAX_MSIZE ? e->out_len : MOAT_P9_MAX_MSIZE;
                req_len = moat_iov_to_buf (e->iov, e->out_num, 0, d->req, req_len);
                size_t cap = e->in_len < MOAT_P9_MAX_MSIZE ? e->in_len : MOAT_P9_MAX_MSIZE;
                size_t n = moat_p9_handle (d->srv, d->req, req_len, d->resp, cap);
                n = moat_iov_from_buf (e->iov + e->out_num, e->in_num, 0, d->resp, n);

                pthread_mutex_lock (&m->lock);
                if (gen == d->generation && m->q[0].ready) {
                        moat_virtq_push (vq, e, n);
                        moat_virtq_notify (vq);
                }
                d->requests++;
                pthread_mutex_unlock (&m->lock);
        }
}

static void *
worker (void *opaque)
{
        struct p9dev *d = opaque;
        for (;;) {
                pthread_mutex_lock (&d->wlock);
                while (!d->kicked && !d->stop)
                        pthread_cond_wait (&d->wcond, &d->wlock);
                bool stop = d->stop;
                d->kicked = false;
                pthread_mutex_unlock (&d->wlock);
                if (stop)
                        return NULL;
                serve (d);
        }
}

static void
p9_free (struct vmm_virtio_mmio *m)
{
        struct p9dev *d = m->dev;
        if (d == NULL)
                return;
        if (d->started) {
                pthread_mutex_lock (&d->wlock);
                d->stop = true;
                pthread_cond_signal (&d->wcond);
                pthread_mutex_unlock (&d->wlock);
                pthread_join (d->thread, NULL);
        }
        pthread_mutex_destroy (&d->wlock);
        pthread_cond_destroy (&d->wcond);
        moat_p9_server_free (d->srv);
        free (d->req);
        free (d->resp);
        free (d);
        m->dev = NULL;
}

const struct vmm_virtio_ops vmm_virtio_9p_ops = {
        .name = "virtio-9p",
        .device_id = VIRTIO_ID_9P,
        .features = (1ULL << VIRTIO_9P_MOUNT_TAG) | (1ULL << MOAT_VIRTIO_F_EVENT_IDX) |
                    (1ULL << MOAT_VIRTIO_F_INDIRECT_DESC),
        .nqueues = 1,
        .queue_max = 256,
        .config_read = p9_config_read,
        .queue_notify = p9_queue_notify,
        .reset = p9_reset,
        .free = p9_free,
};

/* System calls the worker makes (for moat-vmm's seccomp allowlist). */
const char *const vmm_virtio_9p_syscalls[] = {
        "openat2",  "openat",     "open",     "fcntl",     "newfstatat", "fstatfs",   "readlinkat",
        "mkdirat",  "symlinkat",  "mknodat",  "unlinkat",  "renameat",   "renameat2", "linkat",
        "fchownat", "chmod",      "fchmodat", "ftruncate", "utimensat",  "pread64",   "pwrite64",
        "lseek",    "getdents64", "fsync",    "fdatasync", "geteuid",    "close",     NULL,
};

int
vmm_virtio_9p_parse_share (const char *spec, char **tag, char **path, moat_error_t *err)
{
        const char *eq = strchr (spec, '=');
        if (eq == NULL || eq == spec || eq[1] == '\0')
                return moat_make_error (err, 0, "share `%s`: expected TAG=PATH", spec);
        size_t tl = eq - spec;
        if (tl > VMM_VIRTIO_9P_TAG_MAX)
                return moat_make_error (err, 0, "share `%s`: the tag is longer than %d bytes", spec,
                                        VMM_VIRTIO_9P_TAG_MAX);
        for (size_t i = 0; i < tl; i++)
                if ((unsigned char)spec[i] <= ' ' || (unsigned char)spec[i] >= 0x7f || spec[i] == ',')
                        return moat_make_error (err, 0, "share `%s`: the tag must be printable ASCII without spaces",
                                                spec);
        *tag = xstrndup (spec, tl);
        *path = xstrdup (eq + 1);
        return 0;
}

struct vmm_virtio_mmio *
vmm_virtio_9p_new (const struct moat_guest_mem *mem, const char *tag, const char *path, uint64_t base, uint32_t irq,
                   moat_error_t *err)
{
        size_t tl = strlen (tag);
        if (tl == 0 || tl > VMM_VIRTIO_9P_TAG_MAX) {
                moat_make_error (err, 0, "virtio-9p tag `%s`: must be 1 to %d bytes", tag, VMM_VIRTIO_9P_TAG_MAX);
                return NULL;
        }
        struct p9dev *d = xzalloc (sizeof *d);
        if (moat_p9_server_new (path, &d->srv, err) < 0) {
                free (d);
                return NULL;
        }
        d->config[0] = tl & 0xff;
        d->config[1] = tl >> 8;
        memcpy (d->config + 2, tag, tl);
        d->config_len = 2 + tl;
        d->req = xmalloc (MOAT_P9_MAX_MSIZE);
        d->resp = xmalloc (MOAT_P9_MAX_MSIZE);
        pthread_mutex_init (&d->wlock, NULL);
        pthread_cond_init (&d->wcond, NULL);
        struct vmm_virtio_mmio *m = xzalloc (sizeof *m);
        vmm_virtio_mmio_init (m, &vmm_virtio_9p_ops, d, mem, base, irq);
        d->m = m;
        int r = pthread_create (&d->thread, NULL, worker, d);
        if (r != 0) {
                moat_make_error (err, r, "virtio-9p: worker thread");
                p9_free (m);
                free (m);
                return NULL;
        }
        d->started = true;
        return m;
}

uint64_t
vmm_virtio_9p_requests (struct vmm_virtio_mmio *m)
{
        struct p9dev *d = m->dev;
        pthread_mutex_lock (&m->lock);
        uint64_t n = d->requests;
        pthread_mutex_unlock (&m->lock);
        return n;
}

int
vmm_virtio_9p_attach (struct vmm *vm, const char *tag, const char *path, struct vmm_virtio_mmio **out,
                      moat_error_t *err)
{
        uint64_t base;
        uint32_t irq;
        vmm_alloc_mmio (vm, &base, &irq);
        struct vmm_virtio_mmio *m = vmm_virtio_9p_new (&vm->mem, tag, path, base, irq, err);
        if (m == NULL)
                return -1;
        *out = m;
        return vmm_virtio_mmio_attach (vm, m, err);
}

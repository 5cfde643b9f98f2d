/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-9p (device id 9): one request queue carrying 9P2000.L messages,
 * served by moat's 9P server (moat/p9.h) confined to one host directory.
 * Config space: tag length (le16) and the mount tag.
 *
 * In moat-vmm (the device registry) requests are served by a worker
 * PROCESS, so that the VMM itself needs no file system calls and the
 * process that touches files holds no KVM fd: it is forked once guest RAM
 * is mapped MAP_SHARED from the memfd (it sees guest memory at the same
 * addresses), keeps only the share's root fd, the queue's ioeventfd (KVM
 * signals it on QueueNotify), the irqfd, a page holding the interrupt
 * status word and a control socket, closes every other fd and installs its
 * own seccomp filter (file syscalls, no ioctl, no sockets) before it reads
 * anything from the guest. The VMM keeps the virtio-mmio registers and
 * tells the worker over the control socket when the queue starts, stops or
 * the device is reset, and waits for the acknowledgement: after a reset
 * returns, the worker no longer touches the rings. That wait (on a vCPU
 * thread, under the device lock) is bounded: a worker that has not
 * answered within P9_CTL_TIMEOUT_MS (it is stuck in the file system, or
 * stopped) is killed and the VM stopped with an error, as when it dies.
 * The worker looks for control messages between two requests, so a busy
 * queue does not delay them. The worker dies with the
 * VMM (PR_SET_PDEATHSIG, EOF on the control socket); the VMM stops the VM
 * if the worker dies (pidfd on the event loop).
 *
 * vmm_virtio_9p_new (unit tests, no KVM) serves from a worker thread
 * instead: the queue notify only wakes it; it holds the transport lock only
 * to pop and push; a device reset while a request is in flight bumps a
 * generation so the stale reply is dropped, and the server forgets its fids
 * before the next request. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/p9.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_devices.h"
#include "moat/vmm_jail.h"
#include "moat/vmm_virtio.h"

#define VIRTIO_9P_MOUNT_TAG 0
/* How long a control call waits for the worker's acknowledgement. */
#define P9_CTL_TIMEOUT_MS 5000

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

        /* worker process mode */
        bool proc;
        struct vmm *vm;
        char *tag;
        pid_t pid;
        int ctl;       /* control socket to the worker; -1 once it failed */
        int ctl_owned; /* the same fd, closed by p9_free */
        int ctl_ep;    /* epoll fd watching ctl: waits with a timeout under seccomp */
        int ctl_timeout_ms;
        int pidfd;     /* readable when the worker exits */
        uint32_t *isr; /* shared page: the transport's interrupt status */
        int irqfd;     /* worker side */
};

/* VMM -> worker control messages, each acknowledged with one byte. */
enum {
        P9_CTL_START = 1, /* the queue is ready: its layout follows */
        P9_CTL_STOP,      /* the queue is no longer ready */
        P9_CTL_RESET,     /* device reset: stop and forget every fid */
};
struct p9_ctl {
        uint32_t op;
        uint16_t num;
        uint8_t event_idx, indirect;
        uint64_t desc, avail, used;
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
        if (d->proc) {
                /* Only reached without a KVM ioeventfd: pass the kick on. */
                uint64_t one = 1;
                if (write (m->q[0].ioeventfd, &one, sizeof one) < 0)
                        moat_warn ("virtio-9p %s: kick: %s", d->tag, strerror (errno));
                return;
        }
        pthread_mutex_lock (&d->wlock);
        d->kicked = true;
        pthread_cond_signal (&d->wcond);
        pthread_mutex_unlock (&d->wlock);
}

/* Waits until the worker's acknowledgement arrives, at most ctl_timeout_ms.
 * Returns 0, or -1 (no answer in time, the socket failed or EOF). */
static int
ctl_wait_ack (struct p9dev *d)
{
        int64_t deadline = now_ms () + d->ctl_timeout_ms;
        for (;;) {
                char ack;
                ssize_t n = recv (d->ctl, &ack, 1, MSG_DONTWAIT);
                if (n == 1)
                        return 0;
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                        return -1;
                int64_t left = deadline - now_ms ();
                if (left <= 0 || atomic_load (&d->vm->stopping))
                        return -1;
                struct epoll_event ev;
                if (epoll_wait (d->ctl_ep, &ev, 1, (int)left) < 0 && errno != EINTR)
                        return -1;
        }
}

/* With m->lock held (vCPU thread): one control round trip, bounded in
 * time. A worker that does not answer is treated as dead: killed (so it
 * cannot touch the rings after a reset it never acknowledged) and the VM
 * stopped with an error. */
static void
ctl_call (struct p9dev *d, const struct p9_ctl *msg)
{
        ssize_t n;
        if (d->ctl < 0)
                return;
        do
                n = send (d->ctl, msg, sizeof *msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof *msg && ctl_wait_ack (d) == 0)
                return;
        d->ctl = -1; /* closed by p9_free */
        if (d->pidfd >= 0)
                syscall (SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
        vmm_request_stop (d->vm, VMM_EXIT_ERROR, "virtio-9p %s: the worker process does not answer", d->tag);
}

/* With m->lock held. */
static void
p9_queue_ready (struct vmm_virtio_mmio *m, int q, bool on)
{
        struct p9dev *d = m->dev;
        if (!d->proc)
                return;
        struct p9_ctl msg = {.op = on ? P9_CTL_START : P9_CTL_STOP};
        if (on) {
                const struct moat_virtq *vq = &m->q[q].vq;
                msg.num = vq->size;
                msg.event_idx = vq->event_idx;
                msg.indirect = vq->indirect;
                msg.desc = vq->desc_gpa;
                msg.avail = vq->avail_gpa;
                msg.used = vq->used_gpa;
        }
        ctl_call (d, &msg);
}

/* With m->lock held. */
static void
p9_reset (struct vmm_virtio_mmio *m)
{
        struct p9dev *d = m->dev;
        if (d->proc) {
                struct p9_ctl msg = {.op = P9_CTL_RESET};
                ctl_call (d, &msg);
                return;
        }
        d->generation++;
        d->reset_pending = true;
}

/* Serves the queue until it is empty, or max requests if max > 0. */
static void
serve (struct p9dev *d, unsigned max)
{
        struct vmm_virtio_mmio *m = d->m;
        struct moat_virtq *vq = &m->q[0].vq;
        for (unsigned done = 0; max == 0 || done < max; done++) {
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
                serve (d, 0);
        }
}

static void
p9_free (struct vmm_virtio_mmio *m)
{
        struct p9dev *d = m->dev;
        if (d == NULL)
                return;
        if (d->proc) {
                /* The worker is ours to reap (nobody else may): kill it (a
                 * request may be blocked in the file system) and wait. */
                moat_cleanup_closep (&d->ctl_owned);
                moat_cleanup_closep (&d->ctl_ep);
                if (d->pidfd >= 0 && syscall (SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0) == 0)
                        while (waitpid (d->pid, NULL, 0) < 0 && errno == EINTR)
                                ;
                moat_cleanup_closep (&d->pidfd);
                if (d->isr)
                        munmap (d->isr, 4096);
                free (d->tag);
        }
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
        .queue_ready = p9_queue_ready,
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

/* The device without a worker yet. */
static struct vmm_virtio_mmio *
p9_alloc (const struct moat_guest_mem *mem, const char *tag, const char *path, uint64_t base, uint32_t irq,
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
        d->ctl = d->ctl_owned = d->ctl_ep = d->pidfd = d->irqfd = -1;
        d->ctl_timeout_ms = P9_CTL_TIMEOUT_MS;
        pthread_mutex_init (&d->wlock, NULL);
        pthread_cond_init (&d->wcond, NULL);
        struct vmm_virtio_mmio *m = xzalloc (sizeof *m);
        vmm_virtio_mmio_init (m, &vmm_virtio_9p_ops, d, mem, base, irq);
        d->m = m;
        return m;
}

struct vmm_virtio_mmio *
vmm_virtio_9p_new (const struct moat_guest_mem *mem, const char *tag, const char *path, uint64_t base, uint32_t irq,
                   moat_error_t *err)
{
        struct vmm_virtio_mmio *m = p9_alloc (mem, tag, path, base, irq, err);
        if (m == NULL)
                return NULL;
        struct p9dev *d = m->dev;
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

struct vmm_virtio_mmio *
vmm_virtio_9p_new_sync (const struct moat_guest_mem *mem, const char *tag, const char *path, uint64_t base,
                        uint32_t irq, moat_error_t *err)
{
        return p9_alloc (mem, tag, path, base, irq, err);
}

void
vmm_virtio_9p_serve_pending (struct vmm_virtio_mmio *m)
{
        struct p9dev *d = m->dev;
        pthread_mutex_lock (&d->wlock);
        bool kicked = d->kicked && !d->started && !d->proc;
        d->kicked = false;
        pthread_mutex_unlock (&d->wlock);
        /* A guest whose replies land in its own avail ring keeps the queue
         * full for ever (the worker process answers control messages
         * between requests): here one call serves at most a queue's worth. */
        if (kicked)
                serve (d, vmm_virtio_9p_ops.queue_max);
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

/* ---- the worker process ---- */

static void
proc_notify (struct moat_virtq *vq, void *opaque)
{
        struct p9dev *d = opaque;
        uint64_t one = 1;
        (void)vq;
        __atomic_or_fetch (d->isr, VIRTIO_INT_VRING, __ATOMIC_SEQ_CST);
        if (write (d->irqfd, &one, sizeof one) < 0)
                moat_warn ("virtio-9p %s worker: irqfd: %s", d->tag, strerror (errno));
}

/* Serves the queue until it is empty, or until a control message waits
 * (the VMM waits for its answer on a vCPU thread: it comes first). */
static void
proc_serve (struct p9dev *d, struct moat_virtq *vq, int ctl)
{
        while (vq->ready && !vq->broken) {
                struct pollfd p = {.fd = ctl, .events = POLLIN};
                if (poll (&p, 1, 0) != 0)
                        return; /* proc_loop answers it; it stops or restarts the queue */
                cleanup_error moat_error_t err = NULL;
                int got = moat_virtq_pop (vq, &d->elem, &err);
                if (got < 0)
                        moat_warn ("virtio-9p %s: %s", d->tag, err->msg);
                if (got <= 0)
                        return;
                struct moat_virtq_elem *e = &d->elem;
                size_t req_len = e->out_len < MOAT_P9_MAX_MSIZE ? e->out_len : MOAT_P9_MAX_MSIZE;
                req_len = moat_iov_to_buf (e->iov, e->out_num, 0, d->req, req_len);
                size_t cap = e->in_len < MOAT_P9_MAX_MSIZE ? e->in_len : MOAT_P9_MAX_MSIZE;
                size_t n = moat_p9_handle (d->srv, d->req, req_len, d->resp, cap);
                n = moat_iov_from_buf (e->iov + e->out_num, e->in_num, 0, d->resp, n);
                moat_virtq_push (vq, e, n);
                moat_virtq_notify (vq);
                d->requests++;
        }
}

static void
proc_control (struct p9dev *d, struct moat_virtq *vq, const struct p9_ctl *msg, const struct moat_guest_mem *mem)
{
        cleanup_error moat_error_t err = NULL;
        switch (msg->op) {
        case P9_CTL_START:
                memset (vq, 0, sizeof *vq);
                vq->size = msg->num;
                vq->desc_gpa = msg->desc;
                vq->avail_gpa = msg->avail;
                vq->used_gpa = msg->used;
                vq->event_idx = msg->event_idx;
                vq->indirect = msg->indirect;
                vq->mem = mem;
                vq->notify = proc_notify;
                vq->notify_opaque = d;
                if (moat_virtq_start (vq, 0, &err) < 0)
                        moat_warn ("virtio-9p %s worker: %s", d->tag, err->msg);
                break;
        case P9_CTL_RESET:
                moat_virtq_stop (vq);
                moat_p9_reset (d->srv);
                break;
        default:
                moat_virtq_stop (vq);
                break;
        }
}

/* Serves until the VMM goes away; returns the exit status. */
static int
proc_loop (struct p9dev *d, int ctl, int kick, const struct moat_guest_mem *mem)
{
        struct moat_virtq vq = {0};
        for (;;) {
                struct pollfd p[2] = {{.fd = ctl, .events = POLLIN}, {.fd = kick, .events = POLLIN}};
                if (poll (p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        moat_warn ("virtio-9p %s worker: poll: %s", d->tag, strerror (errno));
                        return 1;
                }
                if (p[0].revents) {
                        struct p9_ctl msg;
                        ssize_t n = read (ctl, &msg, sizeof msg);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n != (ssize_t)sizeof msg)
                                return 0; /* the VMM is gone */
                        proc_control (d, &vq, &msg, mem);
                        if (write (ctl, "", 1) != 1)
                                return 0;
                        if (msg.op == P9_CTL_START)
                                proc_serve (d, &vq, ctl); /* kicks that came before */
                }
                if (p[1].revents & POLLIN) {
                        uint64_t v;
                        if (read (kick, &v, sizeof v) < 0 && errno != EAGAIN)
                                return 1;
                        proc_serve (d, &vq, ctl);
                }
        }
}

static int
cmp_int (const void *a, const void *b)
{
        return *(const int *)a - *(const int *)b;
}

/* Closes every fd but the n in keep (sorted here). */
static void
close_all_but (int *keep, size_t n)
{
        qsort (keep, n, sizeof *keep, cmp_int);
        unsigned lo = 0;
        for (size_t i = 0; i < n; i++) {
                if ((unsigned)keep[i] > lo)
                        close_range (lo, keep[i] - 1, 0);
                lo = keep[i] + 1;
        }
        close_range (lo, ~0U, 0);
}

/* In the worker, when the VMM jails itself: a mount namespace of its own,
 * and the share's root fd reopened in it. The fd the VMM opened belongs to
 * the VMM's namespace, whose mounts the jail detaches: through it, the
 * binds below the share (the rootfs, volumes) would be gone. The reopened
 * directory must be the same inode. */
static int
own_namespace (int root_fd, moat_error_t *err)
{
        char link[64], path[PATH_MAX];
        struct stat a, b;
        ssize_t n;
        snprintf (link, sizeof link, "/proc/self/fd/%d", root_fd);
        n = readlink (link, path, sizeof path - 1);
        if (n <= 0 || path[0] != '/')
                return moat_make_error (err, errno, "share root: readlink %s", link);
        path[n] = '\0';
        if (fstat (root_fd, &a) < 0)
                return moat_make_error (err, errno, "share root: fstat");
        if (unshare (CLONE_NEWNS) < 0)
                return moat_make_error (err, errno, "unshare the mount namespace");
        cleanup_close int fd = open (path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return moat_make_error (err, errno, "share root: reopen %s", path);
        if (fstat (fd, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
                return moat_make_error (err, 0, "share root: %s is not the directory it was", path);
        if (dup3 (fd, root_fd, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "share root: dup3");
        return 0;
}

/* In the forked child: confine and serve. Never returns. */
static void __attribute__ ((noreturn)) proc_child (struct vmm *vm, struct p9dev *d, int ctl, pid_t vmm_pid)
{
        cleanup_error moat_error_t err = NULL;
        struct vmm_virtio_mmio *m = d->m;
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid () != vmm_pid)
                _exit (1);
        prctl (PR_SET_NAME, "moat-vmm-9p", 0, 0, 0);
        d->irqfd = m->irqfd;
        int keep[] = {STDERR_FILENO, ctl, m->q[0].ioeventfd, m->irqfd, moat_p9_server_root_fd (d->srv)};
        int kick = m->q[0].ioeventfd;
        close_all_but (keep, ARRAY_SIZE (keep));
        /* a mount namespace of its own: the VMM's jail (pivot_root) must
         * not take its view of the share away; then only the capabilities
         * that serve files with their owners, no core dumps */
        if (vmm_jail_active () && own_namespace (moat_p9_server_root_fd (d->srv), &err) < 0) {
                moat_error_print (&err, "moat-vmm: virtio-9p worker");
                _exit (1);
        }
        if (vmm_caps_keep_files (&err) < 0 || vmm_set_rlimits (&err) < 0) {
                moat_error_print (&err, "moat-vmm: virtio-9p worker");
                _exit (1);
        }
        if (vmm_seccomp_install_filter (VMM_FILTER_9P_WORKER, vm->helper_seccomp, vmm_virtio_9p_syscalls, &err) < 0) {
                moat_error_print (&err, "moat-vmm: virtio-9p worker");
                _exit (1);
        }
        /* confined: the VMM may go on (and pivot its own root) */
        if (write (ctl, "R", 1) != 1)
                _exit (1);
        _exit (proc_loop (d, ctl, kick, &vm->mem));
}

static void
worker_exited (void *opaque, int fd)
{
        struct p9dev *d = opaque;
        (void)fd;
        vmm_request_stop (d->vm, VMM_EXIT_ERROR, "virtio-9p %s: the worker process exited", d->tag);
}

static int
spawn_worker (struct vmm *vm, struct p9dev *d, moat_error_t *err)
{
        int sv[2];
        pid_t self = getpid ();
        if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return moat_make_error (err, errno, "socketpair");
        /* made now: moat-vmm's seccomp filter has no epoll_create */
        struct epoll_event ev = {.events = EPOLLIN};
        d->ctl_ep = epoll_create1 (EPOLL_CLOEXEC);
        if (d->ctl_ep < 0 || epoll_ctl (d->ctl_ep, EPOLL_CTL_ADD, sv[0], &ev) < 0) {
                int e = errno;
                close (sv[0]);
                close (sv[1]);
                return moat_make_error (err, e, "epoll for the worker's control socket");
        }
        fflush (NULL);
        pid_t pid = fork ();
        if (pid < 0) {
                int e = errno;
                close (sv[0]);
                close (sv[1]);
                return moat_make_error (err, e, "fork the worker process");
        }
        if (pid == 0) {
                close (sv[0]);
                proc_child (vm, d, sv[1], self);
        }
        close (sv[1]);
        d->ctl = d->ctl_owned = sv[0];
        d->pid = pid;
        /* Until the worker says it is confined: in its own mount namespace
         * before the VMM's jail pivots the VMM's (which would otherwise
         * take the worker's view of the share with it). Bounded. */
        if (ctl_wait_ack (d) < 0) {
                kill (pid, SIGKILL);
                return moat_make_error (err, 0, "the worker process did not start (see its error above)");
        }

        /* Only the worker opens files in the share. */
        moat_p9_server_free (d->srv);
        d->srv = NULL;
        d->pidfd = syscall (SYS_pidfd_open, pid, 0);
        if (d->pidfd < 0)
                return moat_make_error (err, errno, "pidfd_open of the worker process");
        return vmm_watch_fd (vm, d->pidfd, worker_exited, d, err);
}

/* The device in worker-process mode, not yet attached nor spawned. */
static struct vmm_virtio_mmio *
proc_alloc (struct vmm *vm, const char *tag, const char *path, uint64_t base, uint32_t irq, moat_error_t *err)
{
        struct vmm_virtio_mmio *m = p9_alloc (&vm->mem, tag, path, base, irq, err);
        if (m == NULL)
                return NULL;
        struct p9dev *d = m->dev;
        d->proc = true;
        d->vm = vm;
        d->tag = xstrdup (tag);
        d->isr = mmap (NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (d->isr == MAP_FAILED) {
                d->isr = NULL;
                moat_make_error (err, errno, "map the interrupt status page");
                p9_free (m);
                free (m);
                return NULL;
        }
        m->isrp = d->isr;
        m->external_notify = true;
        return m;
}

struct vmm_virtio_mmio *
vmm_virtio_9p_new_worker (struct vmm *vm, const char *tag, const char *path, int ctl_timeout_ms, moat_error_t *err)
{
        struct vmm_virtio_mmio *m = proc_alloc (vm, tag, path, 0, 0, err);
        if (m == NULL)
                return NULL;
        struct p9dev *d = m->dev;
        d->ctl_timeout_ms = ctl_timeout_ms;
        m->q[0].ioeventfd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
        m->irqfd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->q[0].ioeventfd < 0 || m->irqfd < 0) {
                moat_make_error (err, errno, "eventfd");
        } else if (spawn_worker (vm, d, err) == 0) {
                return m;
        }
        vmm_virtio_9p_free_worker (m);
        return NULL;
}

pid_t
vmm_virtio_9p_worker_pid (struct vmm_virtio_mmio *m)
{
        struct p9dev *d = m->dev;
        return d->pid;
}

void
vmm_virtio_9p_free_worker (struct vmm_virtio_mmio *m)
{
        moat_cleanup_closep (&m->q[0].ioeventfd);
        moat_cleanup_closep (&m->irqfd);
        m->ops->free (m);
        free (m);
}

static size_t
p9_count (const struct vmm_dev_env *env)
{
        return env->cfg->nshares;
}

static void
p9_label (const struct vmm_dev_env *env, size_t i, char *buf, size_t len)
{
        snprintf (buf, len, "virtio-9p %s", env->cfg->shares[i].tag);
}

static struct vmm_virtio_mmio *
p9_new (struct vmm *vm, struct vmm_dev_env *env, size_t i, uint64_t base, uint32_t irq, moat_error_t *err)
{
        if (vm->mem_fd < 0) {
                moat_make_error (err, 0, "the 9p worker process needs guest RAM from a memfd (--memfd)");
                return NULL;
        }
        return proc_alloc (vm, env->cfg->shares[i].tag, env->cfg->shares[i].path, base, irq, err);
}

static int
p9_start (struct vmm *vm, struct vmm_virtio_mmio *m, moat_error_t *err)
{
        return spawn_worker (vm, m->dev, err);
}

const struct vmm_device vmm_dev_virtio_9p = {
        .name = "virtio-9p",
        .count = p9_count,
        .virtio_new = p9_new,
        .virtio_start = p9_start,
        .label = p9_label,
};

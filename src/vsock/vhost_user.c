/* SPDX-License-Identifier: Apache-2.0 */
/* vhost-user backend protocol (QEMU docs/interop/vhost-user.rst): one
 * frontend connection, messages with SCM_RIGHTS fds, guest memory mapped
 * from the frontend's memfds, vrings run as moat_virtqs. The frontend is
 * not trusted more than its guest: a memory table is checked against the
 * files it comes with (a region past the end of its file would SIGBUS us
 * on first access), regions may not overlap, and ring addresses must lie
 * inside one region. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vhost_user.h"

enum {
        VU_GET_FEATURES = 1,
        VU_SET_FEATURES = 2,
        VU_SET_OWNER = 3,
        VU_RESET_OWNER = 4,
        VU_SET_MEM_TABLE = 5,
        VU_SET_LOG_BASE = 6,
        VU_SET_LOG_FD = 7,
        VU_SET_VRING_NUM = 8,
        VU_SET_VRING_ADDR = 9,
        VU_SET_VRING_BASE = 10,
        VU_GET_VRING_BASE = 11,
        VU_SET_VRING_KICK = 12,
        VU_SET_VRING_CALL = 13,
        VU_SET_VRING_ERR = 14,
        VU_GET_PROTOCOL_FEATURES = 15,
        VU_SET_PROTOCOL_FEATURES = 16,
        VU_GET_QUEUE_NUM = 17,
        VU_SET_VRING_ENABLE = 18,
        VU_GET_CONFIG = 24,
        VU_SET_CONFIG = 25,
        VU_RESET_DEVICE = 34,
};

#define VU_F_PROTOCOL_FEATURES 30
#define VU_PROTOCOL_F_MQ 0
#define VU_PROTOCOL_F_REPLY_ACK 3
#define VU_PROTOCOL_F_CONFIG 9
#define VU_PROTOCOL_F_RESET_DEVICE 13

#define VU_VERSION 1
#define VU_FLAG_VERSION_MASK 3
#define VU_FLAG_REPLY 4
#define VU_FLAG_NEED_REPLY 8
#define VU_HDR_SIZE 12
#define VU_MAX_PAYLOAD 4096
#define VU_MAX_FDS 8
#define VU_MAX_REGIONS 8
#define VU_VRING_NOFD (1u << 8)
#define VU_CONFIG_HDR 12
#define VU_CONFIG_MAX 256

#define CONN_TAG 0xffffffffu

struct vring {
        struct moat_vhost_user *vu;
        unsigned index;
        struct moat_virtq vq;
        int kick_fd, call_fd, err_fd;
        bool started; /* kick fd received, not stopped by GET_VRING_BASE */
        bool enabled; /* SET_VRING_ENABLE */
        bool running; /* handed to the device */
        bool addr_set;
        uint64_t desc_uaddr, avail_uaddr, used_uaddr;
        uint16_t base;
};

struct mapping {
        void *addr;
        size_t len;
};

struct moat_vhost_user {
        int fd;
        int epfd;
        struct moat_vhost_user_device dev;
        uint64_t features, acked_features;
        uint64_t protocol_features, acked_protocol_features;
        struct moat_guest_region regions[VU_MAX_REGIONS];
        struct mapping maps[VU_MAX_REGIONS];
        struct moat_guest_mem mem;
        struct vring vrings[MOAT_VHOST_USER_MAX_QUEUES];
};

struct msg {
        uint32_t request, flags, size;
        union {
                uint64_t u64;
                struct {
                        uint32_t index, num;
                } state;
                struct {
                        uint32_t index, flags;
                        uint64_t desc, used, avail, log;
                } addr;
                struct {
                        uint32_t nregions, padding;
                        struct {
                                uint64_t gpa, size, uaddr, mmap_offset;
                        } r[VU_MAX_REGIONS];
                } mem;
                struct {
                        uint32_t offset, size, flags;
                        uint8_t data[VU_CONFIG_MAX];
                } config;
                uint8_t raw[VU_MAX_PAYLOAD];
        } p;
        int fds[VU_MAX_FDS];
        unsigned nfds;
} __attribute__ ((packed));

static const char *
request_name (uint32_t r)
{
        static const char *names[] = {
                [1] = "GET_FEATURES",
                [2] = "SET_FEATURES",
                [3] = "SET_OWNER",
                [4] = "RESET_OWNER",
                [5] = "SET_MEM_TABLE",
                [6] = "SET_LOG_BASE",
                [7] = "SET_LOG_FD",
                [8] = "SET_VRING_NUM",
                [9] = "SET_VRING_ADDR",
                [10] = "SET_VRING_BASE",
                [11] = "GET_VRING_BASE",
                [12] = "SET_VRING_KICK",
                [13] = "SET_VRING_CALL",
                [14] = "SET_VRING_ERR",
                [15] = "GET_PROTOCOL_FEATURES",
                [16] = "SET_PROTOCOL_FEATURES",
                [17] = "GET_QUEUE_NUM",
                [18] = "SET_VRING_ENABLE",
                [19] = "SEND_RARP",
                [20] = "NET_SET_MTU",
                [21] = "SET_BACKEND_REQ_FD",
                [22] = "IOTLB_MSG",
                [23] = "SET_VRING_ENDIAN",
                [24] = "GET_CONFIG",
                [25] = "SET_CONFIG",
                [26] = "CREATE_CRYPTO_SESSION",
                [27] = "CLOSE_CRYPTO_SESSION",
                [28] = "POSTCOPY_ADVISE",
                [29] = "POSTCOPY_LISTEN",
                [30] = "POSTCOPY_END",
                [31] = "GET_INFLIGHT_FD",
                [32] = "SET_INFLIGHT_FD",
                [33] = "GPU_SET_SOCKET",
                [34] = "RESET_DEVICE",
                [35] = "VRING_KICK",
                [36] = "GET_MAX_MEM_SLOTS",
                [37] = "ADD_MEM_REG",
                [38] = "REM_MEM_REG",
                [39] = "SET_STATUS",
                [40] = "GET_STATUS",
        };
        if (r < ARRAY_SIZE (names) && names[r])
                return names[r];
        return "unknown";
}

static void
close_fd (int *fd)
{
        if (*fd >= 0)
                close (*fd);
        *fd = -1;
}

static void
ring_notify (struct moat_virtq *vq, void *opaque)
{
        struct vring *r = opaque;
        uint64_t one = 1;
        if (r->call_fd >= 0 && write (r->call_fd, &one, sizeof one) < 0 && errno != EAGAIN)
                moat_log (MOAT_LOG_WARNING, "vhost-user: signal queue %u: %s", r->index, strerror (errno));
}

static bool
has_feature (uint64_t f, unsigned bit)
{
        return (f >> bit) & 1;
}

/* Starts or stops a ring so that it runs exactly when everything is set. */
static void
ring_update (struct moat_vhost_user *vu, struct vring *r)
{
        bool enabled = r->enabled || !has_feature (vu->acked_features, VU_F_PROTOCOL_FEATURES);
        bool want = r->started && enabled && r->addr_set && r->vq.size > 0 && vu->mem.nregions > 0;

        if (r->running && !want) {
                r->base = r->vq.last_avail;
                r->running = false;
                vu->dev.set_queue (vu->dev.opaque, r->index, NULL);
                moat_virtq_stop (&r->vq);
                moat_debug ("vhost-user: queue %u stopped at %u", r->index, r->base);
        } else if (!r->running && want) {
                cleanup_error moat_error_t err = NULL;
                uint64_t n = r->vq.size;
                if (moat_gmem_uaddr_to_gpa (&vu->mem, r->desc_uaddr, 16 * n, &r->vq.desc_gpa) < 0 ||
                    moat_gmem_uaddr_to_gpa (&vu->mem, r->avail_uaddr, 6 + 2 * n, &r->vq.avail_gpa) < 0 ||
                    moat_gmem_uaddr_to_gpa (&vu->mem, r->used_uaddr, 6 + 8 * n, &r->vq.used_gpa) < 0) {
                        moat_log (MOAT_LOG_ERROR, "vhost-user: queue %u: ring addresses are not in guest memory",
                                  r->index);
                        return;
                }
                r->vq.mem = &vu->mem;
                r->vq.event_idx = has_feature (vu->acked_features, MOAT_VIRTIO_F_EVENT_IDX);
                r->vq.indirect = has_feature (vu->acked_features, MOAT_VIRTIO_F_INDIRECT_DESC);
                r->vq.notify = ring_notify;
                r->vq.notify_opaque = r;
                if (moat_virtq_start (&r->vq, r->base, &err) < 0) {
                        moat_log (MOAT_LOG_ERROR, "vhost-user: queue %u: %s", r->index, err->msg);
                        return;
                }
                r->running = true;
                moat_debug ("vhost-user: queue %u started (size %u, base %u)", r->index, r->vq.size, r->base);
                vu->dev.set_queue (vu->dev.opaque, r->index, &r->vq);
                /* buffers may have been queued before we started */
                vu->dev.kick (vu->dev.opaque, r->index);
        }
}

static void
unmap_memory (struct moat_vhost_user *vu)
{
        for (size_t i = 0; i < vu->mem.nregions; i++)
                munmap (vu->maps[i].addr, vu->maps[i].len);
        vu->mem.nregions = 0;
}

static void
stop_all (struct moat_vhost_user *vu)
{
        for (unsigned i = 0; i < vu->dev.num_queues; i++) {
                struct vring *r = &vu->vrings[i];
                bool s = r->started;
                r->started = false;
                ring_update (vu, r);
                r->started = s;
        }
}

static void
reset (struct moat_vhost_user *vu)
{
        for (unsigned i = 0; i < vu->dev.num_queues; i++) {
                struct vring *r = &vu->vrings[i];
                r->started = false;
                ring_update (vu, r);
                if (r->kick_fd >= 0)
                        epoll_ctl (vu->epfd, EPOLL_CTL_DEL, r->kick_fd, NULL);
                close_fd (&r->kick_fd);
                close_fd (&r->call_fd);
                close_fd (&r->err_fd);
                r->enabled = false;
                r->addr_set = false;
                r->base = 0;
                r->vq.size = 0;
        }
        vu->acked_features = 0;
        if (vu->dev.reset)
                vu->dev.reset (vu->dev.opaque);
}

/* Whether [a, a+alen) and [b, b+blen) share a byte (no wraparound: checked). */
static bool
overlaps (uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
        return a < b + blen && b < a + alen;
}

/* Checks region i of a SET_MEM_TABLE against its fd and the regions before
 * it. Everything in it comes from the frontend: mapping more than the file
 * holds would turn the first access past its end into SIGBUS. */
static int
check_region (struct msg *m, uint32_t i, moat_error_t *err)
{
        uint64_t gpa = m->p.mem.r[i].gpa, size = m->p.mem.r[i].size;
        uint64_t uaddr = m->p.mem.r[i].uaddr, off = m->p.mem.r[i].mmap_offset;
        struct stat st;
        if (size == 0 || off + size < off || gpa + size < gpa || uaddr + size < uaddr || size > SIZE_MAX)
                return moat_make_error (err, EINVAL,
                                        "SET_MEM_TABLE: region %u (gpa 0x%" PRIx64 ", size 0x%" PRIx64
                                        ", offset 0x%" PRIx64 ") is empty or wraps around",
                                        i, gpa, size, off);
        if (fstat (m->fds[i], &st) < 0)
                return moat_make_error (err, errno, "SET_MEM_TABLE: region %u: fstat", i);
        if (!S_ISREG (st.st_mode) || st.st_size < 0 || off > (uint64_t)st.st_size || size > (uint64_t)st.st_size - off)
                return moat_make_error (err, EINVAL,
                                        "SET_MEM_TABLE: region %u (offset 0x%" PRIx64 ", size 0x%" PRIx64
                                        ") does not fit its file of 0x%llx bytes",
                                        i, off, size, (unsigned long long)st.st_size);
        for (uint32_t k = 0; k < i; k++) {
                if (overlaps (gpa, size, m->p.mem.r[k].gpa, m->p.mem.r[k].size) ||
                    overlaps (uaddr, size, m->p.mem.r[k].uaddr, m->p.mem.r[k].size))
                        return moat_make_error (err, EINVAL, "SET_MEM_TABLE: regions %u and %u overlap", k, i);
        }
        /* A memfd the frontend could still shrink could SIGBUS us later. */
        int seals = fcntl (m->fds[i], F_GET_SEALS);
        if (seals >= 0 && !(seals & F_SEAL_SHRINK))
                moat_log (MOAT_LOG_WARNING, "vhost-user: region %u: the memfd is not sealed against shrinking", i);
        return 0;
}

static int
set_mem_table (struct moat_vhost_user *vu, struct msg *m, moat_error_t *err)
{
        uint32_t n = m->p.mem.nregions;

        if (m->size < 8 || n > VU_MAX_REGIONS || m->size < 8 + 32 * n || n != m->nfds)
                return moat_make_error (err, EINVAL, "SET_MEM_TABLE: %u regions with %u fds in %u bytes", n, m->nfds,
                                        m->size);
        /* The old table goes in any case: after a bad one there is none. */
        stop_all (vu);
        unmap_memory (vu);
        for (uint32_t i = 0; i < n; i++)
                if (check_region (m, i, err) < 0)
                        return -1;
        uint64_t page = sysconf (_SC_PAGESIZE);
        for (uint32_t i = 0; i < n; i++) {
                uint64_t size = m->p.mem.r[i].size, off = m->p.mem.r[i].mmap_offset;
                /* from the page holding the region's first byte (the file holds it all) */
                uint64_t start = off & ~(page - 1), len = size + (off - start);
                void *p = mmap (NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fds[i], start);
                if (p == MAP_FAILED) {
                        int e = errno;
                        unmap_memory (vu);
                        return moat_make_error (err, e, "SET_MEM_TABLE: mmap region %u (%" PRIu64 " bytes)", i, len);
                }
                vu->maps[i].addr = p;
                vu->maps[i].len = len;
                vu->regions[i].gpa = m->p.mem.r[i].gpa;
                vu->regions[i].size = size;
                vu->regions[i].uaddr = m->p.mem.r[i].uaddr;
                vu->regions[i].host = (uint8_t *)p + (off - start);
                vu->mem.nregions = i + 1;
                moat_debug ("vhost-user: region %u: gpa 0x%" PRIx64 " size 0x%" PRIx64 " uaddr 0x%" PRIx64, i,
                            vu->regions[i].gpa, size, vu->regions[i].uaddr);
        }
        for (unsigned i = 0; i < vu->dev.num_queues; i++)
                ring_update (vu, &vu->vrings[i]);
        return 0;
}

static struct vring *
vring_of (struct moat_vhost_user *vu, uint32_t index, moat_error_t *err)
{
        if (index >= vu->dev.num_queues) {
                moat_make_error (err, EINVAL, "queue index %u out of range (%u queues)", index, vu->dev.num_queues);
                return NULL;
        }
        return &vu->vrings[index];
}

static int
need_size (struct msg *m, uint32_t n, moat_error_t *err)
{
        if (m->size < n)
                return moat_make_error (err, EINVAL, "%s: payload of %u bytes, need %u", request_name (m->request),
                                        m->size, n);
        return 0;
}

static int
send_reply (struct moat_vhost_user *vu, struct msg *m, uint32_t size, moat_error_t *err)
{
        m->flags = VU_VERSION | VU_FLAG_REPLY;
        m->size = size;
        if (write_all (vu->fd, m, VU_HDR_SIZE + size) < 0)
                return moat_make_error (err, errno, "vhost-user: reply to %s", request_name (m->request));
        return 0;
}

static int
reply_u64 (struct moat_vhost_user *vu, struct msg *m, uint64_t v, moat_error_t *err)
{
        m->p.u64 = v;
        return send_reply (vu, m, sizeof (uint64_t), err);
}

/* Takes the fd of a SET_VRING_{KICK,CALL,ERR} message. */
static int
vring_fd (struct moat_vhost_user *vu, struct msg *m, struct vring **rp, int *fd, moat_error_t *err)
{
        if (need_size (m, 8, err) < 0)
                return -1;
        struct vring *r = vring_of (vu, m->p.u64 & 0xff, err);
        if (r == NULL)
                return -1;
        *rp = r;
        *fd = -1;
        if (m->p.u64 & VU_VRING_NOFD)
                return 0;
        if (m->nfds != 1)
                return moat_make_error (err, EINVAL, "%s without an fd", request_name (m->request));
        *fd = m->fds[0];
        m->fds[0] = -1;
        m->nfds = 0;
        return 0;
}

/* Returns 1 if the handler already replied. */
static int
handle (struct moat_vhost_user *vu, struct msg *m, moat_error_t *err)
{
        struct vring *r;
        int fd;

        moat_debug ("vhost-user: %s (%u bytes, %u fds)", request_name (m->request), m->size, m->nfds);
        switch (m->request) {
        case VU_GET_FEATURES:
                return reply_u64 (vu, m, vu->features, err) < 0 ? -1 : 1;
        case VU_SET_FEATURES:
                if (need_size (m, 8, err) < 0)
                        return -1;
                if (m->p.u64 & ~vu->features)
                        moat_log (MOAT_LOG_WARNING, "vhost-user: frontend acked unoffered features 0x%" PRIx64,
                                  m->p.u64 & ~vu->features);
                vu->acked_features = m->p.u64 & vu->features;
                moat_debug ("vhost-user: features 0x%" PRIx64 " acked", vu->acked_features);
                for (unsigned i = 0; i < vu->dev.num_queues; i++)
                        ring_update (vu, &vu->vrings[i]);
                return 0;
        case VU_GET_PROTOCOL_FEATURES:
                return reply_u64 (vu, m, vu->protocol_features, err) < 0 ? -1 : 1;
        case VU_SET_PROTOCOL_FEATURES:
                if (need_size (m, 8, err) < 0)
                        return -1;
                vu->acked_protocol_features = m->p.u64 & vu->protocol_features;
                return 0;
        case VU_SET_OWNER:
                return 0;
        case VU_RESET_OWNER:
        case VU_RESET_DEVICE:
                reset (vu);
                return 0;
        case VU_GET_QUEUE_NUM:
                return reply_u64 (vu, m, vu->dev.num_queues, err) < 0 ? -1 : 1;
        case VU_SET_MEM_TABLE:
                return set_mem_table (vu, m, err);
        case VU_SET_VRING_NUM:
                if (need_size (m, 8, err) < 0 || (r = vring_of (vu, m->p.state.index, err)) == NULL)
                        return -1;
                if (r->running)
                        return moat_make_error (err, EBUSY, "SET_VRING_NUM on running queue %u", r->index);
                if (m->p.state.num == 0 || m->p.state.num > MOAT_VIRTQ_MAX_SIZE ||
                    (m->p.state.num & (m->p.state.num - 1)))
                        return moat_make_error (err, EINVAL, "SET_VRING_NUM: bad size %u", m->p.state.num);
                r->vq.size = m->p.state.num;
                return 0;
        case VU_SET_VRING_BASE:
                if (need_size (m, 8, err) < 0 || (r = vring_of (vu, m->p.state.index, err)) == NULL)
                        return -1;
                if (r->running)
                        return moat_make_error (err, EBUSY, "SET_VRING_BASE on running queue %u", r->index);
                r->base = m->p.state.num;
                return 0;
        case VU_SET_VRING_ADDR:
                if (need_size (m, 40, err) < 0 || (r = vring_of (vu, m->p.addr.index, err)) == NULL)
                        return -1;
                r->desc_uaddr = m->p.addr.desc;
                r->avail_uaddr = m->p.addr.avail;
                r->used_uaddr = m->p.addr.used;
                r->addr_set = true;
                if (r->running) {
                        bool s = r->started;
                        r->started = false;
                        ring_update (vu, r);
                        r->started = s;
                }
                ring_update (vu, r);
                return 0;
        case VU_GET_VRING_BASE:
                if (need_size (m, 8, err) < 0 || (r = vring_of (vu, m->p.state.index, err)) == NULL)
                        return -1;
                r->started = false;
                ring_update (vu, r);
                if (r->kick_fd >= 0)
                        epoll_ctl (vu->epfd, EPOLL_CTL_DEL, r->kick_fd, NULL);
                close_fd (&r->kick_fd);
                m->p.state.num = r->base;
                return send_reply (vu, m, 8, err) < 0 ? -1 : 1;
        case VU_SET_VRING_KICK: {
                if (vring_fd (vu, m, &r, &fd, err) < 0)
                        return -1;
                if (r->kick_fd >= 0)
                        epoll_ctl (vu->epfd, EPOLL_CTL_DEL, r->kick_fd, NULL);
                close_fd (&r->kick_fd);
                if (fd < 0) {
                        moat_log (MOAT_LOG_WARNING, "vhost-user: queue %u: polling mode (no kick fd) is unsupported",
                                  r->index);
                        return 0;
                }
                r->kick_fd = fd;
                set_nonblock (fd, true);
                struct epoll_event ev = {.events = EPOLLIN, .data.u32 = r->index};
                if (epoll_ctl (vu->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                        return moat_make_error (err, errno, "epoll_ctl kick fd");
                r->started = true;
                ring_update (vu, r);
                return 0;
        }
        case VU_SET_VRING_CALL:
                if (vring_fd (vu, m, &r, &fd, err) < 0)
                        return -1;
                close_fd (&r->call_fd);
                r->call_fd = fd;
                return 0;
        case VU_SET_VRING_ERR:
                if (vring_fd (vu, m, &r, &fd, err) < 0)
                        return -1;
                close_fd (&r->err_fd);
                r->err_fd = fd;
                return 0;
        case VU_SET_VRING_ENABLE:
                if (need_size (m, 8, err) < 0 || (r = vring_of (vu, m->p.state.index, err)) == NULL)
                        return -1;
                r->enabled = m->p.state.num != 0;
                ring_update (vu, r);
                return 0;
        case VU_GET_CONFIG: {
                uint32_t off = m->p.config.offset, len = m->p.config.size;
                if (need_size (m, VU_CONFIG_HDR, err) < 0)
                        return -1;
                if (len > VU_CONFIG_MAX || m->size != VU_CONFIG_HDR + len)
                        return moat_make_error (err, EINVAL, "GET_CONFIG of %u bytes in a %u-byte message", len,
                                                m->size);
                if (vu->dev.get_config)
                        vu->dev.get_config (vu->dev.opaque, off, m->p.config.data, len);
                else
                        memset (m->p.config.data, 0, len);
                return send_reply (vu, m, VU_CONFIG_HDR + len, err) < 0 ? -1 : 1;
        }
        default:
                moat_log (MOAT_LOG_WARNING, "vhost-user: unsupported request %u (%s) ignored", m->request,
                          request_name (m->request));
                return moat_make_error (err, ENOTSUP, "unsupported request %u (%s)", m->request,
                                        request_name (m->request));
        }
}

/* 1: a message was read, 0: none pending, 2: EOF, -1: error. */
static int
read_msg (struct moat_vhost_user *vu, struct msg *m, moat_error_t *err)
{
        char control[CMSG_SPACE (VU_MAX_FDS * sizeof (int))];
        struct iovec iov = {.iov_base = m, .iov_len = VU_HDR_SIZE};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
        ssize_t n;

        m->nfds = 0;
        do
                n = recvmsg (vu->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return 0;
        if (n < 0) {
                if (errno == ECONNRESET)
                        return 2;
                return moat_make_error (err, errno, "vhost-user: recvmsg");
        }
        if (n == 0)
                return 2;
        for (struct cmsghdr *c = CMSG_FIRSTHDR (&mh); c; c = CMSG_NXTHDR (&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                unsigned k = (c->cmsg_len - CMSG_LEN (0)) / sizeof (int);
                int *fds = (int *)CMSG_DATA (c);
                for (unsigned i = 0; i < k; i++) {
                        if (m->nfds < VU_MAX_FDS)
                                m->fds[m->nfds++] = fds[i];
                        else
                                close (fds[i]);
                }
        }
        if (n < VU_HDR_SIZE && read_all (vu->fd, (char *)m + n, VU_HDR_SIZE - n) != VU_HDR_SIZE - n)
                return moat_make_error (err, EPROTO, "vhost-user: truncated header");
        if ((m->flags & VU_FLAG_VERSION_MASK) != VU_VERSION)
                return moat_make_error (err, EPROTO, "vhost-user: message version %u", m->flags & 3);
        if (m->size > VU_MAX_PAYLOAD)
                return moat_make_error (err, EPROTO, "vhost-user: %s payload of %u bytes is too large",
                                        request_name (m->request), m->size);
        if (m->size && read_all (vu->fd, &m->p, m->size) != (ssize_t)m->size)
                return moat_make_error (err, EPROTO, "vhost-user: truncated %s payload", request_name (m->request));
        if (m->size < sizeof m->p)
                memset (m->p.raw + m->size, 0, sizeof m->p - m->size);
        return 1;
}

int
moat_vhost_user_poll (struct moat_vhost_user *vu, moat_error_t *err)
{
        struct epoll_event evs[16];
        int n;

        do
                n = epoll_wait (vu->epfd, evs, ARRAY_SIZE (evs), 0);
        while (n < 0 && errno == EINTR);
        for (int i = 0; i < n; i++) {
                uint32_t tag = evs[i].data.u32;
                if (tag == CONN_TAG) {
                        for (;;) {
                                struct msg m;
                                cleanup_error moat_error_t herr = NULL;
                                int r = read_msg (vu, &m, err);
                                if (r == 0)
                                        break;
                                if (r < 0 || r == 2) {
                                        for (unsigned k = 0; r < 0 && k < m.nfds; k++)
                                                close (m.fds[k]);
                                        return r == 2 ? 1 : -1;
                                }
                                uint32_t flags = m.flags;
                                int h = handle (vu, &m, &herr);
                                for (unsigned k = 0; k < m.nfds; k++)
                                        if (m.fds[k] >= 0)
                                                close (m.fds[k]);
                                if (h < 0 && herr && herr->errno_ != ENOTSUP)
                                        moat_log (MOAT_LOG_ERROR, "vhost-user: %s", herr->msg);
                                if (h != 1 && (flags & VU_FLAG_NEED_REPLY) &&
                                    has_feature (vu->acked_protocol_features, VU_PROTOCOL_F_REPLY_ACK)) {
                                        if (reply_u64 (vu, &m, h < 0 ? 1 : 0, err) < 0)
                                                return -1;
                                }
                                if (h < 0 && herr && herr->errno_ == EPROTO)
                                        return moat_make_error (err, EPROTO, "%s", herr->msg);
                        }
                } else if (tag < vu->dev.num_queues) {
                        struct vring *r = &vu->vrings[tag];
                        uint64_t v;
                        while (r->kick_fd >= 0 && read (r->kick_fd, &v, sizeof v) == sizeof v)
                                ;
                        if (r->running)
                                vu->dev.kick (vu->dev.opaque, tag);
                }
        }
        return 0;
}

int
moat_vhost_user_new (int conn_fd, const struct moat_vhost_user_device *dev, struct moat_vhost_user **out,
                     moat_error_t *err)
{
        cleanup_close int fd = conn_fd;
        struct moat_vhost_user *vu;

        if (dev->num_queues == 0 || dev->num_queues > MOAT_VHOST_USER_MAX_QUEUES)
                return moat_make_error (err, EINVAL, "vhost-user: %u queues", dev->num_queues);
        vu = xzalloc (sizeof *vu);
        vu->dev = *dev;
        vu->mem.regions = vu->regions;
        vu->features = dev->features | (1ULL << MOAT_VIRTIO_F_VERSION_1) | (1ULL << VU_F_PROTOCOL_FEATURES) |
                       (1ULL << MOAT_VIRTIO_F_EVENT_IDX) | (1ULL << MOAT_VIRTIO_F_INDIRECT_DESC);
        vu->protocol_features = (1ULL << VU_PROTOCOL_F_MQ) | (1ULL << VU_PROTOCOL_F_REPLY_ACK) |
                                (1ULL << VU_PROTOCOL_F_CONFIG) | (1ULL << VU_PROTOCOL_F_RESET_DEVICE);
        for (unsigned i = 0; i < MOAT_VHOST_USER_MAX_QUEUES; i++) {
                vu->vrings[i].vu = vu;
                vu->vrings[i].index = i;
                vu->vrings[i].kick_fd = vu->vrings[i].call_fd = vu->vrings[i].err_fd = -1;
        }
        vu->epfd = epoll_create1 (EPOLL_CLOEXEC);
        if (vu->epfd < 0) {
                free (vu);
                return moat_make_error (err, errno, "epoll_create1");
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = CONN_TAG};
        if (epoll_ctl (vu->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int e = errno;
                close (vu->epfd);
                free (vu);
                return moat_make_error (err, e, "epoll_ctl");
        }
        vu->fd = steal_fd (&fd);
        *out = vu;
        return 0;
}

void
moat_vhost_user_free (struct moat_vhost_user *vu)
{
        if (vu == NULL)
                return;
        for (unsigned i = 0; i < vu->dev.num_queues; i++) {
                struct vring *r = &vu->vrings[i];
                r->started = false;
                ring_update (vu, r);
                close_fd (&r->kick_fd);
                close_fd (&r->call_fd);
                close_fd (&r->err_fd);
        }
        unmap_memory (vu);
        close (vu->epfd);
        close (vu->fd);
        free (vu);
}

int
moat_vhost_user_get_fd (struct moat_vhost_user *vu)
{
        return vu->epfd;
}

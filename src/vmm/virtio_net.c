/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-net (device id 1) over virtio-mmio, backed by a host tap.
 *
 * Features: MAC (plus VERSION_1, EVENT_IDX, INDIRECT_DESC). No offloads are
 * offered, so every frame is a whole Ethernet frame behind a 12-byte
 * virtio_net_hdr whose fields must be zero. The tap is opened with the same
 * 12-byte vnet header: frames cross with one copy through a bounce buffer,
 * which is where they are checked:
 *   - guest -> tap: the chain's readable part is header + frame; chains
 *     shorter than header + Ethernet header or longer than
 *     VMM_VIRTIO_NET_MAX_FRAME are dropped; the header is zeroed before the
 *     write, so the host kernel never parses a guest-supplied offload request.
 *   - tap -> guest: a frame is read only when the driver has offered a
 *     buffer; a frame that does not fit that buffer is dropped (the buffer
 *     is kept for the next one); a partial checksum the host left to the
 *     device is completed here (the driver did not negotiate GUEST_CSUM),
 *     and a segmentation offload (never enabled on the tap) drops the frame.
 *
 * Threads: one worker thread per device waits (epoll) on the two queue
 * ioeventfds, the tap fd (only while the driver has rx buffers) and a stop
 * eventfd, and moves frames under the transport lock. vCPU threads take that
 * lock only for register accesses. The worker needs read, write, epoll_wait,
 * epoll_ctl and futex: all in the VMM's base seccomp allowlist. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <linux/if_tun.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vmm.h"
#include "moat/vmm_config.h"
#include "moat/vmm_devices.h"
#include "moat/vmm_jail.h"
#include "moat/vmm_virtio.h"

#define NET_RXQ 0
#define NET_TXQ 1
#define NET_NQUEUES 2
#define ETH_HLEN 14
#define BUF_SIZE (VMM_VIRTIO_NET_HDR_LEN + VMM_VIRTIO_NET_MAX_FRAME)
#define RX_BURST 64 /* frames per round, so a flood from the host cannot starve tx */
/* Frames per round the other way: a guest whose used ring overlaps its
 * avail ring makes every push publish one more buffer, and the queue never
 * empties. Past the burst the device kicks its own queue (so the worker
 * lets go of m->lock and sees a stop in between). */
#define TX_BURST 256
#define IDLE_POLL_MS 200 /* while the driver is not running: look again this often */

#define HDR_F_NEEDS_CSUM 1
#define HDR_GSO_NONE 0

enum { EV_STOP, EV_KICK_RX, EV_KICK_TX, EV_TAP };

struct netdev {
        struct vmm_virtio_mmio *m;
        int tap_fd;
        uint8_t mac[6];
        uint8_t *buf; /* bounce buffer, BUF_SIZE */
        struct moat_virtq_elem elem;
        struct vmm_virtio_net_stats stats;
        bool rx_starved; /* running, but no rx buffer: do not poll the tap */
        bool tap_broken; /* the tap returned a hard error: stop reading it */
        /* worker thread (vmm_virtio_net_attach only) */
        int epoll_fd, stop_fd, ready_fd;
        bool tap_watched;
        pthread_t thread;
        bool thread_started;
};

int
vmm_net_parse_mac (const char *s, uint8_t mac[6], moat_error_t *err)
{
        unsigned v[6];
        int n = 0;
        if (strlen (s) != 17 ||
            sscanf (s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &n) != 6 || n != 17)
                return moat_make_error (err, 0, "MAC address `%s`: expected six hex bytes like 02:00:00:00:00:01", s);
        for (int i = 0; i < 17; i++)
                if (i % 3 == 2 ? s[i] != ':' : !strchr ("0123456789abcdefABCDEF", s[i]))
                        return moat_make_error (err, 0,
                                                "MAC address `%s`: expected six hex bytes like 02:00:00:00:00:01", s);
        if (v[0] & 1)
                return moat_make_error (err, 0, "MAC address `%s`: a multicast address cannot name a NIC", s);
        if ((v[0] | v[1] | v[2] | v[3] | v[4] | v[5]) == 0)
                return moat_make_error (err, 0, "MAC address `%s`: all zeros", s);
        for (int i = 0; i < 6; i++)
                mac[i] = v[i];
        return 0;
}

void
vmm_net_random_mac (uint8_t mac[6])
{
        uint8_t r[3] = {0};
        if (getrandom (r, sizeof r, 0) != sizeof r) {
                uint64_t t = now_ms () ^ (uint64_t)getpid () << 20;
                memcpy (r, &t, sizeof r);
        }
        mac[0] = 0x02; /* locally administered, unicast */
        mac[1] = 0x4d;
        mac[2] = 0x54;
        memcpy (mac + 3, r, 3);
}

int
vmm_tap_open (const char *name, moat_error_t *err)
{
        if (*name == '\0' || strlen (name) >= IFNAMSIZ || strchr (name, '/') || strchr (name, ' '))
                return moat_make_error (err, 0, "tap `%s`: not a valid interface name (1 to %d characters)", name,
                                        IFNAMSIZ - 1);
        cleanup_close int fd = open ("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return moat_make_error (err, errno, "tap %s: open /dev/net/tun", name);
        struct ifreq ifr = {0};
        strncpy (ifr.ifr_name, name, IFNAMSIZ - 1);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        if (ioctl (fd, TUNSETIFF, &ifr) < 0)
                return moat_make_error (err, errno, "tap %s: TUNSETIFF", name);
        int hdr = VMM_VIRTIO_NET_HDR_LEN;
        if (ioctl (fd, TUNSETVNETHDRSZ, &hdr) < 0)
                return moat_make_error (err, errno, "tap %s: TUNSETVNETHDRSZ %d", name, hdr);
        /* No checksum or segmentation offloads: the host hands us whole,
         * checksummed frames (the guest did not ask for anything else). */
        if (ioctl (fd, TUNSETOFFLOAD, 0UL) < 0)
                return moat_make_error (err, errno, "tap %s: TUNSETOFFLOAD", name);
        int ret = fd;
        fd = -1;
        return ret;
}

static void
net_config_read (struct vmm_virtio_mmio *m, uint64_t off, uint8_t *data, uint32_t len)
{
        struct netdev *d = m->dev;
        for (uint32_t i = 0; i < len; i++)
                data[i] = off + i < sizeof d->mac ? d->mac[off + i] : 0;
}

static bool
running (struct vmm_virtio_mmio *m, int q)
{
        return (m->status & VIRTIO_STATUS_DRIVER_OK) && m->q[q].ready && m->q[q].vq.ready && !m->q[q].vq.broken;
}

static uint16_t
get16 (const uint8_t *p)
{
        return (uint16_t)p[0] | (uint16_t)p[1] << 8;
}

/* Finishes a partial checksum: the 16-bit field at start+off holds the
 * pseudo-header sum; the ones' complement sum runs from start to the end. */
static bool
complete_csum (uint8_t *frame, size_t len, uint16_t start, uint16_t off)
{
        if ((size_t)start + off + 2 > len)
                return false;
        uint32_t sum = 0;
        size_t i;
        for (i = start; i + 1 < len; i += 2)
                sum += (uint32_t)frame[i] << 8 | frame[i + 1];
        if (i < len)
                sum += (uint32_t)frame[i] << 8;
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        uint16_t c = ~sum & 0xffff;
        if (c == 0)
                c = 0xffff; /* 0 would mean "no checksum" for UDP */
        frame[start + off] = c >> 8;
        frame[start + off + 1] = c & 0xff;
        return true;
}

/* Guest -> tap. m->lock held. */
static void
net_tx (struct vmm_virtio_mmio *m)
{
        struct netdev *d = m->dev;
        if (!running (m, NET_TXQ))
                return;
        struct moat_virtq *vq = &m->q[NET_TXQ].vq;
        cleanup_error moat_error_t err = NULL;
        int got = 0;
        for (int burst = 0; burst < TX_BURST && (got = moat_virtq_pop (vq, &d->elem, &err)) > 0; burst++) {
                struct moat_virtq_elem *e = &d->elem;
                if (e->out_len < VMM_VIRTIO_NET_HDR_LEN + ETH_HLEN || e->out_len > BUF_SIZE) {
                        d->stats.tx_dropped++;
                } else {
                        size_t n = moat_iov_to_buf (e->iov, e->out_num, 0, d->buf, e->out_len);
                        memset (d->buf, 0, VMM_VIRTIO_NET_HDR_LEN);
                        ssize_t w;
                        do
                                w = write (d->tap_fd, d->buf, n);
                        while (w < 0 && errno == EINTR);
                        if (w == (ssize_t)n) {
                                d->stats.tx_packets++;
                                d->stats.tx_bytes += n - VMM_VIRTIO_NET_HDR_LEN;
                        } else {
                                d->stats.tx_dropped++; /* tap down or full: Ethernet may lose frames */
                        }
                }
                moat_virtq_push (vq, e, 0);
        }
        if (got < 0)
                moat_warn ("virtio-net tx: %s", err->msg);
        moat_virtq_notify (vq);
        uint64_t one = 1;
        if (got > 0 && moat_virtq_has_avail (vq) && m->q[NET_TXQ].ioeventfd >= 0 &&
            write (m->q[NET_TXQ].ioeventfd, &one, sizeof one) < 0 && errno != EAGAIN)
                moat_warn ("virtio-net tx: kick: %s", strerror (errno));
}

/* Checks and rewrites the vnet header the tap put in front of the frame;
 * false: drop the frame. */
static bool
fix_rx_header (uint8_t *buf, size_t n)
{
        uint8_t flags = buf[0], gso_type = buf[1];
        uint16_t csum_start = get16 (buf + 6), csum_offset = get16 (buf + 8);
        if (gso_type != HDR_GSO_NONE)
                return false;
        if ((flags & HDR_F_NEEDS_CSUM) &&
            !complete_csum (buf + VMM_VIRTIO_NET_HDR_LEN, n - VMM_VIRTIO_NET_HDR_LEN, csum_start, csum_offset))
                return false;
        memset (buf, 0, VMM_VIRTIO_NET_HDR_LEN);
        buf[10] = 1; /* num_buffers (little endian): always one without MRG_RXBUF */
        return true;
}

/* Tap -> guest. m->lock held. */
static void
net_rx (struct vmm_virtio_mmio *m)
{
        struct netdev *d = m->dev;
        if (!running (m, NET_RXQ) || d->tap_broken) {
                d->rx_starved = true;
                return;
        }
        struct moat_virtq *vq = &m->q[NET_RXQ].vq;
        cleanup_error moat_error_t err = NULL;
        d->rx_starved = false;
        for (int burst = 0; burst < RX_BURST; burst++) {
                int got = moat_virtq_pop (vq, &d->elem, &err);
                if (got < 0) {
                        moat_warn ("virtio-net rx: %s", err->msg);
                        d->rx_starved = true;
                        break;
                }
                if (got == 0) {
                        d->rx_starved = true;
                        break;
                }
                ssize_t n;
                do
                        n = read (d->tap_fd, d->buf, BUF_SIZE);
                while (n < 0 && errno == EINTR);
                if (n < 0) {
                        moat_virtq_unpop (vq);
                        if (errno != EAGAIN) {
                                moat_warn ("virtio-net: read tap: %s; no more input", strerror (errno));
                                d->tap_broken = true;
                        }
                        break;
                }
                struct moat_virtq_elem *e = &d->elem;
                if ((size_t)n < VMM_VIRTIO_NET_HDR_LEN + ETH_HLEN || !fix_rx_header (d->buf, n) ||
                    e->in_len < (uint64_t)n) {
                        d->stats.rx_dropped++;
                        moat_virtq_unpop (vq);
                        continue;
                }
                size_t w = moat_iov_from_buf (e->iov + e->out_num, e->in_num, 0, d->buf, n);
                moat_virtq_push (vq, e, w);
                d->stats.rx_packets++;
                d->stats.rx_bytes += n - VMM_VIRTIO_NET_HDR_LEN;
        }
        moat_virtq_notify (vq);
}

static void
net_queue_notify (struct vmm_virtio_mmio *m, int q)
{
        net_tx (m);
        net_rx (m);
}

static void
net_reset (struct vmm_virtio_mmio *m)
{
        struct netdev *d = m->dev;
        d->rx_starved = true;
}

void
vmm_virtio_net_poll (struct vmm_virtio_mmio *m)
{
        pthread_mutex_lock (&m->lock);
        net_tx (m);
        net_rx (m);
        pthread_mutex_unlock (&m->lock);
}

void
vmm_virtio_net_get_stats (struct vmm_virtio_mmio *m, struct vmm_virtio_net_stats *out)
{
        struct netdev *d = m->dev;
        pthread_mutex_lock (&m->lock);
        *out = d->stats;
        pthread_mutex_unlock (&m->lock);
}

static void
stop_thread (struct netdev *d)
{
        if (!d->thread_started)
                return;
        uint64_t one = 1;
        if (write (d->stop_fd, &one, sizeof one) < 0)
                moat_warn ("virtio-net: stop the worker: %s", strerror (errno));
        pthread_join (d->thread, NULL);
        d->thread_started = false;
}

static void
net_free (struct vmm_virtio_mmio *m)
{
        struct netdev *d = m->dev;
        if (d == NULL)
                return;
        stop_thread (d);
        moat_cleanup_closep (&d->epoll_fd);
        moat_cleanup_closep (&d->stop_fd);
        moat_cleanup_closep (&d->tap_fd);
        free (d->buf);
        free (d);
        m->dev = NULL;
}

const struct vmm_virtio_ops vmm_virtio_net_ops = {
        .name = "virtio-net",
        .device_id = VIRTIO_ID_NET,
        .features = (1ULL << VMM_VIRTIO_NET_F_MAC) | (1ULL << MOAT_VIRTIO_F_EVENT_IDX) |
                    (1ULL << MOAT_VIRTIO_F_INDIRECT_DESC),
        .nqueues = NET_NQUEUES,
        .queue_max = 256,
        .config_read = net_config_read,
        .queue_notify = net_queue_notify,
        .reset = net_reset,
        .free = net_free,
};

static struct netdev *
netdev_new (int tap_fd, const uint8_t mac[6])
{
        struct netdev *d = xzalloc (sizeof *d);
        d->tap_fd = tap_fd;
        d->epoll_fd = d->stop_fd = d->ready_fd = -1;
        d->rx_starved = true;
        memcpy (d->mac, mac, 6);
        d->buf = xmalloc (BUF_SIZE);
        return d;
}

struct vmm_virtio_mmio *
vmm_virtio_net_new (const struct moat_guest_mem *mem, int tap_fd, const uint8_t mac[6], uint64_t base, uint32_t irq)
{
        struct netdev *d = netdev_new (tap_fd, mac);
        struct vmm_virtio_mmio *m = xzalloc (sizeof *m);
        vmm_virtio_mmio_init (m, &vmm_virtio_net_ops, d, mem, base, irq);
        d->m = m;
        return m;
}

/* Worker: the tap is watched only while the guest has somewhere to put a frame. */
static void
watch_tap (struct netdev *d, bool want)
{
        if (want == d->tap_watched)
                return;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EV_TAP};
        if (epoll_ctl (d->epoll_fd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, d->tap_fd, &ev) < 0) {
                moat_warn ("virtio-net: epoll_ctl tap: %s", strerror (errno));
                return;
        }
        d->tap_watched = want;
}

static void *
worker (void *opaque)
{
        struct netdev *d = opaque;
        struct vmm_virtio_mmio *m = d->m;
        uint64_t one = 1;
        cleanup_error moat_error_t e = NULL;
        /* capabilities are per thread: this one needs none (capset to
         * nothing cannot fail for lack of privilege) */
        if (vmm_caps_drop_all (&e) < 0)
                moat_log (MOAT_LOG_ERROR, "virtio-net thread: %s", e->msg);
        /* Started (glibc's per-thread setup done): the seccomp filter may go on. */
        if (write (d->ready_fd, &one, sizeof one) < 0)
                return NULL;
        for (;;) {
                pthread_mutex_lock (&m->lock);
                bool idle = !(m->status & VIRTIO_STATUS_DRIVER_OK);
                bool want = !d->rx_starved && !d->tap_broken;
                pthread_mutex_unlock (&m->lock);
                watch_tap (d, want);
                struct epoll_event evs[4];
                int n = epoll_wait (d->epoll_fd, evs, ARRAY_SIZE (evs), idle ? IDLE_POLL_MS : -1);
                if (n < 0 && errno != EINTR) {
                        moat_warn ("virtio-net: epoll_wait: %s", strerror (errno));
                        return NULL;
                }
                for (int i = 0; i < n; i++) {
                        uint64_t v;
                        switch (evs[i].data.u64) {
                        case EV_STOP:
                                return NULL;
                        case EV_KICK_RX:
                        case EV_KICK_TX:
                                if (read (m->q[evs[i].data.u64 == EV_KICK_RX ? NET_RXQ : NET_TXQ].ioeventfd, &v,
                                          sizeof v) < 0 &&
                                    errno != EAGAIN)
                                        moat_warn ("virtio-net: read ioeventfd: %s", strerror (errno));
                                break;
                        default:
                                break;
                        }
                }
                vmm_virtio_net_poll (m);
        }
}

static int
start_worker (struct netdev *d, moat_error_t *err)
{
        struct vmm_virtio_mmio *m = d->m;
        d->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
        if (d->epoll_fd < 0)
                return moat_make_error (err, errno, "epoll_create1");
        d->stop_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (d->stop_fd < 0)
                return moat_make_error (err, errno, "eventfd");
        cleanup_close int ready = eventfd (0, EFD_CLOEXEC);
        if (ready < 0)
                return moat_make_error (err, errno, "eventfd");
        d->ready_fd = ready;
        struct {
                int fd;
                uint64_t what;
        } fds[] = {{d->stop_fd, EV_STOP}, {m->q[NET_RXQ].ioeventfd, EV_KICK_RX}, {m->q[NET_TXQ].ioeventfd, EV_KICK_TX}};
        for (size_t i = 0; i < ARRAY_SIZE (fds); i++) {
                struct epoll_event ev = {.events = EPOLLIN, .data.u64 = fds[i].what};
                if (epoll_ctl (d->epoll_fd, EPOLL_CTL_ADD, fds[i].fd, &ev) < 0)
                        return moat_make_error (err, errno, "epoll_ctl");
        }
        /* Signals belong to the event loop (signalfd) and the vCPUs (kick):
         * the worker blocks them all. */
        sigset_t all, old;
        sigfillset (&all);
        pthread_sigmask (SIG_SETMASK, &all, &old);
        int r = pthread_create (&d->thread, NULL, worker, d);
        pthread_sigmask (SIG_SETMASK, &old, NULL);
        if (r != 0)
                return moat_make_error (err, r, "create the virtio-net thread");
        d->thread_started = true;
        uint64_t v;
        if (read (ready, &v, sizeof v) != sizeof v)
                return moat_make_error (err, errno, "wait for the virtio-net thread");
        d->ready_fd = -1;
        return 0;
}

static size_t
net_count (const struct vmm_dev_env *env)
{
        return env->cfg->tap != NULL;
}

static struct vmm_virtio_mmio *
net_new (struct vmm *vm, struct vmm_dev_env *env, size_t i, uint64_t base, uint32_t irq, moat_error_t *err)
{
        uint8_t mac[6];
        if (env->cfg->has_mac)
                memcpy (mac, env->cfg->mac, sizeof mac);
        else
                vmm_net_random_mac (mac);
        int fd = vmm_tap_open (env->cfg->tap, err);
        if (fd < 0)
                return NULL;
        /* m owns the tap fd */
        struct vmm_virtio_mmio *m = vmm_virtio_net_new (&vm->mem, fd, mac, base, irq);
        /* The worker reads the queue ioeventfds, not the event loop. */
        m->external_notify = true;
        return m;
}

static int
net_start (struct vmm *vm, struct vmm_virtio_mmio *m, moat_error_t *err)
{
        return start_worker (m->dev, err);
}

const struct vmm_device vmm_dev_virtio_net = {
        .name = "virtio-net",
        .count = net_count,
        .virtio_new = net_new,
        .virtio_start = net_start,
};

/* SPDX-License-Identifier: Apache-2.0 */
/* The vhost-user backend (src/vsock/vhost_user.c) fed by a hostile frontend
 * over a socketpair: any request with any flags and payload, memory tables
 * over memfds of various sizes (guest RAM whose bytes the input writes),
 * kick and call eventfds, ring addresses, kicks. The device behind it pops
 * every element of a kicked queue and touches its buffers, so a ring or
 * buffer mapped outside its memfd is an ASan report or a SIGBUS.
 * Every message is sent whole: the backend reads a message's payload with a
 * blocking read once its header arrived (the frontend is QEMU, not the
 * guest). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "moat/log.h"
#include "moat/vhost_user.h"

#define MEMFD_SIZE (64 * 1024)
#define NQUEUES 2

static struct moat_virtq *queues[NQUEUES];
static struct moat_virtq_elem elem;

static void
dev_get_config (void *opaque, uint32_t off, uint8_t *buf, uint32_t len)
{
        for (uint32_t i = 0; i < len; i++)
                buf[i] = (uint8_t)(off + i);
}

static void
dev_set_queue (void *opaque, unsigned q, struct moat_virtq *vq)
{
        if (q < NQUEUES)
                queues[q] = vq;
}

static void
dev_kick (void *opaque, unsigned q)
{
        if (q >= NQUEUES || queues[q] == NULL)
                return;
        for (int k = 0; k < 32; k++) {
                moat_error_t err = NULL;
                int r = moat_virtq_pop (queues[q], &elem, &err);
                moat_error_release (&err);
                if (r <= 0)
                        break;
                fz_touch_elem (&elem);
                moat_virtq_push (queues[q], &elem, (uint32_t)elem.in_len);
                moat_virtq_notify (queues[q]);
        }
}

static void
dev_reset (void *opaque)
{
        for (int i = 0; i < NQUEUES; i++)
                queues[i] = NULL;
}

static const struct moat_vhost_user_device dev = {
        .name = "fuzz",
        .num_queues = NQUEUES,
        .features = 1ull << MOAT_VIRTIO_F_EVENT_IDX,
        .get_config = dev_get_config,
        .set_queue = dev_set_queue,
        .kick = dev_kick,
        .reset = dev_reset,
};

static int
new_memfd (size_t size, struct fz *f)
{
        int fd = memfd_create ("moat-fuzz-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0 || ftruncate (fd, size) < 0)
                abort ();
        size_t n;
        const uint8_t *p = fz_chunk (f, 4096, &n);
        if (n && pwrite (fd, p, n, fz_u16 (f) % MEMFD_SIZE) < 0)
                abort ();
        fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
        return fd;
}

static const uint32_t requests[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 25, 34};

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        static int inited;
        struct fz f = {data, size};
        int sv[2], kick = -1;
        struct moat_vhost_user *vu = NULL;
        moat_error_t err = NULL;
        uint8_t buf[12 + 4096];

        if (!inited) {
                moat_log_init ("/dev/null", 0, 1);
                inited = 1;
        }
        if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort ();
        if (moat_vhost_user_new (sv[1], &dev, &vu, &err) < 0) {
                fprintf (stderr, "moat_vhost_user_new: %s\n", err->msg);
                abort ();
        }
        for (int steps = 0; fz_more (&f) && steps < 64; steps++) {
                uint8_t op = fz_u8 (&f);
                if (op % 4 == 3) { /* a kick on the last kick fd */
                        uint64_t one = 1;
                        if (kick >= 0 && write (kick, &one, sizeof one) < 0)
                                (void)0; /* a memfd sent as the kick fd */
                } else {
                        uint8_t sel = fz_u8 (&f);
                        uint32_t hdr[3];
                        hdr[0] = (op & 0x80) ? fz_u32 (&f) : requests[sel % (sizeof requests / sizeof requests[0])];
                        hdr[1] = (op & 0x40) ? fz_u32 (&f) : 1 | ((sel & 0x80) ? 8 : 0);
                        size_t n;
                        const uint8_t *p = fz_chunk (&f, 4096, &n);
                        hdr[2] = n;
                        memcpy (buf, hdr, 12);
                        memcpy (buf + 12, p, n);
                        /* fds: memfds (guest RAM) of various sizes, an eventfd */
                        int fds[4], nfds = (op >> 2) % 4;
                        for (int i = 0; i < nfds; i++) {
                                uint8_t kind = fz_u8 (&f);
                                if (kind % 4 == 3) {
                                        fds[i] = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
                                } else {
                                        static const size_t sizes[3] = {MEMFD_SIZE, 4096, 0};
                                        fds[i] = new_memfd (sizes[kind % 4], &f);
                                }
                        }
                        struct iovec iov = {buf, 12 + n};
                        char control[CMSG_SPACE (4 * sizeof (int))];
                        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                        if (nfds > 0) {
                                mh.msg_control = control;
                                mh.msg_controllen = CMSG_SPACE (nfds * sizeof (int));
                                struct cmsghdr *c = CMSG_FIRSTHDR (&mh);
                                c->cmsg_level = SOL_SOCKET;
                                c->cmsg_type = SCM_RIGHTS;
                                c->cmsg_len = CMSG_LEN (nfds * sizeof (int));
                                memcpy (CMSG_DATA (c), fds, nfds * sizeof (int));
                        }
                        ssize_t w = sendmsg (sv[0], &mh, MSG_NOSIGNAL);
                        for (int i = 0; i < nfds; i++) {
                                /* keep the last eventfd to kick with */
                                if (i == nfds - 1 && hdr[0] == 12 && kick < 0)
                                        kick = fds[i];
                                else
                                        close (fds[i]);
                        }
                        if (w < 0)
                                break;
                }
                int r = moat_vhost_user_poll (vu, &err);
                moat_error_release (&err);
                /* drain the replies */
                while (recv (sv[0], buf, sizeof buf, MSG_DONTWAIT) > 0)
                        ;
                if (r != 0)
                        break; /* the backend drops the connection */
        }
        moat_vhost_user_free (vu);
        for (int i = 0; i < NQUEUES; i++)
                queues[i] = NULL;
        close (sv[0]);
        if (kick >= 0)
                close (kick);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vsock: vhost-user backend for QEMU's vhost-user-vsock-device, serving
 * moat's userspace virtio-vsock device; host clients use the hybrid-vsock
 * Unix socket.
 *
 *   moat-vsock --vhost-user PATH --socket PATH [--guest-cid N] [--log FILE]
 *              [--ready-fd N] [--debug]
 *
 * Single thread, one epoll loop. Exits 0 when the frontend disconnects (after
 * having connected) or on SIGTERM/SIGINT, removing both sockets. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "moat/log.h"
#include "moat/util.h"
#include "moat/vhost_user.h"
#include "moat/vsock.h"

enum { TAG_LISTEN = 1, TAG_VU, TAG_VSOCK, TAG_SIGNAL };

static void
dev_get_config (void *opaque, uint32_t off, uint8_t *buf, uint32_t len)
{
        moat_vsock_get_config (opaque, off, buf, len);
}

static void
dev_set_queue (void *opaque, unsigned q, struct moat_virtq *vq)
{
        moat_vsock_set_queue (opaque, q, vq);
}

static void
dev_kick (void *opaque, unsigned q)
{
        moat_vsock_kick (opaque, q);
}

static void
dev_reset (void *opaque)
{
        moat_vsock_reset (opaque);
}

static int
listen_unix (const char *path, moat_error_t *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        struct stat st;
        cleanup_close int fd = -1;

        if (strlen (path) >= sizeof sun.sun_path)
                return moat_make_error (err, ENAMETOOLONG, "socket path %s", path);
        strcpy (sun.sun_path, path);
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return moat_make_error (err, errno, "socket");
        if (lstat (path, &st) == 0 && S_ISSOCK (st.st_mode))
                unlink (path);
        if (bind (fd, (struct sockaddr *)&sun, sizeof sun) < 0)
                return moat_make_error (err, errno, "bind %s", path);
        if (listen (fd, 4) < 0) {
                unlink (path);
                return moat_make_error (err, errno, "listen %s", path);
        }
        return steal_fd (&fd);
}

static int
watch (int epfd, int fd, int tag, moat_error_t *err)
{
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};
        if (epoll_ctl (epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return moat_make_error (err, errno, "epoll_ctl");
        return 0;
}

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat-vsock --vhost-user PATH --socket PATH [--guest-cid N] [--log FILE] [--ready-fd N] "
                    "[--debug]\n");
}

static int
run (const char *vu_path, const char *uds_path, uint64_t cid, int ready_fd, moat_error_t *err)
{
        struct moat_vsock_config cfg = {.guest_cid = cid, .uds_path = uds_path};
        struct moat_vsock *vs = NULL;
        struct moat_vhost_user *vu = NULL;
        cleanup_close int listen_fd = -1, epfd = -1, sfd = -1;
        sigset_t mask;
        int ret = -1;

        sigemptyset (&mask);
        sigaddset (&mask, SIGTERM);
        sigaddset (&mask, SIGINT);
        sigprocmask (SIG_BLOCK, &mask, NULL);
        signal (SIGPIPE, SIG_IGN);
        sfd = signalfd (-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0)
                return moat_make_error (err, errno, "signalfd");
        epfd = epoll_create1 (EPOLL_CLOEXEC);
        if (epfd < 0)
                return moat_make_error (err, errno, "epoll_create1");

        listen_fd = listen_unix (vu_path, err);
        if (listen_fd < 0)
                return moat_error_wrap (err, "vhost-user socket");
        if (moat_vsock_new (&cfg, &vs, err) < 0) {
                unlink (vu_path);
                return moat_error_wrap (err, "hybrid vsock socket");
        }
        if (watch (epfd, listen_fd, TAG_LISTEN, err) < 0 || watch (epfd, sfd, TAG_SIGNAL, err) < 0 ||
            watch (epfd, moat_vsock_get_fd (vs), TAG_VSOCK, err) < 0)
                goto out;
        if (ready_fd >= 0) {
                if (write (ready_fd, "1", 1) != 1)
                        moat_warn ("write ready fd %d: %s", ready_fd, strerror (errno));
                close (ready_fd);
        }
        moat_log (MOAT_LOG_INFO, "moat-vsock: vhost-user %s, hybrid vsock %s, guest cid %" PRIu64, vu_path, uds_path,
                  cid);

        for (;;) {
                struct epoll_event evs[8];
                int n = epoll_wait (epfd, evs, ARRAY_SIZE (evs), moat_vsock_next_timeout (vs));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        moat_make_error (err, errno, "epoll_wait");
                        goto out;
                }
                for (int i = 0; i < n; i++) {
                        switch (evs[i].data.u32) {
                        case TAG_SIGNAL: {
                                struct signalfd_siginfo si;
                                if (read (sfd, &si, sizeof si) == sizeof si) {
                                        moat_log (MOAT_LOG_INFO, "moat-vsock: signal %u, exiting", si.ssi_signo);
                                        ret = 0;
                                        goto out;
                                }
                                break;
                        }
                        case TAG_LISTEN: {
                                int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
                                if (fd < 0)
                                        break;
                                if (vu != NULL) {
                                        moat_warn ("moat-vsock: a second vhost-user frontend connected, refused");
                                        close (fd);
                                        break;
                                }
                                struct moat_vhost_user_device dev = {
                                        .name = "vsock",
                                        .num_queues = 2, /* rx, tx; QEMU keeps the event queue */
                                        .opaque = vs,
                                        .get_config = dev_get_config,
                                        .set_queue = dev_set_queue,
                                        .kick = dev_kick,
                                        .reset = dev_reset,
                                };
                                if (moat_vhost_user_new (fd, &dev, &vu, err) < 0)
                                        goto out;
                                if (watch (epfd, moat_vhost_user_get_fd (vu), TAG_VU, err) < 0)
                                        goto out;
                                moat_log (MOAT_LOG_INFO, "moat-vsock: frontend connected");
                                break;
                        }
                        case TAG_VU: {
                                if (vu == NULL)
                                        break;
                                int r = moat_vhost_user_poll (vu, err);
                                if (r < 0)
                                        goto out;
                                if (r == 1) {
                                        moat_log (MOAT_LOG_INFO, "moat-vsock: frontend disconnected, exiting");
                                        ret = 0;
                                        goto out;
                                }
                                break;
                        }
                        case TAG_VSOCK:
                                break;
                        }
                }
                moat_vsock_poll (vs);
        }
out:
        if (vu) {
                /* stops the queues before the device goes */
                moat_vhost_user_free (vu);
        }
        moat_vsock_free (vs);
        unlink (vu_path);
        return ret;
}

int
main (int argc, char **argv)
{
        static const struct option opts[] = {
                {"vhost-user", required_argument, NULL, 'v'},
                {"socket", required_argument, NULL, 's'},
                {"guest-cid", required_argument, NULL, 'c'},
                {"log", required_argument, NULL, 'l'},
                {"ready-fd", required_argument, NULL, 'r'},
                {"debug", no_argument, NULL, 'd'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        const char *vu_path = NULL, *uds_path = NULL, *log_path = NULL;
        uint64_t cid = MOAT_VSOCK_DEFAULT_GUEST_CID;
        int ready_fd = -1, debug = 0, c;
        char *end;
        cleanup_error moat_error_t err = NULL;

        while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'v':
                        vu_path = optarg;
                        break;
                case 's':
                        uds_path = optarg;
                        break;
                case 'c':
                        errno = 0;
                        cid = strtoull (optarg, &end, 10);
                        if (errno || *end || cid < 3 || cid >= UINT32_MAX) {
                                fprintf (stderr, "moat-vsock: invalid --guest-cid %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'l':
                        log_path = optarg;
                        break;
                case 'r':
                        errno = 0;
                        ready_fd = strtol (optarg, &end, 10);
                        if (errno || *end || ready_fd < 0) {
                                fprintf (stderr, "moat-vsock: invalid --ready-fd %s\n", optarg);
                                return 2;
                        }
                        break;
                case 'd':
                        debug = 1;
                        break;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        usage (stderr);
                        return 2;
                }
        }
        if (vu_path == NULL || uds_path == NULL || optind != argc) {
                usage (stderr);
                return 2;
        }
        if (moat_log_init (log_path, 0, debug) < 0) {
                fprintf (stderr, "moat-vsock: open log %s: %s\n", log_path, strerror (errno));
                return 1;
        }
        if (run (vu_path, uds_path, cid, ready_fd, &err) < 0) {
                moat_error_print (&err, "moat-vsock");
                return 1;
        }
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Test init for tests/integration/vsock.sh (built with gcc -static, packed as
 * /init): echoes every connection on vsock port 1024 (shutting down its write
 * side at EOF), connects once to host port 5000 and writes a line, and
 * reboots when something connects to port 1026. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

static void
say (const char *fmt, ...)
{
        char buf[256];
        va_list ap;
        va_start (ap, fmt);
        int n = vsnprintf (buf, sizeof buf, fmt, ap);
        va_end (ap);
        if (n > 0)
                (void)!write (2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static int
vsock_listen (unsigned port)
{
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
        int fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind (fd, (struct sockaddr *)&a, sizeof a) < 0 || listen (fd, 16) < 0) {
                say ("vsock-echo: listen %u: %s\n", port, strerror (errno));
                return -1;
        }
        return fd;
}

static void
echo (int fd)
{
        char buf[65536];
        for (;;) {
                ssize_t n = read (fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                for (ssize_t off = 0; off < n;) {
                        ssize_t w = write (fd, buf + off, n - off);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                _exit (1);
                        off += w;
                }
        }
        shutdown (fd, SHUT_WR);
        /* wait for the peer to finish before closing */
        while (read (fd, buf, sizeof buf) > 0)
                ;
        close (fd);
        _exit (0);
}

static void
greet_host (void)
{
        struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = 5000};
        for (int i = 0; i < 50; i++) {
                int fd = socket (AF_VSOCK, SOCK_STREAM, 0);
                if (fd >= 0 && connect (fd, (struct sockaddr *)&a, sizeof a) == 0) {
                        const char *msg = "hello from guest\n";
                        (void)!write (fd, msg, strlen (msg));
                        shutdown (fd, SHUT_WR);
                        char c;
                        while (read (fd, &c, 1) > 0)
                                ;
                        close (fd);
                        say ("vsock-echo: greeted host\n");
                        _exit (0);
                }
                say ("vsock-echo: connect host 5000: %s\n", strerror (errno));
                if (fd >= 0)
                        close (fd);
                sleep (1);
        }
        _exit (1);
}

int
main (void)
{
        mkdir ("/dev", 0755);
        if (mount ("devtmpfs", "/dev", "devtmpfs", 0, NULL) < 0)
                mknod ("/dev/console", S_IFCHR | 0600, makedev (5, 1));
        int con = open ("/dev/console", O_RDWR);
        if (con >= 0) {
                dup2 (con, 1);
                dup2 (con, 2);
        }
        signal (SIGCHLD, SIG_IGN);
        int l = vsock_listen (1024), q = vsock_listen (1026);
        if (l < 0 || q < 0) {
                reboot (RB_AUTOBOOT);
                return 1;
        }
        say ("vsock-echo: listening\n");
        if (fork () == 0)
                greet_host ();
        for (;;) {
                struct pollfd p[2] = {{.fd = l, .events = POLLIN}, {.fd = q, .events = POLLIN}};
                if (poll (p, 2, -1) < 0)
                        continue;
                if (p[1].revents) {
                        say ("vsock-echo: rebooting\n");
                        sync ();
                        reboot (RB_AUTOBOOT);
                }
                if (p[0].revents) {
                        int fd = accept4 (l, NULL, NULL, SOCK_CLOEXEC);
                        if (fd < 0)
                                continue;
                        if (fork () == 0)
                                echo (fd);
                        close (fd);
                }
        }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Hybrid vsock (Firecracker's convention, served by moat-vsock): connect to
 * the Unix socket, write "CONNECT <port>\n", read "OK <host port>\n"; the
 * rest of the stream is the vsock connection. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "moat/agent_client.h"
#include "moat/paths.h"
#include "moat/util.h"

/* Reads one '\n'-terminated line byte by byte (the bytes after it belong to
 * the connection), within the deadline. */
static int
read_line (int fd, char *buf, size_t len, int64_t deadline, moat_error_t *err)
{
        size_t n = 0;
        while (n + 1 < len) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int64_t left = deadline - now_ms ();
                ssize_t r;
                if (left <= 0)
                        return moat_make_error (err, ETIMEDOUT, "no answer");
                r = poll (&p, 1, left);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return moat_make_error (err, errno, "poll");
                if (r == 0)
                        continue;
                r = read (fd, buf + n, 1);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r < 0)
                        return moat_make_error (err, errno, "read");
                if (r == 0)
                        return moat_make_error (err, ECONNRESET, "connection closed");
                if (buf[n] == '\n') {
                        buf[n] = '\0';
                        return 0;
                }
                n++;
        }
        return moat_make_error (err, EPROTO, "answer line too long");
}

int
moat_hybrid_connect (const char *hybrid_sock, uint32_t port, int timeout_ms, moat_error_t *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        cleanup_close int dirfd = -1;
        cleanup_close int fd = -1;
        int64_t deadline = now_ms () + timeout_ms;
        char line[128];
        int len;

        if (moat_unix_path (hybrid_sock, sun.sun_path, sizeof sun.sun_path, &dirfd, err) < 0)
                return -1;
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return moat_make_error (err, errno, "socket");
        if (connect (fd, (struct sockaddr *)&sun, sizeof sun) < 0)
                return moat_make_error (err, errno, "connect %s", hybrid_sock);
        len = snprintf (line, sizeof line, "CONNECT %u\n", port);
        if (send_all (fd, line, len) < 0)
                return moat_make_error (err, errno, "write %s", hybrid_sock);
        if (read_line (fd, line, sizeof line, deadline, err) < 0)
                return moat_error_wrap (err, "vsock port %u", port);
        if (strncmp (line, "OK ", 3) != 0)
                return moat_make_error (err, ECONNREFUSED, "vsock port %u: %s", port, line);
        return steal_fd (&fd);
}

int
moat_agent_open_stream (const char *hybrid_sock, const char *id, const char *exec_id, const char *stream,
                        int timeout_ms, moat_error_t *err)
{
        cleanup_close int fd = -1;
        cleanup_free char *hdr = NULL;
        char line[512];

        fd = moat_hybrid_connect (hybrid_sock, MOAT_STDIO_PORT, timeout_ms, err);
        if (fd < 0)
                return moat_error_wrap (err, "open %s stream", stream);
        hdr = xasprintf_r ("STDIO %s %s %s\n", id, exec_id && *exec_id ? exec_id : "-", stream);
        if (send_all (fd, hdr, strlen (hdr)) < 0)
                return moat_make_error (err, errno, "open %s stream", stream);
        if (read_line (fd, line, sizeof line, now_ms () + timeout_ms, err) < 0)
                return moat_error_wrap (err, "open %s stream", stream);
        if (strcmp (line, "OK") != 0)
                return moat_make_error (err, EIO, "open %s stream: %s", stream,
                                        strncmp (line, "ERR ", 4) == 0 ? line + 4 : line);
        return steal_fd (&fd);
}

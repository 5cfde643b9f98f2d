/* SPDX-License-Identifier: Apache-2.0 */
/* The `start` action. containerd reads our stdout and stderr together
 * (CombinedOutput) as the address to dial, and waits for EOF on them: we
 * print the address alone, and the daemon gets /dev/null for its stdio and
 * the listening socket as fd 3, so containerd's dial waits in the backlog
 * until the daemon accepts. Every container of a pod (the same
 * io.kubernetes.cri.sandbox-id) gets the same address: the first start
 * makes the socket and the daemon, the others find it listening. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "moat/util.h"
#include "shim.h"

char *
shim_socket_address (const char *address, const char *ns, const char *group)
{
        /* containerd hashes filepath.Join(address, ns, group) */
        cleanup_free char *in = xasprintf_r ("%s/%s/%s", address, ns, group);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        char hex[2 * EVP_MAX_MD_SIZE + 1];

        EVP_Digest (in, strlen (in), md, &n, EVP_sha256 (), NULL);
        for (unsigned int i = 0; i < n; i++)
                sprintf (hex + 2 * i, "%02x", md[i]);
        hex[2 * n] = '\0';
        return xasprintf_r ("unix://%s/%s", SHIM_SOCKET_DIR, hex);
}

char *
shim_annotation (const char *bundle_dir, const char *key, moat_error_t *err)
{
        cleanup_free char *path = xasprintf_r ("%s/config.json", bundle_dir);
        cleanup_free char *data = NULL;
        const char *p[] = {"annotations", key, NULL};
        char ebuf[256] = "";
        size_t len;
        yajl_val t, v;
        char *out;

        if (read_file (path, &data, &len, err) < 0)
                return NULL;
        t = yajl_tree_parse (data, ebuf, sizeof ebuf);
        if (t == NULL) {
                moat_make_error (err, EINVAL, "%s: %s", path, ebuf);
                return NULL;
        }
        v = yajl_tree_get (t, p, yajl_t_string);
        out = xstrdup (v ? YAJL_GET_STRING (v) : "");
        yajl_tree_free (t);
        return out;
}

char *
shim_group (const char *bundle_dir, const char *id, moat_error_t *err)
{
        const char *keys[] = {SHIM_GROUP_ANNOTATION, SHIM_SANDBOX_ID_ANNOTATION};
        for (size_t k = 0; k < 2; k++) {
                char *g = shim_annotation (bundle_dir, keys[k], err);
                if (g == NULL)
                        return NULL;
                if (*g)
                        return g;
                free (g);
        }
        return xstrdup (id);
}

static int
unix_addr (const char *path, struct sockaddr_un *sun, moat_error_t *err)
{
        memset (sun, 0, sizeof *sun);
        sun->sun_family = AF_UNIX;
        if (strlen (path) >= sizeof sun->sun_path)
                return moat_make_error (err, ENAMETOOLONG, "socket path %s", path);
        strcpy (sun->sun_path, path);
        return 0;
}

/* Whether something accepts on path within 100 ms (containerd's check). */
static bool
can_connect (const char *path)
{
        struct sockaddr_un sun;
        cleanup_close int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        cleanup_error moat_error_t e = NULL;
        struct pollfd p;
        int soerr = 0;
        socklen_t sl = sizeof soerr;

        if (fd < 0 || unix_addr (path, &sun, &e) < 0)
                return false;
        if (connect (fd, (struct sockaddr *)&sun, sizeof sun) == 0)
                return true;
        if (errno != EINPROGRESS && errno != EAGAIN)
                return false;
        p = (struct pollfd){.fd = fd, .events = POLLOUT};
        if (poll (&p, 1, 100) != 1)
                return false;
        return getsockopt (fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0;
}

void
shim_remove_stale_socket (const char *bundle)
{
        cleanup_free char *file = xasprintf_r ("%s/address", bundle);
        cleanup_free char *addr = NULL;
        cleanup_error moat_error_t e = NULL;
        const char *prefix = "unix://" SHIM_SOCKET_DIR "/";
        size_t len = 0;
        struct stat st;

        if (read_file (file, &addr, &len, &e) < 0 || strncmp (addr, prefix, strlen (prefix)) != 0 ||
            strchr (addr + strlen (prefix), '/') != NULL)
                return;
        addr[strcspn (addr, "\n")] = '\0';
        /* ours (under SHIM_SOCKET_DIR, a socket) and nobody serves it */
        if (lstat (addr + strlen ("unix://"), &st) == 0 && S_ISSOCK (st.st_mode) &&
            !can_connect (addr + strlen ("unix://")))
                unlink (addr + strlen ("unix://"));
}

/* Returns 0 with the listening fd in *out, 1 when a live shim already
 * serves path, -1. */
static int
make_socket (const char *path, int *out, moat_error_t *err)
{
        struct sockaddr_un sun;
        if (unix_addr (path, &sun, err) < 0 || mkdir_p (SHIM_SOCKET_DIR, 0711, err) < 0)
                return -1;
        for (int attempt = 0; attempt < 2; attempt++) {
                cleanup_close int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return moat_make_error (err, errno, "socket");
                if (bind (fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
                        if (chmod (path, 0600) < 0 || listen (fd, 128) < 0) {
                                moat_make_error (err, errno, "listen on %s", path);
                                unlink (path);
                                return -1;
                        }
                        *out = steal_fd (&fd);
                        return 0;
                }
                if (errno != EADDRINUSE)
                        return moat_make_error (err, errno, "bind %s", path);
                if (can_connect (path))
                        return 1;
                /* a shim died and left its socket */
                if (unlink (path) < 0 && errno != ENOENT)
                        return moat_make_error (err, errno, "remove the stale socket %s", path);
        }
        return moat_make_error (err, EADDRINUSE, "bind %s", path);
}

/* The bundle's "address" file, written whole or not at all. */
static int
write_address (const char *dir, const char *addr, moat_error_t *err)
{
        cleanup_free char *tmp = xasprintf_r ("%s/.address", dir);
        cleanup_free char *dst = xasprintf_r ("%s/address", dir);
        if (write_file (tmp, addr, strlen (addr), 0644, err) < 0)
                return -1;
        if (rename (tmp, dst) < 0) {
                unlink (tmp);
                return moat_make_error (err, errno, "write %s", dst);
        }
        return 0;
}

/* The daemon: this binary without an action, fd 3 the socket, in its own
 * session, with /dev/null for stdio. Returns once it has exec'd. */
static int
spawn_daemon (const struct shim_opts *o, int lfd, moat_error_t *err)
{
        int sync[2];
        pid_t pid;
        int e = 0;
        ssize_t n;

        if (pipe2 (sync, O_CLOEXEC) < 0)
                return moat_make_error (err, errno, "pipe");
        pid = fork ();
        if (pid < 0) {
                close (sync[0]);
                close (sync[1]);
                return moat_make_error (err, errno, "fork");
        }
        if (pid == 0) {
                const char *argv[12];
                int i = 0, null = open ("/dev/null", O_RDWR);
                close (sync[0]);
                setsid ();
                if (null < 0 || dup2 (null, 0) < 0 || dup2 (null, 1) < 0 || dup2 (null, 2) < 0)
                        goto fail;
                /* dup2 onto itself keeps close-on-exec: clear it then */
                if ((lfd == 3 ? set_cloexec (3, false) : dup2 (lfd, 3)) < 0)
                        goto fail;
                argv[i++] = SHIM_NAME;
                argv[i++] = "-namespace";
                argv[i++] = o->namespace_;
                argv[i++] = "-id";
                argv[i++] = o->id;
                argv[i++] = "-address";
                argv[i++] = o->address ? o->address : "";
                if (o->debug)
                        argv[i++] = "-debug";
                argv[i] = NULL;
                execv ("/proc/self/exe", (char **)argv);
        fail:
                e = errno;
                if (write (sync[1], &e, sizeof e) < 0) {
                }
                _exit (127);
        }
        close (sync[1]);
        do
                n = read (sync[0], &e, sizeof e);
        while (n < 0 && errno == EINTR);
        close (sync[0]);
        if (n == sizeof e)
                return moat_make_error (err, e, "start the shim daemon");
        return 0;
}

int
shim_start (const struct shim_opts *o, moat_error_t *err)
{
        char cwd[4096];
        const char *dir = o->bundle;
        cleanup_free char *group = NULL, *addr = NULL;
        cleanup_close int lfd = -1;
        const char *path;
        int r;

        if (dir == NULL) {
                if (getcwd (cwd, sizeof cwd) == NULL)
                        return moat_make_error (err, errno, "getcwd");
                dir = cwd;
        }
        if (o->address == NULL || *o->address == '\0')
                return moat_make_error (err, EINVAL, "-address is required");
        group = shim_group (dir, o->id, err);
        if (group == NULL)
                return -1;
        addr = shim_socket_address (o->address, o->namespace_, group);
        path = addr + strlen ("unix://");
        r = make_socket (path, &lfd, err);
        if (r < 0)
                return -1;
        if (write_address (dir, addr, err) < 0)
                goto fail;
        /* r == 1: the pod's shim already serves this address */
        if (r == 0 && spawn_daemon (o, lfd, err) < 0)
                goto fail;
        printf ("%s", addr);
        fflush (stdout);
        return 0;
fail:
        if (r == 0)
                unlink (path);
        return -1;
}

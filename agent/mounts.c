/* SPDX-License-Identifier: Apache-2.0 */
/* The container's filesystem, built by the held child in its new mount
 * namespace: propagation, the rootfs bound onto itself, config mounts,
 * device nodes, pivot_root, then masked/readonly paths and a read-only root.
 *
 * Destinations are resolved inside the rootfs with openat2(RESOLVE_IN_ROOT)
 * (missing components are created one by one, each lookup again confined),
 * so a symlink in the image cannot send a mount outside the rootfs; the
 * mount itself targets the resolved fd through /proc/self/fd. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "mounts.h"
#include "moat/util.h"

static int
openat2_in_root (int rootfd, const char *path, int flags, moat_error_t *err)
{
        struct open_how how = {.flags = flags | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
        int fd;

        while (*path == '/')
                path++;
        if (*path == '\0')
                path = ".";
        do
                fd = syscall (SYS_openat2, rootfd, path, &how, sizeof how);
        while (fd < 0 && errno == EINTR);
        if (fd < 0)
                return moat_make_error (err, errno, "open %s in the rootfs", path);
        return fd;
}

/* Resolves path in the rootfs, creating what is missing (directories; the
 * last component is a file when as_file). Returns an O_PATH fd. */
int
agent_mkpath_in_root (int rootfd, const char *path, bool as_file, moat_error_t *err)
{
        cleanup_free char *p = xstrdup (path);
        cleanup_close int dirfd = -1;
        char *s = p;
        int fd;

        dirfd = openat2_in_root (rootfd, "/", O_PATH | O_DIRECTORY, err);
        if (dirfd < 0)
                return -1;
        while (*s) {
                char *slash;
                bool last;
                cleanup_close int next = -1;
                struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
                cleanup_free char *prefix = NULL;

                while (*s == '/')
                        s++;
                if (*s == '\0')
                        break;
                slash = strchr (s, '/');
                if (slash)
                        *slash = '\0';
                last = slash == NULL || slash[1 + strspn (slash + 1, "/")] == '\0';
                /* Look the prefix up from the root each time: ".." and
                 * symlinks resolve inside the rootfs. */
                prefix = xstrndup (p, s + strlen (s) - p);
                next = syscall (SYS_openat2, rootfd, prefix[0] == '/' ? prefix + 1 : prefix, &how, sizeof how);
                if (next < 0 && errno == ENOENT) {
                        int r;
                        if (last && as_file) {
                                r = openat (dirfd, s, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
                                if (r >= 0)
                                        close (r);
                        } else
                                r = mkdirat (dirfd, s, 0755);
                        if (r < 0 && errno != EEXIST)
                                return moat_make_error (err, errno, "create %s in the rootfs", prefix);
                        next = syscall (SYS_openat2, rootfd, prefix[0] == '/' ? prefix + 1 : prefix, &how, sizeof how);
                }
                if (next < 0)
                        return moat_make_error (err, errno, "resolve %s in the rootfs", prefix);
                close (dirfd);
                dirfd = steal_fd (&next);
                if (slash == NULL)
                        break;
                *slash = '/';
                s = slash + 1;
        }
        fd = steal_fd (&dirfd);
        return fd;
}

struct mount_opt {
        const char *name;
        bool clear;
        unsigned long flag;
};

static const struct mount_opt mount_opts[] = {
        {"ro", false, MS_RDONLY},
        {"rw", true, MS_RDONLY},
        {"nosuid", false, MS_NOSUID},
        {"suid", true, MS_NOSUID},
        {"nodev", false, MS_NODEV},
        {"dev", true, MS_NODEV},
        {"noexec", false, MS_NOEXEC},
        {"exec", true, MS_NOEXEC},
        {"sync", false, MS_SYNCHRONOUS},
        {"async", true, MS_SYNCHRONOUS},
        {"dirsync", false, MS_DIRSYNC},
        {"remount", false, MS_REMOUNT},
        {"mand", false, MS_MANDLOCK},
        {"nomand", true, MS_MANDLOCK},
        {"atime", true, MS_NOATIME},
        {"noatime", false, MS_NOATIME},
        {"diratime", true, MS_NODIRATIME},
        {"nodiratime", false, MS_NODIRATIME},
        {"relatime", false, MS_RELATIME},
        {"norelatime", true, MS_RELATIME},
        {"strictatime", false, MS_STRICTATIME},
        {"nostrictatime", true, MS_STRICTATIME},
        {"bind", false, MS_BIND},
        {"rbind", false, MS_BIND | MS_REC},
};

static const struct mount_opt prop_opts[] = {
        {"private", false, MS_PRIVATE},       {"rprivate", false, MS_PRIVATE | MS_REC},
        {"shared", false, MS_SHARED},         {"rshared", false, MS_SHARED | MS_REC},
        {"slave", false, MS_SLAVE},           {"rslave", false, MS_SLAVE | MS_REC},
        {"unbindable", false, MS_UNBINDABLE}, {"runbindable", false, MS_UNBINDABLE | MS_REC},
};

struct parsed_opts {
        unsigned long flags;
        unsigned long prop;
        char *data; /* comma-joined filesystem options */
};

static int
parse_options (char **opts, struct parsed_opts *out, moat_error_t *err)
{
        size_t dlen = 0;

        memset (out, 0, sizeof *out);
        out->data = xstrdup ("");
        for (size_t i = 0; opts && opts[i]; i++) {
                const char *o = opts[i];
                bool done = false;
                for (size_t k = 0; !done && k < ARRAY_SIZE (mount_opts); k++)
                        if (strcmp (o, mount_opts[k].name) == 0) {
                                if (mount_opts[k].clear)
                                        out->flags &= ~mount_opts[k].flag;
                                else
                                        out->flags |= mount_opts[k].flag;
                                done = true;
                        }
                for (size_t k = 0; !done && k < ARRAY_SIZE (prop_opts); k++)
                        if (strcmp (o, prop_opts[k].name) == 0) {
                                out->prop |= prop_opts[k].flag;
                                done = true;
                        }
                if (done)
                        continue;
                if (strcmp (o, "tmpcopyup") == 0 || strcmp (o, "idmap") == 0 || strcmp (o, "ridmap") == 0 ||
                    strncmp (o, "x-", 2) == 0) {
                        agent_debug ("mount option %s ignored", o);
                        continue;
                }
                out->data = xrealloc (out->data, dlen + strlen (o) + 2);
                if (dlen)
                        out->data[dlen++] = ',';
                strcpy (out->data + dlen, o);
                dlen += strlen (o);
        }
        return 0;
}

/* The flags a bind remount must keep (locked ones in a user namespace). */
static unsigned long
current_flags (const char *path)
{
        struct statvfs sv;
        unsigned long f = 0;
        if (statvfs (path, &sv) < 0)
                return 0;
        if (sv.f_flag & ST_NOSUID)
                f |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV)
                f |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC)
                f |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME)
                f |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME)
                f |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME)
                f |= MS_RELATIME;
        if (sv.f_flag & ST_RDONLY)
                f |= MS_RDONLY;
        return f;
}

static int
bind_remount (const char *target, unsigned long flags, moat_error_t *err)
{
        unsigned long keep = current_flags (target) & ~MS_RDONLY;
        if (mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | keep | flags, NULL) < 0)
                return moat_make_error (err, errno, "remount %s", target);
        return 0;
}

static const char *
fd_path (int fd, char buf[64])
{
        snprintf (buf, 64, "/proc/self/fd/%d", fd);
        return buf;
}

static int
do_one_mount (struct mount_ctx *mc, struct oci_mount *m, moat_error_t *err)
{
        struct parsed_opts po;
        cleanup_free char *data = NULL;
        cleanup_free char *src_abs = NULL;
        cleanup_close int target = -1;
        const char *type = m->type;
        const char *src = m->source;
        char tbuf[64];
        const char *tpath;
        bool bind;
        int r;

        parse_options (m->options, &po, err);
        data = po.data;
        bind = (po.flags & MS_BIND) || (type && strcmp (type, "bind") == 0);
        if (bind) {
                struct stat st;
                if (src == NULL)
                        return moat_make_error (err, EINVAL, "bind mount without a source");
                if (src[0] != '/' && mc->bundle_dir)
                        src = src_abs = xasprintf_r ("%s/%s", mc->bundle_dir, src);
                if (stat (src, &st) < 0)
                        return moat_make_error (err, errno, "bind source %s", src);
                target = agent_mkpath_in_root (mc->rootfd, m->destination, !S_ISDIR (st.st_mode), err);
                if (target < 0)
                        return -1;
                tpath = fd_path (target, tbuf);
                if (mount (src, tpath, NULL, MS_BIND | (po.flags & MS_REC), NULL) < 0)
                        return moat_make_error (err, errno, "bind %s", src);
                /* re-open: the fd still names the covered directory */
                close (target);
                target = openat2_in_root (mc->rootfd, m->destination, O_PATH, err);
                if (target < 0)
                        return -1;
                tpath = fd_path (target, tbuf);
                if (po.flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME |
                                MS_RELATIME | MS_STRICTATIME)) {
                        unsigned long f = po.flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
                        if (mount (NULL, tpath, NULL, MS_REMOUNT | MS_BIND | f | (current_flags (tpath) & ~MS_RDONLY),
                                   NULL) < 0)
                                return moat_make_error (err, errno, "remount the bind of %s", src);
                }
        } else {
                if (type == NULL)
                        return moat_make_error (err, EINVAL, "mount without a type");
                if (strcmp (type, "cgroup") == 0) /* the guest is cgroup2-only */
                        type = "cgroup2";
                target = agent_mkpath_in_root (mc->rootfd, m->destination, false, err);
                if (target < 0)
                        return -1;
                tpath = fd_path (target, tbuf);
                r = mount (src ? src : type, tpath, type, po.flags, *data ? data : NULL);
                if (r < 0 && (errno == EPERM || errno == EBUSY || errno == EINVAL) && mc->userns) {
                        /* A user namespace without its own net/ipc/cgroup
                         * namespace cannot mount these: bind the agent's. */
                        const char *fallback = NULL;
                        int e = errno;
                        if (strcmp (type, "sysfs") == 0)
                                fallback = "/sys";
                        else if (strcmp (type, "mqueue") == 0)
                                fallback = "/dev/mqueue";
                        else if (strcmp (type, "cgroup2") == 0)
                                fallback = mc->cgroup_path;
                        errno = e;
                        if (fallback) {
                                agent_debug ("mount %s on %s: %s, binding %s instead", type, m->destination,
                                             strerror (e), fallback);
                                r = mount (fallback, tpath, NULL, MS_BIND | MS_REC, NULL);
                        }
                }
                if (r < 0)
                        return moat_make_error (err, errno, "mount %s (type %s)", src ? src : type, type);
        }
        if (po.prop) {
                close (target);
                target = openat2_in_root (mc->rootfd, m->destination, O_PATH, err);
                if (target < 0)
                        return -1;
                if (mount (NULL, fd_path (target, tbuf), NULL, po.prop, NULL) < 0)
                        return moat_make_error (err, errno, "set the propagation of %s", m->destination);
        }
        return 0;
}

struct default_dev {
        const char *name;
        unsigned maj, min;
};
static const struct default_dev default_devs[] = {
        {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

/* Whether PATH has a ".." component. */
static bool
has_dotdot (const char *path)
{
        for (const char *p = path; (p = strstr (p, "..")) != NULL; p += 2)
                if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
                        return true;
        return false;
}

static int
make_device (struct mount_ctx *mc, const char *path, char type, unsigned maj, unsigned min, mode_t mode, uid_t uid,
             gid_t gid, moat_error_t *err)
{
        cleanup_free char *dir = xstrdup (path);
        cleanup_close int dirfd = -1;
        char *slash = strrchr (dir, '/');
        const char *base = slash ? slash + 1 : dir;
        mode_t fmt = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;

        if (slash)
                *slash = '\0';
        dirfd = agent_mkpath_in_root (mc->rootfd, slash ? (*dir ? dir : "/") : "/", false, err);
        if (dirfd < 0)
                return -1;
        {
                /* O_PATH fds cannot be used with mknodat; reopen as a directory. */
                char b[64];
                int d = open (fd_path (dirfd, b), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
                if (d < 0)
                        return moat_make_error (err, errno, "open %s", dir);
                close (dirfd);
                dirfd = d;
        }
        unlinkat (dirfd, base, 0);
        if (!mc->userns) {
                if (mknodat (dirfd, base, fmt | (mode & 07777), makedev (maj, min)) < 0)
                        return moat_make_error (err, errno, "mknod %s", path);
                if (fchownat (dirfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                        return moat_make_error (err, errno, "chown %s", path);
                if (fchmodat (dirfd, base, mode & 07777, 0) < 0)
                        return moat_make_error (err, errno, "chmod %s", path);
                return 0;
        }
        /* No mknod in a user namespace: bind the agent's node. */
        {
                char host[256], b[64];
                cleanup_close int f = openat (dirfd, base, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
                cleanup_close int t = -1;
                if (f < 0)
                        return moat_make_error (err, errno, "create %s", path);
                snprintf (host, sizeof host, "/dev/%s", path + strlen ("/dev/"));
                t = openat (dirfd, base, O_PATH | O_CLOEXEC | O_NOFOLLOW);
                if (t < 0 || mount (host, fd_path (t, b), NULL, MS_BIND, NULL) < 0)
                        return moat_make_error (err, errno, "bind %s onto %s", host, path);
        }
        return 0;
}

static int
make_symlink (struct mount_ctx *mc, const char *target, const char *path, moat_error_t *err)
{
        cleanup_close int d = openat2_in_root (mc->rootfd, "/dev", O_DIRECTORY | O_RDONLY, err);
        if (d < 0)
                return -1;
        if (symlinkat (target, d, path) < 0 && errno != EEXIST)
                return moat_make_error (err, errno, "symlink /dev/%s", path);
        return 0;
}

static int
setup_devices (struct mount_ctx *mc, struct oci_config *cfg, moat_error_t *err)
{
        struct stat st;
        cleanup_close int devfd = agent_mkpath_in_root (mc->rootfd, "/dev", false, err);
        if (devfd < 0)
                return -1;
        for (size_t i = 0; i < ARRAY_SIZE (default_devs); i++) {
                char path[64];
                snprintf (path, sizeof path, "/dev/%s", default_devs[i].name);
                if (make_device (mc, path, 'c', default_devs[i].maj, default_devs[i].min, 0666, 0, 0, err) < 0)
                        return -1;
        }
        if (make_symlink (mc, "/proc/self/fd", "fd", err) < 0 ||
            make_symlink (mc, "/proc/self/fd/0", "stdin", err) < 0 ||
            make_symlink (mc, "/proc/self/fd/1", "stdout", err) < 0 ||
            make_symlink (mc, "/proc/self/fd/2", "stderr", err) < 0)
                return -1;
        if (fstatat (devfd, "ptmx", &st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0 || !S_ISLNK (st.st_mode)) {
                cleanup_close int d = openat2_in_root (mc->rootfd, "/dev", O_DIRECTORY | O_RDONLY, err);
                if (d < 0)
                        return -1;
                unlinkat (d, "ptmx", 0);
                if (make_symlink (mc, "pts/ptmx", "ptmx", err) < 0)
                        return -1;
        }
        for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_devices; i++) {
                struct oci_device *d = &cfg->linux_->devices[i];
                if (strncmp (d->path, "/dev/", 5) != 0)
                        return moat_make_error (err, EINVAL, "linux.devices[%zu]: path %s is not under /dev", i,
                                                d->path);
                if (has_dotdot (d->path))
                        return moat_make_error (err, EINVAL, "linux.devices[%zu].path %s has a \"..\" component", i,
                                                d->path);
                if (make_device (mc, d->path, d->type == 'u' ? 'c' : d->type, d->major, d->minor,
                                 d->has_file_mode ? d->file_mode : 0666, d->has_uid ? d->uid : 0,
                                 d->has_gid ? d->gid : 0, err) < 0)
                        return moat_error_wrap (err, "linux.devices[%zu]", i);
        }
        return 0;
}

int
agent_rootfs_setup (struct mount_ctx *mc, struct oci_config *cfg, moat_error_t *err)
{
        unsigned long prop = MS_SLAVE | MS_REC;
        const char *rp = cfg->linux_ ? cfg->linux_->rootfs_propagation : NULL;

        if (rp && *rp) {
                bool found = false;
                for (size_t k = 0; k < ARRAY_SIZE (prop_opts); k++)
                        if (strcmp (rp, prop_opts[k].name) == 0) {
                                prop = prop_opts[k].flag | MS_REC;
                                found = true;
                        }
                if (!found)
                        return moat_make_error (err, EINVAL, "linux.rootfsPropagation: unknown value \"%s\"", rp);
        }
        /* Nothing we mount may propagate back to the agent. A shared root
         * is made slave first (pivot_root refuses shared parents) and the
         * requested propagation is set on the rootfs mount itself below. */
        if (mount (NULL, "/", NULL, (prop & MS_SHARED) ? (MS_SLAVE | MS_REC) : prop, NULL) < 0)
                return moat_make_error (err, errno, "make / %s", rp ? rp : "rslave");
        if (mount (mc->rootfs, mc->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
                return moat_make_error (err, errno, "bind the rootfs %s onto itself", mc->rootfs);
        if ((prop & MS_SHARED) && mount (NULL, mc->rootfs, NULL, MS_SHARED | MS_REC, NULL) < 0)
                return moat_make_error (err, errno, "make the rootfs shared");
        mc->rootfd = open (mc->rootfs, O_DIRECTORY | O_PATH | O_CLOEXEC);
        if (mc->rootfd < 0)
                return moat_make_error (err, errno, "open the rootfs %s", mc->rootfs);

        for (size_t i = 0; i < cfg->n_mounts; i++) {
                struct oci_mount *m = &cfg->mounts[i];
                if (do_one_mount (mc, m, err) < 0)
                        return moat_error_wrap (err, "mounts[%zu] %s", i, m->destination);
        }
        if (setup_devices (mc, cfg, err) < 0)
                return -1;
        if (agent_hooks_run_here (cfg, OCI_HOOK_CREATE_CONTAINER, mc->container_id ? mc->container_id : "",
                                  mc->host_bundle, err) < 0)
                return -1;

        /* pivot_root(".", ".") stacks the old root on the new one; detach it. */
        if (fchdir (mc->rootfd) < 0)
                return moat_make_error (err, errno, "chdir to the rootfs");
        if (syscall (SYS_pivot_root, ".", ".") < 0)
                return moat_make_error (err, errno, "pivot_root %s", mc->rootfs);
        if (mount (NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
                return moat_make_error (err, errno, "make the old root slave");
        if (umount2 (".", MNT_DETACH) < 0)
                return moat_make_error (err, errno, "detach the old root");
        if (chdir ("/") < 0)
                return moat_make_error (err, errno, "chdir /");
        close (mc->rootfd);
        mc->rootfd = -1;
        return 0;
}

int
agent_open_pty (int *slave_out, char **name_out, unsigned rows, unsigned cols, moat_error_t *err)
{
        cleanup_close int master = open ("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
        char name[64];
        int slave;

        if (master < 0)
                return moat_make_error (err, errno, "open /dev/ptmx");
        if (unlockpt (master) < 0)
                return moat_make_error (err, errno, "unlockpt");
        if (ptsname_r (master, name, sizeof name) != 0)
                return moat_make_error (err, errno, "ptsname");
        slave = open (name, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (slave < 0)
                return moat_make_error (err, errno, "open %s", name);
        if (rows && cols) {
                struct winsize ws = {.ws_row = rows, .ws_col = cols};
                ioctl (master, TIOCSWINSZ, &ws);
        }
        *slave_out = slave;
        if (name_out)
                *name_out = xstrdup (name);
        return steal_fd (&master);
}

int
agent_bind_console (const char *pts_name, moat_error_t *err)
{
        struct stat st;
        if (stat ("/dev/console", &st) < 0) {
                int fd = open ("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return moat_make_error (err, errno, "create /dev/console");
                close (fd);
        }
        if (mount (pts_name, "/dev/console", NULL, MS_BIND, NULL) < 0)
                return moat_make_error (err, errno, "bind %s onto /dev/console", pts_name);
        return 0;
}

int
agent_rootfs_finish (struct oci_config *cfg, moat_error_t *err)
{
        struct oci_linux *l = cfg->linux_;

        for (size_t i = 0; l && i < l->n_sysctl; i++) {
                cleanup_free char *path = xasprintf_r ("/proc/sys/%s", l->sysctl_keys[i]);
                cleanup_close int fd = -1;
                if (strstr (l->sysctl_keys[i], ".."))
                        return moat_make_error (err, EINVAL, "linux.sysctl: invalid key %s", l->sysctl_keys[i]);
                for (char *s = path + strlen ("/proc/sys/"); *s; s++)
                        if (*s == '.')
                                *s = '/';
                fd = open (path, O_WRONLY | O_CLOEXEC);
                if (fd < 0 || write (fd, l->sysctl_values[i], strlen (l->sysctl_values[i])) < 0)
                        return moat_make_error (err, errno, "linux.sysctl %s=%s", l->sysctl_keys[i],
                                                l->sysctl_values[i]);
        }
        for (size_t i = 0; l && l->readonly_paths && l->readonly_paths[i]; i++) {
                const char *p = l->readonly_paths[i];
                if (mount (p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return moat_make_error (err, errno, "linux.readonlyPaths: bind %s", p);
                }
                if (bind_remount (p, MS_RDONLY | MS_REC, err) < 0)
                        return moat_error_wrap (err, "linux.readonlyPaths");
        }
        for (size_t i = 0; l && l->masked_paths && l->masked_paths[i]; i++) {
                const char *p = l->masked_paths[i];
                struct stat st;
                int r;
                if (stat (p, &st) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return moat_make_error (err, errno, "linux.maskedPaths: %s", p);
                }
                if (S_ISDIR (st.st_mode))
                        r = mount ("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k,mode=0555");
                else
                        r = mount ("/dev/null", p, NULL, MS_BIND, NULL);
                if (r < 0)
                        return moat_make_error (err, errno, "linux.maskedPaths: mask %s", p);
        }
        if (cfg->root_readonly && bind_remount ("/", MS_RDONLY, err) < 0)
                return moat_error_wrap (err, "root.readonly");
        return 0;
}

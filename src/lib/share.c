/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/agent_proto.h"
#include "moat/log.h"
#include "moat/paths.h"
#include "moat/share.h"
#include "moat/util.h"

static void
record (struct moat_share *s, const char *target)
{
        s->mounted = xrealloc (s->mounted, (s->n_mounted + 2) * sizeof (char *));
        s->mounted[s->n_mounted++] = xstrdup (target);
        s->mounted[s->n_mounted] = NULL;
}

int
moat_share_init (struct moat_share *s, const char *state_dir, moat_error_t *err)
{
        memset (s, 0, sizeof *s);
        s->mntns_fd = -1;
        s->dir = xasprintf_r ("%s/shared", state_dir);
        if (mkdir (s->dir, 0711) < 0 && errno != EEXIST)
                return moat_make_error (err, errno, "mkdir %s", s->dir);
        /* The share is its own private mount, so the binds staged in it never
         * propagate to other mount namespaces (where they would outlive
         * the sandbox). */
        if (mount (s->dir, s->dir, NULL, MS_BIND, NULL) < 0)
                return moat_make_error (err, errno, "bind %s", s->dir);
        record (s, s->dir);
        if (mount (NULL, s->dir, NULL, MS_PRIVATE, NULL) < 0)
                return moat_make_error (err, errno, "make %s private", s->dir);
        return 0;
}

int
moat_share_join (struct moat_share *s, const char *share_dir, const char *id, int mntns_fd, moat_error_t *err)
{
        memset (s, 0, sizeof *s);
        s->mntns_fd = mntns_fd;
        s->dir = xstrdup (share_dir);
        s->owned = xasprintf_r ("%s/%s", share_dir, id);
        if (access (s->dir, F_OK) < 0)
                return moat_make_error (err, errno, "the sandbox's share %s", s->dir);
        return 0;
}

static int
has_option (char **opts, const char *o)
{
        for (size_t i = 0; opts && opts[i]; i++)
                if (strcmp (opts[i], o) == 0)
                        return 1;
        return 0;
}

int
moat_mount_is_bind (const struct oci_mount *m, int *recursive)
{
        int rbind = has_option (m->options, "rbind");
        int bind = rbind || has_option (m->options, "bind") || (m->type && strcmp (m->type, "bind") == 0);
        if (recursive)
                *recursive = rbind;
        return bind;
}

/* A bind the share stages: the source cloned (open_tree) where the
 * caller's paths resolve, attached at target afterwards, possibly in
 * another mount namespace (a pod's container joining the sandbox VMM's). */
struct staged_bind {
        int fd;
        bool dir;
        char *target;
        const char *what; /* for errors */
};

static void
staged_binds_free (struct staged_bind *b, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (b[i].fd >= 0)
                        close (b[i].fd);
                free (b[i].target);
        }
        free (b);
}

/* Clones source (recursively for rbind; read-only on top when asked). */
static int
clone_source (const char *source, int recursive, int readonly, struct staged_bind *b, moat_error_t *err)
{
        struct stat st;
        struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};

        if (stat (source, &st) < 0)
                return moat_make_error (err, errno, "%s", source);
        b->dir = S_ISDIR (st.st_mode);
        b->fd = syscall (SYS_open_tree, AT_FDCWD, source,
                         OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
        if (b->fd < 0)
                return moat_make_error (err, errno, "bind %s", source);
        if (readonly && syscall (SYS_mount_setattr, b->fd, "", AT_EMPTY_PATH, &ro, sizeof ro) < 0)
                return moat_make_error (err, errno, "make the bind of %s read-only", source);
        return 0;
}

/* Attaches a cloned source at its target (created as a file or directory
 * to match), in the mount namespace we are in now. */
static int
attach (struct moat_share *s, struct staged_bind *b, moat_error_t *err)
{
        if (b->dir) {
                if (mkdir (b->target, 0700) < 0 && errno != EEXIST)
                        return moat_make_error (err, errno, "mkdir %s", b->target);
        } else {
                int fd = open (b->target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd < 0)
                        return moat_make_error (err, errno, "create %s", b->target);
                close (fd);
        }
        if (syscall (SYS_move_mount, b->fd, "", AT_FDCWD, b->target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return moat_make_error (err, errno, "bind to %s", b->target);
        record (s, b->target);
        close (b->fd);
        b->fd = -1;
        return 0;
}

static char *
resolve (const char *bundle, const char *p)
{
        if (p[0] == '/')
                return xstrdup (p);
        return xasprintf_r ("%s/%s", bundle, p);
}

static int
open_in_root (int rootfd, const char *path, int flags)
{
        struct open_how how = {.flags = flags | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
        return syscall (SYS_openat2, rootfd, path, &how, sizeof how);
}

/* Creates the mount point `dest` inside the rootfs (a directory, or an empty
 * file when !dir), resolving symlinks as the guest will: inside the rootfs,
 * never out of it. Needed when the guest sees the rootfs read-only. */
static int
ensure_mountpoint (int rootfd, const char *dest, bool dir, moat_error_t *err)
{
        cleanup_free char *p = xstrdup (dest);
        cleanup_close int parent = -1;
        char *slash, *name;
        int fd;

        fd = open_in_root (rootfd, p, O_PATH);
        if (fd >= 0) {
                close (fd);
                return 0;
        }
        if (errno != ENOENT)
                return moat_make_error (err, errno, "%s in the rootfs", dest);
        slash = strrchr (p, '/');
        name = slash + 1;
        if (slash == p) {
                parent = fcntl (rootfd, F_DUPFD_CLOEXEC, 3);
        } else {
                *slash = '\0';
                if (ensure_mountpoint (rootfd, p, true, err) < 0)
                        return -1;
                parent = open_in_root (rootfd, p, O_PATH | O_DIRECTORY);
        }
        if (parent < 0)
                return moat_make_error (err, errno, "%s in the rootfs", p);
        if (*name == '\0' || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
                return 0;
        if (dir) {
                if (mkdirat (parent, name, 0755) < 0 && errno != EEXIST)
                        return moat_make_error (err, errno, "mkdir %s in the rootfs", dest);
                return 0;
        }
        fd = openat (parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
                return moat_make_error (err, errno, "create %s in the rootfs", dest);
        if (fd >= 0)
                close (fd);
        return 0;
}

/* With root.readonly the guest cannot create mount points, so they are made
 * here, in the bundle rootfs, as runc would: for every mount whose
 * destination is not inside an earlier mount of the config. */
static int
prepare_mountpoints (const char *bundle, const char *rootfs, struct oci_config *cfg, moat_error_t *err)
{
        cleanup_close int rootfd = open (rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (rootfd < 0)
                return moat_make_error (err, errno, "%s", rootfs);
        for (size_t i = 0; i < cfg->n_mounts; i++) {
                const char *d = cfg->mounts[i].destination;
                bool dir = true, covered = false;
                struct stat st;

                for (size_t j = 0; j < i && !covered; j++) {
                        const char *o = cfg->mounts[j].destination;
                        size_t n = strlen (o);
                        covered = strcmp (o, "/") != 0 && strncmp (d, o, n) == 0 && d[n] == '/';
                }
                if (covered)
                        continue;
                if (moat_mount_is_bind (&cfg->mounts[i], NULL) && cfg->mounts[i].source) {
                        cleanup_free char *src = resolve (bundle, cfg->mounts[i].source);
                        if (stat (src, &st) == 0 && !S_ISDIR (st.st_mode))
                                dir = false;
                }
                if (ensure_mountpoint (rootfd, d, dir, err) < 0)
                        return moat_error_wrap (err, "mounts[%zu]", i);
        }
        return 0;
}

/* Hooks the host runs. createContainer and startContainer run in the guest,
 * in the container's namespaces; see stage_host_view for how a
 * createContainer path still resolves in the runtime (host) namespace. */
static const char *const host_hooks[] = {"prestart", "createRuntime", "poststart", "poststop"};

/* Host pseudo-filesystems the view leaves out: the guest mounts its own. */
static const char *const view_hidden[] = {"proc", "sys", "dev"};

/* createContainer hooks run in the guest, in the container's namespaces,
 * but their path MUST resolve in the runtime namespace (config.md), and
 * real hooks are host programs with host interpreters and libraries that
 * may touch the bundle, the rootfs or any host file, as under runc. So for
 * the length of the create the host lends the guest a view of its own root
 * at shared/<id>/host: a recursive bind of "/" (nosuid, nodev), without
 * its /proc, /sys and /dev (the agent mounts the guest's there). The agent
 * runs each hook chrooted there, its cwd the bundle, still in the
 * container's namespaces. The guest is fresh at that point: no container
 * code has run in it, so lending it the host's files is no more than
 * running the hook on the host, as runc does. moat_share_drop_host_view
 * withdraws the view as soon as CreateContainer returns, before any
 * container code runs. */
static int
stage_host_view (struct moat_share *s, const char *cdir, moat_error_t *err)
{
        cleanup_free char *view = xasprintf_r ("%s/host", cdir);
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
        cleanup_close int vfd = -1;

        if (mkdir (view, 0700) < 0)
                return moat_make_error (err, errno, "mkdir %s", view);
        if (mount ("/", view, NULL, MS_BIND | MS_REC, NULL) < 0)
                return moat_make_error (err, errno, "bind / to %s", view);
        record (s, view);
        for (size_t i = 0; i < ARRAY_SIZE (view_hidden); i++) {
                cleanup_free char *t = xasprintf_r ("%s/%s", view, view_hidden[i]);
                if (umount2 (t, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                        return moat_make_error (err, errno, "detach %s", t);
        }
        vfd = open (view, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (vfd < 0)
                return moat_make_error (err, errno, "open %s", view);
        if (syscall (SYS_mount_setattr, vfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
                return moat_make_error (err, errno, "make %s nosuid,nodev", view);
        s->host_view = steal_pointer (&view);
        return 0;
}

int
moat_share_drop_host_view (struct moat_share *s, moat_error_t *err)
{
        cleanup_free char *view = steal_pointer (&s->host_view);

        if (view == NULL)
                return 0;
        /* one detach takes the whole recursive tree */
        if (umount2 (view, MNT_DETACH) < 0 && errno != EINVAL)
                return moat_make_error (err, errno, "withdraw the host view %s", view);
        return 0;
}

int
moat_share_stage (struct moat_share *s, const char *id, const char *bundle, struct oci_config *cfg, char **guest_json,
                  moat_error_t *err)
{
        cleanup_free char *cdir = xasprintf_r ("%s/%s", s->dir, id);
        cleanup_free char *mdir = xasprintf_r ("%s/mounts", cdir);
        cleanup_free char *rootfs = NULL;
        cleanup_free char *rootfs_target = xasprintf_r ("%s/rootfs", cdir);
        cleanup_free char *guest_root = xasprintf_r ("%s/%s/rootfs", MOAT_GUEST_SHARE, id);
        const char *root_path[] = {"root", "path", NULL};
        const char *mounts_path[] = {"mounts", NULL};
        const char *hooks_path[] = {"hooks", NULL};
        yajl_val v, mounts, hooks;
        struct staged_bind *binds = NULL;
        size_t n_binds = 0;

        if (s->mntns_fd >= 0 && cfg->n_hooks[OCI_HOOK_CREATE_CONTAINER] > 0)
                return moat_make_error (err, ENOTSUP,
                                        "hooks.createContainer: not supported in a container added to a running "
                                        "sandbox (the host view is never lent to a VM where a container runs)");
        binds = xzalloc ((cfg->n_mounts + 1) * sizeof *binds);
        rootfs = resolve (bundle, cfg->root_path);
        if (cfg->root_readonly && prepare_mountpoints (bundle, rootfs, cfg, err) < 0)
                goto fail;
        /* 1. every source, where the bundle's paths resolve */
        binds[0].fd = -1;
        binds[0].target = xstrdup (rootfs_target);
        binds[0].what = "root.path";
        n_binds = 1;
        if (clone_source (rootfs, 1, cfg->root_readonly, &binds[0], err) < 0) {
                moat_error_wrap (err, "root.path");
                goto fail;
        }
        mounts = oci_tree_get (cfg->tree, mounts_path);
        for (size_t i = 0; i < cfg->n_mounts; i++) {
                struct oci_mount *m = &cfg->mounts[i];
                cleanup_free char *src = NULL;
                cleanup_free char *guest = NULL;
                const char *src_key[] = {"source", NULL};
                struct staged_bind *b = &binds[n_binds];
                int rec;

                if (!moat_mount_is_bind (m, &rec))
                        continue;
                if (m->source == NULL) {
                        moat_make_error (err, 0, "mounts[%zu] (%s): bind mount without a source", i, m->destination);
                        goto fail;
                }
                if (mounts == NULL || !YAJL_IS_ARRAY (mounts) || i >= YAJL_GET_ARRAY (mounts)->len) {
                        moat_make_error (err, 0, "mounts[%zu]: not in the config tree", i);
                        goto fail;
                }
                v = oci_tree_get (YAJL_GET_ARRAY (mounts)->values[i], src_key);
                if (v == NULL || !YAJL_IS_STRING (v)) {
                        moat_make_error (err, 0, "mounts[%zu]: source is not a string", i);
                        goto fail;
                }
                src = resolve (bundle, m->source);
                b->fd = -1;
                b->target = xasprintf_r ("%s/%zu", mdir, i);
                n_binds++;
                if (clone_source (src, rec, has_option (m->options, "ro"), b, err) < 0) {
                        moat_error_wrap (err, "mounts[%zu] (%s)", i, m->destination);
                        goto fail;
                }
                guest = xasprintf_r ("%s/%s/mounts/%zu", MOAT_GUEST_SHARE, id, i);
                oci_tree_set_string (v, guest);
        }
        /* 2. into the sandbox VMM's mount namespace (a pod's container) */
        if (s->mntns_fd >= 0 && setns (s->mntns_fd, CLONE_NEWNS) < 0) {
                moat_make_error (err, errno, "join the mount namespace of the sandbox's VMM");
                goto fail;
        }
        /* 3. attach them */
        if (mkdir (cdir, 0711) < 0) {
                moat_make_error (err, errno, "mkdir %s", cdir);
                goto fail;
        }
        if (n_binds > 1 && mkdir (mdir, 0711) < 0) {
                moat_make_error (err, errno, "mkdir %s", mdir);
                goto fail;
        }
        for (size_t i = 0; i < n_binds; i++)
                if (attach (s, &binds[i], err) < 0) {
                        moat_error_wrap (err, "%s", binds[i].what ? binds[i].what : "mounts");
                        goto fail;
                }
        staged_binds_free (binds, n_binds);
        binds = NULL;
        if (cfg->n_hooks[OCI_HOOK_CREATE_CONTAINER] > 0 && stage_host_view (s, cdir, err) < 0)
                return moat_error_wrap (err, "hooks.createContainer");

        v = oci_tree_get (cfg->tree, root_path);
        if (v == NULL || !YAJL_IS_STRING (v))
                return moat_make_error (err, 0, "root.path: expected a string");
        oci_tree_set_string (v, guest_root);
        /* Namespace paths are host paths: the host checked them and the
         * stand-in joined the network one; in the guest the container
         * gets new namespaces of those types. */
        {
                const char *ns_path[] = {"linux", "namespaces", NULL};
                yajl_val nss = oci_tree_get (cfg->tree, ns_path);
                for (size_t i = 0; nss && YAJL_IS_ARRAY (nss) && i < YAJL_GET_ARRAY (nss)->len; i++)
                        if (YAJL_IS_OBJECT (YAJL_GET_ARRAY (nss)->values[i]))
                                oci_tree_remove_key (YAJL_GET_ARRAY (nss)->values[i], "path");
        }
        hooks = oci_tree_get (cfg->tree, hooks_path);
        if (hooks && YAJL_IS_OBJECT (hooks))
                for (size_t i = 0; i < ARRAY_SIZE (host_hooks); i++)
                        oci_tree_remove_key (hooks, host_hooks[i]);
        *guest_json = oci_tree_to_json (cfg->tree);
        if (*guest_json == NULL)
                return moat_make_error (err, ENOMEM, "serialise the guest config");
        return 0;
fail:
        staged_binds_free (binds, n_binds);
        return -1;
}

int
moat_share_release (struct moat_share *s, moat_error_t *err)
{
        int ret = 0;
        if (s->dir == NULL)
                return 0;
        for (size_t i = s->n_mounted; i > 0; i--) {
                if (umount2 (s->mounted[i - 1], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT && ret == 0)
                        ret = moat_make_error (err, errno, "unmount %s", s->mounted[i - 1]);
        }
        strv_free (s->mounted);
        s->mounted = NULL;
        free (s->host_view);
        s->host_view = NULL;
        s->n_mounted = 0;
        if (ret == 0 && rm_rf (s->owned ? s->owned : s->dir, err) < 0)
                ret = -1;
        free (s->dir);
        s->dir = NULL;
        free (s->owned);
        s->owned = NULL;
        return ret;
}

/* A mount point of /proc/self/mountinfo (field 5), its octal escapes
 * (\040 for a space...) decoded in place. */
static char *
mountinfo_point (char *line)
{
        char *p = line, *out, *w;
        for (int f = 0; f < 4 && p; f++) {
                p = strchr (p, ' ');
                if (p)
                        p++;
        }
        if (p == NULL)
                return NULL;
        out = w = p;
        for (; *p && *p != ' '; p++) {
                if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
                    p[3] <= '7') {
                        *w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                        p += 3;
                } else
                        *w++ = *p;
        }
        *w = '\0';
        return out;
}

int
moat_share_unstage (const char *share_dir, const char *id, moat_error_t *err)
{
        cleanup_free char *cdir = xasprintf_r ("%s/%s", share_dir, id);
        size_t n = strlen (cdir);
        FILE *f = fopen ("/proc/self/mountinfo", "re");
        char **points = NULL;
        size_t n_points = 0;
        char *line = NULL;
        size_t cap = 0;
        int ret = 0;

        if (f == NULL)
                return moat_make_error (err, errno, "open /proc/self/mountinfo");
        while (getline (&line, &cap, f) > 0) {
                char *mp = mountinfo_point (line);
                if (mp && strncmp (mp, cdir, n) == 0 && (mp[n] == '\0' || mp[n] == '/')) {
                        points = xrealloc (points, (n_points + 1) * sizeof *points);
                        points[n_points++] = xstrdup (mp);
                }
        }
        free (line);
        fclose (f);
        /* the most recent first: submounts go before what they sit on */
        for (size_t i = n_points; i > 0; i--) {
                if (umount2 (points[i - 1], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT && ret == 0)
                        ret = moat_make_error (err, errno, "unmount %s", points[i - 1]);
                free (points[i - 1]);
        }
        free (points);
        if (ret == 0 && access (cdir, F_OK) == 0 && rm_rf (cdir, err) < 0)
                ret = -1;
        return ret;
}

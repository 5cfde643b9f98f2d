/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <string.h>
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

/* Bind source onto target (created as a file or directory to match). */
static int
bind_into (struct moat_share *s, const char *source, const char *target, int recursive, int readonly, moat_error_t *err)
{
        struct stat st;
        unsigned long flags = MS_BIND | (recursive ? MS_REC : 0);

        if (stat (source, &st) < 0)
                return moat_make_error (err, errno, "%s", source);
        if (S_ISDIR (st.st_mode)) {
                if (mkdir (target, 0700) < 0 && errno != EEXIST)
                        return moat_make_error (err, errno, "mkdir %s", target);
        } else {
                int fd = open (target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd < 0)
                        return moat_make_error (err, errno, "create %s", target);
                close (fd);
        }
        if (mount (source, target, NULL, flags, NULL) < 0)
                return moat_make_error (err, errno, "bind %s to %s", source, target);
        record (s, target);
        if (readonly && mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
                return moat_make_error (err, errno, "remount %s read-only", target);
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
        int any_bind = 0;

        if (mkdir (cdir, 0711) < 0)
                return moat_make_error (err, errno, "mkdir %s", cdir);
        rootfs = resolve (bundle, cfg->root_path);
        if (cfg->root_readonly && prepare_mountpoints (bundle, rootfs, cfg, err) < 0)
                return -1;
        if (bind_into (s, rootfs, rootfs_target, 1, cfg->root_readonly, err) < 0)
                return moat_error_wrap (err, "root.path");
        if (cfg->n_hooks[OCI_HOOK_CREATE_CONTAINER] > 0 && stage_host_view (s, cdir, err) < 0)
                return moat_error_wrap (err, "hooks.createContainer");

        for (size_t i = 0; i < cfg->n_mounts; i++) {
                int rec;
                if (moat_mount_is_bind (&cfg->mounts[i], &rec)) {
                        any_bind = 1;
                        break;
                }
        }
        if (any_bind && mkdir (mdir, 0711) < 0)
                return moat_make_error (err, errno, "mkdir %s", mdir);

        mounts = oci_tree_get (cfg->tree, mounts_path);
        for (size_t i = 0; i < cfg->n_mounts; i++) {
                struct oci_mount *m = &cfg->mounts[i];
                cleanup_free char *src = NULL;
                cleanup_free char *target = NULL;
                cleanup_free char *guest = NULL;
                const char *src_key[] = {"source", NULL};
                int rec;

                if (!moat_mount_is_bind (m, &rec))
                        continue;
                if (m->source == NULL)
                        return moat_make_error (err, 0, "mounts[%zu] (%s): bind mount without a source", i,
                                                m->destination);
                src = resolve (bundle, m->source);
                target = xasprintf_r ("%s/%zu", mdir, i);
                if (bind_into (s, src, target, rec, has_option (m->options, "ro"), err) < 0)
                        return moat_error_wrap (err, "mounts[%zu] (%s)", i, m->destination);
                guest = xasprintf_r ("%s/%s/mounts/%zu", MOAT_GUEST_SHARE, id, i);
                if (mounts == NULL || !YAJL_IS_ARRAY (mounts) || i >= YAJL_GET_ARRAY (mounts)->len)
                        return moat_make_error (err, 0, "mounts[%zu]: not in the config tree", i);
                v = oci_tree_get (YAJL_GET_ARRAY (mounts)->values[i], src_key);
                if (v == NULL || !YAJL_IS_STRING (v))
                        return moat_make_error (err, 0, "mounts[%zu]: source is not a string", i);
                oci_tree_set_string (v, guest);
        }

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
        if (ret == 0 && rm_rf (s->dir, err) < 0)
                ret = -1;
        free (s->dir);
        s->dir = NULL;
        return ret;
}

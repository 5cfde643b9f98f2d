/* SPDX-License-Identifier: Apache-2.0 */
/* rm_rf (src/lib/util.c) stops at real mount points and only there. On an
 * overlayfs whose layers sit on different filesystems (xino off), files
 * report their layer's st_dev while directories report the overlay's: such
 * a tree is still one mount and must go. The mounts are made in a private
 * mount namespace of the test process (needs root; skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/util.h"

static char dir[64];
static bool can_mount;

static int
group_setup (void **state)
{
        /* the mounts below vanish with this process */
        can_mount = geteuid () == 0 && unshare (CLONE_NEWNS) == 0 &&
                    mount (NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) == 0;
        return 0;
}

static int
setup (void **state)
{
        strcpy (dir, "/tmp/moat-test-rmrf.XXXXXX");
        assert_non_null (mkdtemp (dir));
        return 0;
}

static int
teardown (void **state)
{
        cleanup_free char *cmd =
                xasprintf_r ("grep -o ' %s/[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l", dir);
        if (system (cmd) != 0)
                fprintf (stderr, "# umount under %s failed\n", dir);
        assert_int_equal (rm_rf (dir, NULL), 0);
        return 0;
}

static void
mkdir_at (const char *fmt, const char *arg)
{
        cleanup_free char *p = xasprintf_r (fmt, dir, arg);
        assert_int_equal (mkdir (p, 0755), 0);
}

static void
touch (const char *path)
{
        int fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true (fd >= 0);
        assert_int_equal (write (fd, "x", 1), 1);
        close (fd);
}

static bool
exists (const char *fmt, const char *arg)
{
        cleanup_free char *p = xasprintf_r (fmt, dir, arg);
        struct stat st;
        return lstat (p, &st) == 0;
}

/* An overlay with its lower layer in the test's directory (the filesystem of
 * /tmp) and its upper layer on a tmpfs of its own, like a container's
 * overlay rootfs over an image store on another disk. */
static void
test_overlay_tree_removed (void **state)
{
        if (!can_mount)
                skip ();
        mkdir_at ("%s/%s", "low");
        mkdir_at ("%s/%s", "up");
        mkdir_at ("%s/%s", "ov");
        cleanup_free char *low = xasprintf_r ("%s/low", dir);
        cleanup_free char *up = xasprintf_r ("%s/up", dir);
        cleanup_free char *ov = xasprintf_r ("%s/ov", dir);
        assert_int_equal (mount ("moat-test", up, "tmpfs", 0, "mode=0755"), 0);
        mkdir_at ("%s/up/%s", "u");
        mkdir_at ("%s/up/%s", "w");
        cleanup_free char *opts = xasprintf_r ("lowerdir=%s,upperdir=%s/u,workdir=%s/w,xino=off", low, up, up);
        if (mount ("overlay", ov, "overlay", 0, opts) < 0) {
                fprintf (stderr, "# overlay mount: %s\n", strerror (errno));
                skip ();
        }
        /* a state directory in the overlay: the files land on the upper tmpfs */
        mkdir_at ("%s/ov/%s", "state");
        mkdir_at ("%s/ov/state/%s", "8");
        cleanup_free char *f1 = xasprintf_r ("%s/ov/state/8/config.json", dir);
        cleanup_free char *f2 = xasprintf_r ("%s/ov/state/%s", dir, "vsock.sock");
        cleanup_free char *l = xasprintf_r ("%s/ov/state/%s", dir, "link");
        touch (f1);
        touch (f2);
        assert_int_equal (symlink ("/", l), 0);

        /* the case that fooled an st_dev comparison */
        cleanup_free char *sd = xasprintf_r ("%s/ov/state", dir);
        struct stat dst, fst;
        assert_int_equal (stat (sd, &dst), 0);
        assert_int_equal (stat (f1, &fst), 0);
        assert_true (dst.st_dev != fst.st_dev);

        moat_error_t err = NULL;
        int r = rm_rf (sd, &err);
        if (r < 0)
                fprintf (stderr, "# rm_rf: %s\n", err ? err->msg : "?");
        moat_error_release (&err);
        assert_int_equal (r, 0);
        assert_false (exists ("%s/ov/%s", "state"));
        assert_true (exists ("%s/%s", "ov"));
}

/* A real mount inside the tree (a directory or a file bind-mounted over)
 * stops rm_rf with EBUSY and what is mounted there stays untouched. */
static void
test_mount_points_refused (void **state)
{
        if (!can_mount)
                skip ();
        mkdir_at ("%s/%s", "t");
        mkdir_at ("%s/t/%s", "m");
        cleanup_free char *t = xasprintf_r ("%s/t", dir);
        cleanup_free char *m = xasprintf_r ("%s/t/m", dir);
        cleanup_free char *keep = xasprintf_r ("%s/t/m/%s", dir, "keep");
        assert_int_equal (mount ("moat-test", m, "tmpfs", 0, "mode=0755"), 0);
        touch (keep);

        moat_error_t err = NULL;
        assert_int_equal (rm_rf (t, &err), -1);
        assert_int_equal (err->errno_, EBUSY);
        assert_non_null (strstr (err->msg, "another filesystem is mounted there"));
        moat_error_release (&err);
        assert_true (exists ("%s/t/m/%s", "keep"));
        assert_int_equal (umount (m), 0);

        /* a file bind-mounted over a file of the same filesystem */
        cleanup_free char *src = xasprintf_r ("%s/%s", dir, "src");
        cleanup_free char *dst = xasprintf_r ("%s/t/m/%s", dir, "dst");
        touch (src);
        touch (dst);
        assert_int_equal (mount (src, dst, NULL, MS_BIND, NULL), 0);
        assert_int_equal (rm_rf (t, &err), -1);
        assert_int_equal (err->errno_, EBUSY);
        assert_non_null (strstr (err->msg, "a file is mounted there"));
        moat_error_release (&err);
        assert_true (exists ("%s/%s", "src"));
        assert_int_equal (umount (dst), 0);

        /* with the mounts gone it all goes */
        assert_int_equal (rm_rf (t, &err), 0);
        assert_false (exists ("%s/%s", "t"));
}

/* A plain tree, and a path that is not there. */
static void
test_plain_tree (void **state)
{
        mkdir_at ("%s/%s", "a");
        mkdir_at ("%s/a/%s", "b");
        cleanup_free char *f = xasprintf_r ("%s/a/b/%s", dir, "f");
        cleanup_free char *a = xasprintf_r ("%s/a", dir);
        touch (f);
        assert_int_equal (rm_rf (a, NULL), 0);
        assert_false (exists ("%s/%s", "a"));
        assert_int_equal (rm_rf (a, NULL), 0);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_overlay_tree_removed, setup, teardown),
                cmocka_unit_test_setup_teardown (test_mount_points_refused, setup, teardown),
                cmocka_unit_test_setup_teardown (test_plain_tree, setup, teardown),
        };
        return cmocka_run_group_tests (tests, group_setup, NULL);
}

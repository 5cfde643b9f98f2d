/* SPDX-License-Identifier: Apache-2.0 */
/* Where moat finds its companion files (src/lib/paths.c): next to its own
 * executable, as resolved when the process started. Run under a chroot, a
 * process that then unshares its mount namespace (as moat create does) sees
 * /proc/self/exe change to a path from the namespace's root; the lookup
 * must not follow it. The chroot case needs root (skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/paths.h"
#include "moat/util.h"

#define CHILD_ARG "--find-after-unshare"

/* The child: started inside the chroot, unshares like moat create, then
 * looks for moat-vsock, which must be `want`. */
static int
child_main (const char *want)
{
        cleanup_free char *got = NULL;
        moat_error_t err = NULL;
        char self[PATH_MAX];
        ssize_t n;

        unsetenv ("MOAT_VSOCK");
        if (unshare (CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_SLAVE | MS_REC, NULL) < 0) {
                perror ("unshare");
                return 2;
        }
        n = readlink ("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        fprintf (stderr, "# /proc/self/exe after unshare: %s\n", self);
        if (moat_find_file (MOAT_FILE_VSOCKD, &got, &err) < 0) {
                fprintf (stderr, "# %s\n", err->msg);
                moat_error_release (&err);
                return 1;
        }
        if (strcmp (got, want) != 0) {
                fprintf (stderr, "# found %s, want %s\n", got, want);
                return 1;
        }
        return 0;
}

static void
copy_file (const char *from, const char *to, int mode)
{
        cleanup_free char *data = NULL;
        size_t len;
        assert_int_equal (read_file (from, &data, &len, NULL), 0);
        assert_int_equal (write_file (to, data, len, mode, NULL), 0);
}

static void
test_self_dir (void **state)
{
        char self[PATH_MAX];
        ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
        assert_true (n > 0);
        self[n] = '\0';
        assert_non_null (moat_self_dir ());
        assert_string_equal (moat_self_dir (), dirname (self));
}

/* chroot into a recursive bind mount of /, then run a copy of this program
 * that has a moat-vsock next to it. */
static void
test_chroot_then_unshare (void **state)
{
        if (geteuid () != 0)
                skip ();
        char dir[] = "/tmp/moat-test-paths.XXXXXX";
        assert_non_null (mkdtemp (dir));
        cleanup_free char *bin = xasprintf_r ("%s/bin", dir);
        cleanup_free char *prog = xasprintf_r ("%s/bin/test_host_paths", dir);
        cleanup_free char *vsockd = xasprintf_r ("%s/bin/moat-vsock", dir);
        cleanup_free char *newroot = xasprintf_r ("%s/newroot", dir);
        assert_int_equal (mkdir (bin, 0755), 0);
        assert_int_equal (mkdir (newroot, 0755), 0);
        copy_file ("/proc/self/exe", prog, 0755);
        assert_int_equal (write_file (vsockd, "#!/bin/sh\n", 10, 0755, NULL), 0);

        /* As a shell script run under a chroot does it: the chroot is a
         * child of a process that stays in the namespace's real root.
         * (With no such process left, e.g. `exec chroot`, the kernel keeps
         * the path right and this test would not see the fault.) */
        cleanup_free char *script = xasprintf_r ("mount --rbind / %s && chroot %s %s %s %s; rc=$?; exit $rc", newroot,
                                                 newroot, prog, CHILD_ARG, vsockd);
        pid_t pid = fork ();
        assert_true (pid >= 0);
        if (pid == 0) {
                /* the bind mount lives in a mount namespace of its own */
                execlp ("unshare", "unshare", "-m", "--propagation", "private", "sh", "-c", script, (char *)NULL);
                perror ("exec unshare");
                _exit (3);
        }
        int status;
        assert_int_equal (waitpid (pid, &status, 0), pid);
        assert_int_equal (rm_rf (dir, NULL), 0);
        assert_true (WIFEXITED (status));
        assert_int_equal (WEXITSTATUS (status), 0);
}

int
main (int argc, char **argv)
{
        if (argc == 3 && strcmp (argv[1], CHILD_ARG) == 0)
                return child_main (argv[2]);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_self_dir),
                cmocka_unit_test (test_chroot_then_unshare),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

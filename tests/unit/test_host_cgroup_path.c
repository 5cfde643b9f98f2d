/* SPDX-License-Identifier: Apache-2.0 */
/* The default host cgroup (no linux.cgroupsPath) of src/lib/hostcgroup.c:
 * two moat instances with different --root and the same container id must
 * get different cgroups (else one's delete fails with EBUSY on the other's
 * cgroup), the default root keeps the plain "/moat/<id>", and the same root
 * spelled differently gets the same cgroup (delete recomputes it for a
 * create that died before recording it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "moat/hostcgroup.h"
#include "moat/util.h"

static char *
resolve (const char *cgroups_path, const char *root, bool systemd)
{
        char *out = NULL;
        moat_error_t e = NULL;
        if (moat_hostcg_resolve (cgroups_path, root, "cid", systemd, &out, &e) < 0)
                fail_msg ("%s: %s", root ? root : "(null)", e->msg);
        return out;
}

static void
test_default_root_is_plain (void **state)
{
        cleanup_free char *a = resolve (NULL, "/run/moat", false);
        cleanup_free char *b = resolve (NULL, NULL, false);
        cleanup_free char *c = resolve ("", "/run/moat/", false);
        cleanup_free char *d = resolve (NULL, "/run/moat", true);
        cleanup_free char *old = NULL;
        moat_error_t e = NULL;

        assert_string_equal (a, "/moat/cid");
        assert_string_equal (b, "/moat/cid");
        assert_string_equal (c, "/moat/cid");
        assert_string_equal (d, "/system.slice/moat-cid.scope");
        assert_int_equal (moat_hostcg_path (NULL, "cid", false, &old, &e), 0);
        assert_string_equal (old, "/moat/cid");
}

static void
test_other_roots_differ (void **state)
{
        char r1[] = "/tmp/moat-test-cgroot.XXXXXX", r2[] = "/tmp/moat-test-cgroot.XXXXXX";
        cleanup_free char *p1 = NULL;
        cleanup_free char *p2 = NULL;
        cleanup_free char *p1b = NULL;
        cleanup_free char *p1c = NULL;
        cleanup_free char *s1 = NULL;
        cleanup_free char *link = NULL;
        cleanup_free char *dot = NULL;

        assert_non_null (mkdtemp (r1));
        assert_non_null (mkdtemp (r2));
        p1 = resolve (NULL, r1, false);
        p2 = resolve (NULL, r2, false);
        assert_string_not_equal (p1, p2);
        assert_string_not_equal (p1, "/moat/cid");
        /* "/moat/cid@" + 16 hex digits: '@' is not allowed in ids, so no
         * other id's plain name can be this one */
        assert_int_equal (strlen (p1), strlen ("/moat/cid@") + 16);
        assert_memory_equal (p1, "/moat/cid@", strlen ("/moat/cid@"));
        assert_int_equal (strspn (p1 + strlen ("/moat/cid@"), "0123456789abcdef"), 16);

        /* the same root through a symlink, with a trailing "/." */
        link = xasprintf_r ("%s.link", r1);
        assert_int_equal (symlink (r1, link), 0);
        p1b = resolve (NULL, link, false);
        dot = xasprintf_r ("%s/.", r1);
        p1c = resolve (NULL, dot, false);
        assert_string_equal (p1, p1b);
        assert_string_equal (p1, p1c);

        /* --systemd-cgroup: the scope carries the same suffix */
        s1 = resolve (NULL, r1, true);
        {
                cleanup_free char *want = xasprintf_r ("/system.slice/moat-cid%s.scope", p1 + strlen ("/moat/cid"));
                assert_string_equal (s1, want);
        }
        unlink (link);
        rmdir (r1);
        rmdir (r2);
}

/* The suffix must not change between versions: delete recomputes the
 * default of a create that died before it recorded its cgroup. */
static void
test_suffix_is_stable (void **state)
{
        cleanup_free char *p = resolve (NULL, "/nonexistent/moat-root", false);
        cleanup_free char *q = resolve (NULL, "/nonexistent/moat-root//", false);
        assert_string_equal (p, "/moat/cid@db1a521a661ca882");
        assert_string_equal (q, p);
}

/* A cgroupsPath given is used whatever the root. */
static void
test_given_path_ignores_root (void **state)
{
        cleanup_free char *a = resolve ("/oci/a", "/nonexistent/moat-root", false);
        cleanup_free char *b = resolve ("system.slice:docker:abc", "/nonexistent/moat-root", true);
        assert_string_equal (a, "/oci/a");
        assert_string_equal (b, "/system.slice/docker-abc.scope");
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_default_root_is_plain),
                cmocka_unit_test (test_other_roots_differ),
                cmocka_unit_test (test_suffix_is_stable),
                cmocka_unit_test (test_given_path_ignores_root),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

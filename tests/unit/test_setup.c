/* SPDX-License-Identifier: Apache-2.0 */
/* moat setup (src/lib/setup.c) against a temporary root: the daemon.json
 * merge keeps every other key and value as written and --remove restores
 * the object; a malformed or non-object daemon.json and a foreign drop-in
 * are refused and left as they were; the podman drop-in is idempotent.
 * (tests/integration/setup.sh checks the results with the clients.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/setup.h"
#include "moat/util.h"

static char root[64];

static int
make_root (void **state)
{
        snprintf (root, sizeof root, "/tmp/moat-test-setup.XXXXXX");
        assert_non_null (mkdtemp (root));
        return 0;
}

static int
remove_root (void **state)
{
        moat_error_t err = NULL;
        assert_int_equal (rm_rf (root, &err), 0);
        return 0;
}

static char *
slurp (const char *path)
{
        char *t = NULL;
        moat_error_t err = NULL;
        if (read_file (path, &t, NULL, &err) < 0) {
                moat_error_release (&err);
                return NULL;
        }
        return t;
}

static int
run (enum moat_setup_client c, bool remove, char **msg)
{
        struct moat_setup_opts o = {.root_dir = root, .moat_path = "/usr/bin/moat", .remove = remove};
        moat_error_t err = NULL;
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream (&out, &len);
        int r = moat_setup (c, &o, f, &err);
        fclose (f);
        if (r < 0) {
                free (out);
                out = xstrdup (err->msg);
                moat_error_release (&err);
        }
        if (msg)
                *msg = out;
        else
                free (out);
        return r;
}

static void
test_docker_merge_and_remove (void **state)
{
        static const char orig[] = "{\"debug\": true, \"n\": 1.50, \"big\": 12345678901234567890,\n"
                                   " \"s\": \"a\\u00e9\\\"b\", \"arr\": [1, null, {\"x\": []}],\n"
                                   " \"runtimes\": {\"crun\": {\"path\": \"/usr/bin/crun\"}}}\n";
        cleanup_free char *path = moat_setup_path (MOAT_SETUP_DOCKER, root);
        cleanup_free char *dir = xasprintf_r ("%s/etc/docker", root);
        cleanup_free char *backup = xasprintf_r ("%s.moat-backup", path);
        moat_error_t err = NULL;
        char *msg = NULL, *text;

        assert_int_equal (mkdir_p (dir, 0755, &err), 0);
        assert_int_equal (write_file (path, orig, strlen (orig), 0644, &err), 0);
        assert_int_equal (run (MOAT_SETUP_DOCKER, false, &msg), 0);
        free (msg);
        text = slurp (path);
        /* numbers as written, strings re-escaped, the other runtime kept */
        assert_non_null (strstr (text, "\"n\": 1.50"));
        assert_non_null (strstr (text, "\"big\": 12345678901234567890"));
        assert_non_null (strstr (text, "\"crun\": {"));
        assert_non_null (strstr (text, "\"moat\": {\n      \"path\": \"/usr/bin/moat\""));
        assert_non_null (strstr (text, "\"arr\": [\n    1,\n    null,"));
        free (text);
        text = slurp (backup);
        assert_string_equal (text, orig);
        free (text);

        /* again: nothing changes */
        assert_int_equal (run (MOAT_SETUP_DOCKER, false, &msg), 0);
        assert_non_null (strstr (msg, "unchanged"));
        free (msg);

        assert_int_equal (run (MOAT_SETUP_DOCKER, true, &msg), 0);
        free (msg);
        text = slurp (path);
        assert_null (strstr (text, "moat"));
        assert_non_null (strstr (text, "\"crun\""));
        free (text);
        assert_int_equal (access (backup, F_OK), -1);
}

static void
test_docker_bad_files_untouched (void **state)
{
        static const char *const bad[] = {"{\"debug\": true,", "[1, 2]", "{\"runtimes\": [\"moat\"]}", "\"moat\""};
        cleanup_free char *path = moat_setup_path (MOAT_SETUP_DOCKER, root);
        cleanup_free char *dir = xasprintf_r ("%s/etc/docker", root);
        moat_error_t err = NULL;

        assert_int_equal (mkdir_p (dir, 0755, &err), 0);
        for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
                char *msg = NULL, *text;
                assert_int_equal (write_file (path, bad[i], strlen (bad[i]), 0644, &err), 0);
                assert_int_equal (run (MOAT_SETUP_DOCKER, false, &msg), -1);
                assert_non_null (strstr (msg, path));
                assert_non_null (strstr (msg, "left untouched"));
                free (msg);
                text = slurp (path);
                assert_string_equal (text, bad[i]);
                free (text);
        }
}

static void
test_dropins (void **state)
{
        cleanup_free char *p = moat_setup_path (MOAT_SETUP_PODMAN, root);
        cleanup_free char *first = NULL;
        moat_error_t err = NULL;
        char *msg = NULL, *text;
        struct stat st;

        assert_int_equal (run (MOAT_SETUP_PODMAN, false, NULL), 0);
        first = slurp (p);
        assert_non_null (strstr (first, "[engine.runtimes]\nmoat = [\"/usr/bin/moat\"]\n"));
        assert_int_equal (run (MOAT_SETUP_PODMAN, false, &msg), 0);
        assert_non_null (strstr (msg, "unchanged"));
        free (msg);
        assert_int_equal (run (MOAT_SETUP_PODMAN, true, NULL), 0);
        assert_int_equal (stat (p, &st), -1);

        /* someone else's file of that name */
        cleanup_free char *dir = xasprintf_r ("%s/etc/containers/containers.conf.d", root);
        assert_int_equal (mkdir_p (dir, 0755, &err), 0);
        assert_int_equal (write_file (p, "[engine]\n", 9, 0644, &err), 0);
        assert_int_equal (run (MOAT_SETUP_PODMAN, false, &msg), -1);
        assert_non_null (strstr (msg, "was not written by moat setup"));
        free (msg);
        assert_int_equal (run (MOAT_SETUP_PODMAN, true, &msg), -1);
        free (msg);
        text = slurp (p);
        assert_string_equal (text, "[engine]\n");
        free (text);
}

static void
test_bad_runtime_path (void **state)
{
        struct moat_setup_opts o = {.root_dir = root, .moat_path = "/usr/bin/mo\"at"};
        moat_error_t err = NULL;
        assert_int_equal (moat_setup (MOAT_SETUP_PODMAN, &o, stdout, &err), -1);
        assert_non_null (strstr (err->msg, "quote"));
        moat_error_release (&err);
        o.moat_path = "moat";
        assert_int_equal (moat_setup (MOAT_SETUP_DOCKER, &o, stdout, &err), -1);
        assert_non_null (strstr (err->msg, "must be absolute"));
        moat_error_release (&err);
        assert_int_equal (moat_setup_client_lookup ("podman"), MOAT_SETUP_PODMAN);
        assert_int_equal (moat_setup_client_lookup ("cri-o"), -1);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_docker_merge_and_remove, make_root, remove_root),
                cmocka_unit_test_setup_teardown (test_docker_bad_files_untouched, make_root, remove_root),
                cmocka_unit_test_setup_teardown (test_dropins, make_root, remove_root),
                cmocka_unit_test_setup_teardown (test_bad_runtime_path, make_root, remove_root),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The records of exec stand-ins (src/lib/execrec.c) that `moat ps --format
 * json` reports: live ones are listed (sorted), a dead stand-in's record
 * (killed before it could drop it, or a pid reused since) is dropped when
 * listed, and a state directory deleted meanwhile is never made again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moat/execrec.h"
#include "moat/util.h"

static char dir[64];

static int
setup (void **state)
{
        strcpy (dir, "/tmp/moat-test-execrec.XXXXXX");
        assert_non_null (mkdtemp (dir));
        return 0;
}

static int
teardown (void **state)
{
        assert_int_equal (rm_rf (dir, NULL), 0);
        return 0;
}

static pid_t
sleeper (void)
{
        pid_t p = fork ();
        assert_true (p >= 0);
        if (p == 0) {
                pause ();
                _exit (0);
        }
        return p;
}

static void
reap (pid_t p)
{
        kill (p, SIGKILL);
        waitpid (p, NULL, 0);
}

static bool
has_record (const char *eid)
{
        cleanup_free char *p = xasprintf_r ("%s/execs/%s", dir, eid);
        return access (p, F_OK) == 0;
}

static void
test_live_listed_sorted (void **state)
{
        pid_t a = sleeper (), b = sleeper ();
        cleanup_free pid_t *pids = NULL;
        size_t n = 0;

        assert_int_equal (moat_execrec_add (dir, "exec-b", b, NULL), 0);
        assert_int_equal (moat_execrec_add (dir, "exec-a", a, NULL), 0);
        assert_int_equal (moat_execrec_list (dir, &pids, &n, NULL), 0);
        assert_int_equal (n, 2);
        assert_int_equal (pids[0], a < b ? a : b);
        assert_int_equal (pids[1], a < b ? b : a);

        moat_execrec_remove (dir, "exec-a");
        assert_false (has_record ("exec-a"));
        free (pids);
        pids = NULL;
        assert_int_equal (moat_execrec_list (dir, &pids, &n, NULL), 0);
        assert_int_equal (n, 1);
        assert_int_equal (pids[0], b);
        reap (a);
        reap (b);
}

static void
test_dead_dropped (void **state)
{
        pid_t a = sleeper ();
        cleanup_free pid_t *pids = NULL;
        size_t n = 7;

        assert_int_equal (moat_execrec_add (dir, "exec-dead", a, NULL), 0);
        /* a zombie is dead too */
        kill (a, SIGKILL);
        for (int i = 0; i < 100 && has_record ("exec-dead"); i++) {
                assert_int_equal (moat_execrec_list (dir, &pids, &n, NULL), 0);
                free (pids);
                pids = NULL;
                usleep (10000);
        }
        assert_false (has_record ("exec-dead"));
        assert_int_equal (n, 0);
        waitpid (a, NULL, 0);

        /* a pid that lives, but not since the recorded start: reused */
        {
                cleanup_free char *p = xasprintf_r ("%s/execs/exec-reused", dir);
                cleanup_free char *line = xasprintf_r ("%d 1\n", (int)getpid ());
                assert_int_equal (write_file (p, line, strlen (line), 0600, NULL), 0);
        }
        assert_int_equal (moat_execrec_list (dir, &pids, &n, NULL), 0);
        assert_int_equal (n, 0);
        assert_false (has_record ("exec-reused"));
}

static void
test_no_dir_no_records (void **state)
{
        cleanup_free char *gone = xasprintf_r ("%s/deleted", dir);
        cleanup_free pid_t *pids = NULL;
        moat_error_t err = NULL;
        size_t n = 7;
        struct stat st;

        assert_int_equal (moat_execrec_list (gone, &pids, &n, NULL), 0);
        assert_int_equal (n, 0);
        assert_int_equal (moat_execrec_add (gone, "exec-x", getpid (), &err), -1);
        moat_error_release (&err);
        assert_int_equal (stat (gone, &st), -1);
        /* ids that cannot name a file */
        assert_int_equal (moat_execrec_add (dir, "../x", getpid (), &err), -1);
        moat_error_release (&err);
        assert_int_equal (moat_execrec_add (dir, ".hidden", getpid (), &err), -1);
        moat_error_release (&err);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_live_listed_sorted, setup, teardown),
                cmocka_unit_test_setup_teardown (test_dead_dropped, setup, teardown),
                cmocka_unit_test_setup_teardown (test_no_dir_no_records, setup, teardown),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

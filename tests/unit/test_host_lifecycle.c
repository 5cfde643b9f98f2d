/* SPDX-License-Identifier: Apache-2.0 */
/* Host-side lifecycle pieces that need no VM: host hooks (order, stdin,
 * args/env, timeout, failure semantics), the cgroupsPath conversion
 * (systemd slice:prefix:name), the live status of a state (stand-in or
 * VMM gone -> stopped), the OCI state JSON, and pid files. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/hooks.h"
#include "moat/hostcgroup.h"
#include "moat/oci.h"
#include "moat/state.h"
#include "moat/util.h"

static char dir[64];

static int
setup (void **s)
{
        strcpy (dir, "/tmp/moat-ut-hooks.XXXXXX");
        assert_non_null (mkdtemp (dir));
        return 0;
}

static int
teardown (void **s)
{
        cleanup_error moat_error_t e = NULL;
        rm_rf (dir, &e);
        return 0;
}

/* A config whose hooks of `kind` are the given JSON array. */
static struct oci_config *
hooks_config (const char *kind, const char *array)
{
        cleanup_free char *json = xasprintf_r ("{\"ociVersion\": \"1.0.2\", \"root\": {\"path\": \"rootfs\"},"
                                               " \"process\": {\"args\": [\"true\"], \"cwd\": \"/\"},"
                                               " \"hooks\": {\"%s\": %s}}",
                                               kind, array);
        struct oci_config *c = NULL;
        cleanup_error moat_error_t e = NULL;
        if (oci_config_parse (json, "config.json", &c, &e) < 0)
                fail_msg ("%s", e->msg);
        return c;
}

static char *
slurp (const char *name)
{
        cleanup_free char *p = xasprintf_r ("%s/%s", dir, name);
        char *data = NULL;
        if (read_file (p, &data, NULL, NULL) < 0)
                return xstrdup ("");
        return data;
}

static void
test_hooks_order_stdin_args_env (void **s)
{
        cleanup_free char *arr =
                xasprintf_r ("[{\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"cat > %s/stdin; echo \\\"one $0 "
                             "$V\\\" >> %s/log\", \"arg0\"],"
                             "  \"env\": [\"V=value one\"]},"
                             " {\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"echo two >> %s/log\"]}]",
                             dir, dir, dir);
        cleanup_oci_config struct oci_config *c = hooks_config ("prestart", arr);
        cleanup_error moat_error_t e = NULL;
        cleanup_free char *log = NULL;
        cleanup_free char *in = NULL;

        assert_int_equal (moat_hooks_run (c, OCI_HOOK_PRESTART, "{\"id\":\"x\"}", false, NULL, &e), 0);
        log = slurp ("log");
        assert_string_equal (log, "one arg0 value one\ntwo\n");
        in = slurp ("stdin");
        assert_string_equal (in, "{\"id\":\"x\"}");
}

static void
test_hooks_failure_stops (void **s)
{
        cleanup_free char *arr =
                xasprintf_r ("[{\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"echo oops >&2; exit 3\"]},"
                             " {\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"echo ran >> %s/log\"]}]",
                             dir);
        cleanup_oci_config struct oci_config *c = hooks_config ("createRuntime", arr);
        cleanup_error moat_error_t e = NULL;
        cleanup_free char *log = NULL;

        assert_int_equal (moat_hooks_run (c, OCI_HOOK_CREATE_RUNTIME, "{}", false, NULL, &e), -1);
        assert_non_null (strstr (e->msg, "createRuntime hook 0"));
        assert_non_null (strstr (e->msg, "exit status 3"));
        assert_non_null (strstr (e->msg, "oops")); /* the hook's stderr is in the message */
        log = slurp ("log");
        assert_string_equal (log, ""); /* the next hook did not run */
}

static void
test_hooks_keep_going (void **s)
{
        cleanup_free char *arr =
                xasprintf_r ("[{\"path\": \"/bin/false\"},"
                             " {\"path\": \"/bin/sh\", \"args\": [\"sh\", \"-c\", \"echo ran >> %s/log\"]}]",
                             dir);
        cleanup_oci_config struct oci_config *c = hooks_config ("poststop", arr);
        cleanup_error moat_error_t e = NULL;
        cleanup_free char *log = NULL;

        assert_int_equal (moat_hooks_run (c, OCI_HOOK_POSTSTOP, "{}", true, NULL, &e), 0);
        log = slurp ("log");
        assert_string_equal (log, "ran\n");
}

static void
test_hooks_timeout (void **s)
{
        cleanup_oci_config struct oci_config *c = hooks_config (
                "prestart", "[{\"path\": \"/bin/sleep\", \"args\": [\"sleep\", \"30\"], \"timeout\": 1}]");
        cleanup_error moat_error_t e = NULL;
        int64_t t0 = now_ms ();

        assert_int_equal (moat_hooks_run (c, OCI_HOOK_PRESTART, "{}", false, NULL, &e), -1);
        assert_true (now_ms () - t0 < 5000);
        assert_non_null (strstr (e->msg, "timed out after 1s"));
}

static void
test_hooks_exec_failure (void **s)
{
        cleanup_oci_config struct oci_config *c = hooks_config ("prestart", "[{\"path\": \"/nonexistent/hook\"}]");
        cleanup_error moat_error_t e = NULL;

        assert_int_equal (moat_hooks_run (c, OCI_HOOK_PRESTART, "{}", false, NULL, &e), -1);
        assert_non_null (strstr (e->msg, "/nonexistent/hook"));
        assert_int_equal (e->errno_, ENOENT);
}

static void
test_hooks_stdin_not_read (void **s)
{
        /* a hook that ignores a large stdin must not block us */
        cleanup_oci_config struct oci_config *c = hooks_config ("prestart", "[{\"path\": \"/bin/true\"}]");
        cleanup_error moat_error_t e = NULL;
        cleanup_free char *big = xmalloc (1 << 20);
        memset (big, 'x', (1 << 20) - 1);
        big[(1 << 20) - 1] = '\0';
        assert_int_equal (moat_hooks_run (c, OCI_HOOK_PRESTART, big, false, NULL, &e), 0);
}

static void
cg (const char *in, bool systemd, const char *want)
{
        cleanup_free char *out = NULL;
        cleanup_error moat_error_t e = NULL;
        int r = moat_hostcg_path (in, "cid", systemd, &out, &e);
        if (want == NULL) {
                assert_int_equal (r, -1);
                return;
        }
        if (r < 0)
                fail_msg ("%s: %s", in ? in : "(null)", e->msg);
        assert_string_equal (out, want);
}

static void
test_cgroup_path (void **s)
{
        cg ("/oci/a", false, "/oci/a");
        cg ("rel/b", false, "/rel/b");
        cg (NULL, false, "/moat/cid");
        cg (NULL, true, "/system.slice/moat-cid.scope");
        cg ("system.slice:docker:abc", true, "/system.slice/docker-abc.scope");
        cg ("machine-libpod_pod_x.slice:libpod:abc", true,
            "/machine.slice/machine-libpod_pod_x.slice/libpod-abc.scope");
        cg (":crio:abc", true, "/system.slice/crio-abc.scope");
        cg ("user.slice:pfx:my.slice", true, "/user.slice/my.slice");
        cg ("system.slice:docker:abc", false, "/system.slice/docker-abc.scope"); /* the form says it */
        cg ("/plain", true, NULL);  /* --systemd-cgroup needs slice:prefix:name */
        cg ("bad:x:y", true, NULL); /* not a slice */
        cg ("a--b.slice:x:y", true, NULL);
        cg ("/../etc", false, NULL);
}

static void
test_live_status (void **s)
{
        struct moat_state st = {.id = "x", .status = "running", .pid = getpid ()};
        pid_t child;
        int wst;

        st.pid_start = moat_pid_start_time (getpid ());
        assert_true (st.pid_start > 0);
        assert_string_equal (moat_state_live_status (&st), "running");
        /* a reused pid (other start time) is not our stand-in */
        st.pid_start += 1;
        assert_string_equal (moat_state_live_status (&st), "stopped");
        st.pid_start = 0;
        /* a zombie stand-in counts as gone */
        child = fork ();
        if (child == 0)
                _exit (0);
        usleep (100 * 1000);
        st.pid = child;
        assert_string_equal (moat_state_live_status (&st), "stopped");
        waitpid (child, &wst, 0);
        /* the VMM gone: stopped too */
        st.pid = getpid ();
        st.vmm_pid = child;
        assert_string_equal (moat_state_live_status (&st), "stopped");
        /* stored stopped/creating statuses are reported as stored */
        st.status = "creating";
        assert_string_equal (moat_state_live_status (&st), "creating");
}

static void
test_oci_state_json (void **s)
{
        struct moat_state st = {.id = "x",
                                .status = "running",
                                .pid = 42,
                                .bundle = "/b",
                                .hypervisor = "qemu",
                                .vmm_pid = 43,
                                .cgroup = "/c"};
        cleanup_free char *pub = moat_state_to_oci_json (&st, "created", 0);
        cleanup_free char *stopped = moat_state_to_oci_json (&st, "stopped", 0);
        cleanup_free char *internal = moat_state_to_json (&st, 0);
        assert_non_null (strstr (pub, "\"status\":\"created\""));
        assert_non_null (strstr (pub, "\"pid\":42"));
        assert_null (strstr (pub, "vmmPid")); /* moat's own fields stay private */
        assert_non_null (strstr (stopped, "\"pid\":0"));
        assert_non_null (strstr (internal, "\"vmmPid\":43"));
        assert_non_null (strstr (internal, "\"cgroup\":\"/c\""));
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_hooks_order_stdin_args_env, setup, teardown),
                cmocka_unit_test_setup_teardown (test_hooks_failure_stops, setup, teardown),
                cmocka_unit_test_setup_teardown (test_hooks_keep_going, setup, teardown),
                cmocka_unit_test_setup_teardown (test_hooks_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown (test_hooks_exec_failure, setup, teardown),
                cmocka_unit_test_setup_teardown (test_hooks_stdin_not_read, setup, teardown),
                cmocka_unit_test (test_cgroup_path),
                cmocka_unit_test (test_live_status),
                cmocka_unit_test (test_oci_state_json),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

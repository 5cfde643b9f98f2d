/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's linux.resources -> cgroup v2 files (agent/cgroup.c), at create
 * and on update, on a directory of plain files standing in for a cgroup: a
 * zero means "not set" (as runc reads it) and must not be written
 * (memory.max 0 would kill the container), -1 is "max", and cpu.max keeps
 * the half of "QUOTA PERIOD" that a request leaves out. Writing a plain
 * file replaces its content, so each file holds the last value written,
 * or its initial content when nothing was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../agent/cgroup.c"
#include "../../agent/log.c"

/* the device rules have their own test (test_agent_devices.c) */
int
agent_devices_apply (const char *cgroup_path, const struct oci_device_rule *rules, size_t n, moat_error_t *err)
{
        return 0;
}

static const char *const initial[][2] = {
        {"memory.max", "max\n"}, {"memory.low", "0\n"}, {"memory.swap.max", "max\n"}, {"cpu.max", "max 100000\n"},
        {"cpu.weight", "100\n"}, {"pids.max", "max\n"}, {"cpuset.cpus", "\n"},        {"cpuset.mems", "\n"},
};

static char dir[64];

static int
setup (void **state)
{
        strcpy (dir, "/tmp/moat-test-cgroup.XXXXXX");
        assert_non_null (mkdtemp (dir));
        for (size_t i = 0; i < ARRAY_SIZE (initial); i++) {
                cleanup_free char *p = xasprintf_r ("%s/%s", dir, initial[i][0]);
                assert_int_equal (write_file (p, initial[i][1], strlen (initial[i][1]), 0644, NULL), 0);
        }
        return 0;
}

static int
teardown (void **state)
{
        assert_int_equal (rm_rf (dir, NULL), 0);
        return 0;
}

/* The file's content without the trailing newline. */
static char *
get (const char *file)
{
        cleanup_free char *p = xasprintf_r ("%s/%s", dir, file);
        char *buf = NULL;
        assert_int_equal (read_file (p, &buf, NULL, NULL), 0);
        buf[strcspn (buf, "\n")] = '\0';
        return buf;
}

#define assert_file(file, want)                                                                                        \
        do {                                                                                                           \
                cleanup_free char *got_ = get (file);                                                                  \
                assert_string_equal (got_, want);                                                                      \
        } while (0)

/* Applies the resources JSON (as in config.json or an update request). */
static int
apply (const char *json, moat_error_t *err)
{
        struct oci_resources *r = NULL;
        int ret;
        assert_int_equal (oci_resources_parse (json, "resources", &r, NULL), 0);
        ret = agent_cgroup_apply (dir, r, err);
        oci_resources_free (r);
        return ret;
}

static void
apply_ok (const char *json)
{
        moat_error_t err = NULL;
        if (apply (json, &err) < 0)
                fail_msg ("%s: %s", json, err->msg);
}

static void
test_zeros_are_not_set (void **state)
{
        /* what Docker and the CRI send for a container without limits */
        apply_ok ("{\"memory\": {\"limit\": 0, \"reservation\": 0, \"swap\": 0, \"kernel\": 0},"
                  " \"cpu\": {\"shares\": 0, \"quota\": 0, \"period\": 0, \"cpus\": \"\", \"mems\": \"\"},"
                  " \"pids\": {\"limit\": 0}, \"blockIO\": {\"weight\": 0}}");
        for (size_t i = 0; i < ARRAY_SIZE (initial); i++) {
                cleanup_free char *want = xstrndup (initial[i][1], strlen (initial[i][1]) - 1);
                assert_file (initial[i][0], want);
        }
}

static void
test_values_and_unlimited (void **state)
{
        apply_ok ("{\"memory\": {\"limit\": 67108864, \"reservation\": 33554432, \"swap\": 100663296},"
                  " \"cpu\": {\"shares\": 1024, \"quota\": 50000, \"period\": 200000, \"cpus\": \"0\"},"
                  " \"pids\": {\"limit\": 64}}");
        assert_file ("memory.max", "67108864");
        assert_file ("memory.low", "33554432");
        assert_file ("memory.swap.max", "33554432"); /* OCI swap is memory + swap */
        assert_file ("cpu.max", "50000 200000");
        assert_file ("cpu.weight", "39");
        assert_file ("cpuset.cpus", "0");
        assert_file ("pids.max", "64");

        apply_ok ("{\"memory\": {\"limit\": -1}, \"cpu\": {\"quota\": -1}, \"pids\": {\"limit\": -1}}");
        assert_file ("memory.max", "max");
        assert_file ("memory.swap.max", "max"); /* unlimited memory, swap not given: unlimited too (runc) */
        assert_file ("cpu.max", "max");         /* the kernel keeps the period */
        assert_file ("pids.max", "max");
}

/* Updates carry only some fields: the rest of the cgroup stays. */
static void
test_update_keeps_the_rest (void **state)
{
        apply_ok ("{\"memory\": {\"limit\": 67108864}, \"cpu\": {\"quota\": 20000, \"period\": 100000},"
                  " \"pids\": {\"limit\": 32}}");
        /* a period alone keeps the quota */
        apply_ok ("{\"cpu\": {\"quota\": 0, \"period\": 50000}}");
        assert_file ("cpu.max", "20000 50000");
        /* a quota alone: only the quota is written (the kernel keeps the period) */
        apply_ok ("{\"cpu\": {\"quota\": 30000, \"period\": 0}}");
        assert_file ("cpu.max", "30000");
        /* the real kernel would now say "30000 50000" */
        {
                cleanup_free char *p = xasprintf_r ("%s/cpu.max", dir);
                assert_int_equal (write_file (p, "30000 50000\n", 12, 0644, NULL), 0);
        }
        apply_ok ("{\"cpu\": {\"period\": 400000}}");
        assert_file ("cpu.max", "30000 400000");
        /* docker update --blkio-weight: zero memory and pids fields */
        apply_ok (
                "{\"memory\": {\"limit\": 0, \"swap\": 0}, \"pids\": {\"limit\": 0}, \"blockIO\": {\"weight\": 300}}");
        assert_file ("memory.max", "67108864");
        assert_file ("memory.swap.max", "max");
        assert_file ("pids.max", "32");
        /* a swap alone: against the cgroup's current memory limit */
        apply_ok ("{\"memory\": {\"swap\": 134217728}}");
        assert_file ("memory.swap.max", "67108864");
}

static void
test_swap_errors (void **state)
{
        moat_error_t err = NULL;
        assert_int_equal (apply ("{\"memory\": {\"limit\": 67108864, \"swap\": 33554432}}", &err), -1);
        assert_non_null (strstr (err->msg, "lower than memory.limit"));
        moat_error_release (&err);
        /* memory.max is "max": a swap limit needs a memory limit (runc) */
        assert_int_equal (apply ("{\"memory\": {\"swap\": 33554432}}", &err), -1);
        assert_non_null (strstr (err->msg, "needs a memory limit"));
        moat_error_release (&err);
        assert_file ("memory.swap.max", "max");
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown (test_zeros_are_not_set, setup, teardown),
                cmocka_unit_test_setup_teardown (test_values_and_unlimited, setup, teardown),
                cmocka_unit_test_setup_teardown (test_update_keeps_the_rest, setup, teardown),
                cmocka_unit_test_setup_teardown (test_swap_errors, setup, teardown),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

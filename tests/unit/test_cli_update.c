/* SPDX-License-Identifier: Apache-2.0 */
/* `moat update` flag parsing (runc's units and semantics) into a
 * linux.resources object the OCI parser (and so the agent) accepts;
 * `moat events` durations and the runc stats event JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include <cmocka.h>

#include "moat/container.h"
#include "moat/oci.h"
#include "moat/resources.h"
#include "moat/util.h"

static void
test_parse_bytes (void **state)
{
        static const struct {
                const char *in;
                int64_t out;
        } good[] = {
                {"0", 0},           {"1024", 1024},      {"64m", 64 << 20}, {"64M", 64 << 20},
                {"64MB", 64 << 20}, {"64MiB", 64 << 20}, {"1k", 1024},      {"1.5g", 3LL << 29},
                {"2 G", 2LL << 30}, {"1t", 1LL << 40},   {"-1", -1},
        };
        static const char *bad[] = {"", "x", "12x", "-2", "1mm", "m", "1.5.5q", "99999999999p"};
        for (size_t i = 0; i < ARRAY_SIZE (good); i++) {
                cleanup_error moat_error_t err = NULL;
                int64_t v = 42;
                if (moat_parse_bytes ("--memory", good[i].in, &v, &err) < 0)
                        fail_msg ("%s: %s", good[i].in, err->msg);
                assert_int_equal (v, good[i].out);
        }
        for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
                cleanup_error moat_error_t err = NULL;
                int64_t v;
                assert_int_equal (moat_parse_bytes ("--memory", bad[i], &v, &err), -1);
                /* the message names the flag and the input */
                assert_non_null (strstr (err->msg, "--memory"));
                if (*bad[i])
                        assert_non_null (strstr (err->msg, bad[i]));
        }
}

static struct oci_resources *
to_resources (const struct moat_update_flags *f)
{
        cleanup_free char *json = NULL;
        cleanup_error moat_error_t err = NULL;
        struct oci_resources *r = NULL;
        if (moat_update_resources_json (f, &json, &err) < 0)
                fail_msg ("flags: %s", err->msg);
        if (oci_resources_parse (json, "update", &r, &err) < 0)
                fail_msg ("%s does not parse: %s", json, err->msg);
        return r;
}

static void
test_update_flags_to_resources (void **state)
{
        struct moat_update_flags f = {.memory = "64m",
                                      .memory_swap = "128m",
                                      .memory_reservation = "32m",
                                      .pids_limit = "50",
                                      .cpu_quota = "50000",
                                      .cpu_period = "100000",
                                      .cpu_shares = "512",
                                      .cpuset_cpus = "0-1",
                                      .cpuset_mems = "0"};
        struct oci_resources *r = to_resources (&f);
        assert_true (r->has_memory_limit);
        assert_int_equal (r->memory_limit, 64 << 20);
        assert_int_equal (r->memory_swap, 128 << 20);
        assert_int_equal (r->memory_reservation, 32 << 20);
        assert_true (r->has_pids_limit);
        assert_int_equal (r->pids_limit, 50);
        assert_int_equal (r->cpu_quota, 50000);
        assert_int_equal (r->cpu_period, 100000);
        assert_int_equal (r->cpu_shares, 512);
        assert_string_equal (r->cpu_cpus, "0-1");
        assert_string_equal (r->cpu_mems, "0");
        oci_resources_free (r);

        /* only what was given is sent: unchanged values are absent */
        struct moat_update_flags f2 = {.memory = "-1"};
        r = to_resources (&f2);
        assert_true (r->has_memory_limit);
        assert_int_equal (r->memory_limit, -1);
        assert_false (r->has_memory_swap);
        assert_false (r->has_pids_limit);
        assert_false (r->has_cpu_quota);
        oci_resources_free (r);

        /* runc: --pids-limit 0 leaves the limit alone, -1 removes it */
        struct moat_update_flags f3 = {.pids_limit = "0", .cpu_quota = "-1"};
        r = to_resources (&f3);
        assert_false (r->has_pids_limit);
        assert_int_equal (r->cpu_quota, -1);
        oci_resources_free (r);
        struct moat_update_flags f4 = {.pids_limit = "-1"};
        r = to_resources (&f4);
        assert_true (r->has_pids_limit);
        assert_int_equal (r->pids_limit, -1);
        oci_resources_free (r);
}

static void
test_update_flags_errors (void **state)
{
        static const struct {
                struct moat_update_flags f;
                const char *needle;
        } bad[] = {
                {{0}, "nothing to update"},
                {{.pids_limit = "lots"}, "--pids-limit"},
                {{.cpu_period = "-5"}, "--cpu-period"},
                {{.cpu_period = "0"}, "--cpu-period"},
                {{.cpu_shares = "1e3"}, "--cpu-share"},
                {{.cpu_quota = "12abc"}, "--cpu-quota"},
                {{.cpuset_cpus = "0-"}, "--cpuset-cpus"},
                {{.cpuset_mems = "a"}, "--cpuset-mems"},
                {{.memory = "64m", .memory_swap = "32m"}, "--memory-swap"},
                {{.memory_reservation = "lots"}, "--memory-reservation"},
        };
        for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
                cleanup_error moat_error_t err = NULL;
                cleanup_free char *json = NULL;
                assert_int_equal (moat_update_resources_json (&bad[i].f, &json, &err), -1);
                assert_null (json);
                if (strstr (err->msg, bad[i].needle) == NULL)
                        fail_msg ("case %zu: \"%s\" does not mention %s", i, err->msg, bad[i].needle);
        }
}

static void
test_parse_duration (void **state)
{
        static const struct {
                const char *in;
                int64_t ms;
        } good[] = {{"5s", 5000},   {"500ms", 500},  {"1m", 60000}, {"1m30s", 90000},
                    {"1.5s", 1500}, {"2h", 7200000}, {"3", 3000},   {"1000000us", 1000}};
        static const char *bad[] = {"", "s", "5x", "-1s", "0s", "100ns", "5 s"};
        for (size_t i = 0; i < ARRAY_SIZE (good); i++) {
                cleanup_error moat_error_t err = NULL;
                int64_t v = 0;
                if (moat_parse_duration ("--interval", good[i].in, &v, &err) < 0)
                        fail_msg ("%s: %s", good[i].in, err->msg);
                assert_int_equal (v, good[i].ms);
        }
        for (size_t i = 0; i < ARRAY_SIZE (bad); i++) {
                cleanup_error moat_error_t err = NULL;
                int64_t v;
                if (moat_parse_duration ("--interval", bad[i], &v, &err) == 0)
                        fail_msg ("\"%s\" was accepted", bad[i]);
                assert_non_null (strstr (err->msg, "--interval"));
        }
}

static void
test_stats_event_json (void **state)
{
        uint32_t pids[] = {7, 9};
        struct moat_stats s = {.memory_usage = 1000,
                               .memory_limit = 0,
                               .memory_max_usage = 2000,
                               .cpu_usage_usec = 3,
                               .cpu_user_usec = 2,
                               .cpu_system_usec = 1,
                               .pids_current = 2,
                               .pids_limit = 10,
                               .pids = pids,
                               .n_pids = 2};
        cleanup_free char *json = moat_stats_event_json ("c1", &s);
        char ebuf[128];
        yajl_val t = yajl_tree_parse (json, ebuf, sizeof ebuf);
        const char *type[] = {"type", NULL}, *id[] = {"id", NULL};
        const char *total[] = {"data", "cpu", "usage", "total", NULL};
        const char *kernel[] = {"data", "cpu", "usage", "kernel", NULL};
        const char *usage[] = {"data", "memory", "usage", "usage", NULL};
        const char *limit[] = {"data", "memory", "usage", "limit", NULL};
        const char *cur[] = {"data", "pids", "current", NULL}, *pl[] = {"data", "pids", "limit", NULL};

        assert_non_null (t);
        assert_null (strchr (json, '\n')); /* one event per line */
        assert_string_equal (YAJL_GET_STRING (yajl_tree_get (t, type, yajl_t_string)), "stats");
        assert_string_equal (YAJL_GET_STRING (yajl_tree_get (t, id, yajl_t_string)), "c1");
        /* runc reports cpu time in nanoseconds */
        assert_int_equal (YAJL_GET_INTEGER (yajl_tree_get (t, total, yajl_t_number)), 3000);
        assert_int_equal (YAJL_GET_INTEGER (yajl_tree_get (t, kernel, yajl_t_number)), 1000);
        assert_int_equal (YAJL_GET_INTEGER (yajl_tree_get (t, usage, yajl_t_number)), 1000);
        /* no limit: the largest value, as runc on cgroup v2 */
        assert_non_null (strstr (json, "\"limit\":18446744073709551615"));
        assert_non_null (yajl_tree_get (t, limit, yajl_t_number));
        assert_int_equal (YAJL_GET_INTEGER (yajl_tree_get (t, cur, yajl_t_number)), 2);
        assert_int_equal (YAJL_GET_INTEGER (yajl_tree_get (t, pl, yajl_t_number)), 10);
        yajl_tree_free (t);
}

/* An update's resources as runc reads them: whole objects from Docker and
 * containerd keep only what they change. */
static void
test_drop_unchanged (void **state)
{
        cleanup_free char *out = NULL;
        moat_error_t err = NULL;

        assert_int_equal (moat_resources_drop_unchanged (
                                  "{\"memory\":{\"limit\":0,\"reservation\":\"\",\"swap\":null},"
                                  "\"cpu\":{\"shares\":512,\"quota\":0,\"cpus\":\"\"},"
                                  "\"pids\":{\"limit\":0},\"devices\":[{\"allow\":false,\"access\":\"rwm\"}],"
                                  "\"blockIO\":{\"weight\":0}}",
                                  &out, &err),
                          0);
        assert_string_equal (out, "{\"memory\":{},\"cpu\":{\"shares\":512},\"pids\":{},\"blockIO\":{}}");
        free (out);
        out = NULL;
        assert_int_equal (moat_resources_drop_unchanged ("{\"memory\":{\"limit\":1048576}}", &out, &err), 0);
        assert_string_equal (out, "{\"memory\":{\"limit\":1048576}}");
        assert_int_equal (moat_resources_drop_unchanged ("[1]", &out, &err), -1);
        assert_non_null (strstr (err->msg, "expected a JSON object"));
        moat_error_release (&err);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_parse_bytes),         cmocka_unit_test (test_update_flags_to_resources),
                cmocka_unit_test (test_update_flags_errors), cmocka_unit_test (test_parse_duration),
                cmocka_unit_test (test_stats_event_json),    cmocka_unit_test (test_drop_unchanged),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

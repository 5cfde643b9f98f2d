/* SPDX-License-Identifier: Apache-2.0 */
/* `moat spec` and `moat features`: the default config.json must have runc's
 * shape and parse with moat's own OCI parser; the features document must be
 * valid JSON and claim only things moat's parser, libcap and libseccomp
 * accept. */
#include <ctype.h>
#include <seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <yajl/yajl_tree.h>

#include <cmocka.h>

#include "moat/oci.h"
#include "moat/spec.h"
#include "moat/util.h"

static yajl_val
tree (const char *json)
{
        char ebuf[256] = "";
        yajl_val t = yajl_tree_parse (json, ebuf, sizeof ebuf);
        if (t == NULL)
                fail_msg ("invalid JSON: %s", ebuf);
        return t;
}

static yajl_val
get (yajl_val t, const char *a, const char *b, const char *c, yajl_type type)
{
        const char *path[] = {a, b, c, NULL};
        yajl_val v = yajl_tree_get (t, path, type);
        if (v == NULL)
                fail_msg ("missing %s.%s.%s", a, b ? b : "", c ? c : "");
        return v;
}

static bool
has_ns (struct oci_config *c, const char *name)
{
        for (size_t i = 0; i < c->linux_->n_namespaces; i++)
                if (strcmp (c->linux_->namespaces[i].type_name, name) == 0)
                        return true;
        return false;
}

static struct oci_mount *
find_mount (struct oci_config *c, const char *dest)
{
        for (size_t i = 0; i < c->n_mounts; i++)
                if (strcmp (c->mounts[i].destination, dest) == 0)
                        return &c->mounts[i];
        return NULL;
}

static bool
strv_has (char **v, const char *s)
{
        for (; v && *v; v++)
                if (strcmp (*v, s) == 0)
                        return true;
        return false;
}

static void
test_spec_default_parses_like_runc (void **state)
{
        cleanup_free char *json = moat_spec_default (false, 1000, 1000);
        cleanup_error moat_error_t err = NULL;
        struct oci_config *c = NULL;

        if (oci_config_parse (json, "spec", &c, &err) < 0)
                fail_msg ("moat spec output does not parse: %s", err->msg);
        assert_string_equal (c->oci_version, "1.0.2");
        assert_true (c->process->terminal);
        assert_string_equal (c->process->args[0], "sh");
        assert_null (c->process->args[1]);
        assert_string_equal (c->process->cwd, "/");
        assert_int_equal (c->process->user.uid, 0);
        assert_true (c->process->no_new_privileges);
        assert_true (strv_has (c->process->caps->ambient, "CAP_KILL"));
        assert_true (strv_has (c->process->caps->bounding, "CAP_NET_BIND_SERVICE"));
        assert_int_equal (c->process->n_rlimits, 1);
        assert_int_equal (c->process->rlimits[0].hard, 1024);
        assert_string_equal (c->root_path, "rootfs");
        assert_true (c->root_readonly);
        assert_string_equal (c->hostname, "moat");
        assert_int_equal (c->n_mounts, 7);
        assert_string_equal (find_mount (c, "/sys")->type, "sysfs");
        assert_true (strv_has (find_mount (c, "/dev/pts")->options, "gid=5"));
        assert_true (has_ns (c, "pid") && has_ns (c, "network") && has_ns (c, "ipc") && has_ns (c, "uts") &&
                     has_ns (c, "mount"));
        assert_false (has_ns (c, "user"));
        assert_int_equal (c->linux_->n_namespaces, 5);
        assert_int_equal (c->linux_->n_uid_mappings, 0);
        assert_non_null (c->linux_->resources);
        assert_int_equal (c->linux_->resources->n_devices, 1);
        assert_false (c->linux_->resources->devices[0].allow);
        assert_true (strv_has (c->linux_->masked_paths, "/proc/kcore"));
        assert_true (strv_has (c->linux_->readonly_paths, "/proc/sys"));
        /* runc writes it tab-indented */
        assert_non_null (strstr (json, "\n\t\"process\": {"));
        oci_config_free (c);
}

static void
test_spec_rootless (void **state)
{
        cleanup_free char *json = moat_spec_default (true, 1234, 5678);
        cleanup_error moat_error_t err = NULL;
        struct oci_config *c = NULL;
        struct oci_mount *sys;

        if (oci_config_parse (json, "spec --rootless", &c, &err) < 0)
                fail_msg ("moat spec --rootless output does not parse: %s", err->msg);
        assert_true (has_ns (c, "user"));
        assert_false (has_ns (c, "network"));
        assert_int_equal (c->linux_->n_uid_mappings, 1);
        assert_int_equal (c->linux_->uid_mappings[0].container_id, 0);
        assert_int_equal (c->linux_->uid_mappings[0].host_id, 1234);
        assert_int_equal (c->linux_->uid_mappings[0].size, 1);
        assert_int_equal (c->linux_->gid_mappings[0].host_id, 5678);
        assert_null (c->linux_->resources);
        sys = find_mount (c, "/sys");
        assert_string_equal (sys->source, "/sys");
        assert_true (strv_has (sys->options, "rbind"));
        assert_false (strv_has (find_mount (c, "/dev/pts")->options, "gid=5"));
        oci_config_free (c);
}

static const char *
json_str (yajl_val v)
{
        assert_true (YAJL_IS_STRING (v));
        return YAJL_GET_STRING (v);
}

static void
test_features_valid_and_consistent (void **state)
{
        cleanup_free char *json = moat_features_json ();
        yajl_val t = tree (json);
        yajl_val v;

        assert_string_equal (json_str (get (t, "ociVersionMin", NULL, NULL, yajl_t_string)), "1.0.0");
        /* the version moat --version and state report */
        assert_string_equal (json_str (get (t, "ociVersionMax", NULL, NULL, yajl_t_string)), "1.0.2");

        /* hooks: known hook names */
        v = get (t, "hooks", NULL, NULL, yajl_t_array);
        assert_int_equal (YAJL_GET_ARRAY (v)->len, OCI_HOOK_KINDS);
        for (size_t i = 0; i < YAJL_GET_ARRAY (v)->len; i++) {
                const char *h = json_str (YAJL_GET_ARRAY (v)->values[i]);
                bool known = false;
                for (int k = 0; k < OCI_HOOK_KINDS; k++)
                        known |= strcmp (oci_hook_names[k], h) == 0;
                assert_true (known);
        }

        /* every namespace parses in a config */
        v = get (t, "linux", "namespaces", NULL, yajl_t_array);
        assert_int_equal (YAJL_GET_ARRAY (v)->len, 8);
        for (size_t i = 0; i < YAJL_GET_ARRAY (v)->len; i++) {
                cleanup_free char *cfg = xasprintf_r ("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},\"linux\":{"
                                                      "\"namespaces\":[{\"type\":\"%s\"}]}}",
                                                      json_str (YAJL_GET_ARRAY (v)->values[i]));
                cleanup_error moat_error_t err = NULL;
                struct oci_config *c = NULL;
                if (oci_config_parse (cfg, "ns", &c, &err) < 0)
                        fail_msg ("namespace %s: %s", json_str (YAJL_GET_ARRAY (v)->values[i]), err->msg);
                oci_config_free (c);
        }

        /* the full capability list, each known to libcap, in number order */
        v = get (t, "linux", "capabilities", NULL, yajl_t_array);
        assert_int_equal (YAJL_GET_ARRAY (v)->len, 41); /* CAP_CHOWN .. CAP_CHECKPOINT_RESTORE */
        for (size_t i = 0; i < YAJL_GET_ARRAY (v)->len; i++) {
                char lower[64];
                const char *n = json_str (YAJL_GET_ARRAY (v)->values[i]);
                cap_value_t cv;
                size_t k;
                for (k = 0; n[k] && k < sizeof lower - 1; k++)
                        lower[k] = tolower ((unsigned char)n[k]);
                lower[k] = '\0';
                if (cap_from_name (lower, &cv) < 0)
                        fail_msg ("libcap does not know %s", n);
                assert_int_equal (cv, (cap_value_t)i);
        }

        /* cgroup v2 only, no systemd */
        assert_true (YAJL_IS_TRUE (get (t, "linux", "cgroup", "v2", yajl_t_any)));
        assert_true (YAJL_IS_FALSE (get (t, "linux", "cgroup", "v1", yajl_t_any)));
        assert_true (YAJL_IS_FALSE (get (t, "linux", "cgroup", "systemd", yajl_t_any)));

        /* seccomp: archs known to libseccomp; NOTIFY is not claimed */
        assert_true (YAJL_IS_TRUE (get (t, "linux", "seccomp", "enabled", yajl_t_any)));
        v = get (t, "linux", "seccomp", "archs", yajl_t_array);
        for (size_t i = 0; i < YAJL_GET_ARRAY (v)->len; i++) {
                char lower[64];
                const char *n = json_str (YAJL_GET_ARRAY (v)->values[i]) + strlen ("SCMP_ARCH_");
                size_t k;
                for (k = 0; n[k] && k < sizeof lower - 1; k++)
                        lower[k] = tolower ((unsigned char)n[k]);
                lower[k] = '\0';
                if (seccomp_arch_resolve_name (lower) == 0)
                        fail_msg ("libseccomp does not know %s", n);
        }
        v = get (t, "linux", "seccomp", "actions", yajl_t_array);
        for (size_t i = 0; i < YAJL_GET_ARRAY (v)->len; i++) {
                const char *a = json_str (YAJL_GET_ARRAY (v)->values[i]);
                cleanup_free char *cfg = xasprintf_r ("{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"r\"},"
                                                      "\"linux\":{\"seccomp\":{\"defaultAction\":\"%s\"}}}",
                                                      a);
                cleanup_error moat_error_t err = NULL;
                struct oci_config *c = NULL;
                assert_string_not_equal (a, "SCMP_ACT_NOTIFY");
                if (oci_config_parse (cfg, "seccomp", &c, &err) < 0)
                        fail_msg ("action %s: %s", a, err->msg);
                oci_config_free (c);
        }

        /* what moat does not do is said so */
        assert_true (YAJL_IS_FALSE (get (t, "linux", "apparmor", "enabled", yajl_t_any)));
        assert_true (YAJL_IS_FALSE (get (t, "linux", "selinux", "enabled", yajl_t_any)));
        assert_true (YAJL_IS_FALSE (get (t, "linux", "intelRdt", "enabled", yajl_t_any)));
        {
                const char *p[] = {"linux", "mountExtensions", "idmap", "enabled", NULL};
                assert_true (YAJL_IS_FALSE (yajl_tree_get (t, p, yajl_t_any)));
        }
        /* mount options: the recursive mount_setattr ones and tmpcopyup are not implemented */
        v = get (t, "mountOptions", NULL, NULL, yajl_t_array);
        for (size_t i = 0; i < YAJL_GET_ARRAY (v)->len; i++) {
                const char *o = json_str (YAJL_GET_ARRAY (v)->values[i]);
                assert_string_not_equal (o, "tmpcopyup");
                assert_string_not_equal (o, "rro");
                assert_string_not_equal (o, "idmap");
        }
        assert_string_equal (json_str (get (t, "annotations", "org.moat.hypervisor", NULL, yajl_t_string)),
                             "qemu,moat-vmm");
        yajl_tree_free (t);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_spec_default_parses_like_runc),
                cmocka_unit_test (test_spec_rootless),
                cmocka_unit_test (test_features_valid_and_consistent),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* moat.conf (src/lib/config.c): INI through libinih, the layers (defaults
 * < file < drop-ins in name order < environment < flag), where each value
 * came from, and errors that name file:line and key. The shipped default
 * file (packaging/moat.conf) must parse and, uncommented, give exactly the
 * built-in defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moat/config.h"
#include "moat/util.h"

static void
clear_env (void)
{
        for (int i = 0; i < MOAT_SET__COUNT; i++)
                unsetenv (moat_setting_spec (i)->env);
        unsetenv ("MOAT_DEBUG");
        unsetenv ("MOAT_CONFIG");
}

static int
setup (void **state)
{
        clear_env ();
        return 0;
}

static void
put (const char *path, const char *text)
{
        moat_error_t err = NULL;
        assert_int_equal (write_file (path, text, strlen (text), 0644, &err), 0);
}

/* parse text as file "t.conf" over the defaults; the error, or NULL */
static char *
parse (struct moat_config *c, const char *text)
{
        moat_error_t err = NULL;
        moat_config_init_defaults (c);
        if (moat_config_parse_string (c, "t.conf", text, &err) == 0)
                return NULL;
        char *msg = xstrdup (err->msg);
        moat_error_release (&err);
        return msg;
}

static void
test_defaults (void **state)
{
        struct moat_config c;
        moat_config_init_defaults (&c);
        for (int i = 0; i < MOAT_SET__COUNT; i++) {
                assert_int_equal (c.v[i].origin, MOAT_FROM_DEFAULT);
                assert_string_equal (c.v[i].text, moat_setting_spec (i)->def);
                cleanup_free char *src = moat_config_source (&c.v[i]);
                assert_string_equal (src, "default");
        }
        assert_string_equal (c.v[MOAT_SET_HYPERVISOR].text, "auto");
        assert_int_equal (c.v[MOAT_SET_MEMORY_MIB].num, 512);
        assert_int_equal (c.v[MOAT_SET_OVERHEAD_MIB].num, 192);
        assert_int_equal (c.v[MOAT_SET_VCPUS].num, 1);
        assert_int_equal (c.v[MOAT_SET_BOOT_TIMEOUT].num, 30000);
        assert_int_equal (c.v[MOAT_SET_VMM_FORCE].num, 0);
        assert_string_equal (c.v[MOAT_SET_QEMU].text, "/usr/bin/qemu-system-x86_64");
        moat_config_free (&c);
}

static void
test_values_and_lines (void **state)
{
        struct moat_config c;
        char *e = parse (&c, "# comment\n"
                             "; another\n"
                             "[runtime]\n"
                             "hypervisor = qemu\n"
                             "\n"
                             "[guest]\n"
                             "memory_mib=1024 ; inline comment\n"
                             "kernel = \"/boot/vm linux\"\n"
                             "boot_timeout = 2.5\n"
                             "kernel_params = a=1 b\n"
                             "[hypervisor]\n"
                             "vmm_force = yes\n"
                             "[guest]\n"
                             "vcpus = 4\n");
        assert_null (e);
        assert_string_equal (c.v[MOAT_SET_HYPERVISOR].text, "qemu");
        assert_int_equal (c.v[MOAT_SET_HYPERVISOR].origin, MOAT_FROM_FILE);
        assert_int_equal (c.v[MOAT_SET_HYPERVISOR].line, 4);
        assert_int_equal (c.v[MOAT_SET_MEMORY_MIB].num, 1024);
        assert_int_equal (c.v[MOAT_SET_MEMORY_MIB].line, 7);
        assert_string_equal (c.v[MOAT_SET_KERNEL].text, "/boot/vm linux");
        assert_int_equal (c.v[MOAT_SET_BOOT_TIMEOUT].num, 2500);
        assert_string_equal (c.v[MOAT_SET_KERNEL_PARAMS].text, "a=1 b");
        assert_int_equal (c.v[MOAT_SET_VMM_FORCE].num, 1);
        assert_string_equal (c.v[MOAT_SET_VMM_FORCE].text, "true");
        assert_int_equal (c.v[MOAT_SET_VCPUS].num, 4);
        assert_int_equal (c.v[MOAT_SET_VCPUS].line, 14);
        cleanup_free char *src = moat_config_source (&c.v[MOAT_SET_MEMORY_MIB]);
        assert_string_equal (src, "t.conf:7");
        /* untouched settings stay at their defaults */
        assert_int_equal (c.v[MOAT_SET_OVERHEAD_MIB].origin, MOAT_FROM_DEFAULT);
        /* a later line wins */
        moat_config_free (&c);
        assert_null (e = parse (&c, "[guest]\nvcpus = 2\nvcpus = 3\n"));
        assert_int_equal (c.v[MOAT_SET_VCPUS].num, 3);
        assert_int_equal (c.v[MOAT_SET_VCPUS].line, 3);
        moat_config_free (&c);
        /* an empty path value means "search", as the default */
        assert_null (e = parse (&c, "[guest]\nkernel =\n"));
        assert_string_equal (c.v[MOAT_SET_KERNEL].text, "");
        moat_config_free (&c);
}

struct bad {
        const char *text, *want;
};

static void
test_errors_name_file_line_key (void **state)
{
        static const struct bad cases[] = {
                {"[guest]\nmemroy_mib = 1\n", "t.conf:2: guest.memroy_mib: unknown key (keys of [guest]: kernel,"},
                {"[gust]\nkernel = /x\n", "t.conf:2: gust.kernel: unknown section [gust] (sections: [runtime], "
                                          "[guest], [hypervisor])"},
                {"hypervisor = qemu\n", "t.conf:1: hypervisor: key outside a section"},
                {"[guest]\n\nmemory_mib = 12\n", "t.conf:3: guest.memory_mib: \"12\": expected an integer from 64"},
                {"[guest]\nmemory_mib = 1g\n", "t.conf:2: guest.memory_mib: \"1g\": expected an integer"},
                {"[guest]\nvcpus = 0\n", "t.conf:2: guest.vcpus: \"0\": expected an integer from 1 to 256"},
                {"[guest]\nboot_timeout = 0\n", "t.conf:2: guest.boot_timeout: \"0\": expected seconds"},
                {"[guest]\nboot_timeout = 3601\n", "t.conf:2: guest.boot_timeout:"},
                {"[runtime]\nhypervisor = firecracker\n",
                 "t.conf:2: runtime.hypervisor: unknown hypervisor \"firecracker\" (known: qemu, moat-vmm, auto)"},
                {"[runtime]\nlog_level = loud\n", "t.conf:2: runtime.log_level: \"loud\" is not one of: info, debug"},
                {"[guest]\nkernel = vmlinux\n", "t.conf:2: guest.kernel: \"vmlinux\" is not an absolute path"},
                {"[hypervisor]\nvmm_force = maybe\n", "t.conf:2: hypervisor.vmm_force: \"maybe\": expected true"},
                {"[guest]\nkernel_params = a\tb\n", "t.conf:2: guest.kernel_params:"},
                {"[guest]\nkernel = /a\nnot a key\n", "t.conf:3: syntax error"},
                {"[guest\n", "t.conf:1: syntax error"},
                {"[guest]\nkernel = /a\n  /b\n", "t.conf:3: guest.kernel: an indented line continues its value"},
        };
        for (size_t i = 0; i < ARRAY_SIZE (cases); i++) {
                struct moat_config c;
                cleanup_free char *e = parse (&c, cases[i].text);
                if (e == NULL)
                        fail_msg ("accepted: %s", cases[i].text);
                if (strncmp (e, cases[i].want, strlen (cases[i].want)) != 0)
                        fail_msg ("for %s got: %s", cases[i].text, e);
                moat_config_free (&c);
        }
}

static void
test_line_too_long (void **state)
{
        struct moat_config c;
        cleanup_free char *text = NULL;
        char path[400];
        memset (path, 'a', sizeof path - 1);
        path[0] = '/';
        path[sizeof path - 1] = '\0';
        text = xasprintf_r ("[guest]\n# fine\nkernel = %s\n", path);
        cleanup_free char *e = parse (&c, text);
        assert_non_null (e);
        assert_non_null (strstr (e, "t.conf:3: line too long"));
        moat_config_free (&c);
}

/* the layers, through real files: main < drop-ins (name order) < env < flag */
static void
test_layers (void **state)
{
        char dir[] = "/tmp/moat-test-config.XXXXXX";
        assert_non_null (mkdtemp (dir));
        cleanup_free char *main_path = xasprintf_r ("%s/moat.conf", dir);
        cleanup_free char *d = xasprintf_r ("%s/moat.conf.d", dir);
        cleanup_free char *a = xasprintf_r ("%s/10-a.conf", d);
        cleanup_free char *b = xasprintf_r ("%s/20-b.conf", d);
        cleanup_free char *ignored = xasprintf_r ("%s/30-c.conf.disabled", d);
        cleanup_free char *hidden = xasprintf_r ("%s/.40-d.conf", d);
        cleanup_free char *cmd = NULL;
        moat_error_t err = NULL;
        struct moat_config c;

        assert_int_equal (mkdir (d, 0755), 0);
        put (main_path, "[runtime]\nhypervisor = qemu\n[guest]\nmemory_mib = 1024\nvcpus = 2\noverhead_mib = 100\n");
        /* written in the other order: the names decide */
        put (b, "[guest]\nmemory_mib = 2048\n");
        put (a, "[guest]\nmemory_mib = 768\nvcpus = 3\n");
        put (ignored, "[guest]\nmemory_mib = 99999\n");
        put (hidden, "[guest]\nbogus = 1\n");

        assert_int_equal (moat_config_read (&c, main_path, "--config", &err), 0);
        assert_true (c.path_found);
        assert_string_equal (c.path_from, "--config");
        assert_non_null (c.dropins);
        assert_string_equal (c.dropins[0], a);
        assert_string_equal (c.dropins[1], b);
        assert_null (c.dropins[2]);
        assert_string_equal (c.v[MOAT_SET_HYPERVISOR].file, main_path);
        assert_int_equal (c.v[MOAT_SET_MEMORY_MIB].num, 2048);
        assert_string_equal (c.v[MOAT_SET_MEMORY_MIB].file, b);
        assert_int_equal (c.v[MOAT_SET_VCPUS].num, 3);
        assert_string_equal (c.v[MOAT_SET_VCPUS].file, a);
        assert_int_equal (c.v[MOAT_SET_VCPUS].line, 3);
        assert_int_equal (c.v[MOAT_SET_OVERHEAD_MIB].num, 100);
        moat_config_free (&c);

        /* the environment beats the files, a flag beats the environment */
        setenv ("MOAT_VM_DEFAULT_MIB", "4096", 1);
        setenv ("MOAT_HYPERVISOR", "moat-vmm", 1);
        setenv ("MOAT_DEBUG", "1", 1);
        assert_int_equal (moat_config_read (&c, main_path, "--config", &err), 0);
        assert_int_equal (c.v[MOAT_SET_MEMORY_MIB].num, 4096);
        assert_int_equal (c.v[MOAT_SET_MEMORY_MIB].origin, MOAT_FROM_ENV);
        cleanup_free char *src = moat_config_source (&c.v[MOAT_SET_MEMORY_MIB]);
        assert_string_equal (src, "env MOAT_VM_DEFAULT_MIB");
        assert_string_equal (c.v[MOAT_SET_HYPERVISOR].text, "moat-vmm");
        assert_string_equal (c.v[MOAT_SET_LOG_LEVEL].text, "debug");
        assert_string_equal (c.v[MOAT_SET_LOG_LEVEL].name, "MOAT_DEBUG");
        assert_int_equal (moat_config_set_flag (&c, MOAT_SET_HYPERVISOR, "qemu", "--hypervisor", &err), 0);
        cleanup_free char *src2 = moat_config_source (&c.v[MOAT_SET_HYPERVISOR]);
        assert_string_equal (src2, "flag --hypervisor");
        assert_int_equal (moat_config_set_flag (&c, MOAT_SET_VCPUS, "0", "--vcpus", &err), -1);
        assert_non_null (strstr (err->msg, "--vcpus 0: \"0\": expected an integer"));
        moat_error_release (&err);
        moat_config_free (&c);

        /* a bad environment value names the variable */
        setenv ("MOAT_BOOT_TIMEOUT", "soon", 1);
        assert_int_equal (moat_config_read (&c, main_path, "--config", &err), -1);
        assert_non_null (strstr (err->msg, "MOAT_BOOT_TIMEOUT=soon: \"soon\": expected seconds"));
        moat_error_release (&err);
        clear_env ();

        /* MOAT_CONFIG names the file when no path is given */
        setenv ("MOAT_CONFIG", main_path, 1);
        assert_int_equal (moat_config_read (&c, NULL, NULL, &err), 0);
        assert_string_equal (c.path_from, "MOAT_CONFIG");
        assert_int_equal (c.v[MOAT_SET_MEMORY_MIB].num, 2048);
        moat_config_free (&c);
        clear_env ();

        /* a drop-in's error names the drop-in */
        put (b, "[guest]\n\nmemory_mib = lots\n");
        assert_int_equal (moat_config_read (&c, main_path, "--config", &err), -1);
        cleanup_free char *want = xasprintf_r ("%s:3: guest.memory_mib: \"lots\"", b);
        if (strstr (err->msg, want) == NULL)
                fail_msg ("got: %s", err->msg);
        moat_error_release (&err);

        /* a file named explicitly must exist; its drop-ins need not */
        cmd = xasprintf_r ("rm -rf %s", dir);
        assert_int_equal (system (cmd), 0);
        assert_int_equal (moat_config_read (&c, main_path, "--config", &err), -1);
        assert_non_null (strstr (err->msg, "No such file"));
        assert_non_null (strstr (err->msg, main_path));
        moat_error_release (&err);
}

static char *
shipped_conf (void)
{
        cleanup_free char *here = xstrdup (__FILE__);
        const char *cands[] = {"packaging/moat.conf", NULL};
        cleanup_free char *rel = xasprintf_r ("%s/../../packaging/moat.conf", dirname (here));
        cands[1] = rel;
        for (size_t i = 0; i < ARRAY_SIZE (cands); i++) {
                char *text = NULL;
                moat_error_t err = NULL;
                if (read_file (cands[i], &text, NULL, &err) == 0)
                        return text;
                moat_error_release (&err);
        }
        return NULL;
}

static void
test_shipped_default_file (void **state)
{
        cleanup_free char *text = shipped_conf ();
        struct moat_config c;
        moat_error_t err = NULL;
        char *u, *w;

        if (text == NULL) {
                skip ();
                return;
        }
        /* as shipped: every setting commented out */
        moat_config_init_defaults (&c);
        assert_int_equal (moat_config_parse_string (&c, "moat.conf", text, &err), 0);
        for (int i = 0; i < MOAT_SET__COUNT; i++)
                assert_int_equal (c.v[i].origin, MOAT_FROM_DEFAULT);
        moat_config_free (&c);

        /* uncommented ("#key =" lines): each setting once, at its default */
        u = xmalloc (strlen (text) + 1);
        w = u;
        for (const char *l = text; *l;) {
                const char *nl = strchr (l, '\n');
                size_t len = nl ? (size_t)(nl - l) + 1 : strlen (l);
                if (l[0] == '#' && l[1] >= 'a' && l[1] <= 'z') {
                        l++;
                        len--;
                }
                memcpy (w, l, len);
                w += len;
                l += len;
        }
        *w = '\0';
        moat_config_init_defaults (&c);
        if (moat_config_parse_string (&c, "moat.conf", u, &err) < 0)
                fail_msg ("uncommented: %s", err->msg);
        for (int i = 0; i < MOAT_SET__COUNT; i++) {
                const struct moat_setting_spec *sp = moat_setting_spec (i);
                if (c.v[i].origin != MOAT_FROM_FILE)
                        fail_msg ("packaging/moat.conf lacks %s.%s", sp->section, sp->key);
                if (strcmp (c.v[i].text, sp->def) != 0)
                        fail_msg ("packaging/moat.conf: %s.%s = %s, default %s", sp->section, sp->key, c.v[i].text,
                                  sp->def);
        }
        moat_config_free (&c);
        free (u);
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup (test_defaults, setup),
                cmocka_unit_test_setup (test_values_and_lines, setup),
                cmocka_unit_test_setup (test_errors_name_file_line_key, setup),
                cmocka_unit_test_setup (test_line_too_long, setup),
                cmocka_unit_test_setup (test_layers, setup),
                cmocka_unit_test_setup (test_shipped_default_file, setup),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

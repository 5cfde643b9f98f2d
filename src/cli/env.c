/* SPDX-License-Identifier: Apache-2.0 */
/* moat env: print moat's settings, where each came from (include/moat/config.h),
 * and the companion files it found, as KEY=value lines (or --json), in the
 * spirit of `kata-runtime env`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "cli.h"
#include "moat/agent_proto.h"
#include "moat/config.h"
#include "moat/hypervisor.h"
#include "moat/paths.h"
#include "moat/sandbox.h"
#include "moat/template.h"
#include "moat/util.h"
#include "moat/json_gen.h"

struct kv {
        char *key, *value;
};

#define MAX_KV 64

static void
add (struct kv *v, size_t *n, const char *key, char *value)
{
        if (*n >= MAX_KV)
                abort (); /* a bug: MAX_KV is too small */
        v[*n].key = xstrdup (key);
        v[*n].value = value ? value : xstrdup ("");
        (*n)++;
}

/* KEY and KEY_SOURCE for one setting; value NULL: the setting's own text */
static void
add_setting (struct kv *v, size_t *n, enum moat_setting s, char *value)
{
        const struct moat_setting_spec *sp = moat_setting_spec (s);
        cleanup_free char *src_key = xasprintf_r ("%s_SOURCE", sp->env_key);
        add (v, n, sp->env_key, value ? value : xstrdup (moat_config_str (s)));
        add (v, n, src_key, moat_config_source (moat_config_value (s)));
}

/* a companion file: its path (or empty and KEY_ERROR) and its source */
static void
add_file (struct kv *v, size_t *n, enum moat_setting s, enum moat_file which)
{
        cleanup_error moat_error_t err = NULL;
        char *p = NULL;
        add_setting (v, n, s, moat_find_file (which, &p, &err) < 0 ? NULL : p);
        if (err) {
                cleanup_free char *k = xasprintf_r ("%s_ERROR", moat_setting_spec (s)->env_key);
                /* the value stays empty when the file cannot be used */
                free (v[*n - 2].value);
                v[*n - 2].value = xstrdup ("");
                add (v, n, k, xstrdup (err->msg));
        }
}

static void
gen_settings (yajl_gen gen)
{
        moat_gen_str (gen, "settings");
        yajl_gen_map_open (gen);
        for (int i = 0; i < MOAT_SET__COUNT; i++) {
                const struct moat_setting_spec *sp = moat_setting_spec (i);
                const struct moat_config_value *cv = moat_config_value (i);
                cleanup_free char *name = xasprintf_r ("%s.%s", sp->section, sp->key);
                cleanup_free char *src = moat_config_source (cv);
                moat_gen_str (gen, name);
                yajl_gen_map_open (gen);
                moat_gen_kv (gen, "value", cv->text);
                moat_gen_kv (gen, "source", src);
                moat_gen_kv (gen, "env", sp->env);
                moat_gen_kv (gen, "file", cv->origin == MOAT_FROM_FILE ? cv->file : NULL);
                moat_gen_str (gen, "line");
                if (cv->origin == MOAT_FROM_FILE)
                        yajl_gen_integer (gen, cv->line);
                else
                        yajl_gen_null (gen);
                moat_gen_kv (gen, "default", sp->def);
                yajl_gen_map_close (gen);
        }
        yajl_gen_map_close (gen);
}

int
moat_cmd_env (struct moat_global *g, int argc, char **argv)
{
        struct kv v[MAX_KV];
        size_t n = 0;
        bool json = false;
        char *why = NULL;
        const struct moat_config *c = moat_config ();
        const char *requested = moat_hypervisor_requested (NULL);
        const char *automatic = moat_hypervisor_auto (&why);
        char *dropins = xstrdup ("");

        for (int i = 1; i < argc; i++) {
                if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
                        printf ("Usage: moat env [--json]\n\n"
                                "Prints moat's settings as KEY=value lines (--json: an object), each with a\n"
                                "KEY_SOURCE line that says where it came from: default, FILE:LINE (moat.conf\n"
                                "or a drop-in), env VARIABLE, or flag --FLAG. Also the version, the state\n"
                                "root, the configuration files read, the guest kernel, initramfs, moat-vsock,\n"
                                "moat-vmm and QEMU paths moat would use, and the hypervisor backend a\n"
                                "container gets (the setting, else the automatic choice and why). A file\n"
                                "that cannot be found has an empty value and a KEY_ERROR line.\n");
                        free (dropins);
                        free (why);
                        return 0;
                }
                if (strcmp (argv[i], "--json") == 0) {
                        json = true;
                        continue;
                }
                moat_cli_error ("env: unexpected argument \"%s\" (see moat env --help)", argv[i]);
                free (dropins);
                free (why);
                return 1;
        }
        for (size_t i = 0; c->dropins && c->dropins[i]; i++) {
                char *d = xasprintf_r ("%s%s%s", dropins, i ? " " : "", c->dropins[i]);
                free (dropins);
                dropins = d;
        }

        add (v, &n, "MOAT_VERSION", xstrdup (MOAT_VERSION));
        add (v, &n, "MOAT_OCI_VERSION", xstrdup ("1.0.2"));
        add (v, &n, "MOAT_ROOT", xstrdup (g->root));
        add (v, &n, "MOAT_CONFIG", xstrdup (c->path));
        add (v, &n, "MOAT_CONFIG_SOURCE", xstrdup (c->path_from));
        add (v, &n, "MOAT_CONFIG_FOUND", xstrdup (c->path_found ? "true" : "false"));
        add (v, &n, "MOAT_CONFIG_DROPINS", dropins);
        /* what a container without the org.moat.hypervisor annotation gets */
        add_setting (v, &n, MOAT_SET_HYPERVISOR, xstrdup (requested ? requested : automatic));
        add (v, &n, "MOAT_HYPERVISOR_SETTING", xstrdup (moat_config_str (MOAT_SET_HYPERVISOR)));
        add (v, &n, "MOAT_HYPERVISOR_AUTO", xstrdup (automatic));
        add (v, &n, "MOAT_HYPERVISOR_AUTO_REASON", why);
        add (v, &n, "MOAT_KVM_USABLE", xstrdup (moat_kvm_usable () ? "true" : "false"));
        add_setting (v, &n, MOAT_SET_LOG_LEVEL, NULL);
        add_file (v, &n, MOAT_SET_KERNEL, MOAT_FILE_KERNEL);
        add_file (v, &n, MOAT_SET_INITRAMFS, MOAT_FILE_INITRD);
        add_setting (v, &n, MOAT_SET_KERNEL_PARAMS, NULL);
        add_setting (v, &n, MOAT_SET_MEMORY_MIB, NULL);
        add_setting (v, &n, MOAT_SET_VCPUS, NULL);
        add_setting (v, &n, MOAT_SET_OVERHEAD_MIB, NULL);
        add_setting (v, &n, MOAT_SET_BOOT_TIMEOUT, xasprintf_r ("%d", moat_boot_timeout_ms ()));
        add_setting (v, &n, MOAT_SET_QEMU, NULL);
        add_file (v, &n, MOAT_SET_VMM, MOAT_FILE_VMM);
        add_file (v, &n, MOAT_SET_VSOCK, MOAT_FILE_VSOCKD);
        add_setting (v, &n, MOAT_SET_VMM_FORCE, NULL);
        add (v, &n, "MOAT_GUEST_CMDLINE", moat_vm_cmdline (g->debug));
        add (v, &n, "MOAT_GUEST_SHARE", xstrdup (MOAT_GUEST_SHARE));
        add (v, &n, "MOAT_TEMPLATE", xstrdup (moat_template_enabled () ? "on" : "off"));
        add (v, &n, "MOAT_TEMPLATE_STATUS", moat_template_describe ());

        if (json) {
                yajl_gen gen = yajl_gen_alloc (NULL);
                const unsigned char *buf;
                size_t len;
                yajl_gen_config (gen, yajl_gen_beautify, 1);
                yajl_gen_map_open (gen);
                for (size_t i = 0; i < n; i++) {
                        moat_gen_str (gen, v[i].key);
                        moat_gen_str (gen, v[i].value);
                }
                gen_settings (gen);
                yajl_gen_map_close (gen);
                yajl_gen_get_buf (gen, &buf, &len);
                fwrite (buf, 1, len, stdout);
                fputc ('\n', stdout);
                yajl_gen_free (gen);
        } else {
                for (size_t i = 0; i < n; i++)
                        printf ("%s=%s\n", v[i].key, v[i].value);
        }
        for (size_t i = 0; i < n; i++) {
                free (v[i].key);
                free (v[i].value);
        }
        return fflush (stdout) == 0 ? 0 : 1;
}

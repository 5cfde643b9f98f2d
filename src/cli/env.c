/* SPDX-License-Identifier: Apache-2.0 */
/* moat env: print moat's configuration and the companion files it found,
 * as KEY=value lines (or --json), in the spirit of `kata-runtime env`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "cli.h"
#include "moat/agent_proto.h"
#include "moat/hypervisor.h"
#include "moat/paths.h"
#include "moat/sandbox.h"
#include "moat/template.h"
#include "moat/util.h"
#include "moat/json_gen.h"

struct kv {
        char *key, *value;
};

static void
add (struct kv *v, size_t *n, const char *key, char *value)
{
        v[*n].key = (char *)key;
        v[*n].value = value ? value : xstrdup ("");
        (*n)++;
}

static char *
find (enum moat_file which, char **error)
{
        cleanup_error moat_error_t err = NULL;
        char *p = NULL;
        if (moat_find_file (which, &p, &err) < 0) {
                *error = xstrdup (err->msg);
                return NULL;
        }
        return p;
}

int
moat_cmd_env (struct moat_global *g, int argc, char **argv)
{
        struct kv v[32];
        size_t n = 0;
        bool json = false;
        char *errors[4] = {NULL, NULL, NULL, NULL};
        char *why = NULL;
        const char *qemu = getenv ("MOAT_QEMU");
        const char *requested = moat_hypervisor_requested (NULL);
        const char *automatic = moat_hypervisor_auto (&why);

        for (int i = 1; i < argc; i++) {
                if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
                        printf ("Usage: moat env [--json]\n\n"
                                "Prints moat's configuration: version, state root, the guest kernel,\n"
                                "initramfs, moat-vsock, moat-vmm and QEMU paths it would use, the\n"
                                "hypervisor backend a container gets (env MOAT_HYPERVISOR, else the\n"
                                "automatic choice and why), as KEY=value lines (--json: an object).\n"
                                "A file that cannot be found has an empty value and a KEY_ERROR line.\n");
                        return 0;
                }
                if (strcmp (argv[i], "--json") == 0) {
                        json = true;
                        continue;
                }
                moat_cli_error ("env: unexpected argument \"%s\" (see moat env --help)", argv[i]);
                return 1;
        }

        add (v, &n, "MOAT_VERSION", xstrdup (MOAT_VERSION));
        add (v, &n, "MOAT_OCI_VERSION", xstrdup ("1.0.2"));
        add (v, &n, "MOAT_ROOT", xstrdup (g->root));
        add (v, &n, "MOAT_KERNEL", find (MOAT_FILE_KERNEL, &errors[0]));
        if (errors[0])
                add (v, &n, "MOAT_KERNEL_ERROR", errors[0]);
        add (v, &n, "MOAT_INITRD", find (MOAT_FILE_INITRD, &errors[1]));
        if (errors[1])
                add (v, &n, "MOAT_INITRD_ERROR", errors[1]);
        add (v, &n, "MOAT_VSOCK", find (MOAT_FILE_VSOCKD, &errors[2]));
        if (errors[2])
                add (v, &n, "MOAT_VSOCK_ERROR", errors[2]);
        add (v, &n, "MOAT_VMM", find (MOAT_FILE_VMM, &errors[3]));
        if (errors[3])
                add (v, &n, "MOAT_VMM_ERROR", errors[3]);
        add (v, &n, "MOAT_QEMU", xstrdup (qemu && *qemu ? qemu : "/usr/bin/qemu-system-x86_64"));
        /* what a container without the org.moat.hypervisor annotation gets */
        add (v, &n, "MOAT_HYPERVISOR", xstrdup (requested ? requested : automatic));
        add (v, &n, "MOAT_HYPERVISOR_AUTO", xstrdup (automatic));
        add (v, &n, "MOAT_HYPERVISOR_AUTO_REASON", why);
        add (v, &n, "MOAT_KVM_USABLE", xstrdup (moat_kvm_usable () ? "true" : "false"));
        add (v, &n, "MOAT_BOOT_TIMEOUT_MS", xasprintf_r ("%d", moat_boot_timeout_ms ()));
        add (v, &n, "MOAT_VM_DEFAULT_MIB", xasprintf_r ("%d", MOAT_VM_DEFAULT_MIB));
        add (v, &n, "MOAT_VM_OVERHEAD_MIB", xasprintf_r ("%d", MOAT_VM_OVERHEAD_MIB));
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
                yajl_gen_map_close (gen);
                yajl_gen_get_buf (gen, &buf, &len);
                fwrite (buf, 1, len, stdout);
                fputc ('\n', stdout);
                yajl_gen_free (gen);
        } else {
                for (size_t i = 0; i < n; i++)
                        printf ("%s=%s\n", v[i].key, v[i].value);
        }
        for (size_t i = 0; i < n; i++)
                free (v[i].value);
        return fflush (stdout) == 0 ? 0 : 1;
}

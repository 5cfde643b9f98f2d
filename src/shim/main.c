/* SPDX-License-Identifier: Apache-2.0 */
/* containerd-shim-moat-v2 [flags] [start|delete]
 * containerd runs the binary with Go-style flags before the action word:
 *   -namespace NS -address SOCK -publish-binary BIN -id ID [-debug] start
 *   -namespace NS -address SOCK -publish-binary BIN -id ID -bundle DIR delete
 * and `start` runs it again without an action to serve on fd 3. A flag is
 * "-name value", "-name=value" or the same with "--"; -debug and -v are
 * booleans. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moat/config.h"
#include "moat/log.h"
#include "shim.h"

static int
usage (const char *msg)
{
        fprintf (stderr, "%s: %s\nusage: %s -namespace NS -address SOCK -id ID [-bundle DIR] [-debug] [start|delete]\n",
                 SHIM_NAME, msg, SHIM_NAME);
        return 2;
}

/* Returns 0, or 2 after printing what is wrong. */
static int
parse (int argc, char **argv, struct shim_opts *o, bool *version)
{
        static const struct {
                const char *name;
                size_t off;
        } strs[] = {
                {"namespace", offsetof (struct shim_opts, namespace_)},
                {"address", offsetof (struct shim_opts, address)},
                {"publish-binary", offsetof (struct shim_opts, publish_binary)},
                {"id", offsetof (struct shim_opts, id)},
                {"bundle", offsetof (struct shim_opts, bundle)},
                {"socket", offsetof (struct shim_opts, socket)},
        };
        int i;
        for (i = 1; i < argc; i++) {
                const char *a = argv[i], *val = NULL;
                char name[64];
                size_t n;
                bool found = false;
                if (a[0] != '-' || strcmp (a, "-") == 0)
                        break;
                if (strcmp (a, "--") == 0) {
                        i++;
                        break;
                }
                a += a[1] == '-' ? 2 : 1;
                n = strcspn (a, "=");
                if (n >= sizeof name)
                        return usage ("flag name too long");
                memcpy (name, a, n);
                name[n] = '\0';
                if (a[n] == '=')
                        val = a + n + 1;
                if (strcmp (name, "debug") == 0 || strcmp (name, "v") == 0) {
                        bool on = val == NULL || strcmp (val, "true") == 0 || strcmp (val, "1") == 0;
                        if (val && !on && strcmp (val, "false") != 0 && strcmp (val, "0") != 0) {
                                fprintf (stderr, "%s: invalid boolean value %s for -%s\n", SHIM_NAME, val, name);
                                return 2;
                        }
                        if (name[0] == 'd')
                                o->debug = on;
                        else
                                *version = on;
                        continue;
                }
                for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++) {
                        if (strcmp (name, strs[k].name) != 0)
                                continue;
                        if (val == NULL) {
                                if (i + 1 >= argc) {
                                        fprintf (stderr, "%s: flag needs an argument: -%s\n", SHIM_NAME, name);
                                        return 2;
                                }
                                val = argv[++i];
                        }
                        *(const char **)((char *)o + strs[k].off) = val;
                        found = true;
                }
                if (!found) {
                        fprintf (stderr, "%s: flag provided but not defined: -%s\n", SHIM_NAME, name);
                        return 2;
                }
        }
        if (i < argc)
                o->action = argv[i++];
        o->args = argv + i;
        o->n_args = argc - i;
        if (i < argc && strcmp (o->action, "internal") != 0)
                return usage ("too many arguments");
        return 0;
}

int
main (int argc, char **argv)
{
        struct shim_opts o = {.namespace_ = ""};
        cleanup_error moat_error_t err = NULL;
        bool version = false;
        int r = parse (argc, argv, &o, &version);

        if (r)
                return r;
        if (version) {
                /* Features: what works (tests read it): tasks, and pods
                 * (one VM holds every container of a pod) */
                printf ("%s:\n  Version:  %s\n  Runtime:  io.containerd.moat.v2\n  Features: tasks pods\n", SHIM_NAME,
                        MOAT_VERSION);
                return 0;
        }
        if (o.id == NULL || *o.id == '\0')
                return usage ("-id is required");
        if (moat_config_load (NULL, NULL, &err) < 0) { /* moat.conf, MOAT_CONFIG, MOAT_* */
                fprintf (stderr, "%s: %s\n", SHIM_NAME, err->msg);
                return 1;
        }
        /* start and delete speak to containerd on stdout: logs go to
         * stderr, which containerd keeps apart only for delete, so start
         * logs nothing at all unless it fails */
        moat_log_init (NULL, 0, o.debug && o.action && strcmp (o.action, "delete") == 0);
        if (o.action == NULL)
                r = shim_serve (&o, o.socket ? -1 : 3, &err);
        else if (strcmp (o.action, "start") == 0)
                r = shim_start (&o, &err);
        else if (strcmp (o.action, "delete") == 0)
                r = shim_delete (&o, &err);
        else if (strcmp (o.action, "internal") == 0)
                return shim_internal (&o, o.n_args, o.args);
        else
                return usage ("unknown action");
        if (r < 0) {
                fprintf (stderr, "%s: %s %s: %s\n", SHIM_NAME, o.action ? o.action : "serve", o.id, err->msg);
                return 1;
        }
        return 0;
}

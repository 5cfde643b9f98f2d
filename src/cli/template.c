/* SPDX-License-Identifier: Apache-2.0 */
/* moat template build|status: the VM template a container without
 * resources gets (src/lib/template.c). Sandboxes build templates on first
 * use; this builds one ahead, or says where it stands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/template.h"
#include "moat/util.h"

static const char usage[] = "Usage: moat template build|status\n"
                            "  build   build the VM template now (unless it is ready) and print its directory\n"
                            "  status  whether it is ready, and why not\n";

int
moat_cmd_template (struct moat_global *g, int argc, char **argv)
{
        if (argc != 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
                fputs (usage, argc == 2 ? stdout : stderr);
                return argc == 2 ? 0 : 1;
        }
        if (strcmp (argv[1], "status") == 0) {
                cleanup_free char *s = moat_template_describe ();
                printf ("%s\n", s);
                return 0;
        }
        if (strcmp (argv[1], "build") == 0) {
                cleanup_error moat_error_t err = NULL;
                cleanup_free char *dir = NULL;
                if (moat_template_build_default (g->debug, &dir, &err) < 0) {
                        moat_cli_error ("template build: %s", err->msg);
                        return 1;
                }
                printf ("%s\n", dir);
                return 0;
        }
        moat_cli_error ("template: unknown subcommand \"%s\" (build or status)", argv[1]);
        return 1;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* moat features: the runtime-spec features document (fixed at build time). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/spec.h"
#include "moat/util.h"

int
moat_cmd_features (struct moat_global *g, int argc, char **argv)
{
        cleanup_free char *json = NULL;

        for (int i = 1; i < argc; i++) {
                if (strcmp (argv[i], "--help") == 0 || strcmp (argv[i], "-h") == 0) {
                        printf ("Usage: moat features\n\n"
                                "Prints the OCI runtime features document (runtime-spec features.md) as JSON:\n"
                                "the spec versions, hooks, mount options, namespaces, capabilities, cgroup\n"
                                "and seccomp support this build of moat implements.\n");
                        return 0;
                }
                moat_cli_error ("features: unexpected argument \"%s\" (see moat features --help)", argv[i]);
                return 1;
        }
        json = moat_features_json ();
        printf ("%s\n", json);
        return fflush (stdout) == 0 ? 0 : 1;
}

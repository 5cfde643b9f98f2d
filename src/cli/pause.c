/* SPDX-License-Identifier: Apache-2.0 */
/* moat pause: freeze every process of a running container (cgroup freezer in the guest). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/util.h"

int
moat_cmd_pause (struct moat_global *g, int argc, char **argv)
{
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;

        if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)) {
                printf ("Usage: moat pause ID\n\n"
                        "Suspends every process of the running container ID (the cgroup freezer\n"
                        "inside its VM); `moat resume ID` thaws them. The status becomes \"paused\".\n");
                return 0;
        }
        if (argc != 2 || argv[1][0] == '-') {
                moat_cli_error ("pause: expected exactly one container ID (usage: moat pause ID)");
                return 1;
        }
        if (moat_container_pause (&ctx, argv[1], &err) < 0) {
                moat_error_wrap (&err, "pause %s", argv[1]);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}

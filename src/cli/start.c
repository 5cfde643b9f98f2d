/* SPDX-License-Identifier: Apache-2.0 */
/* moat start ID: start the process of a created container, then run the
 * poststart hooks (a failing one stops the container and fails start). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/util.h"

int
moat_cmd_start (struct moat_global *g, int argc, char **argv)
{
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;
        if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)) {
                printf ("Usage: moat start ID\n\nStart the process of a created container and run the poststart "
                        "hooks.\n");
                return 0;
        }
        if (argc != 2 || argv[1][0] == '-') {
                moat_cli_error ("start: expected exactly one container ID (usage: moat start ID)");
                return 1;
        }
        if (moat_container_start (&ctx, argv[1], &err) < 0) {
                moat_error_wrap (&err, "start %s", argv[1]);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}

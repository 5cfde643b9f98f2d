/* SPDX-License-Identifier: Apache-2.0 */
/* moat resume: thaw a paused container. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/container.h"
#include "moat/util.h"

int
moat_cmd_resume (struct moat_global *g, int argc, char **argv)
{
        struct moat_context ctx = moat_cli_context (g);
        cleanup_error moat_error_t err = NULL;

        if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)) {
                printf ("Usage: moat resume ID\n\n"
                        "Thaws every process of the paused container ID. The status becomes\n"
                        "\"running\" again.\n");
                return 0;
        }
        if (argc != 2 || argv[1][0] == '-') {
                moat_cli_error ("resume: expected exactly one container ID (usage: moat resume ID)");
                return 1;
        }
        if (moat_container_resume (&ctx, argv[1], &err) < 0) {
                moat_error_wrap (&err, "resume %s", argv[1]);
                moat_error_print (&err, "moat");
                return 1;
        }
        return 0;
}

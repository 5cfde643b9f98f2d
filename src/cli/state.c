/* SPDX-License-Identifier: Apache-2.0 */
/* moat state ID: the OCI state of a container as JSON (runc's fields:
 * ociVersion, id, pid, status, bundle, rootfs, created, owner,
 * annotations). The status is "stopped" once the stand-in or the VM is
 * gone, whatever was stored. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "moat/state.h"
#include "moat/util.h"

int
moat_cmd_state (struct moat_global *g, int argc, char **argv)
{
        cleanup_error moat_error_t err = NULL;
        struct moat_state *st = NULL;
        cleanup_free char *json = NULL;

        if (argc == 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0)) {
                printf ("Usage: moat state ID\n\nPrint the state of a container as OCI state JSON.\n");
                return 0;
        }
        if (argc != 2 || argv[1][0] == '-') {
                moat_cli_error ("state: expected exactly one container ID (usage: moat state ID)");
                return 1;
        }
        if (moat_state_load (g->root, argv[1], &st, &err) < 0) {
                moat_error_wrap (&err, "state %s", argv[1]);
                moat_error_print (&err, "moat");
                return 1;
        }
        json = moat_state_to_oci_json (st, NULL, 1);
        printf ("%s\n", json);
        moat_state_free (st);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* moat-agent: PID 1 of the moat guest, or a standalone container runner.
 *   moat-agent                          as /init: set up the guest, serve vsock
 *   moat-agent --standalone BUNDLE [ID] run one container here, no VM */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "moat/log.h"
#include "moat/util.h"

int
main (int argc, char **argv)
{
        moat_error_t err = NULL;

        if (argc >= 3 && strcmp (argv[1], "--standalone") == 0) {
                agent_debug_enabled = getenv ("MOAT_DEBUG") != NULL;
                moat_log_init (NULL, 0, agent_debug_enabled);
                return agent_standalone (argv[2], argc > 3 ? argv[3] : NULL);
        }
        if (argc >= 2 && (strcmp (argv[1], "--version") == 0)) {
                printf ("moat-agent %s\n", MOAT_VERSION);
                return 0;
        }
        if (argc >= 2 && strcmp (argv[1], "--help") == 0) {
                printf ("usage: moat-agent                  (as PID 1 of the moat guest)\n"
                        "       moat-agent --standalone BUNDLE [ID]\n");
                return 0;
        }
        if (argc >= 2 && strcmp (argv[1], "--switched-root") != 0) {
                fprintf (stderr, "moat-agent: unknown argument %s (try --help)\n", argv[1]);
                return 2;
        }
        /* PID 1 must never exit: errors are logged, then we keep serving or
         * power off. */
        if (agent_init_system (argc >= 2, argv, &err) < 0) {
                agent_log ("guest setup failed: %s", err->msg);
                moat_error_release (&err);
        }
        if (agent_reaper_start (&err) < 0) {
                agent_log ("%s", err->msg);
                moat_error_release (&err);
        }
        if (agent_is_pid1 ()) {
                /* moat.standalone=DIR on the kernel command line: run that
                 * bundle (e.g. on the 9p share) once and power off. A test
                 * hook for the guest without a host-side agent client. */
                char *cmdline = NULL, *p;
                if (read_file ("/proc/cmdline", &cmdline, NULL, &err) < 0)
                        moat_error_release (&err);
                else if ((p = strstr (cmdline, "moat.standalone=")) != NULL) {
                        int st;
                        p += strlen ("moat.standalone=");
                        p[strcspn (p, " \n")] = '\0';
                        st = agent_standalone (p, NULL);
                        agent_log ("standalone container exited with status %d", st);
                        agent_poweroff (false);
                }
                free (cmdline);
        }
        agent_template_wait ();
        if (agent_server_run (&err) < 0) {
                agent_log ("server failed: %s", err->msg);
                moat_error_release (&err);
        }
        if (agent_is_pid1 ()) {
                agent_log ("nothing left to serve, powering off");
                agent_poweroff (false);
                for (;;)
                        pause ();
        }
        return 1;
}

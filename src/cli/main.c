/* SPDX-License-Identifier: Apache-2.0 */
/* moat: an OCI runtime that runs every container in its own microVM.
 *   moat [global options] VERB [options] ARGS */
#include <errno.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "moat/config.h"
#include "moat/log.h"
#include "moat/paths.h"
#include "moat/state.h"
#include "moat/util.h"

static const struct {
        const char *name;
        moat_verb_fn fn;
        const char *help;
} verbs[] = {
        {"create", moat_cmd_create, "create a container in a new VM, held before its process runs"},
        {"start", moat_cmd_start, "start the process of a created container"},
        {"state", moat_cmd_state, "print the state of a container as OCI state JSON"},
        {"kill", moat_cmd_kill, "send a signal to the container's process(es)"},
        {"delete", moat_cmd_delete, "delete a container and its VM"},
        {"run", moat_cmd_run, "create and start a container in a new VM, wait for it"},
        {"exec", moat_cmd_exec, "run a new process inside a running container"},
        {"ps", moat_cmd_ps, "list the processes of a container"},
        {"list", moat_cmd_list, "list containers"},
        {"pause", moat_cmd_pause, "freeze every process of a container"},
        {"resume", moat_cmd_resume, "thaw a paused container"},
        {"update", moat_cmd_update, "change a container's resource limits"},
        {"spec", moat_cmd_spec, "write a default config.json"},
        {"features", moat_cmd_features, "print the features this runtime supports (JSON)"},
        {"events", moat_cmd_events, "print container events and statistics"},
        {"check", moat_cmd_check, "tell which hypervisor backend this host can use and why"},
        {"env", moat_cmd_env, "print moat's settings, where each comes from, and its paths"},
        {"setup", moat_cmd_setup, "register moat as a runtime with podman, docker or containerd"},
        {"template", moat_cmd_template, "build the VM template now, or say whether it is ready"},
};

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat [global options] COMMAND [options] ARGS\n\n"
                    "moat runs OCI containers, each inside its own microVM.\n\n"
                    "Commands:\n");
        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
                fprintf (f, "  %-10s %s\n", verbs[i].name, verbs[i].help);
        fprintf (f, "\nGlobal options:\n"
                    "  --root DIR            state directory (default " MOAT_DEFAULT_ROOT ")\n"
                    "  --config FILE         configuration file (default " MOAT_CONFIG_DEFAULT_PATH ",\n"
                    "                        env MOAT_CONFIG; drop-ins in FILE.d/*.conf)\n"
                    "  --log FILE            log to FILE\n"
                    "  --log-format FORMAT   text or json (default text)\n"
                    "  --debug               verbose logging; the guest agent logs to the console\n"
                    "  --systemd-cgroup      cgroupsPath is systemd's slice:prefix:name (converted to\n"
                    "                        its cgroupfs path; systemd itself is not called)\n"
                    "  --help, -h            this help\n"
                    "  --version, -v         print the version\n");
}

void
moat_cli_error (const char *fmt, ...)
{
        char *msg = NULL;
        va_list ap;

        va_start (ap, fmt);
        if (vasprintf (&msg, fmt, ap) < 0)
                msg = NULL;
        va_end (ap);
        if (msg == NULL)
                return;
        moat_log (MOAT_LOG_ERROR, "%s", msg);
        fprintf (stderr, "moat: %s\n", msg);
        free (msg);
}

/* runc's layout ("runc version X", "commit: ...", "spec: ...",
 * "libseccomp: ..."): dockerd parses the first two lines. */
static void
version (void)
{
        const struct scmp_version *sv = seccomp_version ();

        printf ("moat version %s\n", MOAT_VERSION);
#ifdef MOAT_COMMIT
        printf ("commit: %s\n", MOAT_COMMIT);
#endif
        printf ("spec: 1.0.2\n");
        if (sv)
                printf ("libseccomp: %u.%u.%u\n", sv->major, sv->minor, sv->micro);
}

/* "--opt VALUE" or "--opt=VALUE": returns the value and advances *i. */
static const char *
opt_value (int argc, char **argv, int *i, const char *name)
{
        size_t n = strlen (name);
        if (strncmp (argv[*i], name, n) == 0 && argv[*i][n] == '=')
                return argv[*i] + n + 1;
        if (strcmp (argv[*i], name) == 0) {
                if (*i + 1 >= argc)
                        return NULL;
                return argv[++*i];
        }
        return NULL;
}

static int
is_opt (const char *arg, const char *name)
{
        size_t n = strlen (name);
        return strncmp (arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int
main (int argc, char **argv)
{
        struct moat_global g = {.root = MOAT_DEFAULT_ROOT, .log_format = "text"};
        cleanup_free char *bad = NULL; /* a global option error, reported once the log is open */
        cleanup_free char *abs_root = NULL;
        cleanup_error moat_error_t cfg_err = NULL;
        const char *config = NULL;
        int i;

        for (i = 1; i < argc && argv[i][0] == '-'; i++) {
                const char *a = argv[i];
                if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
                        usage (stdout);
                        return 0;
                }
                if (strcmp (a, "--version") == 0 || strcmp (a, "-v") == 0) {
                        version ();
                        return 0;
                }
                if (strcmp (a, "--debug") == 0) {
                        g.debug = true;
                        continue;
                }
                if (strcmp (a, "--systemd-cgroup") == 0) {
                        /* no systemd needed: slice:prefix:name becomes its cgroupfs path */
                        g.systemd_cgroup = true;
                        continue;
                }
                const char *names[] = {"--root", "--log", "--log-format", "--rootless", "--criu", "--config"};
                size_t k;
                for (k = 0; k < sizeof names / sizeof names[0]; k++)
                        if (is_opt (a, names[k]))
                                break;
                if (k == sizeof names / sizeof names[0]) {
                        bad = xasprintf_r ("unknown global option %s (see moat --help)", a);
                        break;
                }
                const char *v = opt_value (argc, argv, &i, names[k]);
                if (v == NULL) {
                        bad = xasprintf_r ("%s needs a value", names[k]);
                        break;
                }
                if (k == 0)
                        g.root = v;
                else if (k == 1)
                        g.log = v;
                else if (k == 2) {
                        if (strcmp (v, "text") != 0 && strcmp (v, "json") != 0) {
                                bad = xasprintf_r ("--log-format: expected text or json, got \"%s\"", v);
                                break;
                        }
                        g.log_format = v;
                } else if (k == 5)
                        config = v;
        }
        /* the settings (moat.conf, drop-ins, environment, flags) before
         * anything uses them; a bad file is reported once the log is open */
        if (bad == NULL && moat_config_load (config, "--config", &cfg_err) < 0)
                bad = xstrdup (cfg_err->msg);
        if (bad == NULL && g.debug &&
            moat_config_set_flag (moat_config (), MOAT_SET_LOG_LEVEL, "debug", "--debug", &cfg_err) < 0)
                bad = xstrdup (cfg_err->msg);
        if (bad == NULL && strcmp (moat_config_str (MOAT_SET_LOG_LEVEL), "debug") == 0)
                g.debug = true;
        if (moat_log_init (g.log, strcmp (g.log_format, "json") == 0, g.debug) < 0) {
                fprintf (stderr, "moat: open log %s: %s\n", g.log, strerror (errno));
                return 1;
        }
        if (bad) {
                moat_cli_error ("%s", bad);
                return 1;
        }
        if (*g.root == '\0') {
                moat_cli_error ("--root must not be empty");
                return 1;
        }
        /* as runc: a relative --root is taken from the current directory,
         * once (moat and its helpers change directory later) */
        if (g.root[0] != '/') {
                cleanup_free char *cwd = getcwd (NULL, 0);
                if (cwd == NULL) {
                        moat_cli_error ("--root %s: getcwd: %s", g.root, strerror (errno));
                        return 1;
                }
                abs_root = xasprintf_r ("%s/%s", cwd, g.root);
                g.root = abs_root;
        }
        if (i >= argc) {
                usage (stderr);
                return 1;
        }
        for (size_t k = 0; k < sizeof verbs / sizeof verbs[0]; k++)
                if (strcmp (argv[i], verbs[k].name) == 0)
                        return verbs[k].fn (&g, argc - i, argv + i);
        moat_cli_error ("unknown command \"%s\" (see moat --help)", argv[i]);
        return 1;
}

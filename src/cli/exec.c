/* SPDX-License-Identifier: Apache-2.0 */
/* moat exec [options] ID CMD [ARGS...]   or   moat exec --process FILE ID
 *
 * Runs a new process in a running container. The process is described by
 * the container's own process (env, cwd, user, capabilities... of the
 * config saved at create) with the command line and the options applied,
 * or by a process.json (--process). It gets its own stand-in: with
 * --detach a child that outlives moat exec (its pid goes to --pid-file;
 * conmon and containerd-shim wait on it), else moat exec itself, which
 * relays stdio and signals and exits with the process's status.
 * --preserve-fds N relays the caller's fds 3..3+N-1 like create does
 * (docs/limits.md). As runc: --user and --additional-gids change the
 * container's user (uid, gid when given; the gids are appended to its
 * additionalGids), and a --process file is used as it is, options aside.
 * The stand-in is recorded in the state directory while the process runs
 * (moat/execrec.h), for `moat ps --format json`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "cli.h"
#include "moat/agent_client.h"
#include "moat/execrec.h"
#include "moat/hostcgroup.h"
#include "moat/log.h"
#include "moat/oci.h"
#include "moat/standin.h"
#include "moat/state.h"
#include "moat/util.h"
#include "moat/json_gen.h"

#define STREAM_TIMEOUT_MS 10000

struct exec_opts {
        const char *id, *process_file, *console_socket, *pid_file, *cwd, *user;
        bool tty, tty_set, detach, no_new_privs;
        int preserve_fds;
        char **env, **caps, **args;
        size_t n_env, n_caps;
        uint32_t *gids; /* --additional-gids */
        size_t n_gids;
};

static void
usage (FILE *f)
{
        fprintf (f, "Usage: moat exec [options] ID COMMAND [ARGS...]\n"
                    "       moat exec [options] --process FILE ID\n\n"
                    "Run a new process inside a running container.\n\n"
                    "Options:\n"
                    "  -p, --process FILE        the process as OCI process JSON\n"
                    "  -t, --tty                 allocate a pseudo-terminal\n"
                    "      --console-socket SOCK send the pty master to the Unix socket SOCK\n"
                    "      --cwd DIR             working directory\n"
                    "  -e, --env NAME=VALUE      set an environment variable (repeatable)\n"
                    "  -u, --user UID[:GID]      user and group ids (the container's gid stays without :GID)\n"
                    "  -g, --additional-gids GID add a supplementary group (repeatable, or GID,GID...)\n"
                    "  -c, --cap CAP             add a capability (repeatable)\n"
                    "      --no-new-privs        set no_new_privs\n"
                    "  -d, --detach              return at once; a stand-in process stays\n"
                    "      --pid-file FILE       write the stand-in's pid to FILE\n"
                    "      --preserve-fds N      pass fds 3..3+N-1 to the process (relayed into the VM\n"
                    "                            as byte streams; see docs/limits.md)\n"
                    "  -h, --help                this help\n");
}

static void
gen_strv (yajl_gen g, yajl_val base, char **extra, size_t n_extra)
{
        yajl_gen_array_open (g);
        if (base && YAJL_IS_ARRAY (base))
                for (size_t i = 0; i < YAJL_GET_ARRAY (base)->len; i++)
                        moat_gen_value (g, YAJL_GET_ARRAY (base)->values[i]);
        for (size_t i = 0; i < n_extra; i++)
                moat_gen_str (g, extra[i]);
        yajl_gen_array_close (g);
}

static int
parse_user (const char *s, long *uid, long *gid, moat_error_t *err)
{
        char *end;
        *uid = strtol (s, &end, 10);
        *gid = -1;
        if (end == s || *uid < 0 || (*end && *end != ':'))
                return moat_make_error (err, 0, "--user \"%s\": expected UID[:GID] (numbers)", s);
        if (*end == ':') {
                const char *gs = end + 1;
                *gid = strtol (gs, &end, 10);
                if (end == gs || *end || *gid < 0)
                        return moat_make_error (err, 0, "--user \"%s\": expected UID[:GID] (numbers)", s);
        }
        return 0;
}

/* --additional-gids "N" or "N,M,...": appended to o->gids. */
static int
parse_gids (const char *s, struct exec_opts *o)
{
        const char *p = s;
        for (;;) {
                char *end;
                unsigned long long v;
                if (*p < '0' || *p > '9')
                        return -1;
                errno = 0;
                v = strtoull (p, &end, 10);
                if (errno || v > UINT32_MAX || (*end && *end != ','))
                        return -1;
                o->gids = xrealloc (o->gids, (o->n_gids + 1) * sizeof *o->gids);
                o->gids[o->n_gids++] = v;
                if (*end == '\0')
                        return 0;
                p = end + 1;
        }
}

/* "user": the container's, with --user's uid (and gid) and the
 * --additional-gids appended to its additionalGids, as runc does. */
static void
gen_user (yajl_gen g, yajl_val base, const struct exec_opts *o, long uid, long gid)
{
        static const char *const up[] = {"user", NULL};
        yajl_val bu = base ? oci_tree_get (base, (const char *const *)up) : NULL;
        yajl_val bgids = NULL;
        bool have_uid = false, have_gid = false;

        moat_gen_str (g, "user");
        yajl_gen_map_open (g);
        for (size_t i = 0; bu && YAJL_IS_OBJECT (bu) && i < YAJL_GET_OBJECT (bu)->len; i++) {
                const char *k = YAJL_GET_OBJECT (bu)->keys[i];
                if (strcmp (k, "additionalGids") == 0) {
                        bgids = YAJL_GET_OBJECT (bu)->values[i];
                        continue;
                }
                if ((strcmp (k, "uid") == 0 && uid >= 0) || (strcmp (k, "gid") == 0 && gid >= 0))
                        continue;
                have_uid |= strcmp (k, "uid") == 0;
                have_gid |= strcmp (k, "gid") == 0;
                moat_gen_str (g, k);
                moat_gen_value (g, YAJL_GET_OBJECT (bu)->values[i]);
        }
        if (uid >= 0 || !have_uid) {
                moat_gen_str (g, "uid");
                yajl_gen_integer (g, uid >= 0 ? uid : 0);
        }
        if (gid >= 0 || !have_gid) {
                moat_gen_str (g, "gid");
                yajl_gen_integer (g, gid >= 0 ? gid : 0);
        }
        if ((bgids && YAJL_IS_ARRAY (bgids)) || o->n_gids) {
                moat_gen_str (g, "additionalGids");
                yajl_gen_array_open (g);
                for (size_t i = 0; bgids && YAJL_IS_ARRAY (bgids) && i < YAJL_GET_ARRAY (bgids)->len; i++)
                        moat_gen_value (g, YAJL_GET_ARRAY (bgids)->values[i]);
                for (size_t i = 0; i < o->n_gids; i++)
                        yajl_gen_integer (g, o->gids[i]);
                yajl_gen_array_close (g);
        }
        yajl_gen_map_close (g);
}

/* The process JSON for the agent: the container's process with the
 * command line and options applied. */
static int
build_process (const char *root, const struct exec_opts *o, char **out, bool *terminal, moat_error_t *err)
{
        cleanup_free char *dir = moat_state_dir (root, o->id);
        cleanup_oci_config struct oci_config *cfg = NULL;
        static const char *const proc_path[] = {"process", NULL};
        static const char *const cap_sets[] = {"bounding", "effective", "permitted", "ambient"};
        yajl_val base;
        yajl_gen g;
        const unsigned char *buf;
        size_t len;
        long uid = -1, gid = -1;

        if (o->user && parse_user (o->user, &uid, &gid, err) < 0)
                return -1;
        if (oci_config_load (dir, &cfg, err) < 0)
                return moat_error_wrap (err, "the container's config");
        base = oci_tree_get (cfg->tree, (const char *const *)proc_path);
        g = yajl_gen_alloc (NULL);
        yajl_gen_map_open (g);
        for (size_t i = 0; base && YAJL_IS_OBJECT (base) && i < YAJL_GET_OBJECT (base)->len; i++) {
                const char *k = YAJL_GET_OBJECT (base)->keys[i];
                yajl_val v = YAJL_GET_OBJECT (base)->values[i];
                if (strcmp (k, "args") == 0 || strcmp (k, "terminal") == 0 || strcmp (k, "consoleSize") == 0 ||
                    strcmp (k, "env") == 0 || strcmp (k, "capabilities") == 0 || (strcmp (k, "cwd") == 0 && o->cwd) ||
                    (strcmp (k, "user") == 0 && (o->user || o->n_gids)) ||
                    (strcmp (k, "noNewPrivileges") == 0 && o->no_new_privs))
                        continue;
                moat_gen_str (g, k);
                moat_gen_value (g, v);
        }
        moat_gen_str (g, "args");
        gen_strv (g, NULL, o->args, strv_len (o->args));
        moat_gen_str (g, "terminal");
        yajl_gen_bool (g, o->tty);
        moat_gen_str (g, "env");
        {
                static const char *const p[] = {"env", NULL};
                gen_strv (g, base ? oci_tree_get (base, (const char *const *)p) : NULL, o->env, o->n_env);
        }
        {
                static const char *const p[] = {"capabilities", NULL};
                yajl_val caps = base ? oci_tree_get (base, (const char *const *)p) : NULL;
                if (caps || o->n_caps) {
                        moat_gen_str (g, "capabilities");
                        yajl_gen_map_open (g);
                        for (size_t i = 0; caps && YAJL_IS_OBJECT (caps) && i < YAJL_GET_OBJECT (caps)->len; i++) {
                                const char *k = YAJL_GET_OBJECT (caps)->keys[i];
                                bool extended = false;
                                for (size_t j = 0; j < ARRAY_SIZE (cap_sets); j++)
                                        extended |= strcmp (k, cap_sets[j]) == 0;
                                moat_gen_str (g, k);
                                if (extended)
                                        gen_strv (g, YAJL_GET_OBJECT (caps)->values[i], o->caps, o->n_caps);
                                else
                                        moat_gen_value (g, YAJL_GET_OBJECT (caps)->values[i]);
                        }
                        for (size_t j = 0; j < ARRAY_SIZE (cap_sets) && o->n_caps; j++) {
                                const char *const p2[] = {cap_sets[j], NULL};
                                if (caps && oci_tree_get (caps, p2))
                                        continue;
                                moat_gen_str (g, cap_sets[j]);
                                gen_strv (g, NULL, o->caps, o->n_caps);
                        }
                        yajl_gen_map_close (g);
                }
        }
        if (o->cwd) {
                moat_gen_str (g, "cwd");
                moat_gen_str (g, o->cwd);
        }
        if (o->user || o->n_gids)
                gen_user (g, base, o, uid, gid);
        if (o->no_new_privs) {
                moat_gen_str (g, "noNewPrivileges");
                yajl_gen_bool (g, 1);
        }
        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        *out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        *terminal = o->tty;
        return 0;
}

static char *
new_exec_id (void)
{
        unsigned char r[8];
        char hex[17];
        if (getrandom (r, sizeof r, 0) != sizeof r) {
                int64_t t = now_ms () ^ getpid ();
                memcpy (r, &t, sizeof r);
        }
        for (int i = 0; i < 8; i++)
                snprintf (hex + 2 * i, 3, "%02x", r[i]);
        return xasprintf_r ("exec-%s", hex);
}

static int
open_streams (const char *sock, const char *id, const char *eid, bool terminal, int fds[3], moat_error_t *err)
{
        static const char *const names[] = {"stdin", "stdout", "stderr"};
        if (terminal) {
                fds[0] = moat_agent_open_stream (sock, id, eid, "tty", STREAM_TIMEOUT_MS, err);
                return fds[0] < 0 ? -1 : 0;
        }
        for (int i = 0; i < 3; i++) {
                fds[i] = moat_agent_open_stream (sock, id, eid, names[i], STREAM_TIMEOUT_MS, err);
                if (fds[i] < 0)
                        return -1;
        }
        return 0;
}

/* Records the stand-in for `moat ps --format json`; a failure (the
 * container deleted meanwhile) only costs ps that pid. */
static void
record_standin (const struct moat_state *st, const char *eid, pid_t pid)
{
        cleanup_error moat_error_t e = NULL;
        if (moat_execrec_add (st->dir, eid, pid, &e) < 0)
                moat_debug ("exec %s in %s: record the stand-in: %s", eid, st->id, e->msg);
}

static int
do_exec (struct moat_global *g, struct exec_opts *o, int *exit_code, moat_error_t *err)
{
        struct moat_state *st = NULL;
        struct moat_agent *a = NULL;
        cleanup_free char *process_json = NULL;
        cleanup_free char *eid = new_exec_id ();
        struct moat_stdio_spec stdio = {0};
        struct moat_standin s = {0};
        struct moat_exit ex = {0};
        int fds[3] = {-1, -1, -1};
        int master = -1, slave = -1, rc = -1, r;
        sigset_t old_mask;
        bool terminal = false, own_tty;
        const char *status;
        pid_t child;
        cleanup_free struct moat_preserved_fd *extra = NULL;
        size_t n_extra = o->preserve_fds;

        if (moat_preserved_fds_check (o->preserve_fds, &extra, err) < 0)
                return -1;
        if (moat_state_load (g->root, o->id, &st, err) < 0)
                return -1;
        status = moat_state_live_status (st);
        if (strcmp (status, "running") != 0 && strcmp (status, "created") != 0) {
                moat_make_error (err, 0, "cannot exec in a %s container", status);
                goto out;
        }
        if (o->process_file) {
                size_t len;
                struct oci_process *p = NULL;
                if (read_file (o->process_file, &process_json, &len, err) < 0)
                        goto out;
                if (oci_process_parse (process_json, o->process_file, &p, err) < 0)
                        goto out;
                terminal = p->terminal;
                oci_process_free (p);
        } else if (build_process (g->root, o, &process_json, &terminal, err) < 0)
                goto out;
        own_tty = terminal && o->console_socket == NULL;
        if (own_tty && o->detach) {
                moat_make_error (err, 0, "a terminal with --detach needs --console-socket");
                goto out;
        }
        if (!terminal && o->console_socket) {
                moat_make_error (err, 0, "--console-socket given but the process has no terminal (use -t)");
                goto out;
        }
        if (moat_agent_open (st->vsock_socket, 5000, &a, err) < 0) {
                moat_error_wrap (err, "connect to the agent");
                goto out;
        }
        stdio.terminal = terminal;
        stdio.in = stdio.out = stdio.err = !terminal;
        stdio.rows = 24;
        stdio.cols = 80;
        if (terminal && !own_tty) {
                if (moat_open_pty (&master, &slave, 24, 80, err) < 0)
                        goto out;
                if (moat_send_console (o->console_socket, master, "/dev/ptmx", err) < 0)
                        goto out;
                close (master);
                master = -1;
        }
        if (terminal) {
                struct winsize ws;
                int fd = own_tty ? STDIN_FILENO : slave;
                if (ioctl (fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
                        stdio.rows = ws.ws_row;
                        stdio.cols = ws.ws_col;
                }
        }
        if (open_streams (st->vsock_socket, o->id, eid, terminal, fds, err) < 0)
                goto out;
        if (moat_preserved_fds_open (st->vsock_socket, o->id, eid, extra, n_extra, STREAM_TIMEOUT_MS, err) < 0)
                goto out;
        stdio.extra_fds = n_extra;
        /* from the moment the process exists, the stand-in forwards every
         * signal (the detached one inherits the mask; we restore ours) */
        sigprocmask (SIG_SETMASK, NULL, &old_mask);
        moat_standin_block_signals ();
        if (moat_agent_exec_process (a, o->id, eid, process_json, &stdio, NULL, err) < 0)
                goto out;
        moat_agent_free (a);
        a = NULL;

        s = (struct moat_standin){
                .vsock_socket = st->vsock_socket,
                .id = o->id,
                .exec_id = eid,
                .terminal = terminal,
                .streams = {fds[0], fds[1], fds[2]},
                .in_fd = slave >= 0 ? slave : STDIN_FILENO,
                .out_fd = slave >= 0 ? slave : STDOUT_FILENO,
                .err_fd = terminal ? -1 : STDERR_FILENO,
                .winsize_fd = slave >= 0 ? slave : (own_tty && isatty (STDIN_FILENO) ? STDIN_FILENO : -1),
                .raw_in = own_tty,
                .go_fd = -1,
                .vmm_pid = st->vmm_pid,
                .vmm_start = st->vmm_start,
                .extra = extra,
                .n_extra = n_extra,
        };
        if (!o->detach) {
                /* we are the stand-in */
                if (o->pid_file && moat_write_pid_file (o->pid_file, getpid (), err) < 0)
                        goto out;
                record_standin (st, eid, getpid ());
                fds[0] = fds[1] = fds[2] = -1; /* moat_standin_run closes them */
                r = moat_standin_run (&s, &ex, err);
                moat_execrec_remove (st->dir, eid);
                if (r < 0)
                        goto out;
                *exit_code = ex.status;
                rc = 0;
                goto out;
        }
        child = fork ();
        if (child < 0) {
                moat_make_error (err, errno, "fork the stand-in");
                goto out;
        }
        if (child == 0) {
                cleanup_error moat_error_t e = NULL;
                char ns[64];
                int nfd;
                setsid ();
                if (slave >= 0)
                        ioctl (slave, TIOCSCTTY, 0);
                /* the host-side network namespace of the container */
                snprintf (ns, sizeof ns, "/proc/%d/ns/net", (int)st->pid);
                nfd = open (ns, O_RDONLY | O_CLOEXEC);
                if (nfd >= 0 && moat_pid_alive (st->pid, st->pid_start)) {
                        if (setns (nfd, CLONE_NEWNET) < 0)
                                moat_debug ("exec stand-in: join %s: %s", ns, strerror (errno));
                }
                if (nfd >= 0)
                        close (nfd);
                r = moat_standin_run (&s, &ex, &e);
                moat_execrec_remove (st->dir, eid);
                if (r < 0) {
                        moat_error_wrap (&e, "stand-in of exec %s in %s", eid, o->id);
                        moat_log (MOAT_LOG_ERROR, "%s", e->msg);
                        _exit (255);
                }
                moat_standin_exit (&ex);
        }
        sigprocmask (SIG_SETMASK, &old_mask, NULL);
        if (st->cgroup) {
                cleanup_error moat_error_t e = NULL;
                if (moat_hostcg_add (st->cgroup, child, &e) < 0)
                        moat_debug ("%s", e->msg);
        }
        /* before we return: a `ps` right after `exec -d` lists it (a
         * stand-in done before this is dropped by ps as dead) */
        record_standin (st, eid, child);
        if (o->pid_file && moat_write_pid_file (o->pid_file, child, err) < 0) {
                kill (child, SIGKILL);
                goto out;
        }
        *exit_code = 0;
        rc = 0;
out:
        for (int i = 0; i < 3; i++)
                if (fds[i] >= 0)
                        close (fds[i]);
        moat_preserved_fds_close_streams (extra, n_extra);
        if (master >= 0)
                close (master);
        if (slave >= 0)
                close (slave);
        moat_agent_free (a);
        moat_state_free (st);
        return rc;
}

int
moat_cmd_exec (struct moat_global *g, int argc, char **argv)
{
        static const struct option opts[] = {
                {"process", required_argument, NULL, 'p'},
                {"tty", no_argument, NULL, 't'},
                {"console-socket", required_argument, NULL, 'C'},
                {"cwd", required_argument, NULL, 'w'},
                {"env", required_argument, NULL, 'e'},
                {"user", required_argument, NULL, 'u'},
                {"cap", required_argument, NULL, 'c'},
                {"no-new-privs", no_argument, NULL, 'N'},
                {"detach", no_argument, NULL, 'd'},
                {"pid-file", required_argument, NULL, 'P'},
                {"preserve-fds", required_argument, NULL, 'F'},
                {"additional-gids", required_argument, NULL, 'g'},
                {"apparmor", required_argument, NULL, 'A'},
                {"process-label", required_argument, NULL, 'L'},
                {"ignore-paused", no_argument, NULL, 'I'},
                {"cgroup", required_argument, NULL, 'G'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct exec_opts o = {0};
        cleanup_error moat_error_t err = NULL;
        cleanup_free uint32_t *gids = NULL;
        cleanup_free char **env = xzalloc (argc * sizeof (char *));
        cleanup_free char **caps = xzalloc (argc * sizeof (char *));
        int c, code = 0;

        o.env = env;
        o.caps = caps;
        optind = 1;
        opterr = 0;
        while ((c = getopt_long (argc, argv, "+p:te:u:c:dg:h", opts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        o.process_file = optarg;
                        break;
                case 't':
                        o.tty = true;
                        break;
                case 'C':
                        o.console_socket = optarg;
                        break;
                case 'w':
                        o.cwd = optarg;
                        break;
                case 'e':
                        if (strchr (optarg, '=') == NULL) {
                                fprintf (stderr, "moat: exec: --env \"%s\": expected NAME=VALUE\n", optarg);
                                return 1;
                        }
                        o.env[o.n_env++] = optarg;
                        break;
                case 'u':
                        o.user = optarg;
                        break;
                case 'c':
                        o.caps[o.n_caps++] = optarg;
                        break;
                case 'N':
                        o.no_new_privs = true;
                        break;
                case 'd':
                        o.detach = true;
                        break;
                case 'P':
                        o.pid_file = optarg;
                        break;
                case 'F': {
                        char *end;
                        long v = strtol (optarg, &end, 10);
                        if (*end || end == optarg || v < 0 || v > 65536) {
                                fprintf (stderr, "moat: exec: --preserve-fds: expected a number, got \"%s\"\n", optarg);
                                return 1;
                        }
                        o.preserve_fds = v;
                        break;
                }
                case 'g':
                        if (parse_gids (optarg, &o) < 0) {
                                moat_cli_error ("exec: --additional-gids \"%s\": expected a group id 0..4294967295 "
                                                "(or a comma-separated list)",
                                                optarg);
                                return 1;
                        }
                        break;
                case 'A':
                case 'L':
                case 'I':
                case 'G':
                        break;
                case 'h':
                        usage (stdout);
                        return 0;
                default:
                        fprintf (stderr, "moat: exec: unknown option or missing value: %s\n", argv[optind - 1]);
                        return 1;
                }
        }
        if (optind >= argc) {
                fprintf (stderr, "moat: exec: expected a container ID (see moat exec --help)\n");
                return 1;
        }
        gids = o.gids;
        o.id = argv[optind++];
        o.args = argv + optind;
        if (o.process_file == NULL && optind >= argc) {
                fprintf (stderr, "moat: exec %s: expected a command (or --process FILE)\n", o.id);
                return 1;
        }
        if (do_exec (g, &o, &code, &err) < 0) {
                moat_error_wrap (&err, "exec %s", o.id);
                moat_error_print (&err, "moat");
                return 255;
        }
        return code;
}

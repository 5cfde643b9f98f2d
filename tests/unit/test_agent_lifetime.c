/* SPDX-License-Identifier: Apache-2.0 */
/* moat-agent's container and process lifetimes under concurrent requests,
 * without a VM: build/moat-agent serves Unix sockets (MOAT_AGENT_UNIX_DIR)
 * and several ttrpc connections drive it at once, the way a host with
 * several CLI calls in flight does. A remove during a create, a wait on an
 * exec whose setup fails, two execs with one id, signals to exited
 * processes, a duplicate create, fd leaks. Needs root and a static busybox;
 * skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_harness.h"

#include "agent.pb-c.h"
#include "moat/ttrpc.h"
#include "moat/util.h"

static char dir[] = "/tmp/moat-agent-life.XXXXXX";
static char cgroot[256];  /* the host's cgroup2 mount, "" without one */
static char cgparent[64]; /* our containers' cgroups are cgroot/cgparent/<id> */
static pid_t agent_pid;
static struct ttrpc_client *cl;

static struct ttrpc_client *
new_client (void)
{
        int fd = agent_unix_connect (dir, "agent.sock");
        assert_true (fd >= 0);
        return ttrpc_client_new (fd);
}

static char *
config (const char *id, const char *args_json, const char *extra)
{
        return xasprintf_r (
                "{\"ociVersion\":\"1.0.2\",\"process\":{\"user\":{\"uid\":0,\"gid\":0},\"args\":%s,"
                "\"env\":[\"PATH=/bin\"],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"},\"hostname\":\"life\","
                "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
                "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}],"
                "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"},{\"type\":\"uts\"},{\"type\":"
                "\"ipc\"}],\"cgroupsPath\":\"/%s/%s\"}%s}",
                args_json, cgparent, id, extra ? extra : "");
}

static void
stage (const char *id)
{
        cleanup_free char *cmd =
                xasprintf_r ("mkdir -p %s/share/%s && cp -a %s/rootfs %s/share/%s/", dir, id, dir, dir, id);
        assert_int_equal (system (cmd), 0);
}

static int
create_on (struct ttrpc_client *c, const char *id, const char *args_json, const char *extra, char **errmsg)
{
        Moat__Agent__V1__CreateContainerRequest q = MOAT__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
        cleanup_free char *cfg = config (id, args_json, extra);
        q.container_id = (char *)id;
        q.config_json = cfg;
        return agent_call (c, "CreateContainer", &q.base, &moat__agent__v1__create_container_response__descriptor, NULL,
                           errmsg);
}

static void
start (const char *id)
{
        Moat__Agent__V1__StartContainerRequest q = MOAT__AGENT__V1__START_CONTAINER_REQUEST__INIT;
        q.container_id = (char *)id;
        assert_int_equal (agent_call (cl, "StartContainer", &q.base, NULL, NULL, NULL), 0);
}

static int
exec_on (struct ttrpc_client *c, const char *id, const char *eid, const char *args_json, char **errmsg)
{
        Moat__Agent__V1__ExecProcessRequest q = MOAT__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
        cleanup_free char *pj = xasprintf_r (
                "{\"args\":%s,\"cwd\":\"/\",\"env\":[\"PATH=/bin\"],\"user\":{\"uid\":0,\"gid\":0}}", args_json);
        q.container_id = (char *)id;
        q.exec_id = (char *)eid;
        q.process_json = pj;
        return agent_call (c, "ExecProcess", &q.base, &moat__agent__v1__exec_process_response__descriptor, NULL,
                           errmsg);
}

/* WaitProcess: the status, or -1 with *errmsg */
static int
wait_on (struct ttrpc_client *c, const char *id, const char *eid, bool *signaled, char **errmsg)
{
        Moat__Agent__V1__WaitProcessRequest q = MOAT__AGENT__V1__WAIT_PROCESS_REQUEST__INIT;
        Moat__Agent__V1__WaitProcessResponse *r = NULL;
        int st;
        q.container_id = (char *)id;
        q.exec_id = (char *)eid;
        if (agent_call (c, "WaitProcess", &q.base, &moat__agent__v1__wait_process_response__descriptor,
                        (ProtobufCMessage **)&r, errmsg) < 0)
                return -1;
        st = r->status;
        if (signaled)
                *signaled = r->signaled;
        protobuf_c_message_free_unpacked (&r->base, NULL);
        return st;
}

static int
signal_on (const char *id, const char *eid, int sig, char **errmsg)
{
        Moat__Agent__V1__SignalProcessRequest q = MOAT__AGENT__V1__SIGNAL_PROCESS_REQUEST__INIT;
        q.container_id = (char *)id;
        q.exec_id = (char *)eid;
        q.signal = sig;
        return agent_call (cl, "SignalProcess", &q.base, NULL, NULL, errmsg);
}

static int
remove_on (struct ttrpc_client *c, const char *id, bool force, char **errmsg)
{
        Moat__Agent__V1__RemoveContainerRequest q = MOAT__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
        q.container_id = (char *)id;
        q.force = force;
        return agent_call (c, "RemoveContainer", &q.base, NULL, NULL, errmsg);
}

static void
check_alive (void)
{
        Moat__Agent__V1__CheckRequest q = MOAT__AGENT__V1__CHECK_REQUEST__INIT;
        assert_int_equal (agent_call (cl, "Check", &q.base, &moat__agent__v1__check_response__descriptor, NULL, NULL),
                          0);
        assert_int_equal (waitpid (agent_pid, NULL, WNOHANG), 0);
}

/* fds the agent holds, and how many of them are pidfds */
static int
agent_fds (int *pidfds)
{
        char path[64], target[256];
        struct dirent *de;
        DIR *d;
        int n = 0;

        snprintf (path, sizeof path, "/proc/%d/fd", (int)agent_pid);
        d = opendir (path);
        assert_non_null (d);
        if (pidfds)
                *pidfds = 0;
        while ((de = readdir (d))) {
                char link[512];
                ssize_t l;
                if (de->d_name[0] == '.')
                        continue;
                n++;
                snprintf (link, sizeof link, "%s/%s", path, de->d_name);
                l = readlink (link, target, sizeof target - 1);
                if (l > 0 && pidfds) {
                        target[l] = '\0';
                        if (strstr (target, "pidfd"))
                                (*pidfds)++;
                }
        }
        closedir (d);
        return n;
}

struct bg {
        pthread_t t;
        const char *id, *eid, *args, *extra;
        int ret;
        char *msg;
        volatile bool done;
};

static void *
bg_create (void *arg)
{
        struct bg *b = arg;
        struct ttrpc_client *c = new_client ();
        b->ret = create_on (c, b->id, b->args, b->extra, &b->msg);
        ttrpc_client_free (c);
        b->done = true;
        return NULL;
}

static void *
bg_exec (void *arg)
{
        struct bg *b = arg;
        struct ttrpc_client *c = new_client ();
        b->ret = exec_on (c, b->id, b->eid, b->args, &b->msg);
        ttrpc_client_free (c);
        b->done = true;
        return NULL;
}

/* RemoveContainer (and WaitProcess) while a CreateContainer is still busy
 * (its createContainer hook sleeps): a clear error, the create completes,
 * the agent lives, and then the remove works. */
static void
test_remove_during_create (void **state)
{
        struct bg b = {
                .id = "r1",
                .args = "[\"sleep\",\"1000\"]",
                .extra = ",\"hooks\":{\"createContainer\":[{\"path\":\"/bin/sleep\",\"args\":[\"sleep\",\"2\"]}]}"};
        cleanup_free char *msg = NULL;
        cleanup_free char *wmsg = NULL;

        stage ("r1");
        assert_int_equal (pthread_create (&b.t, NULL, bg_create, &b), 0);
        usleep (700000);
        assert_false (b.done);
        assert_int_equal (remove_on (cl, "r1", true, &msg), -1);
        assert_non_null (strstr (msg, "r1 is still being created"));
        assert_int_equal (wait_on (cl, "r1", "", NULL, &wmsg), -1);
        assert_non_null (strstr (wmsg, "being created"));
        pthread_join (b.t, NULL);
        if (b.ret < 0)
                fprintf (stderr, "# create: %s\n", b.msg);
        assert_int_equal (b.ret, 0);
        free (b.msg);
        check_alive ();
        assert_int_equal (remove_on (cl, "r1", true, NULL), 0);
        check_alive ();
}

/* WaitProcess racing an ExecProcess whose setup fails (missing binary): the
 * waiter never gets hold of the entry freed by the failed setup; every
 * wait answers "not found" at once. */
static void
test_wait_on_failed_exec (void **state)
{
        stage ("w1");
        assert_int_equal (create_on (cl, "w1", "[\"sleep\",\"1000\"]", NULL, NULL), 0);
        start ("w1");
        for (int i = 0; i < 8; i++) {
                char eid[16];
                struct bg b = {.id = "w1", .eid = eid, .args = "[\"no-such-binary\"]"};
                struct ttrpc_client *c2 = new_client ();
                int waits = 0;
                snprintf (eid, sizeof eid, "bad%d", i);
                assert_int_equal (pthread_create (&b.t, NULL, bg_exec, &b), 0);
                while (!b.done) {
                        cleanup_free char *wmsg = NULL;
                        assert_int_equal (wait_on (c2, "w1", eid, NULL, &wmsg), -1);
                        if (strstr (wmsg, "not found") == NULL)
                                fprintf (stderr, "# wait: %s\n", wmsg);
                        assert_non_null (strstr (wmsg, "not found"));
                        waits++;
                }
                pthread_join (b.t, NULL);
                assert_int_equal (b.ret, -1);
                assert_non_null (strstr (b.msg, "executable file not found"));
                free (b.msg);
                ttrpc_client_free (c2);
                assert_true (waits > 0);
        }
        check_alive ();
        assert_int_equal (remove_on (cl, "w1", true, NULL), 0);
}

/* Two ExecProcess calls with the same exec id at once: one runs, the other
 * is refused. */
struct exec_pair {
        struct ttrpc_client *c;
        pthread_barrier_t *go;
        const char *eid;
        int ret;
        char *msg;
};

static void *
exec_at_once (void *arg)
{
        struct exec_pair *e = arg;
        pthread_barrier_wait (e->go);
        e->ret = exec_on (e->c, "x1", e->eid, "[\"sleep\",\"1\"]", &e->msg);
        return NULL;
}

static void
test_exec_same_id (void **state)
{
        stage ("x1");
        assert_int_equal (create_on (cl, "x1", "[\"sleep\",\"1000\"]", NULL, NULL), 0);
        start ("x1");
        for (int i = 0; i < 5; i++) {
                char eid[16];
                pthread_barrier_t go;
                struct exec_pair e[2] = {{.eid = eid, .go = &go}, {.eid = eid, .go = &go}};
                pthread_t t[2];
                bool one_ok;

                snprintf (eid, sizeof eid, "dup%d", i);
                pthread_barrier_init (&go, NULL, 2);
                for (int k = 0; k < 2; k++) {
                        e[k].c = new_client ();
                        assert_int_equal (pthread_create (&t[k], NULL, exec_at_once, &e[k]), 0);
                }
                for (int k = 0; k < 2; k++)
                        pthread_join (t[k], NULL);
                pthread_barrier_destroy (&go);
                one_ok = (e[0].ret == 0) != (e[1].ret == 0);
                if (!one_ok)
                        fprintf (stderr, "# exec %s: %d (%s) and %d (%s)\n", eid, e[0].ret, e[0].msg ? e[0].msg : "",
                                 e[1].ret, e[1].msg ? e[1].msg : "");
                assert_true (one_ok);
                assert_non_null (strstr (e[0].ret ? e[0].msg : e[1].msg, "already exists"));
                for (int k = 0; k < 2; k++) {
                        free (e[k].msg);
                        ttrpc_client_free (e[k].c);
                }
                assert_int_equal (wait_on (cl, "x1", eid, NULL, NULL), 0);
        }
        assert_int_equal (remove_on (cl, "x1", true, NULL), 0);
}

/* SignalProcess goes through a pidfd: a running exec gets the signal, an
 * exited one is "not running" (never whoever has its pid now); the agent
 * holds one pidfd per live entry and closes them with the container. */
static void
test_signal_and_fds (void **state)
{
        cleanup_free char *msg = NULL;
        cleanup_free char *msg2 = NULL;
        int before, after, pidfds;
        bool sig = false;

        check_alive (); /* our connection is accepted */
        before = agent_fds (NULL);
        stage ("s1");
        assert_int_equal (create_on (cl, "s1", "[\"sleep\",\"1000\"]", NULL, NULL), 0);
        start ("s1");
        assert_int_equal (exec_on (cl, "s1", "quick", "[\"true\"]", NULL), 0);
        assert_int_equal (wait_on (cl, "s1", "quick", NULL, NULL), 0);
        assert_int_equal (signal_on ("s1", "quick", SIGKILL, &msg), -1);
        assert_non_null (strstr (msg, "not running"));
        assert_int_equal (signal_on ("s1", "nope", SIGKILL, &msg2), -1);
        assert_non_null (strstr (msg2, "not found"));

        for (int i = 0; i < 5; i++) {
                char eid[16];
                snprintf (eid, sizeof eid, "more%d", i);
                assert_int_equal (exec_on (cl, "s1", eid, "[\"true\"]", NULL), 0);
                assert_int_equal (wait_on (cl, "s1", eid, NULL, NULL), 0);
        }
        assert_int_equal (exec_on (cl, "s1", "long", "[\"sleep\",\"100\"]", NULL), 0);
        agent_fds (&pidfds);
        assert_int_equal (pidfds, 2); /* the init and "long": finished execs hold none */
        assert_int_equal (signal_on ("s1", "long", SIGTERM, NULL), 0);
        assert_int_equal (wait_on (cl, "s1", "long", &sig, NULL), 143);
        assert_true (sig);

        assert_int_equal (remove_on (cl, "s1", true, NULL), 0);
        usleep (200000);
        after = agent_fds (&pidfds);
        if (after != before) {
                cleanup_free char *ls = xasprintf_r ("ls -l /proc/%d/fd >&2", (int)agent_pid);
                (void)!system (ls);
        }
        assert_int_equal (pidfds, 0);
        assert_int_equal (after, before);
}

/* ExecProcess racing RemoveContainer: no crash, and afterwards the
 * container is either gone or still fully usable. */
static void
test_remove_during_exec (void **state)
{
        for (int i = 0; i < 4; i++) {
                char id[16];
                struct bg b = {.id = id, .eid = "e", .args = "[\"sleep\",\"100\"]"};
                cleanup_free char *msg = NULL;
                snprintf (id, sizeof id, "re%d", i);
                stage (id);
                assert_int_equal (create_on (cl, id, "[\"sleep\",\"1000\"]", NULL, NULL), 0);
                start (id);
                assert_int_equal (pthread_create (&b.t, NULL, bg_exec, &b), 0);
                usleep (i * 3000);
                assert_int_equal (remove_on (cl, id, true, NULL), 0);
                pthread_join (b.t, NULL);
                free (b.msg);
                check_alive ();
                assert_int_equal (wait_on (cl, id, "e", NULL, &msg), -1);
                assert_non_null (strstr (msg, "not found"));
        }
}

static int
pause_on (const char *method, const char *id, char **errmsg)
{
        Moat__Agent__V1__PauseContainerRequest q = MOAT__AGENT__V1__PAUSE_CONTAINER_REQUEST__INIT;
        q.container_id = (char *)id;
        if (strcmp (method, "ResumeContainer") == 0)
                q.base.descriptor = &moat__agent__v1__resume_container_request__descriptor;
        return agent_call (cl, method, &q.base, NULL, NULL, errmsg);
}

/* PauseContainer racing ExecProcess: the exec is never frozen half set up
 * (which would hang it, and the agent's reaper, for the 120 s setup
 * timeout): either the pause waits its turn ("try again") or the exec is
 * refused ("paused") or both complete. */
static void
test_pause_during_exec (void **state)
{
        if (cgroot[0] == '\0') {
                skip ();
                return;
        }
        stage ("p1");
        assert_int_equal (create_on (cl, "p1", "[\"sleep\",\"1000\"]", NULL, NULL), 0);
        start ("p1");
        for (int i = 0; i < 6; i++) {
                char eid[16];
                struct bg b = {.id = "p1", .eid = eid, .args = "[\"true\"]"};
                cleanup_free char *msg = NULL;
                int64_t t0 = now_ms ();
                bool paused;

                snprintf (eid, sizeof eid, "pe%d", i);
                assert_int_equal (pthread_create (&b.t, NULL, bg_exec, &b), 0);
                usleep (i * 4000);
                paused = pause_on ("PauseContainer", "p1", &msg) == 0;
                if (!paused)
                        assert_non_null (strstr (msg, "try again"));
                while (!b.done && now_ms () - t0 < 20000)
                        usleep (10000);
                assert_true (b.done); /* not stuck in a frozen cgroup */
                if (paused)
                        assert_int_equal (pause_on ("ResumeContainer", "p1", NULL), 0);
                pthread_join (b.t, NULL);
                if (b.ret == 0)
                        assert_int_equal (wait_on (cl, "p1", eid, NULL, NULL), 0);
                else
                        assert_non_null (strstr (b.msg, "paused"));
                free (b.msg);
        }
        check_alive ();
        assert_int_equal (remove_on (cl, "p1", true, NULL), 0);
}

/* A second create of an existing (stopped) id fails and leaves the first
 * container's cgroup alone. */
static void
test_duplicate_create (void **state)
{
        cleanup_free char *msg = NULL;
        cleanup_free char *cg = NULL;
        struct stat st;

        if (cgroot[0] == '\0') {
                skip ();
                return;
        }
        cg = xasprintf_r ("%s/%s/d1", cgroot, cgparent);
        stage ("d1");
        assert_int_equal (create_on (cl, "d1", "[\"true\"]", NULL, NULL), 0);
        start ("d1");
        assert_int_equal (wait_on (cl, "d1", "", NULL, NULL), 0);
        assert_int_equal (stat (cg, &st), 0);
        assert_int_equal (create_on (cl, "d1", "[\"true\"]", NULL, &msg), -1);
        assert_non_null (strstr (msg, "container d1 already exists"));
        assert_int_equal (stat (cg, &st), 0);
        assert_int_equal (remove_on (cl, "d1", false, NULL), 0);
        assert_int_equal (stat (cg, &st), -1);
}

static int
setup (void **state)
{
        const char *agent = getenv ("MOAT_AGENT") ? getenv ("MOAT_AGENT") : "build/moat-agent";
        cleanup_free char *cmd = NULL;
        FILE *m;
        char line[1024];
        int fd;

        if (getuid () != 0 || access ("/bin/busybox", X_OK) != 0 || access (agent, X_OK) != 0) {
                fprintf (stderr, "# needs root, /bin/busybox and %s\n", agent);
                return -1;
        }
        m = fopen ("/proc/mounts", "re");
        while (m && fgets (line, sizeof line, m)) {
                char src[256], mnt[256], type[64];
                if (sscanf (line, "%255s %255s %63s", src, mnt, type) == 3 && strcmp (type, "cgroup2") == 0) {
                        snprintf (cgroot, sizeof cgroot, "%s", mnt);
                        break;
                }
        }
        if (m)
                fclose (m);
        snprintf (cgparent, sizeof cgparent, "moat-lifetime-test-%d", (int)getpid ());
        assert_non_null (mkdtemp (dir));
        chmod (dir, 0755);
        cmd = xasprintf_r ("mkdir -p %s/rootfs/bin %s/rootfs/proc %s/rootfs/dev %s/share && cp /bin/busybox "
                           "%s/rootfs/bin/ && chroot %s/rootfs /bin/busybox --install -s /bin",
                           dir, dir, dir, dir, dir, dir);
        if (system (cmd) != 0)
                return -1;
        agent_pid = fork ();
        if (agent_pid == 0) {
                char share[256];
                snprintf (share, sizeof share, "%s/share", dir);
                setenv ("MOAT_AGENT_UNIX_DIR", dir, 1);
                setenv ("MOAT_AGENT_SHARE_DIR", share, 1);
                if (cgroot[0])
                        setenv ("MOAT_AGENT_CGROUP_ROOT", cgroot, 1);
                execl (agent, agent, NULL);
                _exit (127);
        }
        fd = agent_unix_connect (dir, "agent.sock");
        if (fd < 0)
                return -1;
        cl = ttrpc_client_new (fd);
        return 0;
}

static int
teardown (void **state)
{
        Moat__Agent__V1__DestroySandboxRequest q = MOAT__AGENT__V1__DESTROY_SANDBOX_REQUEST__INIT;
        cleanup_free char *cmd = xasprintf_r ("rm -rf %s", dir);
        if (cl) {
                agent_call (cl, "DestroySandbox", &q.base, NULL, NULL, NULL);
                ttrpc_client_free (cl);
        }
        if (agent_pid > 0) {
                int st;
                for (int i = 0; i < 50 && waitpid (agent_pid, &st, WNOHANG) == 0; i++)
                        usleep (100000);
                kill (agent_pid, SIGKILL);
                waitpid (agent_pid, &st, 0);
        }
        if (cgroot[0]) {
                /* whatever a failed test left: thawed, killed, removed */
                cleanup_free char *cg =
                        xasprintf_r ("cd %s/%s 2>/dev/null || exit 0; for d in */; do [ -d \"$d\" ] || continue; "
                                     "echo 0 >\"$d\"cgroup.freeze; echo 1 >\"$d\"cgroup.kill; done; sleep 0.3; "
                                     "rmdir */ 2>/dev/null; cd / && rmdir %s/%s",
                                     cgroot, cgparent, cgroot, cgparent);
                if (system (cg) != 0)
                        fprintf (stderr, "# could not remove %s/%s\n", cgroot, cgparent);
        }
        return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_remove_during_create), cmocka_unit_test (test_wait_on_failed_exec),
                cmocka_unit_test (test_exec_same_id),         cmocka_unit_test (test_signal_and_fds),
                cmocka_unit_test (test_remove_during_exec),   cmocka_unit_test (test_duplicate_create),
                cmocka_unit_test (test_pause_during_exec),
        };
        if (getuid () != 0 || access ("/bin/busybox", X_OK) != 0) {
                printf ("1..0 # SKIP needs root and /bin/busybox\n");
                return 0;
        }
        signal (SIGPIPE, SIG_IGN);
        if (getenv ("TEST_FILTER")) /* e.g. TEST_FILTER=test_exec_same_id */
                cmocka_set_test_filter (getenv ("TEST_FILTER"));
        return cmocka_run_group_tests (tests, setup, teardown);
}

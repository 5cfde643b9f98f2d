/* SPDX-License-Identifier: Apache-2.0 */
/* moat-agent's API without a VM: starts build/moat-agent as a plain process
 * serving Unix sockets (MOAT_AGENT_UNIX_DIR) and drives it with ttrpc the way
 * the host does: stdio streams parked on the stdio socket, then
 * Create/Start/Exec/Wait/Signal/Stats/CloseStdin/Remove. Needs root and a
 * static busybox; skipped otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_harness.h"

#include "agent.pb-c.h"
#include "moat/ttrpc.h"
#include "moat/util.h"

static char dir[] = "/tmp/moat-agent-srv.XXXXXX";
static pid_t agent_pid;
static struct ttrpc_client *cl;

static int
open_stream (const char *cid, const char *eid, const char *stream)
{
        char hdr[256], ok[8] = {0};
        int fd = agent_unix_connect (dir, "stdio.sock");
        assert_true (fd >= 0);
        snprintf (hdr, sizeof hdr, "STDIO %s %s %s\n", cid, eid, stream);
        assert_true (write_all (fd, hdr, strlen (hdr)) > 0);
        assert_int_equal (read_all (fd, ok, 3), 3);
        assert_string_equal (ok, "OK\n");
        return fd;
}

static char *
read_to_eof (int fd)
{
        char *buf = xzalloc (65536);
        read_all (fd, buf, 65535);
        return buf;
}

static int
call (const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp,
      char **errmsg)
{
        return agent_call (cl, method, req, rd, resp, errmsg);
}

static char *
config (const char *args_json)
{
        return xasprintf_r (
                "{\"ociVersion\":\"1.0.2\",\"process\":{\"user\":{\"uid\":0,\"gid\":0},\"args\":%s,"
                "\"env\":[\"PATH=/bin\"],\"cwd\":\"/\"},\"root\":{\"path\":\"rootfs\"},\"hostname\":\"srv\","
                "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
                "{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"},"
                "{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\",\"options\":[\"newinstance\","
                "\"ptmxmode=0666\"]}],"
                "\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"},{\"type\":\"uts\"},{\"type\":"
                "\"ipc\"}]}}",
                args_json);
}

static int
create (const char *id, const char *args_json, bool out, bool in)
{
        Moat__Agent__V1__CreateContainerRequest q = MOAT__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
        Moat__Agent__V1__StdioSpec st = MOAT__AGENT__V1__STDIO_SPEC__INIT;
        cleanup_free char *cfg = config (args_json);
        cleanup_free char *cmd =
                xasprintf_r ("mkdir -p %s/share/%s && cp -a %s/rootfs %s/share/%s/", dir, id, dir, dir, id);
        assert_int_equal (system (cmd), 0);
        q.container_id = (char *)id;
        q.config_json = cfg;
        st.stdout = out;
        st.stdin = in;
        q.stdio = &st;
        return call ("CreateContainer", &q.base, &moat__agent__v1__create_container_response__descriptor, NULL, NULL);
}

static int
wait_status (const char *id, const char *eid, bool *signaled)
{
        Moat__Agent__V1__WaitProcessRequest q = MOAT__AGENT__V1__WAIT_PROCESS_REQUEST__INIT;
        Moat__Agent__V1__WaitProcessResponse *r = NULL;
        int st;
        q.container_id = (char *)id;
        q.exec_id = (char *)eid;
        assert_int_equal (call ("WaitProcess", &q.base, &moat__agent__v1__wait_process_response__descriptor,
                                (ProtobufCMessage **)&r, NULL),
                          0);
        st = r->status;
        if (signaled)
                *signaled = r->signaled;
        protobuf_c_message_free_unpacked (&r->base, NULL);
        return st;
}

static void
simple (const char *method, const char *id)
{
        Moat__Agent__V1__StartContainerRequest q = MOAT__AGENT__V1__START_CONTAINER_REQUEST__INIT;
        q.container_id = (char *)id;
        /* StartContainer, Pause, Resume and Stats requests share the layout */
        const ProtobufCMessageDescriptor *d =
                strcmp (method, "StartContainer") == 0   ? &moat__agent__v1__start_container_request__descriptor
                : strcmp (method, "PauseContainer") == 0 ? &moat__agent__v1__pause_container_request__descriptor
                                                         : &moat__agent__v1__resume_container_request__descriptor;
        q.base.descriptor = d;
        assert_int_equal (call (method, &q.base, NULL, NULL, NULL), 0);
}

static void
test_check (void **state)
{
        Moat__Agent__V1__CheckRequest q = MOAT__AGENT__V1__CHECK_REQUEST__INIT;
        Moat__Agent__V1__CheckResponse *r = NULL;
        assert_int_equal (
                call ("Check", &q.base, &moat__agent__v1__check_response__descriptor, (ProtobufCMessage **)&r, NULL),
                0);
        assert_string_equal (r->version, MOAT_VERSION);
        assert_true (strlen (r->kernel_release) > 0);
        protobuf_c_message_free_unpacked (&r->base, NULL);
}

/* SyncClock outside a VM: the agent (not PID 1) reports the offset it
 * measured and whether it would step, and leaves the host's clock alone */
static int64_t
sync_clock (int64_t delta_ns, bool step, bool *stepped, char **errmsg)
{
        Moat__Agent__V1__SyncClockRequest q = MOAT__AGENT__V1__SYNC_CLOCK_REQUEST__INIT;
        Moat__Agent__V1__SyncClockResponse *r = NULL;
        struct timespec now;
        int64_t t, off;
        clock_gettime (CLOCK_REALTIME, &now);
        t = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + delta_ns;
        q.realtime_sec = t / 1000000000;
        q.realtime_nsec = t % 1000000000;
        q.step = step;
        if (call ("SyncClock", &q.base, &moat__agent__v1__sync_clock_response__descriptor, (ProtobufCMessage **)&r,
                  errmsg) < 0)
                return INT64_MIN;
        off = r->offset_ns;
        *stepped = r->stepped;
        protobuf_c_message_free_unpacked (&r->base, NULL);
        return off;
}

static void
test_sync_clock (void **state)
{
        Moat__Agent__V1__SyncClockRequest q = MOAT__AGENT__V1__SYNC_CLOCK_REQUEST__INIT;
        struct timespec before, after;
        cleanup_free char *msg = NULL;
        bool stepped = false;
        int64_t off;

        clock_gettime (CLOCK_REALTIME, &before);
        /* 5 s ahead: measured as about +5 s, stepped */
        off = sync_clock (5000000000LL, false, &stepped, NULL);
        assert_true (off > 4000000000LL && off <= 5000000000LL);
        assert_true (stepped);
        /* 30 s behind */
        off = sync_clock (-30000000000LL, false, &stepped, NULL);
        assert_true (off < -29000000000LL && off >= -30100000000LL);
        assert_true (stepped);
        /* a few ms: slewed, unless the host asks for a step */
        off = sync_clock (2000000, false, &stepped, NULL);
        assert_true (off > -50000000 && off <= 2000000);
        assert_false (stepped);
        sync_clock (2000000, true, &stepped, NULL);
        assert_true (stepped);
        /* the host's clock was not touched (the agent is not PID 1) */
        clock_gettime (CLOCK_REALTIME, &after);
        assert_true (after.tv_sec - before.tv_sec < 3);
        /* a nanosecond field out of range is refused */
        q.realtime_sec = before.tv_sec;
        q.realtime_nsec = 1000000000;
        assert_int_equal (call ("SyncClock", &q.base, &moat__agent__v1__sync_clock_response__descriptor, NULL, &msg),
                          -1);
        assert_non_null (strstr (msg, "bad host time"));
}

static void
test_run_and_wait (void **state)
{
        int out = open_stream ("c1", "-", "stdout");
        cleanup_free char *text = NULL;
        assert_int_equal (create ("c1", "[\"sh\",\"-c\",\"echo hello $(hostname); exit 5\"]", true, false), 0);
        simple ("StartContainer", "c1");
        text = read_to_eof (out);
        assert_string_equal (text, "hello srv\n");
        assert_int_equal (wait_status ("c1", "", NULL), 5);
        close (out);
        {
                Moat__Agent__V1__RemoveContainerRequest q = MOAT__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
                q.container_id = "c1";
                assert_int_equal (call ("RemoveContainer", &q.base, NULL, NULL, NULL), 0);
        }
}

static void
test_missing_binary (void **state)
{
        cleanup_free char *msg = NULL;
        Moat__Agent__V1__CreateContainerRequest q = MOAT__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
        cleanup_free char *cfg = config ("[\"nope\"]");
        cleanup_free char *cmd = xasprintf_r ("mkdir -p %s/share/c2 && cp -a %s/rootfs %s/share/c2/", dir, dir, dir);
        assert_int_equal (system (cmd), 0);
        q.container_id = "c2";
        q.config_json = cfg;
        assert_int_equal (
                call ("CreateContainer", &q.base, &moat__agent__v1__create_container_response__descriptor, NULL, &msg),
                -1);
        assert_non_null (strstr (msg, "exec: \"nope\": executable file not found in $PATH"));
}

static void
test_exec_signal_stats (void **state)
{
        Moat__Agent__V1__ExecProcessRequest q = MOAT__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
        Moat__Agent__V1__StdioSpec st = MOAT__AGENT__V1__STDIO_SPEC__INIT;
        Moat__Agent__V1__CloseStdinRequest cs = MOAT__AGENT__V1__CLOSE_STDIN_REQUEST__INIT;
        Moat__Agent__V1__SignalProcessRequest sq = MOAT__AGENT__V1__SIGNAL_PROCESS_REQUEST__INIT;
        Moat__Agent__V1__StatsContainerRequest tq = MOAT__AGENT__V1__STATS_CONTAINER_REQUEST__INIT;
        Moat__Agent__V1__StatsContainerResponse *tr = NULL;
        Moat__Agent__V1__RemoveContainerRequest rq = MOAT__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
        cleanup_free char *text = NULL;
        cleanup_free char *msg = NULL;
        int in, out;
        bool sig;

        assert_int_equal (create ("c3", "[\"sleep\",\"1000\"]", false, false), 0);
        simple ("StartContainer", "c3");

        /* exec cat: stdin data, CloseStdin, output back, exit 0 */
        in = open_stream ("c3", "e1", "stdin");
        out = open_stream ("c3", "e1", "stdout");
        q.container_id = "c3";
        q.exec_id = "e1";
        q.process_json = "{\"args\":[\"sh\",\"-c\",\"cat; echo pid1=$(cat /proc/1/comm)\"],\"cwd\":\"/\","
                         "\"env\":[\"PATH=/bin\"],\"user\":{\"uid\":0,\"gid\":0}}";
        st.stdin = st.stdout = true;
        q.stdio = &st;
        assert_int_equal (
                call ("ExecProcess", &q.base, &moat__agent__v1__exec_process_response__descriptor, NULL, NULL), 0);
        assert_true (write_all (in, "abc\n", 4) == 4);
        cs.container_id = "c3";
        cs.exec_id = "e1";
        assert_int_equal (call ("CloseStdin", &cs.base, NULL, NULL, NULL), 0);
        text = read_to_eof (out);
        assert_string_equal (text, "abc\npid1=sleep\n");
        assert_int_equal (wait_status ("c3", "e1", NULL), 0);
        close (in);
        close (out);

        tq.container_id = "c3";
        if (call ("StatsContainer", &tq.base, &moat__agent__v1__stats_container_response__descriptor,
                  (ProtobufCMessage **)&tr, NULL) == 0) {
                assert_true (tr->n_pids >= 1);
                protobuf_c_message_free_unpacked (&tr->base, NULL);
        }

        /* removing a running container needs force */
        rq.container_id = "c3";
        assert_int_equal (call ("RemoveContainer", &rq.base, NULL, NULL, &msg), -1);
        assert_non_null (strstr (msg, "running"));

        sq.container_id = "c3";
        sq.signal = SIGKILL;
        sq.all = true;
        assert_int_equal (call ("SignalProcess", &sq.base, NULL, NULL, NULL), 0);
        assert_int_equal (wait_status ("c3", "", &sig), 137);
        assert_true (sig);
        assert_int_equal (call ("RemoveContainer", &rq.base, NULL, NULL, NULL), 0);
}

static void
test_tty (void **state)
{
        Moat__Agent__V1__ExecProcessRequest q = MOAT__AGENT__V1__EXEC_PROCESS_REQUEST__INIT;
        Moat__Agent__V1__StdioSpec st = MOAT__AGENT__V1__STDIO_SPEC__INIT;
        Moat__Agent__V1__RemoveContainerRequest rq = MOAT__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
        cleanup_free char *text = NULL;
        int tty;

        assert_int_equal (create ("c4", "[\"sleep\",\"1000\"]", false, false), 0);
        simple ("StartContainer", "c4");
        tty = open_stream ("c4", "t1", "tty");
        q.container_id = "c4";
        q.exec_id = "t1";
        q.process_json = "{\"terminal\":true,\"args\":[\"sh\",\"-c\",\"tty; stty size\"],\"cwd\":\"/\","
                         "\"env\":[\"PATH=/bin\"],\"user\":{\"uid\":0,\"gid\":0}}";
        st.terminal = true;
        st.rows = 30;
        st.cols = 100;
        q.stdio = &st;
        assert_int_equal (
                call ("ExecProcess", &q.base, &moat__agent__v1__exec_process_response__descriptor, NULL, NULL), 0);
        assert_int_equal (wait_status ("c4", "t1", NULL), 0);
        text = read_to_eof (tty);
        assert_string_equal (text, "/dev/pts/0\r\n30 100\r\n");
        close (tty);
        rq.container_id = "c4";
        rq.force = true;
        assert_int_equal (call ("RemoveContainer", &rq.base, NULL, NULL, NULL), 0);
}

static int
setup (void **state)
{
        const char *agent = getenv ("MOAT_AGENT") ? getenv ("MOAT_AGENT") : "build/moat-agent";
        cleanup_free char *cmd = NULL;
        int fd;

        if (getuid () != 0 || access ("/bin/busybox", X_OK) != 0 || access (agent, X_OK) != 0) {
                fprintf (stderr, "# needs root, /bin/busybox and %s\n", agent);
                return -1;
        }
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
                call ("DestroySandbox", &q.base, NULL, NULL, NULL);
                ttrpc_client_free (cl);
        }
        if (agent_pid > 0) {
                int st;
                for (int i = 0; i < 50 && waitpid (agent_pid, &st, WNOHANG) == 0; i++)
                        usleep (100000);
                kill (agent_pid, SIGKILL);
                waitpid (agent_pid, &st, 0);
        }
        return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_check),
                cmocka_unit_test (test_sync_clock),
                cmocka_unit_test (test_run_and_wait),
                cmocka_unit_test (test_missing_binary),
                cmocka_unit_test (test_exec_signal_stats),
                cmocka_unit_test (test_tty),
        };
        if (getuid () != 0 || access ("/bin/busybox", X_OK) != 0) {
                printf ("1..0 # SKIP needs root and /bin/busybox\n");
                return 0;
        }
        return cmocka_run_group_tests (tests, setup, teardown);
}

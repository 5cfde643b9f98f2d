/* SPDX-License-Identifier: Apache-2.0 */
/* containerd-shim-moat-v2's protocol with containerd, driven as containerd
 * drives it: `start` (stdout is the address alone, the same one for every
 * container of a pod, an "address" file in the bundle, a daemon serving
 * ttrpc on it), the task service (Connect at once, NotFound for unknown
 * tasks, Create refused as not yet supported, Shutdown ends the daemon
 * and removes its socket) and `delete` (a DeleteResponse on stdout). Runs
 * the containerd-shim-moat-v2 of this test's build tree (build/ or
 * build/asan/). */
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
#include <unistd.h>

#include <cmocka.h>

#include "moat/ttrpc.h"
#include "moat/util.h"
#include "task.pb-c.h"

#define CTRD_ADDR "/run/moat-test-shim/containerd.sock"

static char dir[] = "/tmp/moat-shim-test.XXXXXX";

/* Runs the shim with args in cwd; stdout into *out (malloc'd). Returns the
 * exit status, or -1. */
static int
run_shim (const char *cwd, const char *const *args, char **out, size_t *out_len)
{
        int p[2];
        pid_t pid;
        int st;
        size_t cap = 4096, n = 0;
        char *buf = xmalloc (cap);
        assert_int_equal (pipe (p), 0);
        pid = fork ();
        assert_true (pid >= 0);
        if (pid == 0) {
                const char *argv[20];
                int i = 0;
                char exe[4096];
                ssize_t l = readlink ("/proc/self/exe", exe, sizeof exe - 64);
                if (l <= 0)
                        _exit (125);
                exe[l] = '\0';
                /* <build>/tests/test_shim -> <build>/containerd-shim-moat-v2 */
                *strrchr (exe, '/') = '\0';
                strcpy (strrchr (exe, '/') + 1, "containerd-shim-moat-v2");
                argv[i++] = exe;
                for (int k = 0; args[k]; k++)
                        argv[i++] = args[k];
                argv[i] = NULL;
                dup2 (p[1], 1);
                close (p[0]);
                close (p[1]);
                int null = open ("/dev/null", O_RDONLY);
                dup2 (null, 0);
                if (chdir (cwd) < 0)
                        _exit (126);
                execv (exe, (char **)argv);
                _exit (127);
        }
        close (p[1]);
        for (;;) {
                ssize_t r = read (p[0], buf + n, cap - n - 1);
                if (r <= 0)
                        break;
                n += r;
                if (n + 1 == cap)
                        buf = xrealloc (buf, cap *= 2);
        }
        buf[n] = '\0';
        close (p[0]);
        waitpid (pid, &st, 0);
        *out = buf;
        if (out_len)
                *out_len = n;
        return WIFEXITED (st) ? WEXITSTATUS (st) : -1;
}

static char *
make_bundle (const char *name, const char *sandbox_id)
{
        char *b = xasprintf_r ("%s/%s", dir, name);
        cleanup_free char *cfg = xasprintf_r ("%s/config.json", b);
        cleanup_free char *json =
                sandbox_id ? xasprintf_r ("{\"ociVersion\":\"1.0.2\",\"annotations\":{\"io.kubernetes.cri.sandbox-id\":"
                                          "\"%s\",\"io.kubernetes.cri.container-type\":\"container\"}}",
                                          sandbox_id)
                           : xstrdup ("{\"ociVersion\":\"1.0.2\"}");
        moat_error_t err = NULL;
        assert_int_equal (mkdir (b, 0755), 0);
        assert_int_equal (write_file (cfg, json, strlen (json), 0644, &err), 0);
        return b;
}

static struct ttrpc_client *
dial (const char *addr)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true (strncmp (addr, "unix://", 7) == 0);
        snprintf (sa.sun_path, sizeof sa.sun_path, "%s", addr + 7);
        assert_int_equal (connect (fd, (struct sockaddr *)&sa, sizeof sa), 0);
        return ttrpc_client_new (fd);
}

static int
task_call (struct ttrpc_client *c, const char *method, const ProtobufCMessage *req,
           const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp, moat_error_t *err)
{
        return ttrpc_call (c, "containerd.task.v2.Task", method, req,
                           rd ? rd : &containerd__task__v2__empty__descriptor, resp, 10000, err);
}

static bool
exists (const char *path)
{
        struct stat st;
        return lstat (path, &st) == 0;
}

static void
test_start_connect_shutdown (void **state)
{
        cleanup_free char *b1 = make_bundle ("pod-sandbox", "pod1");
        cleanup_free char *b2 = make_bundle ("pod-app", "pod1");
        cleanup_free char *b3 = make_bundle ("single", NULL);
        cleanup_free char *out1 = NULL, *out2 = NULL, *out3 = NULL, *addr_file = NULL, *path = NULL;
        cleanup_free char *expect = NULL;
        const char *a1[] = {"-namespace",          "k8s.io", "-address", CTRD_ADDR, "-publish-binary",
                            "/usr/bin/containerd", "-id",    "pod1",     "start",   NULL};
        const char *a2[] = {"-namespace", "k8s.io", "-address", CTRD_ADDR, "-id", "app1", "start", NULL};
        const char *a3[] = {"-namespace=default", "--address", CTRD_ADDR, "-id", "single", "-debug", "start", NULL};
        size_t len;
        moat_error_t err = NULL;
        struct ttrpc_client *c;

        /* the address containerd computes: sha256 of address/ns/group */
        {
                cleanup_free char *cmd =
                        xasprintf_r ("printf '%%s' '%s/k8s.io/pod1' | sha256sum | cut -d' ' -f1", CTRD_ADDR);
                FILE *f = popen (cmd, "r");
                char hex[80] = "";
                assert_non_null (fgets (hex, sizeof hex, f));
                pclose (f);
                hex[strcspn (hex, "\n")] = '\0';
                expect = xasprintf_r ("unix:///run/containerd/s/%s", hex);
        }
        assert_int_equal (run_shim (b1, a1, &out1, NULL), 0);
        assert_string_equal (out1, expect); /* stdout is the address alone */
        path = xasprintf_r ("%s/address", b1);
        assert_int_equal (read_file (path, &addr_file, &len, &err), 0);
        assert_string_equal (addr_file, expect);
        {
                struct stat st;
                assert_int_equal (stat (expect + 7, &st), 0);
                assert_true (S_ISSOCK (st.st_mode));
                assert_int_equal (st.st_mode & 0777, 0600);
        }
        /* the pod's second container reaches the same shim */
        assert_int_equal (run_shim (b2, a2, &out2, NULL), 0);
        assert_string_equal (out2, expect);
        /* a container without CRI annotations has its own */
        assert_int_equal (run_shim (b3, a3, &out3, NULL), 0);
        assert_true (strncmp (out3, "unix:///run/containerd/s/", 25) == 0);
        assert_string_not_equal (out3, expect);

        c = dial (expect);
        {
                Containerd__Task__V2__ConnectRequest q = CONTAINERD__TASK__V2__CONNECT_REQUEST__INIT;
                Containerd__Task__V2__ConnectResponse *r = NULL;
                q.id = "pod1";
                assert_int_equal (task_call (c, "Connect", &q.base, &containerd__task__v2__connect_response__descriptor,
                                             (ProtobufCMessage **)&r, &err),
                                  0);
                assert_true (r->shim_pid > 1);
                assert_int_equal (kill (r->shim_pid, 0), 0);
                protobuf_c_message_free_unpacked (&r->base, NULL);
        }
        {
                Containerd__Task__V2__StateRequest q = CONTAINERD__TASK__V2__STATE_REQUEST__INIT;
                ProtobufCMessage *r = NULL;
                q.id = "nope";
                assert_int_equal (
                        task_call (c, "State", &q.base, &containerd__task__v2__state_response__descriptor, &r, &err),
                        -1);
                assert_int_equal (err->errno_, ENOENT); /* NotFound */
                moat_error_release (&err);
        }
        {
                Containerd__Task__V2__CreateTaskRequest q = CONTAINERD__TASK__V2__CREATE_TASK_REQUEST__INIT;
                ProtobufCMessage *r = NULL;
                q.id = "pod1";
                q.bundle = b1;
                assert_int_equal (task_call (c, "Create", &q.base,
                                             &containerd__task__v2__create_task_response__descriptor, &r, &err),
                                  -1);
                /* the bundle's config is not one a container can run:
                 * the error comes back naming it, and the shim goes on */
                assert_non_null (strstr (err->msg, "config.json"));
                moat_error_release (&err);
        }
        {
                Containerd__Task__V2__ShutdownRequest q = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
                q.id = "pod1";
                assert_int_equal (task_call (c, "Shutdown", &q.base, NULL, NULL, &err), 0);
        }
        ttrpc_client_free (c);
        /* the daemon goes, and its socket with it */
        for (int i = 0; i < 50 && exists (expect + 7); i++)
                usleep (100000);
        assert_false (exists (expect + 7));

        /* the other shim, shut down the same way */
        c = dial (out3);
        {
                Containerd__Task__V2__ShutdownRequest q = CONTAINERD__TASK__V2__SHUTDOWN_REQUEST__INIT;
                q.id = "single";
                assert_int_equal (task_call (c, "Shutdown", &q.base, NULL, NULL, &err), 0);
        }
        ttrpc_client_free (c);
        for (int i = 0; i < 50 && exists (out3 + 7); i++)
                usleep (100000);
        assert_false (exists (out3 + 7));
}

static void
test_delete (void **state)
{
        cleanup_free char *b = make_bundle ("deleted", NULL);
        cleanup_free char *out = NULL;
        const char *a[] = {"-namespace", "default", "-address", CTRD_ADDR, "-publish-binary", "/usr/bin/containerd",
                           "-id",        "deleted", "-bundle",  b,         "delete",          NULL};
        size_t len = 0;
        Containerd__Task__V2__DeleteResponse *r;

        assert_int_equal (run_shim (b, a, &out, &len), 0);
        r = containerd__task__v2__delete_response__unpack (NULL, len, (const uint8_t *)out);
        assert_non_null (r);
        assert_int_equal (r->exit_status, 137);
        assert_non_null (r->exited_at);
        assert_true (r->exited_at->seconds > 1600000000);
        protobuf_c_message_free_unpacked (&r->base, NULL);
}

static void
test_bad_flags (void **state)
{
        cleanup_free char *out = NULL, *out2 = NULL;
        const char *a[] = {"-no-such-flag", "x", "start", NULL};
        const char *a2[] = {"-namespace", "x", "start", NULL};
        assert_int_equal (run_shim (dir, a, &out, NULL), 2);
        assert_int_equal (run_shim (dir, a2, &out2, NULL), 2); /* no -id */
        assert_string_equal (out, "");
}

static int
setup (void **state)
{
        assert_non_null (mkdtemp (dir));
        return 0;
}

static int
teardown (void **state)
{
        cleanup_free char *cmd = xasprintf_r ("rm -rf %s", dir);
        return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_start_connect_shutdown),
                cmocka_unit_test (test_delete),
                cmocka_unit_test (test_bad_flags),
        };
        if (getuid () != 0) {
                printf ("1..0 # SKIP needs root (the shim's sockets live in /run/containerd/s)\n");
                return 0;
        }
        return cmocka_run_group_tests (tests, setup, teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* moat-agent-hostile: a compromised guest agent, for tests only.
 *
 * PID 1 of a test initramfs (build/initramfs-hostile.cpio.gz, picked with
 * MOAT_INITRD); never part of the production image, and moat-agent has no
 * switch that turns into this. It speaks just enough of the agent API
 * (proto/agent.proto) on vsock ports 1024 (ttrpc) and 1025 (stdio) for the
 * host to go through a container's lifecycle with no container at all, and
 * on request answers each method, and the stdio streams, the way a guest
 * under an attacker's control could:
 *
 *   ok          a plausible answer
 *   close       the connection closed instead of an answer
 *   truncated   a header announcing 100 bytes, 5 of them, then close
 *   badframe    a frame whose payload is no ttrpc Response
 *   badpayload  a Response, status OK, whose payload is no such message
 *   oversized   a frame of TTRPC_MAX_MESSAGE + 1 bytes for this call, sent in full
 *   huge        a header announcing 4 GiB, 64 KiB of it, then nothing
 *   errmsg      status UNKNOWN with a 1 MiB message full of terminal escapes
 *   badvalue    status OK, values out of any range (pid 0, status -1, signal
 *               SIGSTOP, 100000 pids, 64 KiB version string with escapes)
 *   silent      no answer; the connection stays open
 *   endless     valid Responses for other stream ids, for ever
 *   trickle     the right answer padded to 250 bytes or more, one byte a
 *               second (4 minutes, past any call's timeout)
 *
 * Stdio streams (key "stdio"): ok, close, silent, badline ("ERR " and 64
 * KiB without a newline), garbage (1 MiB of random bytes on stdout), flood
 * (random bytes on stdout for ever).
 *
 * Where the modes come from: annotations of the config a CreateContainer
 * carries ("moat.hostile.<Method>" or "moat.hostile.stdio" = mode), and a
 * control connection on vsock port 1100 that the test opens through the
 * sandbox's hybrid socket: "SET <key> <mode>\n" -> "OK\n", and "FLOOD <n>\n"
 * (n connections from the guest to host ports 1024..., each written to
 * until refused) -> "OK <opened>\n". */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "moat/agent_proto.h"
#include "moat/ttrpc.h"
#include "moat/util.h"
#include "ttrpc.pb-c.h"

#define CONTROL_PORT 1100
#define MAX_KEYS 32
#define MAX_PROCS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static struct {
        char key[64], mode[32];
} modes[MAX_KEYS];

/* fake processes: "<container>/<exec or ->", exited once signalled or once
 * their stdout stream was served (which may come before the ExecProcess) */
static struct {
        char name[192];
        bool exited;
        int status, signal;
} procs[MAX_PROCS];

static void
logf_ (const char *fmt, ...)
{
        va_list ap;
        va_start (ap, fmt);
        fprintf (stderr, "hostile-agent: ");
        vfprintf (stderr, fmt, ap);
        fprintf (stderr, "\n");
        va_end (ap);
}

static void
set_mode (const char *key, const char *mode)
{
        int free_slot = -1;
        pthread_mutex_lock (&lock);
        for (int i = 0; i < MAX_KEYS; i++) {
                if (modes[i].key[0] == '\0' && free_slot < 0)
                        free_slot = i;
                if (strcmp (modes[i].key, key) == 0) {
                        free_slot = i;
                        break;
                }
        }
        if (free_slot >= 0) {
                snprintf (modes[free_slot].key, sizeof modes[free_slot].key, "%s", key);
                snprintf (modes[free_slot].mode, sizeof modes[free_slot].mode, "%s", mode);
        }
        pthread_mutex_unlock (&lock);
        logf_ ("%s: %s", key, mode);
}

static void
get_mode (const char *key, char *out, size_t len)
{
        snprintf (out, len, "ok");
        pthread_mutex_lock (&lock);
        for (int i = 0; i < MAX_KEYS; i++)
                if (strcmp (modes[i].key, key) == 0)
                        snprintf (out, len, "%s", modes[i].mode);
        pthread_mutex_unlock (&lock);
}

/* "moat.hostile.KEY": "MODE" pairs anywhere in the config */
static void
modes_from_config (const char *json)
{
        const char *p = json;
        while (json && (p = strstr (p, "\"moat.hostile.")) != NULL) {
                char key[64], mode[32];
                p += strlen ("\"moat.hostile.");
                if (sscanf (p, "%63[A-Za-z]\"%*[ :]\"%31[a-z]\"", key, mode) == 2)
                        set_mode (key, mode);
        }
}

static int
proc_slot_locked (const char *cid, const char *eid)
{
        char name[192];
        int free_slot = -1;
        snprintf (name, sizeof name, "%s/%s", cid ? cid : "", eid && *eid ? eid : "-");
        for (int i = 0; i < MAX_PROCS; i++) {
                if (strcmp (procs[i].name, name) == 0)
                        return i;
                if (procs[i].name[0] == '\0' && free_slot < 0)
                        free_slot = i;
        }
        if (free_slot < 0)
                free_slot = 0;
        memset (&procs[free_slot], 0, sizeof procs[free_slot]);
        snprintf (procs[free_slot].name, sizeof procs[free_slot].name, "%s", name);
        return free_slot;
}

static void
proc_new (const char *cid, const char *eid)
{
        pthread_mutex_lock (&lock);
        proc_slot_locked (cid, eid);
        pthread_mutex_unlock (&lock);
}

static void
proc_exit (const char *cid, const char *eid, int status, int sig)
{
        pthread_mutex_lock (&lock);
        int i = proc_slot_locked (cid, eid);
        procs[i].exited = true;
        procs[i].status = status;
        procs[i].signal = sig;
        pthread_cond_broadcast (&changed);
        pthread_mutex_unlock (&lock);
}

static void
proc_wait (const char *cid, const char *eid, int *status, int *sig)
{
        pthread_mutex_lock (&lock);
        int i = proc_slot_locked (cid, eid);
        while (!procs[i].exited)
                pthread_cond_wait (&changed, &lock);
        *status = procs[i].status;
        *sig = procs[i].signal;
        pthread_mutex_unlock (&lock);
}

static void
all_exit (int sig)
{
        pthread_mutex_lock (&lock);
        for (int i = 0; i < MAX_PROCS; i++)
                if (procs[i].name[0] && !procs[i].exited) {
                        procs[i].exited = true;
                        procs[i].status = 128 + sig;
                        procs[i].signal = sig;
                }
        pthread_cond_broadcast (&changed);
        pthread_mutex_unlock (&lock);
}

static void
fill_random (uint8_t *buf, size_t n)
{
        static uint32_t x = 2463534242u;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf[i] = x;
        }
}

static void
header (uint8_t *h, uint32_t len, uint32_t id, uint8_t type)
{
        ttrpc_header_pack (h, len, id, type, 0);
}

static uint8_t *
pack (const ProtobufCMessage *m, size_t *len)
{
        size_t n = protobuf_c_message_get_packed_size (m);
        uint8_t *buf = xmalloc (n ? n : 1);
        *len = protobuf_c_message_pack (m, buf);
        return buf;
}

/* a whole Response frame (header included) */
static uint8_t *
response_frame (uint32_t id, int code, const char *msg, const uint8_t *payload, size_t plen, size_t *len)
{
        Ttrpc__Response r = TTRPC__RESPONSE__INIT;
        Ttrpc__Status st = TTRPC__STATUS__INIT;
        cleanup_free uint8_t *body = NULL;
        size_t blen;
        uint8_t *frame;

        st.code = code;
        st.message = (char *)(msg ? msg : "");
        r.status = &st;
        r.payload.data = (uint8_t *)payload;
        r.payload.len = plen;
        body = pack (&r.base, &blen);
        frame = xmalloc (TTRPC_HEADER_LEN + blen);
        header (frame, blen, id, TTRPC_TYPE_RESPONSE);
        memcpy (frame + TTRPC_HEADER_LEN, body, blen);
        *len = TTRPC_HEADER_LEN + blen;
        return frame;
}

static void
hang (void)
{
        for (;;)
                pause ();
}

/* a string of n bytes of terminal escapes and newlines */
static char *
escapes (size_t n)
{
        static const char pat[] = "\033]0;owned\007\033[2J\r\nFAKE: all good\n\033[31m";
        char *s = xmalloc (n + 1);
        for (size_t i = 0; i < n; i++)
                s[i] = pat[i % (sizeof pat - 1)];
        s[n] = '\0';
        return s;
}

/* The plausible (ok) or out-of-range (badvalue) answer of method m. */
static uint8_t *
good_payload (const char *m, const Ttrpc__Request *rq, bool bad, size_t *len)
{
        if (strcmp (m, "Check") == 0) {
                Moat__Agent__V1__CheckResponse r = MOAT__AGENT__V1__CHECK_RESPONSE__INIT;
                cleanup_free char *junk = bad ? escapes (65536) : NULL;
                r.version = bad ? junk : (char *)"hostile";
                r.kernel_release = bad ? junk : (char *)"6.12-hostile";
                return pack (&r.base, len);
        }
        if (strcmp (m, "CreateContainer") == 0 || strcmp (m, "ExecProcess") == 0) {
                Moat__Agent__V1__CreateContainerResponse r = MOAT__AGENT__V1__CREATE_CONTAINER_RESPONSE__INIT;
                r.pid = bad ? 0 : 42;
                return pack (&r.base, len);
        }
        if (strcmp (m, "WaitProcess") == 0) {
                Moat__Agent__V1__WaitProcessRequest *q =
                        moat__agent__v1__wait_process_request__unpack (NULL, rq->payload.len, rq->payload.data);
                Moat__Agent__V1__WaitProcessResponse r = MOAT__AGENT__V1__WAIT_PROCESS_RESPONSE__INIT;
                int status = 0, sig = 0;
                if (bad) {
                        /* a stop signal as the cause of death, and a status no shell has */
                        r.status = -1;
                        r.signaled = true;
                        r.signal = SIGSTOP;
                } else if (q) {
                        proc_wait (q->container_id, q->exec_id, &status, &sig);
                        r.status = status;
                        r.signaled = sig != 0;
                        r.signal = sig;
                }
                if (q)
                        moat__agent__v1__wait_process_request__free_unpacked (q, NULL);
                return pack (&r.base, len);
        }
        if (strcmp (m, "StatsContainer") == 0) {
                Moat__Agent__V1__StatsContainerResponse r = MOAT__AGENT__V1__STATS_CONTAINER_RESPONSE__INIT;
                uint32_t pids[1] = {42};
                cleanup_free uint32_t *many = NULL;
                uint8_t *out;
                r.memory_usage = bad ? UINT64_MAX : 1 << 20;
                r.memory_limit = bad ? 1 : 256 << 20;
                r.cpu_usage_usec = bad ? UINT64_MAX : 1000;
                r.pids_current = bad ? UINT64_MAX : 1;
                if (bad) {
                        many = xmalloc (100000 * sizeof *many);
                        for (int i = 0; i < 100000; i++)
                                many[i] = i % 3 ? 0xffffffffu : (uint32_t)i;
                        r.n_pids = 100000;
                        r.pids = many;
                } else {
                        r.n_pids = 1;
                        r.pids = pids;
                }
                out = pack (&r.base, len);
                return out;
        }
        if (strcmp (m, "SyncClock") == 0) {
                Moat__Agent__V1__SyncClockResponse r = MOAT__AGENT__V1__SYNC_CLOCK_RESPONSE__INIT;
                r.offset_ns = bad ? INT64_MIN : 0;
                return pack (&r.base, len);
        }
        *len = 0;
        return xmalloc (1); /* Empty */
}

/* What an ok answer does besides answering. */
static void
side_effects (const char *m, const Ttrpc__Request *rq)
{
        if (strcmp (m, "CreateContainer") == 0) {
                Moat__Agent__V1__CreateContainerRequest *q =
                        moat__agent__v1__create_container_request__unpack (NULL, rq->payload.len, rq->payload.data);
                if (q) {
                        modes_from_config (q->config_json);
                        proc_new (q->container_id, NULL);
                        moat__agent__v1__create_container_request__free_unpacked (q, NULL);
                }
        } else if (strcmp (m, "ExecProcess") == 0) {
                Moat__Agent__V1__ExecProcessRequest *q =
                        moat__agent__v1__exec_process_request__unpack (NULL, rq->payload.len, rq->payload.data);
                if (q) {
                        proc_new (q->container_id, q->exec_id);
                        if (q->stdio == NULL || !q->stdio->stdout)
                                proc_exit (q->container_id, q->exec_id, 0, 0);
                        moat__agent__v1__exec_process_request__free_unpacked (q, NULL);
                }
        } else if (strcmp (m, "SignalProcess") == 0) {
                Moat__Agent__V1__SignalProcessRequest *q =
                        moat__agent__v1__signal_process_request__unpack (NULL, rq->payload.len, rq->payload.data);
                if (q) {
                        if (q->signal == SIGKILL || q->signal == SIGTERM || q->signal == SIGINT) {
                                if (q->all)
                                        all_exit (q->signal);
                                else
                                        proc_exit (q->container_id, q->exec_id, 128 + q->signal, q->signal);
                        }
                        moat__agent__v1__signal_process_request__free_unpacked (q, NULL);
                }
        } else if (strcmp (m, "RemoveContainer") == 0) {
                all_exit (SIGKILL);
        } else if (strcmp (m, "DestroySandbox") == 0) {
                all_exit (SIGKILL);
        }
}

static void
answer (int fd, uint32_t id, const Ttrpc__Request *rq)
{
        const char *m = rq->method ? rq->method : "";
        char mode[32];
        cleanup_free uint8_t *frame = NULL;
        cleanup_free uint8_t *payload = NULL;
        size_t len = 0, plen = 0;
        uint8_t h[TTRPC_HEADER_LEN];

        get_mode (m, mode, sizeof mode);
        if (strcmp (mode, "ok") == 0 || strcmp (mode, "trickle") == 0 || strcmp (mode, "badvalue") == 0)
                side_effects (m, rq);
        if (strcmp (m, "CreateContainer") == 0) /* its own mode may have come with it */
                get_mode (m, mode, sizeof mode);
        logf_ ("%s (stream %u): %s", m, id, mode);

        if (strcmp (mode, "close") == 0) {
                shutdown (fd, SHUT_RDWR);
                return;
        }
        if (strcmp (mode, "truncated") == 0) {
                header (h, 100, id, TTRPC_TYPE_RESPONSE);
                send_all (fd, h, sizeof h);
                send_all (fd, "\x0a\x03\x08\x01\x12", 5);
                shutdown (fd, SHUT_RDWR);
                return;
        }
        if (strcmp (mode, "badframe") == 0) {
                uint8_t junk[256];
                fill_random (junk, sizeof junk);
                junk[0] = 0xff; /* field 31, wire type 7: never valid */
                header (h, sizeof junk, id, TTRPC_TYPE_RESPONSE);
                send_all (fd, h, sizeof h);
                send_all (fd, junk, sizeof junk);
                return;
        }
        if (strcmp (mode, "badpayload") == 0) {
                uint8_t junk[256];
                fill_random (junk, sizeof junk);
                junk[0] = 0xff;
                frame = response_frame (id, TTRPC_OK, NULL, junk, sizeof junk, &len);
                send_all (fd, frame, len);
                return;
        }
        if (strcmp (mode, "oversized") == 0 || strcmp (mode, "huge") == 0) {
                bool huge = mode[0] == 'h';
                size_t n = huge ? 65536 : TTRPC_MAX_MESSAGE + 1;
                cleanup_free uint8_t *zeros = xzalloc (65536);
                header (h, huge ? 0xffffffffu : n, id, TTRPC_TYPE_RESPONSE);
                send_all (fd, h, sizeof h);
                while (n > 0) {
                        size_t c = n < 65536 ? n : 65536;
                        if (send_all (fd, zeros, c) < 0)
                                return;
                        n -= c;
                }
                if (huge)
                        hang ();
                return;
        }
        if (strcmp (mode, "errmsg") == 0) {
                cleanup_free char *msg = escapes (1 << 20);
                frame = response_frame (id, TTRPC_UNKNOWN, msg, NULL, 0, &len);
                send_all (fd, frame, len);
                return;
        }
        if (strcmp (mode, "silent") == 0)
                hang ();
        if (strcmp (mode, "endless") == 0) {
                payload = good_payload (m, rq, false, &plen);
                for (uint32_t other = id + 2;; other += 2) {
                        free (frame);
                        frame = response_frame (other == id ? other + 2 : other, TTRPC_OK, NULL, payload, plen, &len);
                        if (send_all (fd, frame, len) < 0)
                                return;
                }
        }
        payload = good_payload (m, rq, strcmp (mode, "badvalue") == 0, &plen);
        if (strcmp (mode, "trickle") == 0) {
                /* status OK with a 240-byte message (ignored when OK): the
                 * frame takes 4 minutes at a byte a second, past any call's
                 * deadline even when the guest's clock runs fast under load */
                char pad[241];
                memset (pad, '.', 240);
                pad[240] = '\0';
                frame = response_frame (id, TTRPC_OK, pad, payload, plen, &len);
                for (size_t i = 0; i < len; i++) {
                        if (send_all (fd, frame + i, 1) < 0)
                                return;
                        sleep (1);
                }
                return;
        }
        frame = response_frame (id, TTRPC_OK, NULL, payload, plen, &len);
        send_all (fd, frame, len);
        if (strcmp (m, "DestroySandbox") == 0) {
                sync ();
                reboot (RB_AUTOBOOT);
        }
}

static void *
ttrpc_conn (void *arg)
{
        int fd = (int)(intptr_t)arg;
        for (;;) {
                cleanup_free uint8_t *buf = NULL;
                uint32_t id = 0;
                uint8_t type = 0, flags = 0;
                size_t len = 0;
                moat_error_t err = NULL;
                Ttrpc__Request *rq;
                int r = ttrpc_read_frame (fd, &id, &type, &flags, &buf, &len, &err);
                if (r <= 0) {
                        moat_error_release (&err);
                        break;
                }
                if (type != TTRPC_TYPE_REQUEST)
                        continue;
                rq = ttrpc__request__unpack (NULL, len, buf);
                if (rq == NULL)
                        continue;
                answer (fd, id, rq);
                ttrpc__request__free_unpacked (rq, NULL);
        }
        close (fd);
        return NULL;
}

static bool
read_line (int fd, char *buf, size_t len)
{
        size_t n = 0;
        while (n + 1 < len) {
                ssize_t r = read (fd, buf + n, 1);
                if (r <= 0)
                        return false;
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = '\0';
        return true;
}

static void *
stdio_conn (void *arg)
{
        int fd = (int)(intptr_t)arg;
        char line[512], cid[160] = "", eid[160] = "", stream[32] = "", mode[32];
        uint8_t buf[16384];

        if (!read_line (fd, line, sizeof line) || sscanf (line, "STDIO %159s %159s %31s", cid, eid, stream) != 3) {
                close (fd);
                return NULL;
        }
        get_mode ("stdio", mode, sizeof mode);
        logf_ ("stdio %s %s %s: %s", cid, eid, stream, mode);
        if (strcmp (mode, "close") == 0)
                goto done;
        if (strcmp (mode, "silent") == 0)
                hang ();
        if (strcmp (mode, "badline") == 0) {
                cleanup_free char *junk = escapes (65536);
                send_all (fd, "ERR ", 4);
                send_all (fd, junk, strlen (junk) - 1);
                hang ();
        }
        send_all (fd, "OK\n", 3);
        if (strcmp (stream, "stdout") == 0 || strcmp (stream, "tty") == 0) {
                size_t left = strcmp (mode, "garbage") == 0 ? 1 << 20 : 0;
                bool forever = strcmp (mode, "flood") == 0;
                if (left == 0 && !forever)
                        send_all (fd, "hostile-ok\n", 11);
                while (forever || left > 0) {
                        size_t c = left && left < sizeof buf ? left : sizeof buf;
                        fill_random (buf, c);
                        if (send_all (fd, buf, c) < 0)
                                break;
                        if (!forever)
                                left -= c;
                }
                shutdown (fd, SHUT_WR);
                if (strcmp (eid, "-") != 0) /* an exec ends with its output; the init runs on */
                        proc_exit (cid, eid, 0, 0);
                /* until the host closes */
                while (read (fd, buf, sizeof buf) > 0) {
                }
                goto done;
        }
        if (strcmp (stream, "stderr") == 0) {
                shutdown (fd, SHUT_WR);
        }
        while (read (fd, buf, sizeof buf) > 0) {
        }
done:
        close (fd);
        return NULL;
}

/* n connections from the guest to the host, each written to until it fails */
static int
flood (int n)
{
        int opened = 0;
        static uint8_t junk[65536];
        fill_random (junk, sizeof junk);
        for (int i = 0; i < n; i++) {
                struct sockaddr_vm sa = {
                        .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = 1024 + (i % 64)};
                int fd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        continue;
                if (connect (fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
                        opened++;
                        for (int k = 0; k < 16; k++)
                                if (send_all (fd, junk, sizeof junk) < 0)
                                        break;
                }
                close (fd);
        }
        return opened;
}

static void *
control_conn (void *arg)
{
        int fd = (int)(intptr_t)arg;
        char line[256], key[64], mode[32], out[64];
        int n;

        while (read_line (fd, line, sizeof line)) {
                if (sscanf (line, "SET %63s %31s", key, mode) == 2) {
                        set_mode (key, mode);
                        send_all (fd, "OK\n", 3);
                } else if (sscanf (line, "FLOOD %d", &n) == 1) {
                        snprintf (out, sizeof out, "OK %d\n", flood (n));
                        send_all (fd, out, strlen (out));
                } else {
                        send_all (fd, "ERR unknown command\n", 20);
                }
        }
        close (fd);
        return NULL;
}

struct listener {
        int port;
        void *(*fn) (void *);
};

static void *
listen_thread (void *arg)
{
        struct listener *l = arg;
        struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = l->port};
        int lfd;

        for (;;) {
                lfd = socket (AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (lfd >= 0 && bind (lfd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen (lfd, 64) == 0)
                        break;
                if (lfd >= 0)
                        close (lfd);
                sleep (1);
        }
        logf_ ("listening on vsock port %d", l->port);
        for (;;) {
                pthread_t t;
                int fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0) {
                        if (errno != EINTR)
                                usleep (100000);
                        continue;
                }
                if (pthread_create (&t, NULL, l->fn, (void *)(intptr_t)fd) != 0) {
                        close (fd);
                        continue;
                }
                pthread_detach (t);
        }
        return NULL;
}

int
main (int argc, char **argv)
{
        static struct listener ls[] = {
                {MOAT_AGENT_PORT, ttrpc_conn}, {MOAT_STDIO_PORT, stdio_conn}, {CONTROL_PORT, control_conn}};
        pthread_t t;

        if (argc >= 2 && strcmp (argv[1], "--help") == 0) {
                printf ("usage: moat-agent-hostile   (PID 1 of a test guest only)\n");
                return 0;
        }
        if (getpid () != 1) {
                fprintf (stderr, "moat-agent-hostile: only runs as PID 1 of a test guest\n");
                return 2;
        }
        signal (SIGPIPE, SIG_IGN);
        mkdir ("/proc", 0755);
        mount ("proc", "/proc", "proc", 0, NULL);
        mkdir ("/dev", 0755);
        mount ("devtmpfs", "/dev", "devtmpfs", 0, NULL);
        for (size_t i = 0; i < ARRAY_SIZE (ls); i++)
                if (pthread_create (&t, NULL, listen_thread, &ls[i]) == 0)
                        pthread_detach (t);
        hang ();
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* What the host decodes from the guest's agent: the hybrid-vsock answer
 * line, ttrpc framing (src/lib/ttrpc.c) and the replies of every agent
 * call as src/lib/agent_client.c handles them. A thread plays the guest
 * behind a hybrid socket: it takes the "CONNECT 1024\n" line, writes the
 * input's answer line and response frames at once, half-closes and reads
 * until the host hangs up. The host opens the agent (Check) and makes the
 * calls the input names. If the first byte has its top bit set, the rest
 * is instead unpacked (and repacked) as one of the response messages. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent_msgs.h"
#include "fuzz.h"
#include "moat/agent_client.h"
#include "moat/log.h"
#include "moat/util.h"
#include "moat/ttrpc.h"
#include "ttrpc.pb-c.h"

#define MAX_CALLS 8

static char dir[64], sock[128];
static int listen_fd = -1;
static uint8_t out[1 << 16];
static size_t out_len;

static void *
guest (void *arg)
{
        (void)arg;
        int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;
        char c;
        /* the CONNECT line */
        while (read (fd, &c, 1) == 1 && c != '\n')
                ;
        if (out_len > 0 && send (fd, out, out_len, MSG_NOSIGNAL) < 0)
                ;
        shutdown (fd, SHUT_WR);
        char buf[4096];
        while (read (fd, buf, sizeof buf) > 0)
                ;
        close (fd);
        return NULL;
}

/* libFuzzer ends with exit(): the temporary directory goes with it. */
static void
remove_tmp (void)
{
        moat_error_t err = NULL;
        if (rm_rf (dir, &err) < 0)
                moat_error_release (&err);
}

static void
init (void)
{
        moat_log_init ("/dev/null", 0, 1);
        strcpy (dir, "/tmp/moat-fuzz-agent.XXXXXX");
        if (mkdtemp (dir) == NULL)
                abort ();
        atexit (remove_tmp);
        snprintf (sock, sizeof sock, "%s/hybrid.sock", dir);
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf (sun.sun_path, sizeof sun.sun_path, "%s", sock);
        listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listen_fd < 0 || bind (listen_fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen (listen_fd, 8) < 0)
                abort ();
}

static void
put_frame (uint32_t sid, uint8_t type, const uint8_t *p, size_t plen, uint32_t hlen)
{
        if (out_len + TTRPC_HEADER_LEN + plen > sizeof out)
                return;
        uint8_t *h = out + out_len;
        h[0] = hlen >> 24, h[1] = hlen >> 16, h[2] = hlen >> 8, h[3] = hlen;
        h[4] = sid >> 24, h[5] = sid >> 16, h[6] = sid >> 8, h[7] = sid;
        h[8] = type, h[9] = 0;
        memcpy (h + TTRPC_HEADER_LEN, p, plen);
        out_len += TTRPC_HEADER_LEN + plen;
}

static void
make_call (struct moat_agent *a, int which)
{
        moat_error_t err = NULL;
        struct moat_stdio_spec stdio = {.out = true, .err = true};
        uint32_t pid;
        int status;
        struct moat_exit ex;
        struct moat_stats st = {0};
        int64_t off;
        char *v = NULL, *r = NULL;
        switch (which % 15) {
        case 0:
                moat_agent_check (a, &v, &r, &err);
                free (v);
                free (r);
                break;
        case 1:
                moat_agent_create_container (a, "c1", "{}", "/tmp/bundle", &stdio, &pid, &err);
                break;
        case 2:
                moat_agent_start_container (a, "c1", &err);
                break;
        case 3:
                moat_agent_signal (a, "c1", NULL, 15, false, &err);
                break;
        case 4:
                moat_agent_wait (a, "c1", NULL, &status, &err);
                break;
        case 5:
                moat_agent_wait_exit (a, "c1", "e1", &ex, &err);
                break;
        case 6:
                moat_agent_exec_process (a, "c1", "e1", "{}", &stdio, &pid, &err);
                break;
        case 7:
                moat_agent_remove_container (a, "c1", true, &err);
                break;
        case 8:
                moat_agent_tty_resize (a, "c1", NULL, 24, 80, &err);
                break;
        case 9:
                moat_agent_close_stdin (a, "c1", NULL, &err);
                break;
        case 10:
                moat_agent_pause (a, "c1", &err);
                break;
        case 11:
                moat_agent_resume (a, "c1", &err);
                break;
        case 12:
                if (moat_agent_stats (a, "c1", &st, &err) == 0)
                        moat_stats_clear (&st);
                break;
        case 13:
                moat_agent_update (a, "c1", "{}", &err);
                break;
        case 14:
                moat_agent_sync_clock (a, which & 16, &off, &err);
                break;
        }
        moat_error_release (&err);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        struct fz f = {data, size};
        int calls[MAX_CALLS], ncalls = 0;

        if (listen_fd < 0)
                init ();
        uint8_t mode = fz_u8 (&f);
        if (mode & 0x80) {
                fz_unpack_repack (fz_methods[mode % FZ_NMETHODS].resp, f.p, f.n);
                return 0;
        }
        /* the answer to CONNECT */
        out_len = 0;
        if (mode & 1) {
                size_t n;
                const uint8_t *p = fz_chunk (&f, 128, &n);
                memcpy (out, p, n);
                out_len = n;
        } else {
                memcpy (out, "OK 1073741824\n", 14);
                out_len = 14;
        }
        /* one response per call: Check first (moat_agent_open), then the calls named */
        for (int i = 0; fz_more (&f) && i < MAX_CALLS + 1; i++) {
                uint8_t kind = fz_u8 (&f);
                if (i > 0)
                        calls[ncalls++] = fz_u8 (&f);
                size_t len;
                const uint8_t *p;
                if (kind & 1) { /* raw bytes */
                        p = fz_chunk (&f, 4096, &len);
                        if (out_len + len <= sizeof out) {
                                memcpy (out + out_len, p, len);
                                out_len += len;
                        }
                        continue;
                }
                Ttrpc__Response r = TTRPC__RESPONSE__INIT;
                Ttrpc__Status st = TTRPC__STATUS__INIT;
                char msg[256];
                if (kind & 2) {
                        st.code = fz_u8 (&f) % 17;
                        p = fz_chunk (&f, sizeof msg - 1, &len);
                        memcpy (msg, p, len);
                        msg[len] = '\0';
                        st.message = msg;
                        r.status = &st;
                }
                p = fz_chunk (&f, 4096, &len); /* the response message, as the guest encoded it */
                r.payload.data = (uint8_t *)p;
                r.payload.len = len;
                uint8_t payload[8192];
                size_t plen = ttrpc__response__get_packed_size (&r);
                if (plen > sizeof payload)
                        break;
                ttrpc__response__pack (&r, payload);
                uint32_t sid = (kind & 4) ? fz_u32 (&f) : 2u * i + 1;
                uint8_t type = (kind & 8) ? fz_u8 (&f) : TTRPC_TYPE_RESPONSE;
                uint32_t hlen = (kind & 16) ? fz_u32 (&f) : (uint32_t)plen;
                put_frame (sid, type, payload, plen, hlen);
        }

        pthread_t t;
        if (pthread_create (&t, NULL, guest, NULL) != 0)
                abort ();
        struct moat_agent *a = NULL;
        moat_error_t err = NULL;
        if (moat_agent_open (sock, 5000, &a, &err) == 0) {
                for (int i = 0; i < ncalls; i++)
                        make_call (a, calls[i]);
                moat_agent_free (a);
        }
        moat_error_release (&err);
        pthread_join (t, NULL);
        return 0;
}

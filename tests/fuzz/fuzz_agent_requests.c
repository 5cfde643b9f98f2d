/* SPDX-License-Identifier: Apache-2.0 */
/* What the agent decodes from the host (agent/server.c's inputs), without
 * spawning anything: the first byte picks
 *   - unpack (and repack) of one request message of proto/agent.proto, or
 *   - ttrpc_serve (src/lib/ttrpc.c, the agent's server loop) over a
 *     socketpair fed with frames: raw bytes, or ttrpc.Request frames whose
 *     service, method, payload (a request message) and header are from the
 *     input. The service has the agent's method names and request
 *     descriptors; its handlers answer an empty message or an error
 *     without acting, so ttrpc_serve's framing, request unpacking and reply
 *     path are what runs. */
#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_msgs.h"
#include "fuzz.h"
#include "moat/agent_proto.h"
#include "moat/log.h"
#include "moat/ttrpc.h"
#include "ttrpc.pb-c.h"

static int
h_stub (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        /* an error for odd-sized requests: both reply paths run */
        if (protobuf_c_message_get_packed_size (req) & 1)
                return moat_make_error (err, EINVAL, "stub: %s", req->descriptor->name);
        Moat__Agent__V1__Empty *e = malloc (sizeof *e);
        moat__agent__v1__empty__init (e);
        *resp = &e->base;
        return 0;
}

static struct ttrpc_method methods[FZ_NMETHODS];
static struct ttrpc_service service = {MOAT_AGENT_SERVICE, methods, FZ_NMETHODS};

static uint8_t out[1 << 16];

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
        struct fz f = {data, size};
        if (methods[0].name == NULL) {
                moat_log_init ("/dev/null", 0, 1);
                for (size_t i = 0; i < FZ_NMETHODS; i++)
                        methods[i] = (struct ttrpc_method){fz_methods[i].name, fz_methods[i].req, h_stub, 0};
        }
        uint8_t mode = fz_u8 (&f);
        if (!(mode & 0x80)) {
                fz_unpack_repack (fz_methods[mode % FZ_NMETHODS].req, f.p, f.n);
                return 0;
        }

        size_t n = 0;
        for (int frames = 0; fz_more (&f) && frames < 16; frames++) {
                uint8_t kind = fz_u8 (&f);
                size_t len;
                const uint8_t *p;
                uint8_t payload[8192];
                size_t plen;
                if (kind & 1) { /* raw bytes */
                        p = fz_chunk (&f, 4096, &len);
                        if (n + len > sizeof out)
                                break;
                        memcpy (out + n, p, len);
                        n += len;
                        continue;
                }
                Ttrpc__Request r = TTRPC__REQUEST__INIT;
                char method[64], svc[64];
                const struct fz_method *fm = &fz_methods[fz_u8 (&f) % FZ_NMETHODS];
                snprintf (method, sizeof method, "%s", fm->name);
                snprintf (svc, sizeof svc, "%s", (kind & 2) ? "other.Service" : MOAT_AGENT_SERVICE);
                r.service = svc;
                r.method = method;
                if (kind & 4)
                        method[fz_u8 (&f) % (strlen (method) + 1)] = '\0';
                p = fz_chunk (&f, 2048, &len);
                r.payload.data = (uint8_t *)p;
                r.payload.len = len;
                r.timeout_nano = (kind & 8) ? (int64_t)fz_u64 (&f) : 0;
                Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT, *kvs[1] = {&kv};
                if (kind & 16) {
                        r.n_metadata = 1;
                        r.metadata = kvs;
                }
                plen = ttrpc__request__get_packed_size (&r);
                if (plen > sizeof payload)
                        break;
                ttrpc__request__pack (&r, payload);
                uint32_t hlen = (kind & 32) ? fz_u32 (&f) : (uint32_t)plen;
                uint32_t sid = (kind & 64) ? fz_u32 (&f) : 2u * frames + 1;
                uint8_t type = (kind & 128) ? fz_u8 (&f) : TTRPC_TYPE_REQUEST, flags = 0;
                if (n + TTRPC_HEADER_LEN + plen > sizeof out)
                        break;
                uint8_t *h = out + n;
                h[0] = hlen >> 24, h[1] = hlen >> 16, h[2] = hlen >> 8, h[3] = hlen;
                h[4] = sid >> 24, h[5] = sid >> 16, h[6] = sid >> 8, h[7] = sid;
                h[8] = type, h[9] = flags;
                memcpy (h + TTRPC_HEADER_LEN, payload, plen);
                n += TTRPC_HEADER_LEN + plen;
        }

        int sv[2];
        if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                abort ();
        /* the socket buffer holds it all: write, half-close, serve to EOF */
        int sz = 1 << 20;
        setsockopt (sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt (sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        setsockopt (sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        setsockopt (sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        if (n > 0 && send (sv[0], out, n, MSG_NOSIGNAL) != (ssize_t)n)
                abort ();
        shutdown (sv[0], SHUT_WR);
        moat_error_t err = NULL;
        ttrpc_serve (sv[1], &service, 1, NULL, &err); /* closes sv[1] */
        moat_error_release (&err);
        close (sv[0]);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* ttrpc framing, client and server over socketpair(). The test service uses
 * ttrpc.KeyValue as request and response type. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "moat/ttrpc.h"
#include "moat/util.h"
#include "ttrpc.pb-c.h"

#define SVC "moat.test.v1.Test"

/* --- test service --- */

static int block_pipe[2] = {-1, -1};

static int
h_echo (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Ttrpc__KeyValue *in = (const Ttrpc__KeyValue *)req;
        Ttrpc__KeyValue *out = xmalloc (sizeof *out);
        ttrpc__key_value__init (out);
        out->key = xstrdup (in->value); /* swapped, to prove the handler ran */
        out->value = xasprintf_r ("%s/%s", in->key, (const char *)ctx);
        *resp = &out->base;
        return 0;
}

static int
h_fail (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        const Ttrpc__KeyValue *in = (const Ttrpc__KeyValue *)req;
        return moat_make_error (err, ENOENT, "container %s", in->key);
}

static int
h_fail_noerrno (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        return moat_make_error (err, 0, "plain failure");
}

static int
h_empty (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        /* a response built with the INIT macro: static empty strings */
        Ttrpc__KeyValue *out = xmalloc (sizeof *out);
        ttrpc__key_value__init (out);
        *resp = &out->base;
        return 0;
}

static int
h_block (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err)
{
        char c;
        if (read (block_pipe[0], &c, 1) != 1)
                return moat_make_error (err, errno, "read block pipe");
        return h_echo (ctx, req, resp, err);
}

static const struct ttrpc_method methods[] = {
        {"Echo", &ttrpc__key_value__descriptor, h_echo, 0},
        {"Fail", &ttrpc__key_value__descriptor, h_fail, 0},
        {"FailPlain", &ttrpc__key_value__descriptor, h_fail_noerrno, 0},
        {"Empty", &ttrpc__key_value__descriptor, h_empty, 0},
        {"Block", &ttrpc__key_value__descriptor, h_block, 1},
};
static const struct ttrpc_service services[] = {
        {"other.Service", NULL, 0},
        {SVC, methods, ARRAY_SIZE (methods)},
};

struct server {
        pthread_t th;
        int fd;
        int ret;
        char errmsg[512];
};

static void *
server_thread (void *arg)
{
        struct server *s = arg;
        moat_error_t err = NULL;
        s->ret = ttrpc_serve (s->fd, services, ARRAY_SIZE (services), "ctx", &err);
        if (err)
                snprintf (s->errmsg, sizeof s->errmsg, "%s", err->msg);
        moat_error_release (&err);
        return NULL;
}

/* Starts a server on one end of a socketpair; returns the other end. */
static int
start_server (struct server *s)
{
        int sv[2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        memset (s, 0, sizeof *s);
        s->fd = sv[1];
        assert_int_equal (pthread_create (&s->th, NULL, server_thread, s), 0);
        return sv[0];
}

static void
stop_server (struct server *s)
{
        pthread_join (s->th, NULL);
}

static ProtobufCMessage *
kv (Ttrpc__KeyValue *m, const char *k, const char *v)
{
        ttrpc__key_value__init (m);
        m->key = (char *)k;
        m->value = (char *)v;
        return &m->base;
}

/* Writes a raw request frame. */
static void
raw_request (int fd, uint32_t id, const char *service, const char *method, const ProtobufCMessage *payload)
{
        Ttrpc__Request r = TTRPC__REQUEST__INIT;
        uint8_t pbuf[4096], fbuf[8192];
        size_t plen = protobuf_c_message_pack (payload, pbuf), flen;
        moat_error_t err = NULL;
        r.service = (char *)service;
        r.method = (char *)method;
        r.payload.data = pbuf;
        r.payload.len = plen;
        flen = ttrpc__request__pack (&r, fbuf);
        assert_int_equal (ttrpc_write_frame (fd, id, TTRPC_TYPE_REQUEST, 0, fbuf, flen, &err), 0);
}

static Ttrpc__Response *
raw_response (int fd, uint32_t *id)
{
        uint8_t type, flags, *buf = NULL;
        size_t len;
        moat_error_t err = NULL;
        Ttrpc__Response *r;
        assert_int_equal (ttrpc_read_frame (fd, id, &type, &flags, &buf, &len, &err), 1);
        assert_int_equal (type, TTRPC_TYPE_RESPONSE);
        r = ttrpc__response__unpack (NULL, len, buf);
        free (buf);
        assert_non_null (r);
        return r;
}

/* --- framing --- */

static void
test_frame_roundtrip (void **state)
{
        int sv[2];
        moat_error_t err = NULL;
        uint8_t hdr[TTRPC_HEADER_LEN], type, flags, *buf = NULL;
        uint32_t id;
        size_t len;

        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal (ttrpc_write_frame (sv[0], 0x01020305, 2, 0x7, "hello", 5, &err), 0);
        /* header layout on the wire: big-endian length and stream id */
        assert_int_equal (read (sv[1], hdr, sizeof hdr), sizeof hdr);
        const uint8_t want[] = {0, 0, 0, 5, 1, 2, 3, 5, 2, 7};
        assert_memory_equal (hdr, want, sizeof want);
        char body[5];
        assert_int_equal (read (sv[1], body, 5), 5);
        assert_memory_equal (body, "hello", 5);

        assert_int_equal (ttrpc_write_frame (sv[0], 7, 1, 0, "abc", 3, &err), 0);
        assert_int_equal (ttrpc_write_frame (sv[0], 9, 3, 1, NULL, 0, &err), 0);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), 1);
        assert_int_equal (id, 7);
        assert_int_equal (type, 1);
        assert_int_equal (len, 3);
        assert_memory_equal (buf, "abc", 3);
        free (buf);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), 1);
        assert_int_equal (id, 9);
        assert_int_equal (flags, 1);
        assert_int_equal (len, 0);
        free (buf);
        close (sv[0]);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), 0);
        assert_null (err);
        close (sv[1]);
}

static void
test_frame_truncated (void **state)
{
        int sv[2];
        moat_error_t err = NULL;
        uint8_t type, flags, *buf = NULL;
        uint32_t id;
        size_t len;

        /* EOF inside the header */
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal (write (sv[0], "\0\0\0", 3), 3);
        close (sv[0]);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), -1);
        assert_non_null (err);
        assert_int_equal (err->errno_, EPROTO);
        assert_non_null (strstr (err->msg, "truncated frame header"));
        assert_null (buf);
        moat_error_release (&err);
        close (sv[1]);

        /* EOF inside the payload */
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const uint8_t h[] = {0, 0, 0, 10, 0, 0, 0, 1, 1, 0, 'x', 'y'};
        assert_int_equal (write (sv[0], h, sizeof h), sizeof h);
        close (sv[0]);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), -1);
        assert_non_null (strstr (err->msg, "truncated frame"));
        assert_int_equal (err->errno_, EPROTO);
        assert_null (buf);
        moat_error_release (&err);
        close (sv[1]);
}

struct writer {
        int fd;
        uint32_t claimed;
        size_t actual;
};

static void *
writer_thread (void *arg)
{
        struct writer *w = arg;
        uint8_t h[TTRPC_HEADER_LEN] = {
                w->claimed >> 24, w->claimed >> 16, w->claimed >> 8, w->claimed, 0, 0, 0, 5, 1, 0};
        char *junk = xzalloc (w->actual);
        moat_error_t err = NULL;
        write_all (w->fd, h, sizeof h);
        write_all (w->fd, junk, w->actual);
        free (junk);
        /* a normal frame follows */
        ttrpc_write_frame (w->fd, 7, 1, 0, "ok", 2, &err);
        moat_error_release (&err);
        return NULL;
}

static void
test_frame_oversize (void **state)
{
        int sv[2];
        moat_error_t err = NULL;
        uint8_t type = 0, flags, *buf = NULL;
        uint32_t id = 0;
        size_t len;
        pthread_t th;
        struct writer w;

        /* writing more than the maximum is refused before anything is sent */
        char *big = xzalloc (TTRPC_MAX_MESSAGE + 1);
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal (ttrpc_write_frame (sv[0], 1, 1, 0, big, TTRPC_MAX_MESSAGE + 1, &err), -1);
        assert_int_equal (err->errno_, EMSGSIZE);
        moat_error_release (&err);
        free (big);
        assert_int_equal (set_nonblock (sv[1], true), 0);
        assert_int_equal (read (sv[1], &type, 1), -1);
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (set_nonblock (sv[1], false), 0);

        /* reading an oversized frame: error, payload skipped, stream stays in sync */
        w.fd = sv[0];
        w.claimed = TTRPC_MAX_MESSAGE + 1;
        w.actual = TTRPC_MAX_MESSAGE + 1;
        assert_int_equal (pthread_create (&th, NULL, writer_thread, &w), 0);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), -1);
        assert_int_equal (err->errno_, EMSGSIZE);
        assert_non_null (strstr (err->msg, "exceeds the maximum"));
        assert_int_equal (id, 5);
        assert_null (buf);
        moat_error_release (&err);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), 1);
        assert_int_equal (id, 7);
        assert_int_equal (len, 2);
        free (buf);
        pthread_join (th, NULL);
        close (sv[0]);
        close (sv[1]);

        /* a huge claimed length with a short body: error, nothing huge allocated */
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        const uint8_t h[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 1, 0, 1, 2, 3};
        assert_int_equal (write (sv[0], h, sizeof h), sizeof h);
        close (sv[0]);
        assert_int_equal (ttrpc_read_frame (sv[1], &id, &type, &flags, &buf, &len, &err), -1);
        assert_int_equal (err->errno_, EPROTO);
        assert_null (buf);
        moat_error_release (&err);
        close (sv[1]);
}

/* --- client + server --- */

static void
test_call_roundtrip (void **state)
{
        struct server s;
        struct ttrpc_client *c = ttrpc_client_new (start_server (&s));
        moat_error_t err = NULL;
        Ttrpc__KeyValue req;
        Ttrpc__KeyValue *resp = NULL;

        for (int i = 0; i < 3; i++) {
                char v[32];
                snprintf (v, sizeof v, "value%d", i);
                assert_int_equal (ttrpc_call (c, SVC, "Echo", kv (&req, "key", v), &ttrpc__key_value__descriptor,
                                              (ProtobufCMessage **)&resp, 1000, &err),
                                  0);
                assert_null (err);
                assert_non_null (resp);
                assert_string_equal (resp->key, v);
                assert_string_equal (resp->value, "key/ctx");
                protobuf_c_message_free_unpacked (&resp->base, NULL);
        }
        /* a response built with INIT (empty strings) comes back empty */
        assert_int_equal (ttrpc_call (c, SVC, "Empty", kv (&req, "a", "b"), &ttrpc__key_value__descriptor,
                                      (ProtobufCMessage **)&resp, 0, &err),
                          0);
        assert_string_equal (resp->key, "");
        protobuf_c_message_free_unpacked (&resp->base, NULL);
        /* resp may be NULL when the caller does not care */
        assert_int_equal (ttrpc_call (c, SVC, "Echo", kv (&req, "a", "b"), NULL, NULL, 0, &err), 0);

        ttrpc_client_free (c);
        stop_server (&s);
        assert_int_equal (s.ret, 0);
        /* ttrpc_serve closed its fd */
        assert_int_equal (fcntl (s.fd, F_GETFD), -1);
        assert_int_equal (errno, EBADF);
}

static void
test_call_unknown (void **state)
{
        struct server s;
        struct ttrpc_client *c = ttrpc_client_new (start_server (&s));
        moat_error_t err = NULL;
        Ttrpc__KeyValue req;
        ProtobufCMessage *resp = (ProtobufCMessage *)&req;

        assert_int_equal (
                ttrpc_call (c, SVC, "Nope", kv (&req, "a", "b"), &ttrpc__key_value__descriptor, &resp, 0, &err), -1);
        assert_null (resp);
        assert_non_null (err);
        assert_string_equal (err->msg, "Nope: " SVC "/Nope not implemented");
        assert_int_equal (err->errno_, ENOSYS);
        moat_error_release (&err);

        assert_int_equal (
                ttrpc_call (c, "no.Such", "Echo", kv (&req, "a", "b"), &ttrpc__key_value__descriptor, &resp, 0, &err),
                -1);
        assert_string_equal (err->msg, "Echo: no.Such/Echo not implemented");
        moat_error_release (&err);

        /* the connection still works */
        assert_int_equal (
                ttrpc_call (c, SVC, "Echo", kv (&req, "a", "b"), &ttrpc__key_value__descriptor, &resp, 0, &err), 0);
        protobuf_c_message_free_unpacked (resp, NULL);
        ttrpc_client_free (c);
        stop_server (&s);
}

static void
test_call_handler_error (void **state)
{
        struct server s;
        struct ttrpc_client *c = ttrpc_client_new (start_server (&s));
        moat_error_t err = NULL;
        Ttrpc__KeyValue req;
        ProtobufCMessage *resp = NULL;

        assert_int_equal (
                ttrpc_call (c, SVC, "Fail", kv (&req, "abc", ""), &ttrpc__key_value__descriptor, &resp, 0, &err), -1);
        assert_int_equal (err->errno_, ENOENT);
        assert_string_equal (err->msg, "Fail: container abc: No such file or directory");
        moat_error_release (&err);

        assert_int_equal (
                ttrpc_call (c, SVC, "FailPlain", kv (&req, "", ""), &ttrpc__key_value__descriptor, &resp, 0, &err), -1);
        assert_int_equal (err->errno_, EIO); /* UNKNOWN */
        assert_string_equal (err->msg, "FailPlain: plain failure");
        moat_error_release (&err);

        /* the peer's message: terminal escapes escaped, cut at MOAT_PEER_TEXT_MAX */
        {
                char *key = xmalloc (8192);
                memset (key, 'A', 8191);
                key[8191] = '\0';
                memcpy (key, "\033]0;x\007\n", 7);
                assert_int_equal (
                        ttrpc_call (c, SVC, "Fail", kv (&req, key, ""), &ttrpc__key_value__descriptor, &resp, 0, &err),
                        -1);
                assert_non_null (strstr (err->msg, "Fail: container \\x1b]0;x\\x07\nAAAA"));
                assert_null (strchr (err->msg, '\033'));
                assert_non_null (strstr (err->msg, " more bytes)"));
                assert_true (strlen (err->msg) < MOAT_PEER_TEXT_MAX + 100);
                moat_error_release (&err);
                free (key);
        }
        ttrpc_client_free (c);
        stop_server (&s);
}

static void
test_server_bad_payload (void **state)
{
        struct server s;
        int fd = start_server (&s);
        Ttrpc__Request r = TTRPC__REQUEST__INIT;
        uint8_t bad[] = {0xff, 0xff, 0xff}, fbuf[256];
        moat_error_t err = NULL;
        uint32_t id;
        size_t flen;
        Ttrpc__Response *rsp;

        r.service = SVC;
        r.method = "Echo";
        r.payload.data = bad;
        r.payload.len = sizeof bad;
        flen = ttrpc__request__pack (&r, fbuf);
        assert_int_equal (ttrpc_write_frame (fd, 3, TTRPC_TYPE_REQUEST, 0, fbuf, flen, &err), 0);
        rsp = raw_response (fd, &id);
        assert_int_equal (id, 3);
        assert_non_null (rsp->status);
        assert_int_equal (rsp->status->code, TTRPC_INVALID_ARGUMENT);
        ttrpc__response__free_unpacked (rsp, NULL);

        /* garbage instead of a ttrpc.Request */
        assert_int_equal (ttrpc_write_frame (fd, 5, TTRPC_TYPE_REQUEST, 0, bad, sizeof bad, &err), 0);
        rsp = raw_response (fd, &id);
        assert_int_equal (id, 5);
        assert_int_equal (rsp->status->code, TTRPC_INVALID_ARGUMENT);
        ttrpc__response__free_unpacked (rsp, NULL);

        /* an OK response carries a Status with code 0, like containerd's server */
        Ttrpc__KeyValue req;
        raw_request (fd, 7, SVC, "Echo", kv (&req, "k", "v"));
        rsp = raw_response (fd, &id);
        assert_int_equal (id, 7);
        assert_non_null (rsp->status);
        assert_int_equal (rsp->status->code, 0);
        Ttrpc__KeyValue *out = ttrpc__key_value__unpack (NULL, rsp->payload.len, rsp->payload.data);
        assert_string_equal (out->key, "v");
        ttrpc__key_value__free_unpacked (out, NULL);
        ttrpc__response__free_unpacked (rsp, NULL);
        close (fd);
        stop_server (&s);
        assert_int_equal (s.ret, 0);
}

static void
test_server_blocking (void **state)
{
        struct server s;
        int fd;
        uint32_t id;
        Ttrpc__KeyValue req;
        Ttrpc__Response *rsp;

        assert_int_equal (pipe (block_pipe), 0);
        fd = start_server (&s);
        raw_request (fd, 1, SVC, "Block", kv (&req, "blocked", "b"));
        raw_request (fd, 3, SVC, "Echo", kv (&req, "quick", "q"));
        /* the Echo answer arrives while Block is still waiting */
        rsp = raw_response (fd, &id);
        assert_int_equal (id, 3);
        assert_int_equal (rsp->status->code, 0);
        ttrpc__response__free_unpacked (rsp, NULL);

        /* close our end while Block still runs: the server returns, and the
         * blocked handler still answers on a valid fd afterwards (no crash) */
        shutdown (fd, SHUT_WR);
        stop_server (&s);
        assert_int_equal (s.ret, 0);
        assert_int_equal (write (block_pipe[1], "x", 1), 1);
        rsp = raw_response (fd, &id);
        assert_int_equal (id, 1);
        assert_int_equal (rsp->status->code, 0);
        Ttrpc__KeyValue *out = ttrpc__key_value__unpack (NULL, rsp->payload.len, rsp->payload.data);
        assert_string_equal (out->key, "b");
        assert_string_equal (out->value, "blocked/ctx");
        ttrpc__key_value__free_unpacked (out, NULL);
        ttrpc__response__free_unpacked (rsp, NULL);
        /* and then the server side is closed for good */
        uint8_t t, f, *buf = NULL;
        size_t len;
        moat_error_t err = NULL;
        assert_int_equal (ttrpc_read_frame (fd, &id, &t, &f, &buf, &len, &err), 0);
        close (fd);
        close (block_pipe[0]);
        close (block_pipe[1]);
}

static void *
oversize_writer (void *arg)
{
        int fd = *(int *)arg;
        uint32_t n = TTRPC_MAX_MESSAGE + 100;
        uint8_t h[TTRPC_HEADER_LEN] = {n >> 24, n >> 16, n >> 8, n, 0, 0, 0, 1, TTRPC_TYPE_REQUEST, 0};
        char *junk = xzalloc (n);
        write_all (fd, h, sizeof h);
        write_all (fd, junk, n);
        free (junk);
        return NULL;
}

static void
test_server_oversize (void **state)
{
        struct server s;
        int fd = start_server (&s);
        pthread_t th;
        uint32_t id;
        Ttrpc__KeyValue req;
        Ttrpc__Response *rsp;

        assert_int_equal (pthread_create (&th, NULL, oversize_writer, &fd), 0);
        rsp = raw_response (fd, &id);
        pthread_join (th, NULL);
        assert_int_equal (id, 1);
        assert_int_equal (rsp->status->code, TTRPC_RESOURCE_EXHAUSTED);
        ttrpc__response__free_unpacked (rsp, NULL);
        /* still serving */
        raw_request (fd, 3, SVC, "Echo", kv (&req, "k", "v"));
        rsp = raw_response (fd, &id);
        assert_int_equal (id, 3);
        assert_int_equal (rsp->status->code, 0);
        ttrpc__response__free_unpacked (rsp, NULL);
        close (fd);
        stop_server (&s);
}

static void
test_server_truncated (void **state)
{
        struct server s;
        int fd = start_server (&s);
        assert_int_equal (write (fd, "\0\0\0\x10\0\0\0\1\1\0abc", 13), 13);
        close (fd);
        stop_server (&s);
        assert_int_equal (s.ret, -1);
        assert_non_null (strstr (s.errmsg, "truncated frame"));
}

/* A fake server that records request ids and answers (or not) as told. */
struct fake {
        int fd;
        int answer;      /* 0: never answer; 1: answer; 2: answer without status; 3: close */
        int stale_first; /* send a response for another stream first */
        uint32_t ids[8];
        int n;
};

static void *
fake_thread (void *arg)
{
        struct fake *f = arg;
        for (;;) {
                uint8_t t, fl, *buf = NULL;
                uint32_t id;
                size_t len;
                moat_error_t err = NULL;
                int r = ttrpc_read_frame (f->fd, &id, &t, &fl, &buf, &len, &err);
                moat_error_release (&err);
                if (r <= 0)
                        break;
                if (f->n < 8)
                        f->ids[f->n++] = id;
                Ttrpc__Request *req = ttrpc__request__unpack (NULL, len, buf);
                free (buf);
                assert_non_null (req);
                if (f->answer == 3) {
                        ttrpc__request__free_unpacked (req, NULL);
                        break;
                }
                if (f->answer) {
                        Ttrpc__Response rsp = TTRPC__RESPONSE__INIT;
                        uint8_t out[4096];
                        size_t n;
                        rsp.payload = req->payload; /* echo the request */
                        n = ttrpc__response__pack (&rsp, out);
                        if (f->stale_first)
                                ttrpc_write_frame (f->fd, id + 100, TTRPC_TYPE_RESPONSE, 0, out, n, &err);
                        ttrpc_write_frame (f->fd, id, TTRPC_TYPE_RESPONSE, 0, out, n, &err);
                        moat_error_release (&err);
                }
                ttrpc__request__free_unpacked (req, NULL);
        }
        close (f->fd);
        return NULL;
}

static struct ttrpc_client *
start_fake (struct fake *f, pthread_t *th, int answer)
{
        int sv[2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), 0);
        memset (f, 0, sizeof *f);
        f->fd = sv[1];
        f->answer = answer;
        f->stale_first = 1;
        assert_int_equal (pthread_create (th, NULL, fake_thread, f), 0);
        return ttrpc_client_new (sv[0]);
}

static void
test_client_ids_and_no_status (void **state)
{
        struct fake f;
        pthread_t th;
        struct ttrpc_client *c = start_fake (&f, &th, 2);
        moat_error_t err = NULL;
        Ttrpc__KeyValue req;
        Ttrpc__KeyValue *resp = NULL;

        for (int i = 0; i < 3; i++) {
                /* responses without a Status are OK; stale stream ids are skipped */
                assert_int_equal (ttrpc_call (c, SVC, "Echo", kv (&req, "k", "v"), &ttrpc__key_value__descriptor,
                                              (ProtobufCMessage **)&resp, 1000, &err),
                                  0);
                assert_string_equal (resp->key, "k");
                protobuf_c_message_free_unpacked (&resp->base, NULL);
        }
        ttrpc_client_free (c);
        pthread_join (th, NULL);
        assert_int_equal (f.n, 3);
        assert_int_equal (f.ids[0], 1);
        assert_int_equal (f.ids[1], 3);
        assert_int_equal (f.ids[2], 5);
}

static void
test_client_timeout (void **state)
{
        struct fake f;
        pthread_t th;
        struct ttrpc_client *c = start_fake (&f, &th, 0);
        moat_error_t err = NULL;
        Ttrpc__KeyValue req;
        ProtobufCMessage *resp = NULL;
        int64_t t0 = now_ms (), dt;

        assert_int_equal (
                ttrpc_call (c, SVC, "Wait", kv (&req, "k", "v"), &ttrpc__key_value__descriptor, &resp, 200, &err), -1);
        dt = now_ms () - t0;
        assert_true (dt >= 190 && dt < 2000);
        assert_int_equal (err->errno_, ETIMEDOUT);
        assert_non_null (strstr (err->msg, "Wait: no whole answer within 200 ms"));
        assert_null (resp);
        moat_error_release (&err);
        ttrpc_client_free (c);
        pthread_join (th, NULL);
}

static void
test_client_peer_closed (void **state)
{
        struct fake f;
        pthread_t th;
        struct ttrpc_client *c = start_fake (&f, &th, 3);
        moat_error_t err = NULL;
        Ttrpc__KeyValue req;
        ProtobufCMessage *resp = NULL;

        assert_int_equal (
                ttrpc_call (c, SVC, "Echo", kv (&req, "k", "v"), &ttrpc__key_value__descriptor, &resp, 0, &err), -1);
        assert_int_equal (err->errno_, ECONNRESET);
        assert_non_null (strstr (err->msg, "closed"));
        moat_error_release (&err);
        pthread_join (th, NULL);
        /* writing to the closed peer: an error (EPIPE), not SIGPIPE */
        assert_int_equal (
                ttrpc_call (c, SVC, "Echo", kv (&req, "k", "v"), &ttrpc__key_value__descriptor, &resp, 0, &err), -1);
        moat_error_release (&err);
        ttrpc_client_free (c);
}

static void
test_free_response (void **state)
{
        /* malloc'd everything, plus static empty strings in repeated fields:
         * ASan/valgrind prove nothing leaks and nothing static is freed */
        Ttrpc__Request *r = xmalloc (sizeof *r);
        ttrpc__request__init (r);
        r->service = xstrdup ("svc");
        r->payload.data = xmalloc (4);
        r->payload.len = 4;
        r->n_metadata = 2;
        r->metadata = xmalloc (2 * sizeof *r->metadata);
        for (int i = 0; i < 2; i++) {
                r->metadata[i] = xmalloc (sizeof (Ttrpc__KeyValue));
                ttrpc__key_value__init (r->metadata[i]);
        }
        r->metadata[0]->key = xstrdup ("k");
        ttrpc_free_response (&r->base);

        Ttrpc__Status *st = xmalloc (sizeof *st);
        ttrpc__status__init (st);
        st->n_details = 2;
        st->details = xzalloc (2 * sizeof *st->details);
        st->details[0].data = xmalloc (3);
        st->details[0].len = 3;
        ttrpc_free_response (&st->base);
        ttrpc_free_response (NULL);
}

static void
test_code_mapping (void **state)
{
        const int errs[] = {ENOENT, EEXIST, EINVAL, ENOSYS, EPERM, ETIMEDOUT, EBUSY};
        const int codes[] = {TTRPC_NOT_FOUND,          TTRPC_ALREADY_EXISTS,    TTRPC_INVALID_ARGUMENT,
                             TTRPC_UNIMPLEMENTED,      TTRPC_PERMISSION_DENIED, TTRPC_DEADLINE_EXCEEDED,
                             TTRPC_FAILED_PRECONDITION};
        for (size_t i = 0; i < ARRAY_SIZE (errs); i++) {
                assert_int_equal (ttrpc_code_from_errno (errs[i]), codes[i]);
                assert_int_equal (ttrpc_errno_from_code (codes[i]), errs[i]);
        }
        assert_int_equal (ttrpc_code_from_errno (EACCES), TTRPC_PERMISSION_DENIED);
        assert_int_equal (ttrpc_code_from_errno (EALREADY), TTRPC_FAILED_PRECONDITION);
        assert_int_equal (ttrpc_code_from_errno (EXDEV), TTRPC_UNKNOWN);
        assert_int_equal (ttrpc_code_from_errno (0), TTRPC_OK);
        assert_int_equal (ttrpc_errno_from_code (TTRPC_OK), 0);
        assert_true (ttrpc_errno_from_code (TTRPC_UNKNOWN) != 0);
        assert_true (ttrpc_errno_from_code (TTRPC_INTERNAL) != 0);
        assert_true (ttrpc_errno_from_code (999) != 0);
}

int
main (void)
{
        signal (SIGPIPE, SIG_DFL); /* prove the library never raises it */
        const struct CMUnitTest tests[] = {
                cmocka_unit_test (test_frame_roundtrip),
                cmocka_unit_test (test_frame_truncated),
                cmocka_unit_test (test_frame_oversize),
                cmocka_unit_test (test_call_roundtrip),
                cmocka_unit_test (test_call_unknown),
                cmocka_unit_test (test_call_handler_error),
                cmocka_unit_test (test_server_bad_payload),
                cmocka_unit_test (test_server_blocking),
                cmocka_unit_test (test_server_oversize),
                cmocka_unit_test (test_server_truncated),
                cmocka_unit_test (test_client_ids_and_no_status),
                cmocka_unit_test (test_client_timeout),
                cmocka_unit_test (test_client_peer_closed),
                cmocka_unit_test (test_free_response),
                cmocka_unit_test (test_code_mapping),
        };
        return cmocka_run_group_tests (tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* ttrpc over a stream fd, wire-compatible with containerd's ttrpc.
 *
 * Frame: 10-byte header (payload length u32 BE, stream id u32 BE, type u8,
 * flags u8), then the payload: a ttrpc.Request (type 1) or a ttrpc.Response
 * (type 2). Clients use odd, increasing stream ids. A length above
 * TTRPC_MAX_MESSAGE is never allocated: the payload is discarded and the
 * frame is rejected with EMSGSIZE (the server answers RESOURCE_EXHAUSTED on
 * that stream, as containerd does, and keeps serving). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "moat/ttrpc.h"
#include "moat/util.h"
#include "ttrpc.pb-c.h"

int
ttrpc_code_from_errno (int e)
{
        switch (e) {
        case 0:
                return TTRPC_OK;
        case ENOENT:
        case ESRCH:
                return TTRPC_NOT_FOUND;
        case EEXIST:
                return TTRPC_ALREADY_EXISTS;
        case EINVAL:
                return TTRPC_INVALID_ARGUMENT;
        case ENOSYS:
        case EOPNOTSUPP:
                return TTRPC_UNIMPLEMENTED;
        case EPERM:
        case EACCES:
                return TTRPC_PERMISSION_DENIED;
        case ETIMEDOUT:
                return TTRPC_DEADLINE_EXCEEDED;
        case EBUSY:
        case EALREADY:
                return TTRPC_FAILED_PRECONDITION;
        case ECANCELED:
                return TTRPC_CANCELLED;
        case EMSGSIZE:
        case ENOMEM:
        case ENOSPC:
                return TTRPC_RESOURCE_EXHAUSTED;
        case ERANGE:
                return TTRPC_OUT_OF_RANGE;
        case ECONNABORTED:
                return TTRPC_ABORTED;
        case EAGAIN:
        case ECONNREFUSED:
                return TTRPC_UNAVAILABLE;
        default:
                return TTRPC_UNKNOWN;
        }
}

int
ttrpc_errno_from_code (int code)
{
        switch (code) {
        case TTRPC_OK:
                return 0;
        case TTRPC_NOT_FOUND:
                return ENOENT;
        case TTRPC_ALREADY_EXISTS:
                return EEXIST;
        case TTRPC_INVALID_ARGUMENT:
                return EINVAL;
        case TTRPC_UNIMPLEMENTED:
                return ENOSYS;
        case TTRPC_PERMISSION_DENIED:
                return EPERM;
        case TTRPC_DEADLINE_EXCEEDED:
                return ETIMEDOUT;
        case TTRPC_FAILED_PRECONDITION:
                return EBUSY;
        case TTRPC_CANCELLED:
                return ECANCELED;
        case TTRPC_RESOURCE_EXHAUSTED:
                return ENOSPC;
        case TTRPC_OUT_OF_RANGE:
                return ERANGE;
        case TTRPC_ABORTED:
                return ECONNABORTED;
        case TTRPC_UNAVAILABLE:
                return ECONNREFUSED;
        case TTRPC_INTERNAL:
        case TTRPC_UNKNOWN:
        default:
                return EIO;
        }
}

void
ttrpc_header_pack (uint8_t h[TTRPC_HEADER_LEN], uint32_t len, uint32_t stream_id, uint8_t type, uint8_t flags)
{
        h[0] = len >> 24;
        h[1] = len >> 16;
        h[2] = len >> 8;
        h[3] = len;
        h[4] = stream_id >> 24;
        h[5] = stream_id >> 16;
        h[6] = stream_id >> 8;
        h[7] = stream_id;
        h[8] = type;
        h[9] = flags;
}

/* --- low-level I/O with an optional deadline (ms on the monotonic clock, <0 = none) --- */

static int
wait_fd (int fd, short events, int64_t deadline)
{
        for (;;) {
                struct pollfd p = {.fd = fd, .events = events};
                int tmo = -1, r;
                if (deadline >= 0) {
                        int64_t left = deadline - now_ms ();
                        if (left <= 0)
                                return errno = ETIMEDOUT, -1;
                        tmo = left > 0x7fffffff ? 0x7fffffff : (int)left;
                }
                r = poll (&p, 1, tmo);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (r == 0)
                        return errno = ETIMEDOUT, -1;
                return 0;
        }
}

/* Reads up to n bytes; returns the count (< n only at EOF) or -1 with errno.
 * *done tells how many bytes were consumed even on error. */
static ssize_t
read_deadline (int fd, void *buf, size_t n, int64_t deadline, size_t *done)
{
        *done = 0;
        while (*done < n) {
                ssize_t r;
                if (wait_fd (fd, POLLIN, deadline) < 0)
                        return -1;
                r = read (fd, (char *)buf + *done, n - *done);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r < 0)
                        return -1;
                if (r == 0)
                        break;
                *done += r;
        }
        return *done;
}

static ssize_t
write_deadline (int fd, const void *buf, size_t n, int64_t deadline, size_t *done)
{
        *done = 0;
        while (*done < n) {
                ssize_t r;
                if (wait_fd (fd, POLLOUT, deadline) < 0)
                        return -1;
                r = send (fd, (const char *)buf + *done, n - *done, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (r < 0 && errno == ENOTSOCK)
                        r = write (fd, (const char *)buf + *done, n - *done);
                if (r < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (r < 0)
                        return -1;
                *done += r;
        }
        return *done;
}

/* --- framing --- */

static int
write_frame_deadline (int fd, uint32_t stream_id, uint8_t type, uint8_t flags, const void *buf, size_t len,
                      int64_t deadline, bool *partial, moat_error_t *err)
{
        cleanup_free uint8_t *frame = NULL;
        size_t done = 0;

        if (partial)
                *partial = false;
        if (len > TTRPC_MAX_MESSAGE)
                return moat_make_error (err, EMSGSIZE, "ttrpc: message of %zu bytes exceeds the maximum of %u", len,
                                        TTRPC_MAX_MESSAGE);
        frame = xmalloc (TTRPC_HEADER_LEN + len);
        ttrpc_header_pack (frame, len, stream_id, type, flags);
        if (len)
                memcpy (frame + TTRPC_HEADER_LEN, buf, len);
        if (write_deadline (fd, frame, TTRPC_HEADER_LEN + len, deadline, &done) < 0) {
                if (partial)
                        *partial = done > 0;
                return moat_make_error (err, errno, "ttrpc: write frame");
        }
        return 0;
}

int
ttrpc_write_frame (int fd, uint32_t stream_id, uint8_t type, uint8_t flags, const void *buf, size_t len,
                   moat_error_t *err)
{
        return write_frame_deadline (fd, stream_id, type, flags, buf, len, -1, NULL, err);
}

/* Returns 1 with a frame, 0 at clean EOF, -1 on error. On an oversized frame
 * the payload is skipped, the header fields are filled and errno_ is
 * EMSGSIZE, so the stream stays in sync. *started tells whether any byte of
 * this frame was consumed (the stream is out of sync after an error then). */
static int
read_frame_deadline (int fd, uint32_t *stream_id, uint8_t *type, uint8_t *flags, uint8_t **buf, size_t *len,
                     int64_t deadline, bool *started, moat_error_t *err)
{
        uint8_t h[TTRPC_HEADER_LEN];
        cleanup_free uint8_t *payload = NULL;
        uint32_t n;
        size_t done = 0;
        ssize_t r;

        *buf = NULL;
        *len = 0;
        if (started)
                *started = false;
        r = read_deadline (fd, h, sizeof h, deadline, &done);
        if (started)
                *started = done > 0;
        if (r < 0)
                return moat_make_error (err, errno, "ttrpc: read frame header");
        if (r == 0)
                return 0;
        if ((size_t)r < sizeof h)
                return moat_make_error (err, EPROTO, "ttrpc: truncated frame header (%zd of %d bytes before EOF)", r,
                                        TTRPC_HEADER_LEN);
        n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
        *stream_id = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
        *type = h[8];
        *flags = h[9];
        if (n > TTRPC_MAX_MESSAGE) {
                uint8_t sink[16384];
                uint32_t left = n;
                while (left > 0) {
                        size_t chunk = left < sizeof sink ? left : sizeof sink;
                        r = read_deadline (fd, sink, chunk, deadline, &done);
                        if (r < 0)
                                return moat_make_error (err, errno, "ttrpc: read oversized frame");
                        if ((size_t)r < chunk)
                                return moat_make_error (err, EPROTO, "ttrpc: truncated frame (EOF in payload)");
                        left -= chunk;
                }
                return moat_make_error (err, EMSGSIZE, "ttrpc: message of %u bytes exceeds the maximum of %u", n,
                                        TTRPC_MAX_MESSAGE);
        }
        payload = xmalloc (n);
        r = read_deadline (fd, payload, n, deadline, &done);
        if (r < 0)
                return moat_make_error (err, errno, "ttrpc: read frame payload");
        if ((size_t)r < n)
                return moat_make_error (err, EPROTO, "ttrpc: truncated frame (%zd of %u payload bytes before EOF)", r,
                                        n);
        *buf = steal_pointer (&payload);
        *len = n;
        return 1;
}

int
ttrpc_read_frame (int fd, uint32_t *stream_id, uint8_t *type, uint8_t *flags, uint8_t **buf, size_t *len,
                  moat_error_t *err)
{
        return read_frame_deadline (fd, stream_id, type, flags, buf, len, -1, NULL, err);
}

static uint8_t *
pack_message (const ProtobufCMessage *m, size_t *len)
{
        size_t n = protobuf_c_message_get_packed_size (m);
        uint8_t *buf = xmalloc (n);
        *len = protobuf_c_message_pack (m, buf);
        return buf;
}

/* --- response freeing --- */

/* Like protobuf_c_message_free_unpacked (which would also do: it frees with
 * free() when given a NULL allocator and skips singular strings equal to the
 * descriptor's default, i.e. protobuf_c_empty_string), but also tolerant of
 * protobuf_c_empty_string or NULL inside repeated string fields and of
 * static empty strings anywhere, which hand-built responses often contain. */
static bool
is_static_string (const char *s, const ProtobufCFieldDescriptor *f)
{
        return s == NULL || s == protobuf_c_empty_string || s == f->default_value;
}

void
ttrpc_free_response (ProtobufCMessage *m)
{
        const ProtobufCMessageDescriptor *d;

        if (m == NULL)
                return;
        d = m->descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *f = &d->fields[i];
                char *field = (char *)m + f->offset;

                if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    *(uint32_t *)((char *)m + f->quantifier_offset) != f->id)
                        continue;
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                        size_t n = *(size_t *)((char *)m + f->quantifier_offset);
                        void *arr = *(void **)field;
                        if (arr == NULL)
                                continue;
                        for (size_t j = 0; j < n; j++) {
                                if (f->type == PROTOBUF_C_TYPE_STRING) {
                                        char *s = ((char **)arr)[j];
                                        if (!is_static_string (s, f))
                                                free (s);
                                } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
                                        free (((ProtobufCBinaryData *)arr)[j].data);
                                } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                                        ttrpc_free_response (((ProtobufCMessage **)arr)[j]);
                                }
                        }
                        free (arr);
                } else if (f->type == PROTOBUF_C_TYPE_STRING) {
                        char *s = *(char **)field;
                        if (!is_static_string (s, f))
                                free (s);
                } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
                        const ProtobufCBinaryData *def = f->default_value;
                        void *data = ((ProtobufCBinaryData *)field)->data;
                        if (data != NULL && (def == NULL || def->data != data))
                                free (data);
                } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                        ProtobufCMessage *sm = *(ProtobufCMessage **)field;
                        if (sm != NULL && sm != f->default_value)
                                ttrpc_free_response (sm);
                }
        }
        for (unsigned i = 0; i < m->n_unknown_fields; i++)
                free (m->unknown_fields[i].data);
        free (m->unknown_fields);
        free (m);
}

/* --- client --- */

#define TTRPC_MAX_SKIPPED 1024

struct ttrpc_client {
        int fd;
        uint32_t next_id;
        bool broken; /* a timeout left a frame half-written or half-read */
        pthread_mutex_t lock;
};

struct ttrpc_client *
ttrpc_client_new (int fd)
{
        struct ttrpc_client *c = xzalloc (sizeof *c);
        c->fd = fd;
        c->next_id = 1;
        pthread_mutex_init (&c->lock, NULL);
        return c;
}

void
ttrpc_client_free (struct ttrpc_client *c)
{
        if (c == NULL)
                return;
        if (c->fd >= 0)
                close (c->fd);
        pthread_mutex_destroy (&c->lock);
        free (c);
}

int
ttrpc_client_fd (struct ttrpc_client *c)
{
        return c->fd;
}

static int
call_locked (struct ttrpc_client *c, const char *service, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int timeout_ms, moat_error_t *err)
{
        Ttrpc__Request r = TTRPC__REQUEST__INIT;
        cleanup_free uint8_t *payload = NULL;
        cleanup_free uint8_t *frame = NULL;
        size_t payload_len, frame_len;
        int64_t deadline = timeout_ms > 0 ? now_ms () + timeout_ms : -1;
        uint32_t id;
        bool partial = false;
        int skipped = 0;
        Ttrpc__Response *rsp;

        if (c->broken)
                return moat_make_error (err, EPIPE, "%s: ttrpc connection unusable after an earlier timeout", method);
        id = c->next_id;
        c->next_id += 2;
        if (c->next_id > 0x7fffffff)
                c->next_id = 1;

        payload = pack_message (req, &payload_len);
        r.service = (char *)service;
        r.method = (char *)method;
        r.payload.data = payload;
        r.payload.len = payload_len;
        if (timeout_ms > 0)
                r.timeout_nano = (int64_t)timeout_ms * 1000000;
        frame = pack_message (&r.base, &frame_len);
        if (write_frame_deadline (c->fd, id, TTRPC_TYPE_REQUEST, 0, frame, frame_len, deadline, &partial, err) < 0) {
                if (partial)
                        c->broken = true;
                return moat_error_wrap (err, "%s", method);
        }

        for (;;) {
                cleanup_free uint8_t *buf = NULL;
                uint32_t sid = 0;
                uint8_t type = 0, flags = 0;
                size_t len = 0;
                bool started = false;
                int ret = read_frame_deadline (c->fd, &sid, &type, &flags, &buf, &len, deadline, &started, err);
                if (ret < 0) {
                        if (*err && (*err)->errno_ == EMSGSIZE && sid != id && ++skipped <= TTRPC_MAX_SKIPPED) {
                                moat_error_release (err);
                                continue; /* an oversized frame for someone else: skipped */
                        }
                        if (started && !(*err && (*err)->errno_ == EMSGSIZE))
                                c->broken = true;
                        if (*err && (*err)->errno_ == ETIMEDOUT)
                                return moat_error_wrap (err, "%s: no whole answer within %d ms", method, timeout_ms);
                        return moat_error_wrap (err, "%s", method);
                }
                if (ret == 0) {
                        c->broken = true;
                        return moat_make_error (err, ECONNRESET, "%s: ttrpc connection closed by peer", method);
                }
                if (sid != id || type != TTRPC_TYPE_RESPONSE) {
                        /* a late answer to an earlier call that timed out; but
                         * no more of them than a peer could owe (a call with no
                         * deadline would spin on them for ever) */
                        if (++skipped > TTRPC_MAX_SKIPPED) {
                                c->broken = true;
                                return moat_make_error (err, EPROTO,
                                                        "%s: more than %d frames that answer no call in progress",
                                                        method, TTRPC_MAX_SKIPPED);
                        }
                        continue;
                }
                rsp = ttrpc__response__unpack (NULL, len, buf);
                if (rsp == NULL)
                        return moat_make_error (err, EPROTO, "%s: cannot decode ttrpc response", method);
                break;
        }

        if (rsp->status != NULL && rsp->status->code != TTRPC_OK) {
                int code = rsp->status->code;
                /* the peer's words, but never its terminal escapes or megabytes */
                cleanup_free char *msg = moat_printable (rsp->status->message, -1, MOAT_PEER_TEXT_MAX);
                moat_make_error (err, 0, "%s: %s", method, msg[0] ? msg : "request failed");
                (*err)->errno_ = ttrpc_errno_from_code (code);
                ttrpc__response__free_unpacked (rsp, NULL);
                return -1;
        }
        if (resp != NULL && resp_desc != NULL) {
                *resp = protobuf_c_message_unpack (resp_desc, NULL, rsp->payload.len, rsp->payload.data);
                if (*resp == NULL) {
                        ttrpc__response__free_unpacked (rsp, NULL);
                        return moat_make_error (err, EPROTO, "%s: cannot decode %s", method, resp_desc->name);
                }
        }
        ttrpc__response__free_unpacked (rsp, NULL);
        return 0;
}

int
ttrpc_call (struct ttrpc_client *c, const char *service, const char *method, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int timeout_ms, moat_error_t *err)
{
        moat_error_t e = NULL;
        int ret;

        if (resp)
                *resp = NULL;
        pthread_mutex_lock (&c->lock);
        ret = call_locked (c, service, method, req, resp_desc, resp, timeout_ms, &e);
        pthread_mutex_unlock (&c->lock);
        if (ret < 0 && err != NULL) {
                moat_error_release (err);
                *err = e;
        } else {
                moat_error_release (&e);
        }
        return ret;
}

/* --- server --- */

struct conn {
        int fd;
        int refs;
        pthread_mutex_t lock; /* refs and writes */
        void *ctx;
};

static void
conn_unref (struct conn *cn)
{
        int left;
        pthread_mutex_lock (&cn->lock);
        left = --cn->refs;
        pthread_mutex_unlock (&cn->lock);
        if (left > 0)
                return;
        close (cn->fd);
        pthread_mutex_destroy (&cn->lock);
        free (cn);
}

/* Sends a Response (always with a Status, as containerd does). */
static void
send_response (struct conn *cn, uint32_t id, int code, const char *msg, const uint8_t *payload, size_t len)
{
        Ttrpc__Response r = TTRPC__RESPONSE__INIT;
        Ttrpc__Status st = TTRPC__STATUS__INIT;
        cleanup_free uint8_t *frame = NULL;
        size_t frame_len;
        moat_error_t err = NULL;

        st.code = code;
        st.message = (char *)(msg ? msg : "");
        r.status = &st;
        r.payload.data = (uint8_t *)payload;
        r.payload.len = len;
        frame = pack_message (&r.base, &frame_len);
        if (frame_len > TTRPC_MAX_MESSAGE) {
                st.code = TTRPC_RESOURCE_EXHAUSTED;
                st.message = "response exceeds the maximum message size";
                r.payload.data = NULL;
                r.payload.len = 0;
                free (frame);
                frame = pack_message (&r.base, &frame_len);
        }
        pthread_mutex_lock (&cn->lock);
        /* A peer that went away is not an error worth more than dropping the answer. */
        ttrpc_write_frame (cn->fd, id, TTRPC_TYPE_RESPONSE, 0, frame, frame_len, &err);
        pthread_mutex_unlock (&cn->lock);
        moat_error_release (&err);
}

struct job {
        struct conn *cn;
        uint32_t id;
        const struct ttrpc_method *m;
        ProtobufCMessage *req;
};

static void
run_job (struct job *j)
{
        ProtobufCMessage *resp = NULL;
        moat_error_t err = NULL;
        int ret;

        ret = j->m->fn (j->cn->ctx, j->req, &resp, &err);
        if (ret < 0) {
                int code = err ? ttrpc_code_from_errno (err->errno_) : TTRPC_UNKNOWN;
                if (code == TTRPC_OK)
                        code = TTRPC_UNKNOWN;
                send_response (j->cn, j->id, code, err ? err->msg : "handler failed", NULL, 0);
                moat_error_release (&err);
                ttrpc_free_response (resp);
        } else if (resp == NULL) {
                send_response (j->cn, j->id, TTRPC_INTERNAL, "handler returned no response", NULL, 0);
        } else {
                size_t len;
                cleanup_free uint8_t *payload = pack_message (resp, &len);
                ttrpc_free_response (resp);
                send_response (j->cn, j->id, TTRPC_OK, NULL, payload, len);
        }
        protobuf_c_message_free_unpacked (j->req, NULL);
}

static void *
job_thread (void *arg)
{
        struct job *j = arg;
        run_job (j);
        conn_unref (j->cn);
        free (j);
        return NULL;
}

static const struct ttrpc_method *
find_method (const struct ttrpc_service *services, size_t n_services, const char *service, const char *method)
{
        for (size_t i = 0; i < n_services; i++) {
                if (strcmp (services[i].name, service) != 0)
                        continue;
                for (size_t k = 0; k < services[i].n_methods; k++)
                        if (strcmp (services[i].methods[k].name, method) == 0)
                                return &services[i].methods[k];
        }
        return NULL;
}

static void
handle_request (struct conn *cn, uint32_t id, const uint8_t *buf, size_t len, const struct ttrpc_service *services,
                size_t n_services)
{
        Ttrpc__Request *r;
        const struct ttrpc_method *m;
        ProtobufCMessage *req;
        struct job *j;
        pthread_t th;
        pthread_attr_t attr;

        r = ttrpc__request__unpack (NULL, len, buf);
        if (r == NULL) {
                send_response (cn, id, TTRPC_INVALID_ARGUMENT, "cannot decode ttrpc request", NULL, 0);
                return;
        }
        m = find_method (services, n_services, r->service, r->method);
        if (m == NULL) {
                cleanup_free char *msg = xasprintf_r ("%s/%s not implemented", r->service, r->method);
                send_response (cn, id, TTRPC_UNIMPLEMENTED, msg, NULL, 0);
                ttrpc__request__free_unpacked (r, NULL);
                return;
        }
        req = protobuf_c_message_unpack (m->req_desc, NULL, r->payload.len, r->payload.data);
        if (req == NULL) {
                cleanup_free char *msg = xasprintf_r ("%s: cannot decode %s", r->method, m->req_desc->name);
                send_response (cn, id, TTRPC_INVALID_ARGUMENT, msg, NULL, 0);
                ttrpc__request__free_unpacked (r, NULL);
                return;
        }
        ttrpc__request__free_unpacked (r, NULL);

        j = xzalloc (sizeof *j);
        j->cn = cn;
        j->id = id;
        j->m = m;
        j->req = req;
        if (m->blocking) {
                pthread_mutex_lock (&cn->lock);
                cn->refs++;
                pthread_mutex_unlock (&cn->lock);
                pthread_attr_init (&attr);
                pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create (&th, &attr, job_thread, j) == 0) {
                        pthread_attr_destroy (&attr);
                        return;
                }
                pthread_attr_destroy (&attr);
                pthread_mutex_lock (&cn->lock);
                cn->refs--;
                pthread_mutex_unlock (&cn->lock);
        }
        run_job (j);
        free (j);
}

int
ttrpc_serve (int fd, const struct ttrpc_service *services, size_t n_services, void *ctx, moat_error_t *err)
{
        struct conn *cn = xzalloc (sizeof *cn);
        moat_error_t e = NULL;
        int ret = 0;

        cn->fd = fd;
        cn->refs = 1;
        cn->ctx = ctx;
        pthread_mutex_init (&cn->lock, NULL);

        for (;;) {
                cleanup_free uint8_t *buf = NULL;
                uint32_t id = 0;
                uint8_t type = 0, flags = 0;
                size_t len = 0;
                int r = ttrpc_read_frame (fd, &id, &type, &flags, &buf, &len, &e);
                if (r == 0)
                        break;
                if (r < 0) {
                        if (e->errno_ == EMSGSIZE) {
                                /* payload skipped: answer and go on */
                                if (type == TTRPC_TYPE_REQUEST)
                                        send_response (cn, id, TTRPC_RESOURCE_EXHAUSTED, e->msg, NULL, 0);
                                moat_error_release (&e);
                                continue;
                        }
                        ret = -1;
                        if (err != NULL) {
                                moat_error_release (err);
                                *err = steal_pointer (&e);
                        }
                        moat_error_release (&e);
                        break;
                }
                if (type != TTRPC_TYPE_REQUEST)
                        continue; /* responses/data are not for a server */
                handle_request (cn, id, buf, len, services, n_services);
        }
        conn_unref (cn);
        return ret;
}

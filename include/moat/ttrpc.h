/* SPDX-License-Identifier: Apache-2.0 */
/* ttrpc (containerd's lightweight gRPC) over a stream fd, with protobuf-c.
 * Frames: 10-byte header (length u32 BE, stream id u32 BE, type u8, flags u8),
 * payload is ttrpc.Request (type 1) or ttrpc.Response (type 2). Status codes
 * are gRPC's. One implementation serves the agent (server), the host (agent
 * client) and the containerd shim (server). */
#ifndef MOAT_TTRPC_H
#define MOAT_TTRPC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"

#define TTRPC_HEADER_LEN 10

/* Writes a frame header: length and stream id big-endian, type, flags. */
void ttrpc_header_pack (uint8_t h[TTRPC_HEADER_LEN], uint32_t len, uint32_t stream_id, uint8_t type, uint8_t flags);
#define TTRPC_MAX_MESSAGE (4u << 20)
#define TTRPC_TYPE_REQUEST 1
#define TTRPC_TYPE_RESPONSE 2
#define TTRPC_TYPE_DATA 3

/* gRPC status codes */
enum ttrpc_code {
        TTRPC_OK = 0,
        TTRPC_CANCELLED = 1,
        TTRPC_UNKNOWN = 2,
        TTRPC_INVALID_ARGUMENT = 3,
        TTRPC_DEADLINE_EXCEEDED = 4,
        TTRPC_NOT_FOUND = 5,
        TTRPC_ALREADY_EXISTS = 6,
        TTRPC_PERMISSION_DENIED = 7,
        TTRPC_RESOURCE_EXHAUSTED = 8,
        TTRPC_FAILED_PRECONDITION = 9,
        TTRPC_ABORTED = 10,
        TTRPC_OUT_OF_RANGE = 11,
        TTRPC_UNIMPLEMENTED = 12,
        TTRPC_INTERNAL = 13,
        TTRPC_UNAVAILABLE = 14,
};
/* errno <-> status code, both ways (ENOENT <-> NOT_FOUND, EEXIST <->
 * ALREADY_EXISTS, EINVAL <-> INVALID_ARGUMENT, ENOSYS <-> UNIMPLEMENTED,
 * EPERM/EACCES <-> PERMISSION_DENIED, ETIMEDOUT <-> DEADLINE_EXCEEDED,
 * EBUSY/EALREADY <-> FAILED_PRECONDITION, others <-> UNKNOWN). */
int ttrpc_code_from_errno (int e);
int ttrpc_errno_from_code (int code);

/* --- framing --- */
int ttrpc_write_frame (int fd, uint32_t stream_id, uint8_t type, uint8_t flags, const void *buf, size_t len,
                       moat_error_t *err);
/* Returns 1 with a frame (*buf malloc'd), 0 at clean EOF before a header, -1 on error. */
int ttrpc_read_frame (int fd, uint32_t *stream_id, uint8_t *type, uint8_t *flags, uint8_t **buf, size_t *len,
                      moat_error_t *err);

/* --- client: one call at a time per connection (calls are serialised by a
 * mutex; open another connection for a call that blocks, like a Wait) --- */
struct ttrpc_client;
struct ttrpc_client *ttrpc_client_new (int fd); /* takes ownership of fd */
void ttrpc_client_free (struct ttrpc_client *c);
int ttrpc_client_fd (struct ttrpc_client *c);
/* Sends service/method with req; on TTRPC_OK unpacks the reply into *resp
 * with resp_desc (free with protobuf_c_message_free_unpacked). A non-OK status
 * becomes an error "<method>: <status message>" whose errno_ comes from the
 * code. timeout_ms <= 0: no deadline. */
int ttrpc_call (struct ttrpc_client *c, const char *service, const char *method, const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, int timeout_ms,
                moat_error_t *err);

/* --- server --- */
/* A handler gets the unpacked request (owned and freed by the server) and
 * returns a response message it allocated, freed by the server with
 * ttrpc_free_response (see there), or fails with *err (errno_ selects the
 * status code, the message goes to the client as is). */
typedef int (*ttrpc_handler_fn) (void *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp, moat_error_t *err);
struct ttrpc_method {
        const char *name;
        const ProtobufCMessageDescriptor *req_desc;
        ttrpc_handler_fn fn;
        /* Handlers that may block (Wait...) run on their own thread so the
         * connection keeps serving other requests. */
        int blocking;
};
struct ttrpc_service {
        const char *name; /* "moat.agent.v1.Agent" */
        const struct ttrpc_method *methods;
        size_t n_methods;
};
/* The response a handler returns is freed with this: handlers allocate
 * responses with malloc and protobuf-c init macros and the server frees them
 * through ttrpc_free_response (fields freed recursively like unpacked
 * messages: strings, bytes, repeated fields and sub-messages must be
 * malloc'd; a string may also be the INIT macros' protobuf_c_empty_string,
 * singular or repeated). */
void ttrpc_free_response (ProtobufCMessage *m);

/* Serves requests on fd until EOF or error; closes fd. Thread-safe writes;
 * blocking methods get their own threads. Returns 0 at EOF. A blocking
 * handler may still run after ttrpc_serve returns (the fd is closed when the
 * last one finishes), so services and ctx must outlive those handlers. */
int ttrpc_serve (int fd, const struct ttrpc_service *services, size_t n_services, void *ctx, moat_error_t *err);

#endif

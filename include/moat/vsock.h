/* SPDX-License-Identifier: Apache-2.0 */
/* moat's userspace virtio-vsock device (virtio 1.2 section 5.10), stream
 * sockets only, independent of the transport that attaches it (vhost-user in
 * moat-vsock, virtio-mmio in moat-vmm).
 *
 * Host side: the hybrid-vsock Unix socket. A host client connects, writes
 * "CONNECT <port>\n", gets "OK <host port>\n" once the guest accepted, then
 * the stream is the vsock connection. A guest connecting to CID 2 port P is
 * connected to the Unix socket "<path>_P".
 *
 * Event-loop use: the device owns an epoll fd (moat_vsock_get_fd) that gets
 * readable when a host socket needs attention; poll it (with the timeout of
 * moat_vsock_next_timeout) and call moat_vsock_poll. Call moat_vsock_kick
 * when the driver notifies a queue. The device interrupts the guest through
 * each moat_virtq's notify hook. Nothing blocks. */
#ifndef MOAT_VSOCK_H
#define MOAT_VSOCK_H

#include <stdint.h>

#include "moat/error.h"
#include "moat/virtqueue.h"

/* Room a hybrid vsock socket path leaves in sun_path for the "_<port>"
 * suffix of the sockets guest-initiated connections reach: a path must be
 * shorter than sizeof sun_path - MOAT_VSOCK_PORT_SUFFIX_MAX. */
#define MOAT_VSOCK_PORT_SUFFIX_MAX 12

#define MOAT_VSOCK_HOST_CID 2
#define MOAT_VSOCK_DEFAULT_GUEST_CID 3
#define MOAT_VSOCK_QUEUE_RX 0
#define MOAT_VSOCK_QUEUE_TX 1
#define MOAT_VSOCK_QUEUE_EVENT 2
#define MOAT_VSOCK_HDR_SIZE 44
#define MOAT_VSOCK_CONFIG_SIZE 8

enum moat_vsock_op {
        MOAT_VSOCK_OP_INVALID = 0,
        MOAT_VSOCK_OP_REQUEST = 1,
        MOAT_VSOCK_OP_RESPONSE = 2,
        MOAT_VSOCK_OP_RST = 3,
        MOAT_VSOCK_OP_SHUTDOWN = 4,
        MOAT_VSOCK_OP_RW = 5,
        MOAT_VSOCK_OP_CREDIT_UPDATE = 6,
        MOAT_VSOCK_OP_CREDIT_REQUEST = 7,
};
#define MOAT_VSOCK_TYPE_STREAM 1
#define MOAT_VSOCK_SHUTDOWN_RCV 1
#define MOAT_VSOCK_SHUTDOWN_SEND 2

/* virtio_vsock_hdr in host byte order; moat_vsock_hdr_{encode,decode}
 * convert to and from the 44-byte little-endian wire form. */
struct moat_vsock_hdr {
        uint64_t src_cid, dst_cid;
        uint32_t src_port, dst_port;
        uint32_t len;
        uint16_t type, op;
        uint32_t flags;
        uint32_t buf_alloc, fwd_cnt;
};
void moat_vsock_hdr_encode (const struct moat_vsock_hdr *h, uint8_t out[MOAT_VSOCK_HDR_SIZE]);
void moat_vsock_hdr_decode (const uint8_t in[MOAT_VSOCK_HDR_SIZE], struct moat_vsock_hdr *h);

struct moat_vsock_config {
        uint64_t guest_cid;     /* 0: MOAT_VSOCK_DEFAULT_GUEST_CID */
        const char *uds_path;   /* hybrid socket; NULL: no listener (clients via moat_vsock_add_client) */
        uint32_t buf_alloc;     /* receive buffer per connection we advertise; 0: 256 KiB */
        int connect_timeout_ms; /* host CONNECT handshake and guest RESPONSE; 0: 5000 */
};

struct moat_vsock;

/* Creates the device; with cfg->uds_path, listens there (an existing socket
 * file is replaced). */
int moat_vsock_new (const struct moat_vsock_config *cfg, struct moat_vsock **out, moat_error_t *err);
/* Closes every connection and the listener, removes the socket file. */
void moat_vsock_free (struct moat_vsock *vs);

/* Pollable fd: readable when moat_vsock_poll has host work to do. */
int moat_vsock_get_fd (struct moat_vsock *vs);
/* Milliseconds until the next connection timeout, -1 if none. */
int moat_vsock_next_timeout (struct moat_vsock *vs);
/* Handles ready host sockets and expired timeouts; never blocks. */
void moat_vsock_poll (struct moat_vsock *vs);

/* The transport attaches (vq started) or detaches (NULL) queue q. */
void moat_vsock_set_queue (struct moat_vsock *vs, unsigned q, struct moat_virtq *vq);
/* The driver notified queue q. */
void moat_vsock_kick (struct moat_vsock *vs, unsigned q);
/* Config space: le64 guest_cid. Copies [off, off+len) (zero past the end). */
void moat_vsock_get_config (struct moat_vsock *vs, uint32_t off, uint8_t *buf, uint32_t len);
/* Guest reset (driver status 0 or frontend gone): every connection is closed. */
void moat_vsock_reset (struct moat_vsock *vs);

/* Hands the device an already-accepted host client socket (it takes the fd)
 * that will write "CONNECT <port>\n". */
int moat_vsock_add_client (struct moat_vsock *vs, int fd, moat_error_t *err);
/* Number of live connections (tests, diagnostics). */
unsigned moat_vsock_count_connections (struct moat_vsock *vs);

#endif

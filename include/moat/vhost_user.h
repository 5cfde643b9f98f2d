/* SPDX-License-Identifier: Apache-2.0 */
/* vhost-user backend ("slave") side: speaks the vhost-user protocol to one
 * frontend (QEMU) over a connected Unix socket, maps guest memory from the
 * memfds it sends, runs the vrings as moat_virtqs and hands them to a device
 * through moat_vhost_user_device callbacks. */
#ifndef MOAT_VHOST_USER_H
#define MOAT_VHOST_USER_H

#include <stdint.h>

#include "moat/error.h"
#include "moat/virtqueue.h"

#define MOAT_VHOST_USER_MAX_QUEUES 8

struct moat_vhost_user_device {
        const char *name;
        unsigned num_queues; /* queues served by the backend */
        uint64_t features;   /* device feature bits (VERSION_1 etc. are added) */
        void *opaque;
        void (*get_config) (void *opaque, uint32_t off, uint8_t *buf, uint32_t len);
        /* queue q started (vq ready) or stopped (vq NULL) */
        void (*set_queue) (void *opaque, unsigned q, struct moat_virtq *vq);
        void (*kick) (void *opaque, unsigned q);
        /* the frontend reset the device (RESET_OWNER, RESET_DEVICE) */
        void (*reset) (void *opaque);
};

struct moat_vhost_user;

/* Takes ownership of conn_fd (connected to the frontend). */
int moat_vhost_user_new (int conn_fd, const struct moat_vhost_user_device *dev, struct moat_vhost_user **out,
                         moat_error_t *err);
void moat_vhost_user_free (struct moat_vhost_user *vu);
/* Pollable fd: readable when moat_vhost_user_poll has messages or kicks. */
int moat_vhost_user_get_fd (struct moat_vhost_user *vu);
/* Handles pending messages and kicks without blocking on an idle socket.
 * Returns 0, or 1 once the frontend closed the connection, or -1 with err
 * on a protocol error (the connection should be dropped). */
int moat_vhost_user_poll (struct moat_vhost_user *vu, moat_error_t *err);

#endif

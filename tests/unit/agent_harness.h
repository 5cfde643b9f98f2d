/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the unit tests that drive a real build/moat-agent over Unix
 * sockets (MOAT_AGENT_UNIX_DIR): connecting, and one ttrpc call. Include
 * after cmocka.h. */
#ifndef MOAT_TEST_AGENT_HARNESS_H
#define MOAT_TEST_AGENT_HARNESS_H

#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "moat/ttrpc.h"
#include "moat/util.h"

/* Connects to dir/name, retrying for 5 s while the agent starts; -1 if not. */
static int
agent_unix_connect (const char *dir, const char *name)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf (sa.sun_path, sizeof sa.sun_path, "%s/%s", dir, name);
        for (int i = 0; i < 100; i++) {
                if (connect (fd, (struct sockaddr *)&sa, sizeof sa) == 0)
                        return fd;
                usleep (50000);
        }
        close (fd);
        return -1;
}

/* One call on client c (rd NULL: the reply is Empty); errmsg gets the
 * error text (NULL: print it). */
static int
agent_call (struct ttrpc_client *c, const char *method, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp, char **errmsg)
{
        moat_error_t err = NULL;
        ProtobufCMessage *r = NULL;
        int ret = ttrpc_call (c, "moat.agent.v1.Agent", method, req, rd ? rd : &moat__agent__v1__empty__descriptor, &r,
                              30000, &err);
        if (ret < 0) {
                if (errmsg)
                        *errmsg = xstrdup (err->msg);
                else
                        fprintf (stderr, "# %s: %s\n", method, err->msg);
                moat_error_release (&err);
                return -1;
        }
        if (resp)
                *resp = r;
        else
                protobuf_c_message_free_unpacked (r, NULL);
        return 0;
}

#endif

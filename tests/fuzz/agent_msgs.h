/* SPDX-License-Identifier: Apache-2.0 */
/* Every request and response message of proto/agent.proto with the method
 * it belongs to, for fuzz_agent_requests.c and fuzz_agent_client.c. */
#ifndef MOAT_FUZZ_AGENT_MSGS_H
#define MOAT_FUZZ_AGENT_MSGS_H

#include <stdlib.h>

#include "agent.pb-c.h"

struct fz_method {
        const char *name;
        const ProtobufCMessageDescriptor *req, *resp;
};

#define FZ_M(name, rq, rs)                                                                                             \
        {                                                                                                              \
                name, &moat__agent__v1__##rq##__descriptor, &moat__agent__v1__##rs##__descriptor                       \
        }
static const struct fz_method fz_methods[] = {
        FZ_M ("Check", check_request, check_response),
        FZ_M ("CreateContainer", create_container_request, create_container_response),
        FZ_M ("StartContainer", start_container_request, empty),
        FZ_M ("ExecProcess", exec_process_request, exec_process_response),
        FZ_M ("SignalProcess", signal_process_request, empty),
        FZ_M ("WaitProcess", wait_process_request, wait_process_response),
        FZ_M ("RemoveContainer", remove_container_request, empty),
        FZ_M ("PauseContainer", pause_container_request, empty),
        FZ_M ("ResumeContainer", resume_container_request, empty),
        FZ_M ("StatsContainer", stats_container_request, stats_container_response),
        FZ_M ("UpdateContainer", update_container_request, empty),
        FZ_M ("TtyWinResize", tty_win_resize_request, empty),
        FZ_M ("CloseStdin", close_stdin_request, empty),
        FZ_M ("DestroySandbox", destroy_sandbox_request, empty),
        FZ_M ("SyncClock", sync_clock_request, sync_clock_response),
};
#define FZ_NMETHODS (sizeof fz_methods / sizeof fz_methods[0])

/* Unpacks buf as desc, packs it again (the length must agree), frees it. */
static inline void
fz_unpack_repack (const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len)
{
        ProtobufCMessage *m = protobuf_c_message_unpack (desc, NULL, len, buf);
        if (m == NULL)
                return;
        size_t n = protobuf_c_message_get_packed_size (m);
        uint8_t *out = malloc (n ? n : 1);
        if (protobuf_c_message_pack (m, out) != n)
                abort ();
        free (out);
        protobuf_c_message_free_unpacked (m, NULL);
}

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* What host and guest agree on besides the messages of proto/agent.proto:
 * where the agent listens, the ttrpc service it serves, and how the guest
 * share reaches the guest. One copy, included by the host (src/lib) and by
 * moat-agent (agent/) alike. */
#ifndef MOAT_AGENT_PROTO_H
#define MOAT_AGENT_PROTO_H

/* The guest's vsock context id (moat-vsock and moat-vmm give it). */
#define MOAT_GUEST_CID 3
/* The ttrpc API (service MOAT_AGENT_SERVICE of proto/agent.proto). */
#define MOAT_AGENT_PORT 1024
#define MOAT_AGENT_SERVICE "moat.agent.v1.Agent"
/* Stdio streams: one connection per stream, opened with the line
 * "STDIO <id> <exec id or -> <stream>\n", answered "OK\n" or "ERR <why>\n". */
#define MOAT_STDIO_PORT 1025
/* The sandbox share: exported by the VMM as this virtio-9p tag, mounted by
 * the agent at MOAT_GUEST_SHARE; <id>/rootfs, <id>/mounts/<n> below it. */
#define MOAT_SHARE_TAG "moatshare"
#define MOAT_GUEST_SHARE "/run/moat/share"
/* Templates (src/lib/template.c, agent/template.c): a template VM boots
 * with this on its kernel command line and no virtio device; its agent
 * probes for the devices a restore attaches (vsock, 9p, net), saying
 * MOAT_TEMPLATE_PROBING before and MOAT_TEMPLATE_IDLE after each probe on
 * the console (the host saves it between the two). */
#define MOAT_TEMPLATE_CMDLINE "moat.template=1"
#define MOAT_TEMPLATE_IDLE "moat-agent: template idle"
#define MOAT_TEMPLATE_PROBING "moat-agent: template probing"
/* Host entropy a SyncClock may carry (bytes, at most) */
#define MOAT_ENTROPY_MAX 256

#endif

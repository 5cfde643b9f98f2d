/* SPDX-License-Identifier: Apache-2.0 */
/* Networking into the VM, Kata's "tcfilter" model.
 *
 * Host side: the sandbox's network namespace (the config's path, or a new
 * one) exists before the VM boots; a tap device is made in it and handed to
 * the hypervisor. Once the prestart/createRuntime hooks ran (Docker adds its
 * veth then; CNI before create), the first Ethernet interface of the
 * namespace other than the tap (eth0) is described (MAC, MTU, addresses,
 * routes) and connected to the tap with tc: an ingress qdisc on both and a
 * mirred egress redirect filter (matchall, else u32) each way. The agent
 * then gives the guest's virtio-net device that identity inside the
 * container's namespace.
 *
 * Also the small rtnetlink toolkit (no libmnl) both sides use: the agent is
 * static and links libmoat too. */
#ifndef MOAT_NET_H
#define MOAT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "moat/error.h"
#include "moat/oci.h"

/* --- rtnetlink toolkit --- */
#define MOAT_NL_BUF 8192
#define MOAT_IFNAMSIZ 16 /* IFNAMSIZ, without <net/if.h> (it clashes with <linux/if.h>) */

struct moat_nlreq {
        union {
                struct nlmsghdr h;
                char buf[MOAT_NL_BUF];
        };
};

/* A NETLINK_ROUTE socket made in the namespace netns_fd (-1: ours). The
 * calling thread enters it for the socket() call only. */
int moat_nl_open (int netns_fd, moat_error_t *err);
/* Starts a request: header of type, flags | NLM_F_REQUEST, then a zeroed
 * family header of hdr_len bytes, returned. */
void *moat_nl_init (struct moat_nlreq *r, uint16_t type, uint16_t flags, size_t hdr_len);
void moat_nl_attr (struct moat_nlreq *r, uint16_t type, const void *data, size_t len);
void moat_nl_attr_u32 (struct moat_nlreq *r, uint16_t type, uint32_t v);
void moat_nl_attr_str (struct moat_nlreq *r, uint16_t type, const char *s);
struct rtattr *moat_nl_nest (struct moat_nlreq *r, uint16_t type);
void moat_nl_nest_end (struct moat_nlreq *r, struct rtattr *nest);
/* Sends r with NLM_F_ACK and waits for the answer: 0, or -1 with *err
 * (errno from the kernel, plus its extended ack message if any) naming what. */
int moat_nl_talk (int fd, struct moat_nlreq *r, const char *what, moat_error_t *err);
/* Same, returning the kernel's -errno (0 on success) and no error object. */
int moat_nl_talk_errno (int fd, struct moat_nlreq *r, char *msg, size_t msg_len);
/* Sends a NLM_F_DUMP request and calls cb on each answer; cb < 0 stops. */
int moat_nl_dump (int fd, struct moat_nlreq *r, int (*cb) (const struct nlmsghdr *h, void *ctx), void *ctx,
                  const char *what, moat_error_t *err);
/* tb[0..max] from the attributes at rta (len bytes); unknown ones ignored. */
void moat_nl_parse (struct rtattr **tb, int max, struct rtattr *rta, int len);

/* --- the interface description (host -> agent) --- */
struct moat_net_addr {
        int family; /* AF_INET, AF_INET6 */
        uint8_t addr[16];
        unsigned prefix;
};

struct moat_net_route {
        int family;
        uint8_t dst[16];
        unsigned dst_len; /* 0: default */
        bool has_gw;
        uint8_t gw[16];
        uint32_t metric;
};

struct moat_net_iface {
        char name[MOAT_IFNAMSIZ];
        int ifindex; /* on the host, in the sandbox namespace */
        uint8_t mac[6];
        unsigned mtu;
        struct moat_net_addr *addrs;
        size_t n_addrs;
        struct moat_net_route *routes;
        size_t n_routes;
};

void moat_net_ifaces_free (struct moat_net_iface *ifs, size_t n);
/* "02:42:ac:11:00:02" into buf (18 bytes) */
void moat_net_mac_str (const uint8_t mac[6], char buf[18]);

/* --- host side --- */

/* The sandbox's network namespace, from linux.namespaces: *netns_fd is an
 * fd of it (the path's, or a new namespace's), or -1 when the config has
 * none (the container then shares the runtime's: nothing to do). *tap is
 * true when the VM gets a tap in it: never when it is the host's own
 * network namespace (a VM must not take over the host's interfaces). */
int moat_net_sandbox_ns (const struct oci_config *cfg, int *netns_fd, bool *tap, moat_error_t *err);

/* The tap's name for sandbox id (unique per id, at most 15 characters). */
void moat_net_tap_name (const char *id, char name[MOAT_IFNAMSIZ]);

/* Creates tap `name` in netns_fd (IFF_TAP | IFF_NO_PI, non-persistent: it
 * vanishes with its last fd) and returns its fd (close-on-exec). */
int moat_net_tap_open (int netns_fd, const char *name, moat_error_t *err);

/* After the hooks: describes the Ethernet interfaces of netns_fd other than
 * lo and tap (the first one only: one tap per VM) into *out (*n 0: none, the
 * container keeps only lo) and connects it to the tap with tc: the first
 * filter probes the classifier (matchall, else u32). On failure everything
 * it added is removed; the error names the interface and the step. */
int moat_net_connect (int netns_fd, const char *tap, struct moat_net_iface **out, size_t *n, moat_error_t *err);

/* Removes what moat_net_connect added to interface ifindex (it must still be
 * called name): its ingress qdisc and filters. Missing ones are fine. */
int moat_net_disconnect (int netns_fd, int ifindex, const char *name, moat_error_t *err);

#endif

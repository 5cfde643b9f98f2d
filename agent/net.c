/* SPDX-License-Identifier: Apache-2.0 */
/* The container's network interfaces (CreateContainerRequest.interfaces):
 * the n-th virtio-net device of the guest moves into the held init's network
 * namespace under the host interface's name, gets its MAC, MTU and
 * addresses, comes up with lo, and gets the routes. All over rtnetlink
 * (libmoat's toolkit, include/moat/net.h): the agent is static. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if_arp.h>

#include "agent.h"
#include "agent.pb-c.h"
#include "moat/net.h"
#include "moat/util.h"

struct devs {
        int idx[16];
        size_t n;
        const char *want; /* by name: the first match's index in idx[0] */
};

static int
devs_cb (const struct nlmsghdr *h, void *ctx)
{
        struct devs *d = ctx;
        const struct ifinfomsg *ifi = NLMSG_DATA (h);
        struct rtattr *tb[IFLA_MAX + 1];

        if (h->nlmsg_type != RTM_NEWLINK || d->n >= ARRAY_SIZE (d->idx))
                return 0;
        moat_nl_parse (tb, IFLA_MAX, IFLA_RTA (ifi), IFLA_PAYLOAD (h));
        if (d->want) {
                if (tb[IFLA_IFNAME] && strcmp (RTA_DATA (tb[IFLA_IFNAME]), d->want) == 0)
                        d->idx[d->n++] = ifi->ifi_index;
                return 0;
        }
        /* the guest's NICs: every Ethernet device but the loopback */
        if (ifi->ifi_type == ARPHRD_ETHER && !(ifi->ifi_flags & IFF_LOOPBACK))
                d->idx[d->n++] = ifi->ifi_index;
        return 0;
}

static int
list_devs (int fd, struct devs *d, moat_error_t *err)
{
        struct moat_nlreq r;
        struct ifinfomsg *ifi = moat_nl_init (&r, RTM_GETLINK, 0, sizeof *ifi);
        ifi->ifi_family = AF_UNSPEC;
        return moat_nl_dump (fd, &r, devs_cb, d, "list the network devices", err);
}

static int
parse_mac (const char *s, uint8_t mac[6])
{
        unsigned v[6];
        int n = 0;
        if (sscanf (s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &n) != 6 ||
            n != (int)strlen (s))
                return -1;
        for (int i = 0; i < 6; i++)
                mac[i] = v[i];
        return 0;
}

static int
parse_ip (const char *s, int family_hint, int *family, uint8_t addr[16])
{
        memset (addr, 0, 16);
        if (inet_pton (AF_INET, s, addr) == 1) {
                *family = AF_INET;
                return 0;
        }
        if (inet_pton (AF_INET6, s, addr) == 1) {
                *family = AF_INET6;
                return 0;
        }
        if (*s == '\0' && (family_hint == AF_INET || family_hint == AF_INET6)) {
                *family = family_hint;
                return 0;
        }
        return -1;
}

static int
set_link (int fd, const char *name, int ifindex, const uint8_t *mac, unsigned mtu, bool up, const char *what,
          moat_error_t *err)
{
        struct moat_nlreq r;
        struct ifinfomsg *ifi = moat_nl_init (&r, RTM_NEWLINK, 0, sizeof *ifi);
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        if (ifindex == 0)
                moat_nl_attr_str (&r, IFLA_IFNAME, name);
        if (up) {
                ifi->ifi_flags = IFF_UP;
                ifi->ifi_change = IFF_UP;
        }
        if (mac)
                moat_nl_attr (&r, IFLA_ADDRESS, mac, 6);
        if (mtu)
                moat_nl_attr_u32 (&r, IFLA_MTU, mtu);
        return moat_nl_talk (fd, &r, what, err);
}

static int
add_addr (int fd, int ifindex, const Moat__Agent__V1__NetAddress *a, moat_error_t *err)
{
        struct moat_nlreq r;
        struct ifaddrmsg *ifa = moat_nl_init (&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof *ifa);
        uint8_t addr[16];
        int family;
        size_t alen;

        if (parse_ip (a->address, 0, &family, addr) < 0 || *a->address == '\0')
                return moat_make_error (err, EINVAL, "address \"%s\": not an IP address", a->address);
        alen = family == AF_INET ? 4 : 16;
        if (a->prefix_len > alen * 8)
                return moat_make_error (err, EINVAL, "address %s/%u: prefix too long", a->address, a->prefix_len);
        ifa->ifa_family = family;
        ifa->ifa_prefixlen = a->prefix_len;
        ifa->ifa_index = ifindex;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        if (family == AF_INET6)
                ifa->ifa_flags = IFA_F_NODAD; /* the host side already checked it */
        moat_nl_attr (&r, IFA_LOCAL, addr, alen);
        moat_nl_attr (&r, IFA_ADDRESS, addr, alen);
        if (family == AF_INET && a->prefix_len < 31) {
                uint32_t b, m = a->prefix_len ? htonl (~0U << (32 - a->prefix_len)) : 0;
                memcpy (&b, addr, 4);
                b |= ~m;
                moat_nl_attr (&r, IFA_BROADCAST, &b, 4);
        }
        if (moat_nl_talk (fd, &r, "add", err) < 0)
                return moat_error_wrap (err, "address %s/%u", a->address, a->prefix_len);
        return 0;
}

static int
add_route (int fd, int ifindex, const Moat__Agent__V1__NetRoute *ro, moat_error_t *err)
{
        struct moat_nlreq r;
        struct rtmsg *rt = moat_nl_init (&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof *rt);
        uint8_t dst[16], gw[16];
        int fd_family = 0, fg = 0;
        bool has_gw = *ro->gateway != '\0';
        char what[128], msg[256];
        size_t alen;
        int e;

        if (*ro->dest)
                snprintf (what, sizeof what, "route %s/%u%s%s", ro->dest, ro->dest_prefix_len, has_gw ? " via " : "",
                          ro->gateway);
        else
                snprintf (what, sizeof what, "route default%s%s", has_gw ? " via " : "", ro->gateway);
        if (parse_ip (ro->dest, ro->family, &fd_family, dst) < 0 || parse_ip (ro->gateway, fd_family, &fg, gw) < 0 ||
            fd_family != fg)
                return moat_make_error (err, EINVAL, "%s: bad address or family", what);
        alen = fd_family == AF_INET ? 4 : 16;
        if (ro->dest_prefix_len > alen * 8)
                return moat_make_error (err, EINVAL, "%s: prefix too long", what);
        rt->rtm_family = fd_family;
        rt->rtm_dst_len = *ro->dest ? ro->dest_prefix_len : 0;
        rt->rtm_table = RT_TABLE_MAIN;
        rt->rtm_protocol = RTPROT_BOOT;
        rt->rtm_scope = has_gw || fd_family == AF_INET6 ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
        rt->rtm_type = RTN_UNICAST;
        if (rt->rtm_dst_len)
                moat_nl_attr (&r, RTA_DST, dst, alen);
        if (has_gw)
                moat_nl_attr (&r, RTA_GATEWAY, gw, alen);
        moat_nl_attr_u32 (&r, RTA_OIF, ifindex);
        if (ro->metric)
                moat_nl_attr_u32 (&r, RTA_PRIORITY, ro->metric);
        e = moat_nl_talk_errno (fd, &r, msg, sizeof msg);
        if (e == -EEXIST)
                return 0; /* the kernel made it already (an address's prefix route) */
        if (e < 0)
                return moat_make_error (err, -e, "add %s%s%s", what, *msg ? ": " : "", msg);
        return 0;
}

static int
setup_one (int fd, const Moat__Agent__V1__NetInterface *f, moat_error_t *err)
{
        struct devs d = {.want = f->name};
        uint8_t mac[6];
        bool has_mac = *f->mac != '\0';
        int ifindex;

        if (has_mac && parse_mac (f->mac, mac) < 0)
                return moat_make_error (err, EINVAL, "MAC address \"%s\": expected six hex bytes", f->mac);
        if (list_devs (fd, &d, err) < 0)
                return -1;
        if (d.n == 0)
                return moat_make_error (err, ENODEV, "not in the container's network namespace after the move");
        ifindex = d.idx[0];
        if ((has_mac || f->mtu) && set_link (fd, NULL, ifindex, has_mac ? mac : NULL, f->mtu, false,
                                             has_mac ? "set its MAC and MTU" : "set its MTU", err) < 0)
                return -1;
        for (size_t i = 0; i < f->n_addresses; i++)
                if (add_addr (fd, ifindex, f->addresses[i], err) < 0)
                        return -1;
        if (set_link (fd, NULL, ifindex, NULL, 0, true, "set it up", err) < 0)
                return -1;
        /* directly connected routes first: gateways must be reachable */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < f->n_routes; i++)
                        if ((*f->routes[i]->gateway != '\0') == (pass == 1) &&
                            add_route (fd, ifindex, f->routes[i], err) < 0)
                                return -1;
        return 0;
}

int
agent_net_setup (int nsfd, struct Moat__Agent__V1__NetInterface **ifs, size_t n, moat_error_t *err)
{
        struct stat ours, theirs;
        cleanup_close int root = -1;
        cleanup_close int fd = -1;
        struct devs d = {0};

        if (stat ("/proc/self/ns/net", &ours) < 0 || fstat (nsfd, &theirs) < 0)
                return moat_make_error (err, errno, "the container's network namespace");
        if (ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) {
                if (n == 0)
                        return 0; /* the agent's own: lo is up already */
                return moat_make_error (err, EINVAL,
                                        "network interface %s: the container has no network namespace of its own "
                                        "(linux.namespaces has no network entry)",
                                        ifs[0]->name);
        }
        if (n == 0) {
                /* a new namespace's lo is down: up, as runc does */
                fd = moat_nl_open (nsfd, err);
                if (fd < 0 || set_link (fd, "lo", 0, NULL, 0, true, "set lo up", err) < 0)
                        return moat_error_wrap (err, "the container's network namespace");
                return 0;
        }
        for (size_t i = 0; i < n; i++) {
                const char *name = ifs[i]->name;
                if (*name == '\0' || strlen (name) >= IFNAMSIZ || strchr (name, '/') || strchr (name, ' ') ||
                    strcmp (name, "lo") == 0)
                        return moat_make_error (err, EINVAL, "network interface \"%s\": not a valid interface name",
                                                name);
        }
        root = moat_nl_open (-1, err);
        if (root < 0 || list_devs (root, &d, err) < 0)
                return moat_error_wrap (err, "network interface %s", ifs[0]->name);
        if (d.n < n)
                return moat_make_error (err, ENODEV,
                                        "network interface %s: the VM has %zu network device(s) for %zu interface(s)",
                                        ifs[d.n]->name, d.n, n);
        for (size_t i = 0; i < n; i++) {
                const char *name = ifs[i]->name;
                struct moat_nlreq r;
                struct ifinfomsg *ifi;
                /* into the container's namespace, renamed on the way */
                ifi = moat_nl_init (&r, RTM_NEWLINK, 0, sizeof *ifi);
                ifi->ifi_family = AF_UNSPEC;
                ifi->ifi_index = d.idx[i];
                moat_nl_attr_u32 (&r, IFLA_NET_NS_FD, (uint32_t)nsfd);
                moat_nl_attr_str (&r, IFLA_IFNAME, name);
                if (moat_nl_talk (root, &r, "move the VM's network device into the container's network namespace",
                                  err) < 0)
                        return moat_error_wrap (err, "network interface %s", name);
        }
        fd = moat_nl_open (nsfd, err);
        if (fd < 0)
                return moat_error_wrap (err, "network interface %s", ifs[0]->name);
        if (set_link (fd, "lo", 0, NULL, 0, true, "set lo up", err) < 0)
                return moat_error_wrap (err, "network interface %s", ifs[0]->name);
        for (size_t i = 0; i < n; i++) {
                if (setup_one (fd, ifs[i], err) < 0)
                        return moat_error_wrap (err, "network interface %s", ifs[i]->name);
                agent_debug ("network interface %s: %s, mtu %u, %zu address(es), %zu route(s)", ifs[i]->name,
                             ifs[i]->mac, ifs[i]->mtu, ifs[i]->n_addresses, ifs[i]->n_routes);
        }
        return 0;
}

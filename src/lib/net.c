/* SPDX-License-Identifier: Apache-2.0 */
/* Networking into the VM (see include/moat/net.h): the rtnetlink toolkit,
 * the sandbox network namespace, the tap and the tc redirect. */
#include <net/if.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>

#include "moat/log.h"
#include "moat/net.h"
#include "moat/util.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#define NLMSGERR_ATTR_MSG_ 1

#define NL_ALIGN(n) (((n) + 3) & ~3U)
#define TC_PRIO 1

static atomic_uint nl_seq = 1;

/* --- rtnetlink toolkit --- */

int
moat_nl_open (int netns_fd, moat_error_t *err)
{
        cleanup_close int cur = -1;
        int fd, e, one = 1;

        if (netns_fd >= 0) {
                cur = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (cur < 0)
                        return moat_make_error (err, errno, "open /proc/thread-self/ns/net");
                if (setns (netns_fd, CLONE_NEWNET) < 0)
                        return moat_make_error (err, errno, "enter the sandbox network namespace");
        }
        fd = socket (AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        e = errno;
        if (cur >= 0 && setns (cur, CLONE_NEWNET) < 0) {
                /* cannot happen (our own namespace); never go on in the wrong one */
                moat_log (MOAT_LOG_ERROR, "return to our network namespace: %s", strerror (errno));
                abort ();
        }
        if (fd < 0)
                return moat_make_error (err, e, "rtnetlink socket");
        setsockopt (fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
        setsockopt (fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
        return fd;
}

void *
moat_nl_init (struct moat_nlreq *r, uint16_t type, uint16_t flags, size_t hdr_len)
{
        memset (r, 0, sizeof (struct nlmsghdr) + NL_ALIGN (hdr_len));
        r->h.nlmsg_len = NLMSG_LENGTH (hdr_len);
        r->h.nlmsg_len = NL_ALIGN (r->h.nlmsg_len);
        r->h.nlmsg_type = type;
        r->h.nlmsg_flags = flags | NLM_F_REQUEST;
        return NLMSG_DATA (&r->h);
}

void
moat_nl_attr (struct moat_nlreq *r, uint16_t type, const void *data, size_t len)
{
        struct rtattr *a = (struct rtattr *)(r->buf + r->h.nlmsg_len);
        size_t total = NL_ALIGN (RTA_LENGTH (len));
        if (r->h.nlmsg_len + total > sizeof r->buf) {
                /* requests are small and fixed: this is a bug */
                moat_log (MOAT_LOG_ERROR, "netlink request too long");
                abort ();
        }
        a->rta_type = type;
        a->rta_len = RTA_LENGTH (len);
        if (len)
                memcpy (RTA_DATA (a), data, len);
        memset ((char *)a + RTA_LENGTH (len), 0, total - RTA_LENGTH (len));
        r->h.nlmsg_len += total;
}

void
moat_nl_attr_u32 (struct moat_nlreq *r, uint16_t type, uint32_t v)
{
        moat_nl_attr (r, type, &v, sizeof v);
}

void
moat_nl_attr_str (struct moat_nlreq *r, uint16_t type, const char *s)
{
        moat_nl_attr (r, type, s, strlen (s) + 1);
}

struct rtattr *
moat_nl_nest (struct moat_nlreq *r, uint16_t type)
{
        struct rtattr *a = (struct rtattr *)(r->buf + r->h.nlmsg_len);
        moat_nl_attr (r, type | NLA_F_NESTED, NULL, 0);
        return a;
}

void
moat_nl_nest_end (struct moat_nlreq *r, struct rtattr *nest)
{
        nest->rta_len = r->buf + r->h.nlmsg_len - (char *)nest;
}

void
moat_nl_parse (struct rtattr **tb, int max, struct rtattr *rta, int len)
{
        memset (tb, 0, sizeof (struct rtattr *) * (max + 1));
        for (; RTA_OK (rta, len); rta = RTA_NEXT (rta, len)) {
                int t = rta->rta_type & ~NLA_F_NESTED;
                if (t <= max)
                        tb[t] = rta;
        }
}

static int
nl_send (int fd, struct moat_nlreq *r)
{
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
        ssize_t n;
        r->h.nlmsg_seq = atomic_fetch_add (&nl_seq, 1);
        do
                n = sendto (fd, r->buf, r->h.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof sa);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : 0;
}

/* The kernel's extended ack text, if any, into msg. */
static void
ack_text (const struct nlmsghdr *h, char *msg, size_t msg_len)
{
        const struct nlmsgerr *e = NLMSG_DATA (h);
        size_t off;
        struct rtattr *tb[NLMSGERR_ATTR_MSG_ + 1];

        if (msg_len)
                msg[0] = '\0';
        if (!(h->nlmsg_flags & NLM_F_ACK_TLVS) || msg_len == 0)
                return;
        off = sizeof *e;
        if (!(h->nlmsg_flags & NLM_F_CAPPED))
                off += e->msg.nlmsg_len - sizeof e->msg;
        off = NL_ALIGN (off);
        if (NLMSG_LENGTH (off) > h->nlmsg_len)
                return;
        moat_nl_parse (tb, NLMSGERR_ATTR_MSG_, (struct rtattr *)((char *)e + off), h->nlmsg_len - NLMSG_LENGTH (off));
        if (tb[NLMSGERR_ATTR_MSG_])
                snprintf (msg, msg_len, "%.*s", (int)RTA_PAYLOAD (tb[NLMSGERR_ATTR_MSG_]),
                          (const char *)RTA_DATA (tb[NLMSGERR_ATTR_MSG_]));
}

/* Reads answers to r until the ack (cb == NULL) or NLMSG_DONE (a dump).
 * Returns 0 or -errno (the kernel's, or cb's < 0 as -EINTR). */
static int
nl_recv (int fd, struct moat_nlreq *r, int (*cb) (const struct nlmsghdr *, void *), void *ctx, char *msg,
         size_t msg_len)
{
        static __thread char buf[32768] __attribute__ ((aligned (8)));
        uint32_t seq = r->h.nlmsg_seq;
        int rc = 1;

        if (msg_len)
                msg[0] = '\0';
        while (rc == 1) {
                ssize_t n;
                do
                        n = recv (fd, buf, sizeof buf, 0);
                while (n < 0 && errno == EINTR);
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK (h, (size_t)n); h = NLMSG_NEXT (h, n)) {
                        if (h->nlmsg_seq != seq)
                                continue;
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA (h);
                                if (e->error)
                                        ack_text (h, msg, msg_len);
                                if (rc == 1)
                                        rc = e->error;
                                continue;
                        }
                        if (h->nlmsg_type == NLMSG_DONE) {
                                if (rc == 1)
                                        rc = 0;
                                continue;
                        }
                        if (cb && rc == 1 && cb (h, ctx) < 0)
                                rc = -EINTR; /* read on to the end of the dump */
                }
        }
        return rc;
}

int
moat_nl_talk_errno (int fd, struct moat_nlreq *r, char *msg, size_t msg_len)
{
        int e;
        r->h.nlmsg_flags |= NLM_F_ACK;
        e = nl_send (fd, r);
        if (e < 0)
                return e;
        return nl_recv (fd, r, NULL, NULL, msg, msg_len);
}

static int
nl_error (moat_error_t *err, int e, const char *msg, const char *what)
{
        if (msg && *msg)
                return moat_make_error (err, -e, "%s (%s)", what, msg);
        return moat_make_error (err, -e, "%s", what);
}

int
moat_nl_talk (int fd, struct moat_nlreq *r, const char *what, moat_error_t *err)
{
        char msg[256];
        int e = moat_nl_talk_errno (fd, r, msg, sizeof msg);
        if (e < 0)
                return nl_error (err, e, msg, what);
        return 0;
}

int
moat_nl_dump (int fd, struct moat_nlreq *r, int (*cb) (const struct nlmsghdr *h, void *ctx), void *ctx,
              const char *what, moat_error_t *err)
{
        char msg[256];
        int e;
        r->h.nlmsg_flags |= NLM_F_DUMP;
        e = nl_send (fd, r);
        if (e == 0)
                e = nl_recv (fd, r, cb, ctx, msg, sizeof msg);
        if (e == -EINTR)
                return -1; /* cb filled *err */
        if (e < 0)
                return nl_error (err, e, msg, what);
        return 0;
}

/* --- descriptions --- */

void
moat_net_ifaces_free (struct moat_net_iface *ifs, size_t n)
{
        for (size_t i = 0; ifs && i < n; i++) {
                free (ifs[i].addrs);
                free (ifs[i].routes);
        }
        free (ifs);
}

void
moat_net_mac_str (const uint8_t mac[6], char buf[18])
{
        snprintf (buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* --- the sandbox namespace and the tap --- */

static int
same_file (int fd, const char *path, bool *same)
{
        struct stat a, b;
        if (fstat (fd, &a) < 0 || stat (path, &b) < 0)
                return -1;
        *same = a.st_dev == b.st_dev && a.st_ino == b.st_ino;
        return 0;
}

int
moat_net_sandbox_ns (const struct oci_config *cfg, int *netns_fd, bool *tap, moat_error_t *err)
{
        const struct oci_namespace *ns = NULL;
        cleanup_close int fd = -1;
        bool host = false;

        *netns_fd = -1;
        *tap = false;
        for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_namespaces; i++)
                if (cfg->linux_->namespaces[i].clone_flag == CLONE_NEWNET)
                        ns = &cfg->linux_->namespaces[i];
        if (ns == NULL)
                return 0;
        if (ns->path && *ns->path) {
                fd = open (ns->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return moat_make_error (err, errno, "linux.namespaces: network: open %s", ns->path);
                if (same_file (fd, "/proc/self/ns/net", &host) < 0)
                        return moat_make_error (err, errno, "linux.namespaces: network: stat %s", ns->path);
        } else {
                cleanup_close int cur = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (cur < 0)
                        return moat_make_error (err, errno, "open /proc/thread-self/ns/net");
                if (unshare (CLONE_NEWNET) < 0)
                        return moat_make_error (err, errno, "linux.namespaces: network: unshare");
                fd = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                int e = errno;
                if (setns (cur, CLONE_NEWNET) < 0) {
                        moat_log (MOAT_LOG_ERROR, "return to our network namespace: %s", strerror (errno));
                        abort ();
                }
                if (fd < 0)
                        return moat_make_error (err, e, "open the new network namespace");
        }
        *tap = !host;
        *netns_fd = steal_fd (&fd);
        return 0;
}

void
moat_net_tap_name (const char *id, char name[MOAT_IFNAMSIZ])
{
        uint32_t h = 2166136261u; /* FNV-1a */
        for (const char *p = id; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf (name, MOAT_IFNAMSIZ, "moat%08x", h);
}

int
moat_net_tap_open (int netns_fd, const char *name, moat_error_t *err)
{
        cleanup_close int cur = -1;
        cleanup_close int fd = -1;
        struct ifreq ifr = {0};
        int e;

        if (netns_fd >= 0) {
                cur = open ("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (cur < 0)
                        return moat_make_error (err, errno, "open /proc/thread-self/ns/net");
                if (setns (netns_fd, CLONE_NEWNET) < 0)
                        return moat_make_error (err, errno, "tap %s: enter the sandbox network namespace", name);
        }
        /* the device is made in the namespace /dev/net/tun was opened in */
        fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC);
        e = errno;
        if (cur >= 0 && setns (cur, CLONE_NEWNET) < 0) {
                moat_log (MOAT_LOG_ERROR, "return to our network namespace: %s", strerror (errno));
                abort ();
        }
        if (fd < 0)
                return moat_make_error (err, e, "tap %s: open /dev/net/tun", name);
        snprintf (ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
        if (ioctl (fd, TUNSETIFF, &ifr) < 0)
                return moat_make_error (err, errno, "tap %s: TUNSETIFF", name);
        return steal_fd (&fd);
}

/* --- what the namespace has --- */

struct link {
        int ifindex;
        char name[MOAT_IFNAMSIZ];
        unsigned type, flags, mtu;
        uint8_t mac[6];
        bool has_mac;
        bool moat_tap; /* a tap of moat's (another VM's in a shared namespace) */
};

struct links {
        struct link *v;
        size_t n;
};

static int
link_cb (const struct nlmsghdr *h, void *ctx)
{
        struct links *l = ctx;
        const struct ifinfomsg *ifi = NLMSG_DATA (h);
        struct rtattr *tb[IFLA_MAX + 1];
        struct link k = {.ifindex = ifi->ifi_index, .type = ifi->ifi_type, .flags = ifi->ifi_flags};

        if (h->nlmsg_type != RTM_NEWLINK)
                return 0;
        moat_nl_parse (tb, IFLA_MAX, IFLA_RTA (ifi), IFLA_PAYLOAD (h));
        if (tb[IFLA_IFNAME])
                snprintf (k.name, sizeof k.name, "%.*s", (int)RTA_PAYLOAD (tb[IFLA_IFNAME]),
                          (const char *)RTA_DATA (tb[IFLA_IFNAME]));
        if (tb[IFLA_MTU] && RTA_PAYLOAD (tb[IFLA_MTU]) >= 4)
                memcpy (&k.mtu, RTA_DATA (tb[IFLA_MTU]), 4);
        if (tb[IFLA_ADDRESS] && RTA_PAYLOAD (tb[IFLA_ADDRESS]) == 6) {
                memcpy (k.mac, RTA_DATA (tb[IFLA_ADDRESS]), 6);
                k.has_mac = true;
        }
        if (tb[IFLA_LINKINFO] && strncmp (k.name, "moat", 4) == 0) {
                struct rtattr *li[IFLA_INFO_MAX + 1];
                moat_nl_parse (li, IFLA_INFO_MAX, RTA_DATA (tb[IFLA_LINKINFO]), RTA_PAYLOAD (tb[IFLA_LINKINFO]));
                k.moat_tap = li[IFLA_INFO_KIND] && strcmp (RTA_DATA (li[IFLA_INFO_KIND]), "tun") == 0;
        }
        l->v = xrealloc (l->v, (l->n + 1) * sizeof *l->v);
        l->v[l->n++] = k;
        return 0;
}

static int
dump_links (int fd, struct links *l, moat_error_t *err)
{
        struct moat_nlreq r;
        struct ifinfomsg *ifi = moat_nl_init (&r, RTM_GETLINK, 0, sizeof *ifi);
        ifi->ifi_family = AF_UNSPEC;
        return moat_nl_dump (fd, &r, link_cb, l, "list the interfaces", err);
}

static int
addr_cb (const struct nlmsghdr *h, void *ctx)
{
        struct moat_net_iface *x = ctx;
        const struct ifaddrmsg *ifa = NLMSG_DATA (h);
        struct rtattr *tb[IFA_MAX + 1];
        struct rtattr *a;
        struct moat_net_addr ad = {.family = ifa->ifa_family, .prefix = ifa->ifa_prefixlen};
        size_t alen = ifa->ifa_family == AF_INET ? 4 : 16;

        if (h->nlmsg_type != RTM_NEWADDR || (int)ifa->ifa_index != x->ifindex)
                return 0;
        if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
                return 0;
        moat_nl_parse (tb, IFA_MAX, IFA_RTA (ifa), IFA_PAYLOAD (h));
        a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
        if (a == NULL || RTA_PAYLOAD (a) != alen)
                return 0;
        memcpy (ad.addr, RTA_DATA (a), alen);
        /* the guest makes its own IPv6 link-local address (the same: same MAC) */
        if (ifa->ifa_family == AF_INET6 && ad.addr[0] == 0xfe && (ad.addr[1] & 0xc0) == 0x80)
                return 0;
        x->addrs = xrealloc (x->addrs, (x->n_addrs + 1) * sizeof *x->addrs);
        x->addrs[x->n_addrs++] = ad;
        return 0;
}

static int
route_cb (const struct nlmsghdr *h, void *ctx)
{
        struct moat_net_iface *x = ctx;
        const struct rtmsg *rt = NLMSG_DATA (h);
        struct rtattr *tb[RTA_MAX + 1];
        struct moat_net_route ro = {.family = rt->rtm_family, .dst_len = rt->rtm_dst_len};
        size_t alen = rt->rtm_family == AF_INET ? 4 : 16;
        uint32_t table = rt->rtm_table, oif = 0;

        if (h->nlmsg_type != RTM_NEWROUTE || (rt->rtm_family != AF_INET && rt->rtm_family != AF_INET6))
                return 0;
        moat_nl_parse (tb, RTA_MAX, RTM_RTA (rt), RTM_PAYLOAD (h));
        if (tb[RTA_TABLE])
                memcpy (&table, RTA_DATA (tb[RTA_TABLE]), 4);
        if (tb[RTA_OIF])
                memcpy (&oif, RTA_DATA (tb[RTA_OIF]), 4);
        /* main table unicast routes through this interface; the prefix
         * routes of its addresses the guest kernel makes itself */
        if (table != RT_TABLE_MAIN || rt->rtm_type != RTN_UNICAST || (int)oif != x->ifindex ||
            rt->rtm_protocol == RTPROT_KERNEL || tb[RTA_MULTIPATH])
                return 0;
        if (tb[RTA_DST] && RTA_PAYLOAD (tb[RTA_DST]) == alen)
                memcpy (ro.dst, RTA_DATA (tb[RTA_DST]), alen);
        if (tb[RTA_GATEWAY] && RTA_PAYLOAD (tb[RTA_GATEWAY]) == alen) {
                memcpy (ro.gw, RTA_DATA (tb[RTA_GATEWAY]), alen);
                ro.has_gw = true;
        }
        if (tb[RTA_PRIORITY])
                memcpy (&ro.metric, RTA_DATA (tb[RTA_PRIORITY]), 4);
        x->routes = xrealloc (x->routes, (x->n_routes + 1) * sizeof *x->routes);
        x->routes[x->n_routes++] = ro;
        return 0;
}

static int
describe (int fd, struct moat_net_iface *x, moat_error_t *err)
{
        struct moat_nlreq r;
        struct ifaddrmsg *ifa = moat_nl_init (&r, RTM_GETADDR, 0, sizeof *ifa);
        struct rtmsg *rt;

        ifa->ifa_family = AF_UNSPEC;
        if (moat_nl_dump (fd, &r, addr_cb, x, "list its addresses", err) < 0)
                return -1;
        rt = moat_nl_init (&r, RTM_GETROUTE, 0, sizeof *rt);
        rt->rtm_family = AF_UNSPEC;
        return moat_nl_dump (fd, &r, route_cb, x, "list its routes", err);
}

/* --- tc --- */

static int
link_set (int fd, int ifindex, unsigned mtu, bool up, const char *what, moat_error_t *err)
{
        struct moat_nlreq r;
        struct ifinfomsg *ifi = moat_nl_init (&r, RTM_NEWLINK, 0, sizeof *ifi);
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        if (up) {
                ifi->ifi_flags = IFF_UP;
                ifi->ifi_change = IFF_UP;
        }
        if (mtu)
                moat_nl_attr_u32 (&r, IFLA_MTU, mtu);
        return moat_nl_talk (fd, &r, what, err);
}

static int
ingress_qdisc (int fd, int ifindex, bool add, char *msg, size_t msg_len)
{
        struct moat_nlreq r;
        struct tcmsg *t =
                moat_nl_init (&r, add ? RTM_NEWQDISC : RTM_DELQDISC, add ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof *t);
        t->tcm_family = AF_UNSPEC;
        t->tcm_ifindex = ifindex;
        t->tcm_handle = TC_H_MAKE (TC_H_INGRESS, 0);
        t->tcm_parent = TC_H_INGRESS;
        moat_nl_attr_str (&r, TCA_KIND, "ingress");
        return moat_nl_talk_errno (fd, &r, msg, msg_len);
}

/* A filter on ifindex's ingress that redirects every frame to the egress
 * of to_ifindex; returns the kernel's -errno. */
static int
redirect_filter (int fd, int ifindex, int to_ifindex, const char *kind, char *msg, size_t msg_len)
{
        struct moat_nlreq r;
        struct tcmsg *t = moat_nl_init (&r, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, sizeof *t);
        bool u32 = strcmp (kind, "u32") == 0;
        struct tc_mirred m = {.action = TC_ACT_STOLEN, .eaction = TCA_EGRESS_REDIR, .ifindex = to_ifindex};
        struct rtattr *opts, *acts, *act, *aopts;

        t->tcm_family = AF_UNSPEC;
        t->tcm_ifindex = ifindex;
        t->tcm_parent = TC_H_MAKE (TC_H_INGRESS, 0);
        t->tcm_info = TC_H_MAKE (TC_PRIO << 16, htons (ETH_P_ALL));
        moat_nl_attr_str (&r, TCA_KIND, kind);
        opts = moat_nl_nest (&r, TCA_OPTIONS);
        if (u32) {
                struct {
                        struct tc_u32_sel sel;
                        struct tc_u32_key key; /* mask 0: matches everything */
                } s;
                memset (&s, 0, sizeof s);
                s.sel.flags = TC_U32_TERMINAL;
                s.sel.nkeys = 1;
                moat_nl_attr (&r, TCA_U32_SEL, &s, sizeof s);
                acts = moat_nl_nest (&r, TCA_U32_ACT);
        } else {
                acts = moat_nl_nest (&r, TCA_MATCHALL_ACT);
        }
        act = moat_nl_nest (&r, 1);
        moat_nl_attr_str (&r, TCA_ACT_KIND, "mirred");
        aopts = moat_nl_nest (&r, TCA_ACT_OPTIONS);
        moat_nl_attr (&r, TCA_MIRRED_PARMS, &m, sizeof m);
        moat_nl_nest_end (&r, aopts);
        moat_nl_nest_end (&r, act);
        moat_nl_nest_end (&r, acts);
        moat_nl_nest_end (&r, opts);
        return moat_nl_talk_errno (fd, &r, msg, msg_len);
}

static void
tc_undo (int fd, int ifindex)
{
        char msg[8];
        int e = ingress_qdisc (fd, ifindex, false, msg, sizeof msg);
        if (e < 0 && e != -ENOENT && e != -EINVAL && e != -ENODEV)
                moat_debug ("tc: remove the ingress qdisc of interface %d: %s", ifindex, strerror (-e));
}

/* Connects veth and tap both ways (the first filter probes the classifier).
 * On failure it removes what it added, never an ingress qdisc the interface
 * had before. */
static int
tc_connect (int fd, const struct link *veth, const struct link *tap, moat_error_t *err)
{
        static const char *const kinds[] = {"matchall", "u32"};
        char msg[256];
        const char *kind = NULL;
        int e;

        e = ingress_qdisc (fd, tap->ifindex, true, msg, sizeof msg);
        if (e < 0)
                return nl_error (err, e, msg,
                                 e == -ENOENT || e == -EOPNOTSUPP
                                         ? "tc: add an ingress qdisc to the tap: the kernel has no ingress qdisc "
                                           "(CONFIG_NET_SCH_INGRESS)"
                                         : "tc: add an ingress qdisc to the tap");
        e = ingress_qdisc (fd, veth->ifindex, true, msg, sizeof msg);
        if (e < 0) {
                tc_undo (fd, tap->ifindex);
                if (e == -EEXIST)
                        return moat_make_error (err, EEXIST,
                                                "tc: add an ingress qdisc: the interface has one already (another "
                                                "moat VM uses this network namespace, or tc rules of its own are "
                                                "there): its traffic cannot be redirected into the VM");
                return nl_error (err, e, msg, "tc: add an ingress qdisc");
        }
        for (size_t i = 0; i < ARRAY_SIZE (kinds); i++) {
                e = redirect_filter (fd, tap->ifindex, veth->ifindex, kinds[i], msg, sizeof msg);
                if (e == 0) {
                        kind = kinds[i];
                        break;
                }
                if (e != -ENOENT && e != -EOPNOTSUPP)
                        break;
                moat_debug ("tc: classifier %s unavailable: %s%s%s", kinds[i], strerror (-e), *msg ? ": " : "", msg);
        }
        if (kind == NULL) {
                if (e == -ENOENT || e == -EOPNOTSUPP)
                        nl_error (err, e, msg,
                                  "tc: the kernel has neither the matchall nor the u32 classifier, or no mirred "
                                  "action (CONFIG_NET_CLS_MATCHALL or CONFIG_NET_CLS_U32, and CONFIG_NET_ACT_MIRRED)");
                else
                        nl_error (err, e, msg, "tc: add the filter that redirects the tap to the interface");
                goto undo;
        }
        e = redirect_filter (fd, veth->ifindex, tap->ifindex, kind, msg, sizeof msg);
        if (e < 0) {
                nl_error (err, e, msg, "tc: add the filter that redirects the interface to the tap");
                goto undo;
        }
        moat_debug ("tc: %s <-> %s with %s + mirred", veth->name, tap->name, kind);
        return 0;
undo:
        tc_undo (fd, veth->ifindex);
        tc_undo (fd, tap->ifindex);
        return -1;
}

int
moat_net_connect (int netns_fd, const char *tap, struct moat_net_iface **out, size_t *n, moat_error_t *err)
{
        cleanup_close int fd = -1;
        struct links l = {0};
        const struct link *veth = NULL, *t = NULL;
        struct moat_net_iface *x = NULL;
        int rc = -1;

        *out = NULL;
        *n = 0;
        fd = moat_nl_open (netns_fd, err);
        if (fd < 0)
                return -1;
        if (dump_links (fd, &l, err) < 0)
                goto out;
        for (size_t i = 0; i < l.n; i++) {
                if (strcmp (l.v[i].name, tap) == 0)
                        t = &l.v[i];
                else if (veth == NULL && l.v[i].type == ARPHRD_ETHER && !(l.v[i].flags & IFF_LOOPBACK) &&
                         l.v[i].has_mac && !l.v[i].moat_tap)
                        veth = &l.v[i];
        }
        if (t == NULL) {
                moat_make_error (err, ENODEV, "tap %s: not in the sandbox network namespace", tap);
                goto out;
        }
        if (veth == NULL) {
                moat_debug ("net: no interface besides lo and %s: the container gets only lo", tap);
                rc = 0;
                goto out;
        }
        /* Another moat VM's tap: that VM has the interface already (a
         * second container in one namespace: a Podman pod, --network
         * container:X, a Kubernetes pod through the runc shim). One
         * interface cannot be redirected to two VMs, so this container
         * gets only lo, as before networking existed. */
        for (size_t i = 0; i < l.n; i++)
                if (&l.v[i] != t && l.v[i].moat_tap && strncmp (l.v[i].name, "moat", 4) == 0) {
                        moat_warn ("network interface %s already reaches the VM of another container (tap %s): "
                                   "this container gets only lo",
                                   veth->name, l.v[i].name);
                        rc = 0;
                        goto out;
                }
        for (size_t i = 0; i < l.n; i++)
                if (&l.v[i] != veth && &l.v[i] != t && l.v[i].type == ARPHRD_ETHER && !l.v[i].moat_tap)
                        moat_warn ("network interface %s stays on the host: only the first one (%s) reaches the VM",
                                   l.v[i].name, veth->name);
        x = xzalloc (sizeof *x);
        snprintf (x->name, sizeof x->name, "%s", veth->name);
        x->ifindex = veth->ifindex;
        x->mtu = veth->mtu;
        memcpy (x->mac, veth->mac, 6);
        if (describe (fd, x, err) < 0) {
                moat_error_wrap (err, "network interface %s", veth->name);
                goto out;
        }
        if (link_set (fd, t->ifindex, veth->mtu, true, "set the tap up", err) < 0 ||
            (!(veth->flags & IFF_UP) && link_set (fd, veth->ifindex, 0, true, "set it up", err) < 0) ||
            tc_connect (fd, veth, t, err) < 0) {
                moat_error_wrap (err, "network interface %s (tap %s)", veth->name, tap);
                goto out;
        }
        *out = steal_pointer (&x);
        *n = 1;
        rc = 0;
out:
        moat_net_ifaces_free (x, 1);
        free (l.v);
        return rc;
}

int
moat_net_disconnect (int netns_fd, int ifindex, const char *name, moat_error_t *err)
{
        cleanup_close int fd = moat_nl_open (netns_fd, err);
        struct links l = {0};
        bool found = false;

        if (fd < 0)
                return -1;
        if (dump_links (fd, &l, err) < 0)
                return -1;
        for (size_t i = 0; i < l.n; i++)
                found |= l.v[i].ifindex == ifindex && strcmp (l.v[i].name, name) == 0;
        free (l.v);
        if (found)
                tc_undo (fd, ifindex);
        return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The default config.json written by `moat spec`: runc's default spec (same
 * fields, same order, same values) with hostname "moat". */
#include <stdint.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "moat/json_gen.h"
#include "moat/spec.h"
#include "moat/util.h"

static void
mount (yajl_gen g, const char *dest, const char *type, const char *source, const char *const *opts)
{
        yajl_gen_map_open (g);
        moat_gen_kv (g, "destination", dest);
        moat_gen_kv (g, "type", type);
        moat_gen_kv (g, "source", source);
        if (opts)
                moat_gen_kstrv (g, "options", opts);
        yajl_gen_map_close (g);
}

static void
id_map (yajl_gen g, const char *k, unsigned host_id)
{
        moat_gen_str (g, k);
        yajl_gen_array_open (g);
        yajl_gen_map_open (g);
        moat_gen_kint (g, "containerID", 0);
        moat_gen_kint (g, "hostID", host_id);
        moat_gen_kint (g, "size", 1);
        yajl_gen_map_close (g);
        yajl_gen_array_close (g);
}

char *
moat_spec_default (bool rootless, uid_t uid, gid_t gid)
{
        static const char *const caps[] = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", NULL};
        static const char *const env[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                          "TERM=xterm", NULL};
        static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
        static const char *const pts_opts[] = {"nosuid",    "noexec", "newinstance", "ptmxmode=0666",
                                               "mode=0620", "gid=5",  NULL};
        static const char *const pts_opts_rootless[] = {"nosuid",        "noexec",    "newinstance",
                                                        "ptmxmode=0666", "mode=0620", NULL};
        static const char *const shm_opts[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL};
        static const char *const mq_opts[] = {"nosuid", "noexec", "nodev", NULL};
        static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro", NULL};
        static const char *const sys_opts_rootless[] = {"rbind", "nosuid", "noexec", "nodev", "ro", NULL};
        static const char *const cg_opts[] = {"nosuid", "noexec", "nodev", "relatime", "ro", NULL};
        static const char *const masked[] = {"/proc/acpi",
                                             "/proc/asound",
                                             "/proc/kcore",
                                             "/proc/keys",
                                             "/proc/latency_stats",
                                             "/proc/timer_list",
                                             "/proc/timer_stats",
                                             "/proc/sched_debug",
                                             "/sys/firmware",
                                             "/proc/scsi",
                                             NULL};
        static const char *const ro[] = {"/proc/bus",           "/proc/fs", "/proc/irq", "/proc/sys",
                                         "/proc/sysrq-trigger", NULL};
        static const char *const ns[] = {"pid", "network", "ipc", "uts", "mount", NULL};
        static const char *const ns_rootless[] = {"pid", "ipc", "uts", "mount", "user", NULL};
        static const char *const cap_sets[] = {"bounding", "effective", "permitted", "ambient"};
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;
        char *out;

        yajl_gen_config (g, yajl_gen_beautify, 1);
        yajl_gen_config (g, yajl_gen_indent_string, "\t");
        yajl_gen_map_open (g);
        moat_gen_kv (g, "ociVersion", "1.0.2");

        moat_gen_str (g, "process");
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "terminal", true);
        moat_gen_str (g, "user");
        yajl_gen_map_open (g);
        moat_gen_kint (g, "uid", 0);
        moat_gen_kint (g, "gid", 0);
        yajl_gen_map_close (g);
        moat_gen_kstrv (g, "args", (const char *const[]){"sh", NULL});
        moat_gen_kstrv (g, "env", env);
        moat_gen_kv (g, "cwd", "/");
        moat_gen_str (g, "capabilities");
        yajl_gen_map_open (g);
        for (size_t i = 0; i < ARRAY_SIZE (cap_sets); i++)
                moat_gen_kstrv (g, cap_sets[i], caps);
        yajl_gen_map_close (g);
        moat_gen_str (g, "rlimits");
        yajl_gen_array_open (g);
        yajl_gen_map_open (g);
        moat_gen_kv (g, "type", "RLIMIT_NOFILE");
        moat_gen_kint (g, "hard", 1024);
        moat_gen_kint (g, "soft", 1024);
        yajl_gen_map_close (g);
        yajl_gen_array_close (g);
        moat_gen_kbool (g, "noNewPrivileges", true);
        yajl_gen_map_close (g);

        moat_gen_str (g, "root");
        yajl_gen_map_open (g);
        moat_gen_kv (g, "path", "rootfs");
        moat_gen_kbool (g, "readonly", true);
        yajl_gen_map_close (g);
        moat_gen_kv (g, "hostname", "moat");

        moat_gen_str (g, "mounts");
        yajl_gen_array_open (g);
        mount (g, "/proc", "proc", "proc", NULL);
        mount (g, "/dev", "tmpfs", "tmpfs", dev_opts);
        mount (g, "/dev/pts", "devpts", "devpts", rootless ? pts_opts_rootless : pts_opts);
        mount (g, "/dev/shm", "tmpfs", "shm", shm_opts);
        mount (g, "/dev/mqueue", "mqueue", "mqueue", mq_opts);
        if (rootless)
                mount (g, "/sys", "none", "/sys", sys_opts_rootless);
        else
                mount (g, "/sys", "sysfs", "sysfs", sys_opts);
        mount (g, "/sys/fs/cgroup", "cgroup", "cgroup", cg_opts);
        yajl_gen_array_close (g);

        moat_gen_str (g, "linux");
        yajl_gen_map_open (g);
        if (rootless) {
                id_map (g, "uidMappings", uid);
                id_map (g, "gidMappings", gid);
        } else {
                moat_gen_str (g, "resources");
                yajl_gen_map_open (g);
                moat_gen_str (g, "devices");
                yajl_gen_array_open (g);
                yajl_gen_map_open (g);
                moat_gen_kbool (g, "allow", false);
                moat_gen_kv (g, "access", "rwm");
                yajl_gen_map_close (g);
                yajl_gen_array_close (g);
                yajl_gen_map_close (g);
        }
        moat_gen_str (g, "namespaces");
        yajl_gen_array_open (g);
        for (const char *const *n = rootless ? ns_rootless : ns; *n; n++) {
                yajl_gen_map_open (g);
                moat_gen_kv (g, "type", *n);
                yajl_gen_map_close (g);
        }
        yajl_gen_array_close (g);
        moat_gen_kstrv (g, "maskedPaths", masked);
        moat_gen_kstrv (g, "readonlyPaths", ro);
        yajl_gen_map_close (g);

        yajl_gen_map_close (g);
        yajl_gen_get_buf (g, &buf, &len);
        out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        return out;
}

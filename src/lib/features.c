/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime-spec features document (features.md) printed by `moat
 * features`. Everything here is fixed at build time and claims only what
 * moat implements: the options agent/mounts.c understands, the namespaces
 * agent/spawn.c creates, the seccomp actions agent/seccomp.c maps, cgroup
 * v2 inside the guest. Hooks: the host runs createRuntime, prestart,
 * poststart and poststop; the agent runs createContainer and
 * startContainer in the guest (agent/hooks.c). */
#include <seccomp.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "moat/json_gen.h"
#include "moat/spec.h"
#include "moat/util.h"

#define STR_(x) #x
#define STR(x) STR_ (x)

#ifndef MOAT_VERSION
#define MOAT_VERSION "unknown"
#endif

/* The spec version moat implements (also in `moat --version` and state). */
#define MOAT_OCI_VERSION "1.0.2"

static const char *const hooks[] = {
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", NULL};

/* agent/mounts.c: mount flags, propagation flags. */
static const char *const mount_options[] = {
        "async",         "atime",   "bind",    "dev",         "diratime", "dirsync", "exec",
        "mand",          "noatime", "nodev",   "nodiratime",  "noexec",   "nomand",  "norelatime",
        "nostrictatime", "nosuid",  "private", "rbind",       "relatime", "remount", "ro",
        "rprivate",      "rshared", "rslave",  "runbindable", "rw",       "shared",  "slave",
        "strictatime",   "suid",    "sync",    "unbindable",  NULL};

static const char *const namespaces[] = {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts", NULL};

/* Every capability of the guest kernel (6.12), in number order. */
static const char *const capabilities[] = {"CAP_CHOWN",
                                           "CAP_DAC_OVERRIDE",
                                           "CAP_DAC_READ_SEARCH",
                                           "CAP_FOWNER",
                                           "CAP_FSETID",
                                           "CAP_KILL",
                                           "CAP_SETGID",
                                           "CAP_SETUID",
                                           "CAP_SETPCAP",
                                           "CAP_LINUX_IMMUTABLE",
                                           "CAP_NET_BIND_SERVICE",
                                           "CAP_NET_BROADCAST",
                                           "CAP_NET_ADMIN",
                                           "CAP_NET_RAW",
                                           "CAP_IPC_LOCK",
                                           "CAP_IPC_OWNER",
                                           "CAP_SYS_MODULE",
                                           "CAP_SYS_RAWIO",
                                           "CAP_SYS_CHROOT",
                                           "CAP_SYS_PTRACE",
                                           "CAP_SYS_PACCT",
                                           "CAP_SYS_ADMIN",
                                           "CAP_SYS_BOOT",
                                           "CAP_SYS_NICE",
                                           "CAP_SYS_RESOURCE",
                                           "CAP_SYS_TIME",
                                           "CAP_SYS_TTY_CONFIG",
                                           "CAP_MKNOD",
                                           "CAP_LEASE",
                                           "CAP_AUDIT_WRITE",
                                           "CAP_AUDIT_CONTROL",
                                           "CAP_SETFCAP",
                                           "CAP_MAC_OVERRIDE",
                                           "CAP_MAC_ADMIN",
                                           "CAP_SYSLOG",
                                           "CAP_WAKE_ALARM",
                                           "CAP_BLOCK_SUSPEND",
                                           "CAP_AUDIT_READ",
                                           "CAP_PERFMON",
                                           "CAP_BPF",
                                           "CAP_CHECKPOINT_RESTORE",
                                           NULL};

/* agent/seccomp.c: SCMP_ACT_NOTIFY is refused (no listener in the guest). */
static const char *const seccomp_actions[] = {"SCMP_ACT_ALLOW",        "SCMP_ACT_ERRNO",       "SCMP_ACT_KILL",
                                              "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                                              "SCMP_ACT_TRACE",        "SCMP_ACT_TRAP",        NULL};
static const char *const seccomp_operators[] = {"SCMP_CMP_EQ", "SCMP_CMP_GE",        "SCMP_CMP_GT", "SCMP_CMP_LE",
                                                "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE", NULL};
/* Every architecture the guest's libseccomp (linked into the agent) knows. */
static const char *const seccomp_archs[] = {
        "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM",      "SCMP_ARCH_MIPS",        "SCMP_ARCH_MIPS64",  "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_PPC",     "SCMP_ARCH_PPC64",    "SCMP_ARCH_PPC64LE",     "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",   "SCMP_ARCH_X32",      "SCMP_ARCH_X86",         "SCMP_ARCH_X86_64",  NULL};
static const char *const seccomp_flags[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                            "SECCOMP_FILTER_FLAG_SPEC_ALLOW", NULL};

/* "k": {"enabled": v} */
static void
kenabled (yajl_gen g, const char *k, bool v)
{
        moat_gen_str (g, k);
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "enabled", v);
        yajl_gen_map_close (g);
}

char *
moat_features_json (void)
{
        yajl_gen g = yajl_gen_alloc (NULL);
        const unsigned char *buf;
        size_t len;
        char *out;

        yajl_gen_config (g, yajl_gen_beautify, 1);
        yajl_gen_map_open (g);
        moat_gen_kv (g, "ociVersionMin", "1.0.0");
        moat_gen_kv (g, "ociVersionMax", MOAT_OCI_VERSION);
        moat_gen_kstrv (g, "hooks", hooks);
        moat_gen_kstrv (g, "mountOptions", mount_options);

        moat_gen_str (g, "linux");
        yajl_gen_map_open (g);
        moat_gen_kstrv (g, "namespaces", namespaces);
        moat_gen_kstrv (g, "capabilities", capabilities);
        moat_gen_str (g, "cgroup");
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "v1", false);
        moat_gen_kbool (g, "v2", true);
        moat_gen_kbool (g, "systemd", false);
        moat_gen_kbool (g, "systemdUser", false);
        moat_gen_kbool (g, "rdma", false);
        yajl_gen_map_close (g);
        moat_gen_str (g, "seccomp");
        yajl_gen_map_open (g);
        moat_gen_kbool (g, "enabled", true);
        moat_gen_kstrv (g, "actions", seccomp_actions);
        moat_gen_kstrv (g, "operators", seccomp_operators);
        moat_gen_kstrv (g, "archs", seccomp_archs);
        moat_gen_kstrv (g, "knownFlags", seccomp_flags);
        moat_gen_kstrv (g, "supportedFlags", seccomp_flags);
        yajl_gen_map_close (g);
        kenabled (g, "apparmor", false);
        kenabled (g, "selinux", false);
        kenabled (g, "intelRdt", false);
        moat_gen_str (g, "mountExtensions");
        yajl_gen_map_open (g);
        kenabled (g, "idmap", false);
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        moat_gen_str (g, "annotations");
        yajl_gen_map_open (g);
        moat_gen_kv (g, "io.github.seccomp.libseccomp.version",
                     STR (SCMP_VER_MAJOR) "." STR (SCMP_VER_MINOR) "." STR (SCMP_VER_MICRO));
        moat_gen_kv (g, "org.moat.version", MOAT_VERSION);
        moat_gen_kv (g, "org.moat.hypervisor", "qemu,moat-vmm");
        moat_gen_kv (g, "org.moat.guest.cgroup", "v2");
        yajl_gen_map_close (g);
        yajl_gen_map_close (g);

        yajl_gen_get_buf (g, &buf, &len);
        out = xstrndup ((const char *)buf, len);
        yajl_gen_free (g);
        return out;
}

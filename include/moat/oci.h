/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI runtime-spec config.json, parsed with yajl into plain structs.
 *
 * Parsing validates types and the values the runtime acts on, and fails with
 * a message naming the field ("config.json: process.args: expected an array
 * of strings"). As the spec requires, unknown properties are ignored. The
 * raw yajl tree is kept so the host can rewrite and re-serialise the config
 * for the guest without losing fields. */
#ifndef MOAT_OCI_H
#define MOAT_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "moat/error.h"

struct oci_id_map {
        uint32_t container_id, host_id, size;
};

struct oci_rlimit {
        char *type;   /* "RLIMIT_NOFILE" */
        int resource; /* RLIMIT_NOFILE */
        uint64_t soft, hard;
};

struct oci_user {
        uint32_t uid, gid;
        bool has_umask;
        uint32_t umask;
        uint32_t *additional_gids;
        size_t n_additional_gids;
        char *username;
};

/* NULL-terminated string vectors; a NULL vector means the key was absent. */
struct oci_caps {
        char **bounding, **effective, **inheritable, **permitted, **ambient;
};

struct oci_process {
        bool terminal;
        bool has_console_size;
        uint32_t console_height, console_width;
        struct oci_user user;
        char **args;           /* at least one element */
        char **env;            /* may be NULL */
        char *cwd;             /* absolute */
        struct oci_caps *caps; /* NULL if absent */
        struct oci_rlimit *rlimits;
        size_t n_rlimits;
        bool no_new_privileges;
        bool has_oom_score_adj;
        int oom_score_adj;
        char *apparmor_profile, *selinux_label;
};

struct oci_mount {
        char *destination; /* absolute */
        char *type;        /* may be NULL (then a bind if options say so) */
        char *source;      /* may be NULL */
        char **options;    /* may be NULL */
};

struct oci_hook {
        char *path; /* absolute */
        char **args;
        char **env;
        int timeout; /* seconds; 0 = none */
};

enum oci_hook_kind {
        OCI_HOOK_PRESTART = 0,
        OCI_HOOK_CREATE_RUNTIME,
        OCI_HOOK_CREATE_CONTAINER,
        OCI_HOOK_START_CONTAINER,
        OCI_HOOK_POSTSTART,
        OCI_HOOK_POSTSTOP,
        OCI_HOOK_KINDS
};
extern const char *const oci_hook_names[OCI_HOOK_KINDS]; /* "prestart", "createRuntime", ... */

struct oci_namespace {
        char *type_name; /* "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time" */
        int clone_flag;  /* CLONE_NEWPID ... */
        char *path;      /* may be NULL */
};

struct oci_device {
        char *path;
        char type; /* 'c', 'b', 'u', 'p' */
        int64_t major, minor;
        bool has_file_mode, has_uid, has_gid;
        uint32_t file_mode, uid, gid;
};

struct oci_device_rule {
        bool allow;
        char type;            /* 'a', 'c', 'b' (0 if absent = 'a') */
        int64_t major, minor; /* -1 = wildcard */
        char *access;         /* "rwm" subset, may be NULL */
};

struct oci_resources {
        bool has_memory_limit, has_memory_reservation, has_memory_swap, has_memory_swappiness;
        int64_t memory_limit, memory_reservation, memory_swap;
        uint64_t memory_swappiness;
        bool has_cpu_shares, has_cpu_quota, has_cpu_period;
        uint64_t cpu_shares, cpu_period;
        int64_t cpu_quota;
        char *cpu_cpus, *cpu_mems;
        bool has_pids_limit;
        int64_t pids_limit;
        char **unified_keys, **unified_values;
        size_t n_unified;
        struct oci_device_rule *devices;
        size_t n_devices;
};

struct oci_seccomp_arg {
        uint32_t index;
        uint64_t value, value_two;
        char *op; /* "SCMP_CMP_EQ" ... */
};

struct oci_seccomp_syscall {
        char **names;
        char *action; /* "SCMP_ACT_ERRNO" ... */
        bool has_errno_ret;
        uint32_t errno_ret;
        struct oci_seccomp_arg *args;
        size_t n_args;
};

struct oci_seccomp {
        char *default_action;
        bool has_default_errno_ret;
        uint32_t default_errno_ret;
        char **architectures; /* "SCMP_ARCH_X86_64" ... may be NULL */
        char **flags;         /* may be NULL */
        char *listener_path;
        struct oci_seccomp_syscall *syscalls;
        size_t n_syscalls;
};

struct oci_linux {
        struct oci_namespace *namespaces;
        size_t n_namespaces;
        struct oci_id_map *uid_mappings, *gid_mappings;
        size_t n_uid_mappings, n_gid_mappings;
        struct oci_device *devices;
        size_t n_devices;
        char *cgroups_path;
        struct oci_resources *resources; /* NULL if absent */
        char **sysctl_keys, **sysctl_values;
        size_t n_sysctl;
        struct oci_seccomp *seccomp; /* NULL if absent */
        char *rootfs_propagation;
        char **masked_paths, **readonly_paths; /* may be NULL */
        char *mount_label;
};

struct oci_config {
        char *oci_version;
        struct oci_process *process; /* NULL if absent */
        char *root_path;             /* required */
        bool root_readonly;
        char *hostname, *domainname;
        struct oci_mount *mounts;
        size_t n_mounts;
        struct oci_hook *hooks[OCI_HOOK_KINDS];
        size_t n_hooks[OCI_HOOK_KINDS];
        char **annotation_keys, **annotation_values;
        size_t n_annotations;
        struct oci_linux *linux_; /* NULL if absent */
        yajl_val tree;            /* the parsed document, owned */
};

/* Parses a config.json document. `what` names it in errors ("config.json"). */
int oci_config_parse (const char *json, const char *what, struct oci_config **out, moat_error_t *err);
/* Reads and parses BUNDLE/config.json. */
int oci_config_load (const char *bundle, struct oci_config **out, moat_error_t *err);
void oci_config_free (struct oci_config *c);

/* Parses a lone "process" object (exec --process, ExecProcess). */
int oci_process_parse (const char *json, const char *what, struct oci_process **out, moat_error_t *err);
int oci_process_parse_tree (yajl_val v, const char *what, struct oci_process **out, moat_error_t *err);
void oci_process_free (struct oci_process *p);

/* Parses a lone linux.resources object (update --resources). */
int oci_resources_parse (const char *json, const char *what, struct oci_resources **out, moat_error_t *err);
void oci_resources_free (struct oci_resources *r);

/* Signal names ("SIGKILL", "KILL", "9") to numbers; -1 if unknown. */
int oci_signal_parse (const char *s);

/* Generic yajl tree helpers, used to rewrite the config for the guest. */
yajl_val oci_tree_get (yajl_val root, const char *const *path); /* NULL-terminated key path */
/* Serialises a tree to compact JSON (malloc'd). */
char *oci_tree_to_json (yajl_val v);
/* Replaces the string value at v (which must be a string node). */
void oci_tree_set_string (yajl_val v, const char *s);
/* Removes key from object v if present. */
void oci_tree_remove_key (yajl_val obj, const char *key);
/* A new string node (malloc'd, like yajl's own; free with yajl_tree_free). */
yajl_val oci_tree_new_string (const char *s);
/* Sets obj[key] = value (replacing an existing value, else appending); takes
 * ownership of value. */
void oci_tree_object_set (yajl_val obj, const char *key, yajl_val value);
/* Removes and frees element index of an array (no-op if out of range). */
void oci_tree_array_remove (yajl_val arr, size_t index);

#define cleanup_oci_config __attribute__ ((cleanup (oci_cleanup_config)))
static inline void
oci_cleanup_config (struct oci_config **c)
{
        oci_config_free (*c);
        *c = NULL;
}

#endif

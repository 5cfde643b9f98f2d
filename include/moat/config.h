/* SPDX-License-Identifier: Apache-2.0 */
/* moat's settings: built-in defaults, overridden by /etc/moat/moat.conf
 * (or --config FILE / MOAT_CONFIG), then by the drop-ins in
 * <config>.d/NAME.conf (lexical order), then by MOAT_* environment variables,
 * then by command-line flags. The files are INI (parsed by libinih);
 * every value remembers where it came from (`moat env` prints it). An
 * unknown section or key, a bad value or a syntax error is an error that
 * names the file, the line and the key. docs/configuration.md. */
#ifndef MOAT_CONFIG_H
#define MOAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "moat/error.h"

#ifndef MOAT_SYSCONFDIR
#define MOAT_SYSCONFDIR "/etc"
#endif
#define MOAT_CONFIG_DEFAULT_PATH MOAT_SYSCONFDIR "/moat/moat.conf"

enum moat_setting {
        MOAT_SET_HYPERVISOR = 0, /* runtime.hypervisor: auto|moat-vmm|qemu */
        MOAT_SET_LOG_LEVEL,      /* runtime.log_level: info|debug */
        MOAT_SET_KERNEL,         /* guest.kernel: path, "" = search */
        MOAT_SET_INITRAMFS,      /* guest.initramfs */
        MOAT_SET_KERNEL_PARAMS,  /* guest.kernel_params: appended to the command line */
        MOAT_SET_MEMORY_MIB,     /* guest.memory_mib: RAM without a memory limit */
        MOAT_SET_VCPUS,          /* guest.vcpus: vCPUs without a CPU quota */
        MOAT_SET_OVERHEAD_MIB,   /* guest.overhead_mib: added to a memory limit */
        MOAT_SET_BOOT_TIMEOUT,   /* guest.boot_timeout: seconds (num: ms) */
        MOAT_SET_QEMU,           /* hypervisor.qemu */
        MOAT_SET_VMM,            /* hypervisor.moat_vmm: path, "" = search */
        MOAT_SET_VSOCK,          /* hypervisor.vsock_helper: path, "" = search */
        MOAT_SET_VMM_FORCE,      /* hypervisor.vmm_force: bool */
        MOAT_SET__COUNT,
};

enum moat_config_origin {
        MOAT_FROM_DEFAULT = 0,
        MOAT_FROM_FILE, /* moat.conf or a drop-in: file, line */
        MOAT_FROM_ENV,  /* name: the variable */
        MOAT_FROM_FLAG, /* name: the flag */
};

enum moat_setting_type {
        MOAT_TYPE_CHOICE,
        MOAT_TYPE_PATH,
        MOAT_TYPE_INT,
        MOAT_TYPE_SECONDS,
        MOAT_TYPE_BOOL,
        MOAT_TYPE_TEXT
};

struct moat_setting_spec {
        const char *section, *key;
        const char *env;     /* the environment variable, NULL: none */
        const char *env_key; /* its name in `moat env` */
        enum moat_setting_type type;
        const char *def;            /* built-in default, as text */
        const char *const *choices; /* MOAT_TYPE_CHOICE, NULL-terminated */
        long long min, max;         /* MOAT_TYPE_INT and _SECONDS (in seconds) */
        const char *help;
};

struct moat_config_value {
        char *text;    /* normalised value ("" for an unset path) */
        long long num; /* INT: the number, SECONDS: milliseconds, BOOL: 0/1 */
        enum moat_config_origin origin;
        char *file; /* MOAT_FROM_FILE */
        int line;
        const char *name; /* MOAT_FROM_ENV, MOAT_FROM_FLAG (static) */
};

struct moat_config {
        struct moat_config_value v[MOAT_SET__COUNT];
        char *path;      /* the main file */
        bool path_found; /* it exists (and was read) */
        char *path_from; /* "--config", "MOAT_CONFIG" or "default" */
        char **dropins;  /* the drop-ins read, in order (NULL-terminated) */
};

const struct moat_setting_spec *moat_setting_spec (enum moat_setting s);
/* "section.key" -> setting, -1 if unknown */
int moat_setting_lookup (const char *section, const char *key);

/* Fills c: defaults, `path` (NULL: MOAT_CONFIG, else the default path; a
 * path given either way must exist, the default one may be absent), its
 * drop-ins, the environment. path_from names where path came from. On an
 * error c is freed and *err names file:line: key. */
int moat_config_read (struct moat_config *c, const char *path, const char *path_from, moat_error_t *err);
/* Parses one file's text over c (file names it in errors and provenance). */
int moat_config_parse_string (struct moat_config *c, const char *file, const char *text, moat_error_t *err);
/* Sets a value from a command-line flag (flag: static string). */
int moat_config_set_flag (struct moat_config *c, enum moat_setting s, const char *value, const char *flag,
                          moat_error_t *err);
void moat_config_init_defaults (struct moat_config *c);
void moat_config_free (struct moat_config *c);
/* "default", "FILE:LINE", "env NAME", "flag NAME" (malloc'd) */
char *moat_config_source (const struct moat_config_value *v);

/* The process-wide configuration. moat_config_load fills it (the CLI and
 * the shim call it first, so a bad file is an error there); the first
 * moat_config() without a load reads the default files itself and, on an
 * error, warns and keeps the built-in defaults and the environment. */
int moat_config_load (const char *path, const char *path_from, moat_error_t *err);
struct moat_config *moat_config (void);
const char *moat_config_str (enum moat_setting s);
long long moat_config_num (enum moat_setting s);
const struct moat_config_value *moat_config_value (enum moat_setting s);

#endif

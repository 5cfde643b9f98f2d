/* SPDX-License-Identifier: Apache-2.0 */
/* moat-vmm's configuration: from the command line and/or a JSON file
 * (command-line options given after --config override the file). */
#ifndef MOAT_VMM_CONFIG_H
#define MOAT_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"
#include "moat/vmm.h"

struct vmm_share {
        char *tag;
        char *path;
};

struct vmm_config {
        char *kernel;
        char *initrd;
        char *cmdline;
        uint64_t memory_mib;
        int cpus;
        char *serial_log; /* NULL or "-": stdout */
        bool serial_stdin;
        bool rng; /* virtio-rng (entropy) device */
        bool debug;
        struct vmm_cpuid_mask *masks;
        size_t nmasks;
        char *vsock_socket; /* virtio-vsock with this hybrid-vsock socket; NULL: no vsock */
        uint64_t guest_cid; /* 0: 3 */
        bool memfd;         /* guest RAM from a memfd, MAP_SHARED */
        enum vmm_seccomp_mode seccomp;
        struct vmm_share *shares; /* virtio-9p devices */
        size_t nshares;
        char *tap;      /* virtio-net on this host tap; NULL: no network device */
        uint8_t mac[6]; /* the guest's MAC (valid if has_mac; random otherwise) */
        bool has_mac;
        char *console_log; /* virtio-console output to this file ("-": stdout); NULL: no such device */
};

void vmm_config_init (struct vmm_config *c);
void vmm_config_free (struct vmm_config *c);
/* JSON: {"kernel": "...", "initrd": "...", "cmdline": "...", "memory_mib": 256,
 * "cpus": 2, "serial_log": "-", "serial_stdin": false,
 * "cpuid_mask": ["0x1:ecx:0x20"], "devices": [{"type": "rng"}],
 * "vsock_socket": "/run/x/vsock.sock", "guest_cid": 3, "memfd": false,
 * "seccomp": "kill", "tap": "tap0", "mac": "02:00:00:00:00:01",
 * "console_log": "/run/x/console.log"}.
 * Unknown keys are errors. */
int vmm_config_load_json (struct vmm_config *c, const char *text, moat_error_t *err);
int vmm_config_add_mask (struct vmm_config *c, const char *spec, moat_error_t *err);
/* "TAG=PATH": a virtio-9p device serving PATH with mount tag TAG (--share;
 * JSON "shares": ["TAG=PATH", ...]). */
int vmm_config_add_share (struct vmm_config *c, const char *spec, moat_error_t *err);
/* "xx:xx:xx:xx:xx:xx" for the virtio-net device (--mac; JSON "mac"). */
int vmm_config_set_mac (struct vmm_config *c, const char *mac, moat_error_t *err);
/* Checks the result: kernel given, sizes in range. */
int vmm_config_validate (const struct vmm_config *c, moat_error_t *err);

#endif

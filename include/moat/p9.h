/* SPDX-License-Identifier: Apache-2.0 */
/* A 9P2000.L file server confined to one directory, independent of the
 * transport (virtio-9p in moat-vmm, unit tests). Every fid is an O_PATH (or
 * open) file descriptor; every name from the wire is one path component
 * resolved relative to a fid's fd with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), ".." is answered from the
 * fid's fd and stops at the share root, and symlinks are never followed on
 * the host (Treadlink hands their text to the guest kernel). Requests are
 * untrusted: every length is bounded by the message and the negotiated
 * msize, and a malformed request gets Rlerror.
 * One server is used by one thread at a time. */
#ifndef MOAT_P9_H
#define MOAT_P9_H

#include <stddef.h>
#include <stdint.h>

#include "moat/error.h"

#define MOAT_P9_MAX_MSIZE (1u << 20)
#define MOAT_P9_MIN_MSIZE 512
#define MOAT_P9_MAX_WALK 16
#define MOAT_P9_MAX_FIDS 16384
#define MOAT_P9_HDR 7 /* size[4] type[1] tag[2] */
#define MOAT_P9_NOTAG 0xffff
#define MOAT_P9_NOFID 0xffffffffu

/* 9P2000.L message types (T; R is T+1). */
enum {
        P9_TLERROR = 6,
        P9_RLERROR = 7,
        P9_TSTATFS = 8,
        P9_TLOPEN = 12,
        P9_TLCREATE = 14,
        P9_TSYMLINK = 16,
        P9_TMKNOD = 18,
        P9_TRENAME = 20,
        P9_TREADLINK = 22,
        P9_TGETATTR = 24,
        P9_TSETATTR = 26,
        P9_TXATTRWALK = 30,
        P9_TXATTRCREATE = 32,
        P9_TREADDIR = 40,
        P9_TFSYNC = 50,
        P9_TLOCK = 52,
        P9_TGETLOCK = 54,
        P9_TLINK = 70,
        P9_TMKDIR = 72,
        P9_TRENAMEAT = 74,
        P9_TUNLINKAT = 76,
        P9_TVERSION = 100,
        P9_TAUTH = 102,
        P9_TATTACH = 104,
        P9_TFLUSH = 108,
        P9_TWALK = 110,
        P9_TREAD = 116,
        P9_TWRITE = 118,
        P9_TCLUNK = 120,
        P9_TREMOVE = 122,
};

struct moat_p9_server;

/* Serves the directory `root` (which must exist and be a directory). */
int moat_p9_server_new (const char *root, struct moat_p9_server **out, moat_error_t *err);
void moat_p9_server_free (struct moat_p9_server *s);

/* Handles one request of req_len bytes (the size field is checked against
 * it) and writes the reply into resp (at most resp_cap bytes, further
 * limited by the negotiated msize). Returns the reply length; 0 only if
 * resp_cap cannot hold even an Rlerror. */
size_t moat_p9_handle (struct moat_p9_server *s, const uint8_t *req, size_t req_len, uint8_t *resp, size_t resp_cap);

/* The negotiated msize (MOAT_P9_MAX_MSIZE before Tversion). */
uint32_t moat_p9_msize (const struct moat_p9_server *s);
/* Open fids, for tests and stats. */
size_t moat_p9_nfids (const struct moat_p9_server *s);
/* The share root's O_PATH fd (owned by the server); a process that serves
 * the share keeps it open and may close every other inherited fd. */
int moat_p9_server_root_fd (const struct moat_p9_server *s);
/* Forgets every fid (device reset). */
void moat_p9_reset (struct moat_p9_server *s);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* The stand-in: the small host process that represents one container
 * process (the init or an exec) to whoever started it (conmon,
 * containerd-shim, a shell). Its pid is what --pid-file and the state
 * report. It relays its stdio (the caller's, or a host pty) to the guest
 * process's vsock streams, forwards every signal it receives to that
 * process, and exits with its status: the code, or death by the same
 * signal. */
#ifndef MOAT_STANDIN_H
#define MOAT_STANDIN_H

#include <stdbool.h>
#include <sys/types.h>

#include "moat/agent_client.h"
#include "moat/error.h"

#define MOAT_STANDIN_COMM "moat-standin"

struct moat_standin {
        const char *vsock_socket; /* hybrid socket of the sandbox */
        const char *id;
        const char *exec_id; /* NULL: the init process */
        bool terminal;
        int streams[3];            /* stdin, stdout, stderr vsock streams; terminal: streams[0] = "tty" */
        int in_fd, out_fd, err_fd; /* host side; -1: none */
        int winsize_fd;            /* a tty whose size goes to the guest on SIGWINCH; -1: none */
        int go_fd;      /* read one byte before waiting for the process (EOF: abort); -1: none (not closed) */
        bool power_off; /* power the VM off once the process exited (the init stand-in) */
        bool raw_in;    /* in_fd is a terminal to put in raw mode while relaying */
        pid_t vmm_pid;  /* to notice a dead VM */
        unsigned long long vmm_start;
};

/* Blocks every signal the stand-in forwards (call early: signals that arrive
 * before the process exists stay pending and are forwarded later). */
void moat_standin_block_signals (void);

/* Runs the stand-in until the process exited and its output is drained.
 * Returns 0 with *ex, 1 if go_fd said abort, -1 with *err. Closes the
 * streams. */
int moat_standin_run (struct moat_standin *s, struct moat_exit *ex, moat_error_t *err);

/* Exits like the container process did: _exit(code), or raises the signal
 * that killed it (with its default action, no core dump). */
void moat_standin_exit (const struct moat_exit *ex) __attribute__ ((noreturn));

/* Sends fd over the Unix socket at path with SCM_RIGHTS (the message data is
 * the pty's name, as runc sends it). */
int moat_send_console (const char *socket_path, int fd, const char *name, moat_error_t *err);

/* A host pty for a container terminal: *master, *slave (raw mode, size
 * rows x cols if not 0). */
int moat_open_pty (int *master, int *slave, unsigned rows, unsigned cols, moat_error_t *err);

#endif

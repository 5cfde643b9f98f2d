// SPDX-License-Identifier: Apache-2.0
// The sandbox ("pause") process of tests/integration/cri.sh's local pause
// image: it holds the pod's namespaces, reaps orphans (it is PID 1 of the
// pod when the pod shares a PID namespace) and exits 0 on SIGTERM or
// SIGINT. Built statically at test time; never installed.
#define _GNU_SOURCE
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void
on_stop (int sig)
{
        (void)sig;
        _exit (0);
}

static void
on_child (int sig)
{
        (void)sig;
        while (waitpid (-1, NULL, WNOHANG) > 0)
                ;
}

int
main (void)
{
        struct sigaction stop = {.sa_handler = on_stop};
        struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART};

        sigemptyset (&stop.sa_mask);
        sigemptyset (&child.sa_mask);
        if (sigaction (SIGTERM, &stop, NULL) < 0 || sigaction (SIGINT, &stop, NULL) < 0 ||
            sigaction (SIGCHLD, &child, NULL) < 0)
                return 1;
        for (;;)
                pause ();
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Task events forwarded to containerd: a ttrpc client on $TTRPC_ADDRESS
 * calling containerd.services.events.ttrpc.v1.Events/Forward with an
 * Envelope (timestamp, namespace, topic, the event as an Any whose type URL
 * is the bare message name). One thread sends them in the order they were
 * published; a failed send is retried (5 tries, 1 s more each time, a new
 * connection each time) and then dropped with a warning, so a containerd
 * that restarts loses no event that it comes back for within 15 s. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "events.pb-c.h"
#include "moat/log.h"
#include "moat/ttrpc.h"
#include "moat/util.h"
#include "shim.h"

#define EVENTS_SERVICE "containerd.services.events.ttrpc.v1.Events"
#define EVENT_TIMEOUT_MS 5000
#define EVENT_TRIES 5

struct event {
        struct event *next;
        char *topic, *type;
        uint8_t *payload;
        size_t len;
        struct timespec at;
};

struct shim_events {
        char *address, *ns;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct event *head, **tail;
        bool closing, sending;
        pthread_t thread;
        bool started;
        struct ttrpc_client *c;
};

static void
event_free (struct event *ev)
{
        free (ev->topic);
        free (ev->type);
        free (ev->payload);
        free (ev);
}

static int
dial (struct shim_events *e, moat_error_t *err)
{
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        const char *path = e->address;
        int fd;
        if (strncmp (path, "unix://", 7) == 0)
                path += 7;
        if (strlen (path) >= sizeof sun.sun_path)
                return moat_make_error (err, ENAMETOOLONG, "events socket %s", path);
        strcpy (sun.sun_path, path);
        fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return moat_make_error (err, errno, "socket");
        if (connect (fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
                int x = errno;
                close (fd);
                return moat_make_error (err, x, "connect to %s", path);
        }
        e->c = ttrpc_client_new (fd);
        return 0;
}

static int
send_one (struct shim_events *e, const struct event *ev, moat_error_t *err)
{
        Containerd__Task__V2__Timestamp ts = CONTAINERD__TASK__V2__TIMESTAMP__INIT;
        Containerd__Task__V2__Any any = CONTAINERD__TASK__V2__ANY__INIT;
        Containerd__Events__Envelope env = CONTAINERD__EVENTS__ENVELOPE__INIT;
        Containerd__Events__ForwardRequest req = CONTAINERD__EVENTS__FORWARD_REQUEST__INIT;

        if (e->c == NULL && dial (e, err) < 0)
                return -1;
        ts.seconds = ev->at.tv_sec;
        ts.nanos = ev->at.tv_nsec;
        any.type_url = ev->type;
        any.value.data = ev->payload;
        any.value.len = ev->len;
        env.timestamp = &ts;
        env.namespace_ = e->ns;
        env.topic = ev->topic;
        env.event = &any;
        req.envelope = &env;
        if (ttrpc_call (e->c, EVENTS_SERVICE, "Forward", &req.base, &containerd__task__v2__empty__descriptor, NULL,
                        EVENT_TIMEOUT_MS, err) < 0) {
                /* a new connection for the next try */
                ttrpc_client_free (e->c);
                e->c = NULL;
                return -1;
        }
        return 0;
}

static void *
sender (void *arg)
{
        struct shim_events *e = arg;
        pthread_mutex_lock (&e->lock);
        for (;;) {
                while (e->head == NULL && !e->closing)
                        pthread_cond_wait (&e->cond, &e->lock);
                if (e->head == NULL)
                        break;
                struct event *ev = e->head;
                e->sending = true;
                pthread_mutex_unlock (&e->lock);
                for (int t = 1; t <= EVENT_TRIES; t++) {
                        cleanup_error moat_error_t err = NULL;
                        if (send_one (e, ev, &err) == 0)
                                break;
                        if (t == EVENT_TRIES)
                                moat_warn ("event %s dropped: %s", ev->topic, err->msg);
                        else
                                sleep (t);
                }
                pthread_mutex_lock (&e->lock);
                e->head = ev->next;
                if (e->head == NULL)
                        e->tail = &e->head;
                e->sending = false;
                pthread_cond_broadcast (&e->cond);
                event_free (ev);
        }
        pthread_mutex_unlock (&e->lock);
        return NULL;
}

struct shim_events *
shim_events_new (const char *ttrpc_address, const char *ns)
{
        struct shim_events *e = xzalloc (sizeof *e);
        e->address = xstrdup (ttrpc_address ? ttrpc_address : "");
        e->ns = xstrdup (ns ? ns : "");
        e->tail = &e->head;
        pthread_mutex_init (&e->lock, NULL);
        pthread_cond_init (&e->cond, NULL);
        if (*e->address && pthread_create (&e->thread, NULL, sender, e) == 0)
                e->started = true;
        return e;
}

void
shim_events_publish (struct shim_events *e, const char *topic, const char *type, const uint8_t *payload, size_t len)
{
        struct event *ev;
        if (!e->started) {
                moat_debug ("event %s not sent: no TTRPC_ADDRESS", topic);
                return;
        }
        ev = xzalloc (sizeof *ev);
        ev->topic = xstrdup (topic);
        ev->type = xstrdup (type);
        ev->payload = xmalloc (len ? len : 1);
        memcpy (ev->payload, payload, len);
        ev->len = len;
        clock_gettime (CLOCK_REALTIME, &ev->at);
        pthread_mutex_lock (&e->lock);
        *e->tail = ev;
        e->tail = &ev->next;
        pthread_cond_broadcast (&e->cond);
        pthread_mutex_unlock (&e->lock);
}

void
shim_events_close (struct shim_events *e, int timeout_ms)
{
        struct timespec dl;
        if (e == NULL)
                return;
        if (e->started) {
                clock_gettime (CLOCK_REALTIME, &dl);
                dl.tv_sec += timeout_ms / 1000;
                dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
                if (dl.tv_nsec >= 1000000000) {
                        dl.tv_sec++;
                        dl.tv_nsec -= 1000000000;
                }
                pthread_mutex_lock (&e->lock);
                while (e->head != NULL)
                        if (pthread_cond_timedwait (&e->cond, &e->lock, &dl) == ETIMEDOUT)
                                break;
                bool drained = e->head == NULL;
                e->closing = true;
                pthread_cond_broadcast (&e->cond);
                pthread_mutex_unlock (&e->lock);
                if (!drained) {
                        /* still sending: the process exits with it */
                        pthread_detach (e->thread);
                        return;
                }
                pthread_join (e->thread, NULL);
        }
        if (e->c)
                ttrpc_client_free (e->c);
        free (e->address);
        free (e->ns);
        free (e);
}

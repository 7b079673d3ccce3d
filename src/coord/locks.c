/* The lock server's state machine: FIFO queues per lock name, the release-consistency vector, and
 * forced release. No I/O here: the caller sends LockGranted for every grant these functions
 * report. Invariant: a lock is held by at most one (peer, lock_req), and it is never left free
 * while somebody waits. */
#include "coord/coord_int.h"

#include <stdlib.h>
#include <string.h>

co_lock *co_lock_get(co_lock **list, const char *name) {
    for (co_lock *l = *list; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            return l;
    co_lock *l = xcalloc(1, sizeof *l);
    l->name = xstrdup(name);
    l->next = *list;
    *list = l;
    return l;
}

static void grant(co_lock *l, co_waiter w, uint64_t now, co_grant *g) {
    l->held = true;
    l->holder = w;
    l->holder.next = NULL;
    l->granted_ns = now;
    l->grants++;
    g->peer = w.peer;
    g->lock_req = w.lock_req;
    g->lock = l;
}

bool co_lock_acquire(co_lock *l, uint64_t peer, uint64_t lock_req, uint64_t now, co_grant *g) {
    co_waiter w = {.peer = peer, .lock_req = lock_req};
    if (!l->held) {
        grant(l, w, now, g);
        return true;
    }
    co_waiter *n = xmalloc(sizeof *n);
    *n = w;
    n->next = NULL;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    return false;
}

static void merge(co_lock *l, const co_vec *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < l->nvec && l->vec[j].writer != v[i].writer)
            j++;
        if (j == l->nvec) {
            l->vec = xrealloc(l->vec, (l->nvec + 1) * sizeof *l->vec);
            l->vec[l->nvec++] = v[i];
        } else if (v[i].seqno > l->vec[j].seqno) {
            l->vec[j].seqno = v[i].seqno;
        }
    }
}

/* Free the lock and hand it to the first waiter, if any. */
static int next(co_lock *l, uint64_t now, co_grant *g) {
    l->held = false;
    co_waiter *w = l->head;
    if (!w)
        return 0;
    l->head = w->next;
    if (!l->head)
        l->tail = NULL;
    grant(l, *w, now, g);
    free(w);
    return 1;
}

int co_lock_release(co_lock *l, uint64_t peer, const co_vec *v, size_t n, uint64_t now,
                    co_grant *g) {
    merge(l, v, n);
    if (!l->held || l->holder.peer != peer)
        return -1;
    return next(l, now, g);
}

int co_lock_revoke(co_lock *l, uint64_t now, co_grant *g) {
    if (!l->held)
        return -1;
    l->forced++;
    return next(l, now, g);
}

size_t co_lock_drop_waiters(co_lock *l, uint64_t peer) {
    size_t n = 0;
    co_waiter **pp = &l->head;
    l->tail = NULL;
    while (*pp) {
        co_waiter *w = *pp;
        if (w->peer == peer) {
            *pp = w->next;
            free(w);
            n++;
        } else {
            l->tail = w;
            pp = &w->next;
        }
    }
    return n;
}

void co_locks_free(co_lock *list) {
    while (list) {
        co_lock *nx = list->next;
        while (list->head) {
            co_waiter *w = list->head;
            list->head = w->next;
            free(w);
        }
        free(list->vec);
        free(list->name);
        free(list);
        list = nx;
    }
}

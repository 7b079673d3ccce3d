/* A stand-in worker for the lock-server tests: joins a real coordinator over the attested channel
 * (Hello, heartbeats every 200 ms) and runs a script of lock steps given as arguments, printing
 * one line per event, prefixed with the wall-clock time in milliseconds:
 *   acquire:NAME:REQ        send LockAcquire
 *   wait:REQ                wait (heartbeating) until LockGranted for REQ; prints
 *                           "T granted REQ W:S,W:S" (the vector received)
 *   release:NAME[:W=S,...]  send LockRelease with that vector
 *   sleep:MS                keep heartbeating for MS
 *   silent:MS               stay connected but send nothing for MS
 * usage: cluster_lockclient EP ID HOME POLICY STEP... ; exit 0 when every step ran. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "crypto/crypto.h"
#include "net/net.h"
#include "platform/platform.h"
#include "proto/cluster.pb-c.h"
#include "tee/tee.h"

static net_chan *g_ch;
static uint64_t g_last_hb;

/* Wall-clock milliseconds, so that the events of several clients can be ordered. */
static uint64_t ms(void) {
    return plat_realtime_ns() / 1000000u;
}

static int send_msg(const Psl__ClusterMsg *m) {
    size_t n = psl__cluster_msg__get_packed_size(m);
    uint8_t *b = malloc(n ? n : 1);
    psl__cluster_msg__pack(m, b);
    int rc = net_chan_send(g_ch, b, n);
    free(b);
    return rc;
}

static void heartbeat(void) {
    Psl__Heartbeat h = PSL__HEARTBEAT__INIT;
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_HEARTBEAT;
    m.heartbeat = &h;
    (void)send_msg(&m);
    g_last_hb = plat_now_ns();
}

/* Run for @p dur_ms, heartbeating unless @p silent; stop early when @p want_req is granted.
 * @return 1 when granted, 0 otherwise, -1 when the channel failed. */
static int run(uint64_t dur_ms, bool silent, int64_t want_req) {
    uint64_t end = plat_now_ns() + dur_ms * 1000000u;
    while (plat_now_ns() < end) {
        if (!silent && plat_now_ns() - g_last_hb > 200000000u)
            heartbeat();
        uint8_t *msg;
        size_t len;
        int rc = net_chan_recv(g_ch, 50, &msg, &len);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc) {
            printf("%" PRIu64 " channel failed: %s\n", ms(), net_chan_error(g_ch));
            return -1;
        }
        Psl__ClusterMsg *m = psl__cluster_msg__unpack(NULL, len, msg);
        free(msg);
        if (!m)
            continue;
        if (m->m_case == PSL__CLUSTER_MSG__M_LOCK_GRANTED) {
            Psl__LockGranted *g = m->lock_granted;
            printf("%" PRIu64 " granted %" PRIu64 " ", ms(), g->lock_req);
            for (size_t i = 0; i < g->n_vector; i++)
                printf("%s%" PRIu64 ":%" PRIu64, i ? "," : "", g->vector[i]->writer,
                       g->vector[i]->seqno);
            printf("\n");
            fflush(stdout);
            bool hit = want_req >= 0 && g->lock_req == (uint64_t)want_req;
            psl__cluster_msg__free_unpacked(m, NULL);
            if (hit)
                return 1;
            continue;
        }
        psl__cluster_msg__free_unpacked(m, NULL);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: cluster_lockclient EP ID HOME POLICY STEP...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (cr_init() != 0)
        return 2;
    tee_enclave *t;
    tee_opts to = {.home = argv[3], .quiet = true};
    if (tee_open(&to, &t) != 0)
        return 2;
    tee_policy pol;
    char why[300];
    if (tee_policy_load(argv[4], &pol, why, sizeof why) != 0) {
        fprintf(stderr, "policy: %s\n", why);
        return 2;
    }
    net_auth a = {.tee = t, .peer = &pol, .name = "lockclient"};
    if (net_chan_connect(NULL, argv[1], &a, &g_ch, why, sizeof why) != 0) {
        fprintf(stderr, "connect: %s\n", why);
        return 2;
    }
    Psl__Hello h = PSL__HELLO__INIT;
    h.worker_id = strtoull(argv[2], NULL, 10);
    h.threads = 1;
    h.name = "lockclient";
    Psl__ClusterMsg m = PSL__CLUSTER_MSG__INIT;
    m.m_case = PSL__CLUSTER_MSG__M_HELLO;
    m.hello = &h;
    if (send_msg(&m) != 0)
        return 2;
    heartbeat();
    int st = 0;
    for (int i = 5; i < argc && st == 0; i++) {
        char step[512];
        snprintf(step, sizeof step, "%s", argv[i]);
        char *verb = strtok(step, ":");
        char *a1 = strtok(NULL, ":");
        char *a2 = strtok(NULL, ":");
        if (!verb || !a1) {
            st = 2;
            break;
        }
        if (strcmp(verb, "acquire") == 0 && a2) {
            Psl__LockAcquire la = PSL__LOCK_ACQUIRE__INIT;
            la.name = a1;
            la.lock_req = strtoull(a2, NULL, 10);
            Psl__ClusterMsg mm = PSL__CLUSTER_MSG__INIT;
            mm.m_case = PSL__CLUSTER_MSG__M_LOCK_ACQUIRE;
            mm.lock_acquire = &la;
            st = send_msg(&mm) ? 1 : 0;
            printf("%" PRIu64 " acquire %s %s\n", ms(), a1, a2);
        } else if (strcmp(verb, "wait") == 0) {
            int r = run(30000, false, strtoll(a1, NULL, 10));
            st = r == 1 ? 0 : 1;
        } else if (strcmp(verb, "release") == 0) {
            Psl__VecEntry ents[16], *ptrs[16];
            size_t n = 0;
            for (char *e = a2 ? strtok(a2, ",") : NULL; e && n < 16; e = strtok(NULL, ",")) {
                psl__vec_entry__init(&ents[n]);
                char *eq = strchr(e, '=');
                if (!eq)
                    continue;
                ents[n].writer = strtoull(e, NULL, 10);
                ents[n].seqno = strtoull(eq + 1, NULL, 10);
                ptrs[n] = &ents[n];
                n++;
            }
            Psl__LockRelease lr = PSL__LOCK_RELEASE__INIT;
            lr.name = a1;
            lr.n_vector = n;
            lr.vector = ptrs;
            Psl__ClusterMsg mm = PSL__CLUSTER_MSG__INIT;
            mm.m_case = PSL__CLUSTER_MSG__M_LOCK_RELEASE;
            mm.lock_release = &lr;
            /* stamped before the send: a grant to the next holder follows the coordinator's
             * receipt, so it can never carry an earlier stamp (stamping after the send failed
             * under load when this process was descheduled in between) */
            uint64_t sent = ms();
            st = send_msg(&mm) ? 1 : 0;
            printf("%" PRIu64 " release %s\n", sent, a1);
        } else if (strcmp(verb, "sleep") == 0 || strcmp(verb, "silent") == 0) {
            st = run(strtoull(a1, NULL, 10), verb[1] == 'i', -1) < 0 ? 1 : 0;
        } else {
            st = 2;
        }
    }
    printf("%" PRIu64 " done %d\n", ms(), st);
    net_chan_close(g_ch);
    tee_policy_fini(&pol);
    tee_close(t);
    return st;
}

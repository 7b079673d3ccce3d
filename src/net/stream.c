/* The stream transport (stream.h): length-prefixed messages over TCP, driven by the caller's
 * thread. A server keeps one record per connection, indexed by file descriptor; a connection id
 * is (generation << 32 | fd), so an id outlives neither its connection nor a reused descriptor.
 * Connections that fail while a message is being sent are only marked; they are closed (and the
 * owner told) at the next st_server_recv, so the owner never sees a connection vanish in the
 * middle of its own call. */
#include "net/stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/base.h"
#include "base/err.h"
#include "platform/platform.h"

#define ST_HDR 4u
#define ST_READ_MIN (16u * 1024u)        /* read at least this much room per read() */
#define ST_OUT_MAX (64u * 1024u * 1024u) /* unsent bytes kept for one connection at most */
#define ST_FAIR_EVERY 32u  /* messages served from buffers between two looks at the sockets */
#define ST_MAX_CONNS 4096u /* a server refuses connections beyond this many */

bool st_is_endpoint(const char *ep) {
    return ep && strncmp(ep, ST_PREFIX, strlen(ST_PREFIX)) == 0;
}

/* Split "stream://HOST:PORT". @return 0 or ERR_USAGE. */
static int split_ep(const char *ep, char *host, size_t hl, char *port, size_t pl, char *why,
                    size_t whylen) {
    const char *hp = ep + strlen(ST_PREFIX);
    const char *colon = strrchr(hp, ':');
    /* An IPv6 address is written in brackets: stream://[::1]:7000. */
    bool v6 = *hp == '[';
    const char *hend = v6 ? strchr(hp, ']') : colon;
    if (!st_is_endpoint(ep) || !colon || colon == hp || !colon[1] || !hend ||
        (v6 && (hend + 1 != colon || hend == hp + 1)) || strlen(colon + 1) >= pl ||
        (size_t)(hend - hp) >= hl) {
        snprintf(why, whylen,
                 "bad stream endpoint '%s' (expected stream://HOST:PORT or stream://[IPV6]:PORT)",
                 ep);
        return ERR_USAGE;
    }
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9') {
            snprintf(why, whylen, "bad port in stream endpoint '%s'", ep);
            return ERR_USAGE;
        }
    if (v6)
        hp++;
    memcpy(host, hp, (size_t)(hend - hp));
    host[hend - hp] = 0;
    snprintf(port, pl, "%s", colon + 1);
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A receive buffer: bytes [off, len) are unparsed. */
typedef struct rbuf {
    uint8_t *b;
    size_t off, len, cap;
} rbuf;

/* Make room for a read of at least ST_READ_MIN bytes, or the rest of a message already
 * announced when it is within @p max_len (an oversized one is refused, never buffered). */
static void rbuf_room(rbuf *r, size_t max_len) {
    if (r->off == r->len)
        r->off = r->len = 0;
    size_t want = ST_READ_MIN, have = r->len - r->off;
    if (have >= ST_HDR && get_le32(r->b + r->off) <= max_len &&
        have < ST_HDR + (size_t)get_le32(r->b + r->off)) { /* the first message is incomplete */
        size_t need = ST_HDR + get_le32(r->b + r->off) - have;
        if (need > want)
            want = need;
    }
    if (r->cap - r->len >= want)
        return;
    if (r->off) { /* move the unparsed tail to the front first */
        memmove(r->b, r->b + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
        if (r->cap - r->len >= want)
            return;
    }
    size_t cap = r->cap ? r->cap : ST_READ_MIN;
    while (cap - r->len < want)
        cap *= 2;
    r->b = xrealloc(r->b, cap);
    r->cap = cap;
}

/* Take the next complete message out of @p r. @return 1 (taken), 0 (incomplete), ERR_LIMIT. */
static int rbuf_take(rbuf *r, size_t max_len, zmq_msg_t *m) {
    size_t have = r->len - r->off;
    if (have < ST_HDR)
        return 0;
    uint32_t l = get_le32(r->b + r->off);
    if (l > max_len)
        return ERR_LIMIT;
    if (have < ST_HDR + (size_t)l)
        return 0;
    if (zmq_msg_init_size(m, l) != 0)
        return -ENOMEM;
    memcpy(zmq_msg_data(m), r->b + r->off + ST_HDR, l);
    r->off += ST_HDR + l;
    return 1;
}

static bool rbuf_ready(const rbuf *r, size_t max_len) {
    size_t have = r->len - r->off;
    if (have < ST_HDR)
        return false;
    uint32_t l = get_le32(r->b + r->off);
    return l > max_len || have >= ST_HDR + (size_t)l; /* an oversized one is "ready" to fail */
}

static void set_nodelay(int fd) {
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- client -------------------------------------------------------------------------------- */

struct st_conn {
    int fd;
    size_t max_len;
    int rcvtimeo_ms; /* the socket's SO_RCVTIMEO as last set (0: none) */
    rbuf in;
};

int st_connect(const char *ep, int timeout_ms, size_t max_len, st_conn **out, char *why,
               size_t whylen) {
    *out = NULL;
    char host[256], port[16];
    int rc = split_ep(ep, host, sizeof host, port, sizeof port, why, whylen);
    if (rc)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g) {
        snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(g));
        return -EHOSTUNREACH;
    }
    uint64_t deadline = plat_now_ns() + (uint64_t)(timeout_ms < 0 ? 5000 : timeout_ms) * 1000000u;
    int fd = -1;
    rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            fd = -1;
            continue;
        }
        uint64_t now = plat_now_ns();
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000u);
        int pr = poll(&p, 1, left);
        int err = 0;
        socklen_t el = sizeof err;
        if (pr <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err) {
            rc = pr == 0 ? -ETIMEDOUT : pr < 0 ? -errno : -(err ? err : EIO);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(why, whylen, "cannot connect to %s: %s", ep, strerror(-rc));
        return rc;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK); /* the client blocks */
    set_nodelay(fd);
    st_conn *c = xcalloc(1, sizeof *c);
    c->fd = fd;
    c->max_len = max_len;
    *out = c;
    return 0;
}

/* Write all of hdr+body with one sendmsg when the kernel takes it (the usual case).
 * @return bytes written or -errno. */
static ssize_t send2(int fd, const uint8_t *hdr, size_t hl, const void *b, size_t n, int flags) {
    struct iovec iov[2] = {{(void *)hdr, hl}, {(void *)b, n}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n ? 2 : 1};
    ssize_t w;
    do
        w = sendmsg(fd, &mh, MSG_NOSIGNAL | flags);
    while (w < 0 && errno == EINTR);
    return w < 0 ? -errno : w;
}

int st_send(st_conn *c, const void *b, size_t n) {
    uint8_t hdr[ST_HDR];
    put_le32(hdr, (uint32_t)n);
    ssize_t w = send2(c->fd, hdr, ST_HDR, b, n, 0);
    if (w < 0)
        return (int)w;
    size_t done = (size_t)w, total = ST_HDR + n;
    while (done < total) { /* a large message: the rest, blocking */
        const uint8_t *p = done < ST_HDR ? hdr + done : (const uint8_t *)b + (done - ST_HDR);
        size_t l = done < ST_HDR ? ST_HDR - done : total - done;
        ssize_t k = send(c->fd, p, l, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        done += (size_t)k;
    }
    return 0;
}

int st_recv(st_conn *c, int timeout_ms, zmq_msg_t *m) {
    uint64_t deadline = timeout_ms > 0 ? plat_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        int t = rbuf_take(&c->in, c->max_len, m);
        if (t)
            return t == 1 ? 0 : t;
        rbuf_room(&c->in, c->max_len);
        int flags = 0;
        if (timeout_ms == 0) {
            flags = MSG_DONTWAIT;
        } else {
            /* Wait in recv() itself, in slices of at most 100 ms: SO_RCVTIMEO is set only when
             * the slice changes, so a usual receive is one system call. */
            int slice = 0;
            if (timeout_ms > 0) {
                uint64_t now = plat_now_ns();
                if (now >= deadline)
                    return -ETIMEDOUT;
                uint64_t left = (deadline - now + 999999u) / 1000000u;
                slice = left < 100 ? (int)left : 100;
            }
            if (slice != c->rcvtimeo_ms) {
                struct timeval tv = {.tv_sec = slice / 1000, .tv_usec = (slice % 1000) * 1000};
                (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                c->rcvtimeo_ms = slice;
            }
        }
        ssize_t k = recv(c->fd, c->in.b + c->in.len, c->in.cap - c->in.len, flags);
        if (k > 0) {
            c->in.len += (size_t)k;
            continue;
        }
        if (k == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (timeout_ms == 0)
                return -ETIMEDOUT;
            continue; /* the slice ended: the deadline check above decides */
        }
        return -errno;
    }
}

void st_close(st_conn *c) {
    if (!c)
        return;
    close(c->fd);
    free(c->in.b);
    free(c);
}

/* ---- server -------------------------------------------------------------------------------- */

typedef struct sconn {
    int fd;
    uint64_t id;
    rbuf in;
    uint8_t *out; /* unsent bytes [out_off, out_len) */
    size_t out_off, out_len, out_cap;
    bool want_out;   /* EPOLLOUT is registered */
    bool queued;     /* in the ready ring */
    bool dead;       /* to be closed at the next st_server_recv */
    const char *why; /* why it died, when that is news for the owner */
    char whyb[128];
} sconn;

struct st_server {
    int lfd, ep;
    size_t max_len;
    st_closed_fn closed;
    void *arg;
    sconn **byfd; /* indexed by descriptor */
    size_t nbyfd;
    uint32_t gen;
    size_t nconns;
    uint64_t *ring; /* connection ids with a complete message buffered, served in turn */
    size_t ring_cap, ring_head, ring_n;
    unsigned since_poll;
    bool any_dead;
};

static sconn *conn_of(const st_server *s, uint64_t id) {
    size_t fd = (size_t)(id & 0xffffffffu);
    sconn *c = fd < s->nbyfd ? s->byfd[fd] : NULL;
    return c && c->id == id ? c : NULL;
}

static void ring_push(st_server *s, sconn *c) {
    if (c->queued)
        return;
    if (s->ring_n == s->ring_cap) {
        size_t cap = s->ring_cap ? 2 * s->ring_cap : 64;
        uint64_t *r = xmalloc(cap * sizeof *r);
        for (size_t i = 0; i < s->ring_n; i++)
            r[i] = s->ring[(s->ring_head + i) % s->ring_cap];
        free(s->ring);
        s->ring = r;
        s->ring_cap = cap;
        s->ring_head = 0;
    }
    s->ring[(s->ring_head + s->ring_n) % s->ring_cap] = c->id;
    s->ring_n++;
    c->queued = true;
}

static void conn_kill(st_server *s, sconn *c, const char *why) {
    if (c->dead)
        return;
    c->dead = true;
    if (why) {
        snprintf(c->whyb, sizeof c->whyb, "%s", why);
        c->why = c->whyb;
    }
    s->any_dead = true;
}

static void conn_free(st_server *s, sconn *c, bool tell) {
    if (tell && s->closed) {
        c->dead = false; /* the owner may still send it a last message (a Close) */
        s->closed(s->arg, c->id, c->why);
    }
    (void)epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    s->byfd[c->fd] = NULL;
    s->nconns--;
    free(c->in.b);
    free(c->out);
    free(c);
}

/* Close the connections marked dead, telling the owner. */
static void reap(st_server *s) {
    if (!s->any_dead)
        return;
    s->any_dead = false;
    for (size_t fd = 0; fd < s->nbyfd; fd++)
        if (s->byfd[fd] && s->byfd[fd]->dead)
            conn_free(s, s->byfd[fd], true);
}

static void want_out(st_server *s, sconn *c, bool on) {
    if (c->want_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u), .data.u64 = c->id};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = on;
}

static void conn_write_out(st_server *s, sconn *c) {
    while (c->out_off < c->out_len) {
        ssize_t k =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (k < 0) {
            conn_kill(s, c, NULL);
            return;
        }
        c->out_off += (size_t)k;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        want_out(s, c, false);
    } else {
        want_out(s, c, true);
    }
}

static void conn_read(st_server *s, sconn *c) {
    if (c->queued && c->in.len - c->in.off >= s->max_len + ST_HDR)
        return; /* a whole message waits already: serve it before buffering more */
    rbuf_room(&c->in, s->max_len);
    ssize_t k;
    do
        k = recv(c->fd, c->in.b + c->in.len, c->in.cap - c->in.len, MSG_DONTWAIT);
    while (k < 0 && errno == EINTR);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        conn_kill(s, c, NULL);
        return;
    }
    if (k > 0)
        c->in.len += (size_t)k;
    if (rbuf_ready(&c->in, s->max_len))
        ring_push(s, c);
}

static void accept_all(st_server *s) {
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient failure (EMFILE...): the next round retries */
        if (s->nconns >= ST_MAX_CONNS) {
            close(fd);
            continue;
        }
        if ((size_t)fd >= s->nbyfd) {
            size_t n = s->nbyfd ? s->nbyfd : 64;
            while (n <= (size_t)fd)
                n *= 2;
            s->byfd = xrealloc(s->byfd, n * sizeof *s->byfd);
            memset(s->byfd + s->nbyfd, 0, (n - s->nbyfd) * sizeof *s->byfd);
            s->nbyfd = n;
        }
        set_nodelay(fd);
        sconn *c = xcalloc(1, sizeof *c);
        c->fd = fd;
        c->id = (uint64_t)++s->gen << 32 | (uint64_t)fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->id};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
            continue;
        }
        s->byfd[fd] = c;
        s->nconns++;
    }
}

int st_listen(const char *ep, size_t max_len, st_closed_fn closed, void *arg, st_server **out,
              char *bound, size_t boundlen, char *why, size_t whylen) {
    *out = NULL;
    char host[256], port[16];
    int rc = split_ep(ep, host, sizeof host, port, sizeof port, why, whylen);
    if (rc)
        return rc;
    bool any = strcmp(host, "*") == 0; /* the IPv4 wildcard; [::] is IPv6's */
    struct addrinfo hints = {.ai_family = any ? AF_INET : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int g = getaddrinfo(any ? NULL : host, port, &hints, &ai);
    if (g) {
        snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(g));
        return ERR_USAGE;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        rc = -errno;
        snprintf(why, whylen, "cannot listen on %s: %s", ep, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "0.0.0.0";
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
        !(ss.ss_family == AF_INET6 ? inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip)
                                   : inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip))) {
        rc = -errno;
        snprintf(why, whylen, "cannot read the bound address of %s: %s", ep, strerror(errno));
        close(fd);
        return rc;
    }
    st_server *s = xcalloc(1, sizeof *s);
    s->lfd = fd;
    s->max_len = max_len;
    s->closed = closed;
    s->arg = arg;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0}; /* id 0: the listening socket */
    if (s->ep < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        rc = -errno;
        snprintf(why, whylen, "epoll: %s", strerror(errno));
        st_server_close(s);
        return rc;
    }
    snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "%s[%s]:%u" : "%s%s:%u", ST_PREFIX, ip,
             (unsigned)ntohs(ss.ss_family == AF_INET6 ? s6->sin6_port : s4->sin_port));
    *out = s;
    return 0;
}

/* Wait up to @p timeout_ms for socket events and handle them all. @return 0, -ETIMEDOUT,
 * -EINTR, -errno. */
static int pump(st_server *s, int timeout_ms) {
    struct epoll_event ev[64];
    int n = epoll_wait(s->ep, ev, 64, timeout_ms);
    if (n < 0)
        return -errno;
    s->since_poll = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.u64 == 0) {
            accept_all(s);
            continue;
        }
        sconn *c = conn_of(s, ev[i].data.u64);
        if (!c || c->dead)
            continue;
        if (ev[i].events & EPOLLOUT)
            conn_write_out(s, c);
        if (!c->dead && (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            conn_read(s, c);
    }
    return n ? 0 : -ETIMEDOUT;
}

int st_server_recv(st_server *s, int timeout_ms, uint64_t *conn, zmq_msg_t *m) {
    uint64_t deadline = timeout_ms > 0 ? plat_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    bool pumped = false;
    for (;;) {
        reap(s);
        if (s->ring_n && s->since_poll >= ST_FAIR_EVERY) {
            int rc = pump(s, 0); /* let other connections in before serving more buffers */
            if (rc && rc != -ETIMEDOUT)
                return rc;
            s->since_poll = 0;
            reap(s);
        }
        while (s->ring_n) {
            uint64_t id = s->ring[s->ring_head];
            s->ring_head = (s->ring_head + 1) % s->ring_cap;
            s->ring_n--;
            sconn *c = conn_of(s, id);
            if (!c || c->dead)
                continue;
            c->queued = false;
            int t = rbuf_take(&c->in, s->max_len, m);
            if (t == ERR_LIMIT) {
                char why[128];
                snprintf(why, sizeof why,
                         "oversized frame (the stream announces %u bytes > limit %zu)",
                         get_le32(c->in.b + c->in.off), s->max_len);
                conn_kill(s, c, why);
                continue;
            }
            if (t != 1)
                continue;
            if (rbuf_ready(&c->in, s->max_len))
                ring_push(s, c); /* more buffered: its turn comes again after the others */
            s->since_poll++;
            *conn = id;
            return 0;
        }
        if (s->any_dead)
            continue;
        int wait = -1;
        if (timeout_ms >= 0) {
            uint64_t now = plat_now_ns();
            if (pumped && now >= deadline)
                return -ETIMEDOUT;
            wait = now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
        }
        int rc = pump(s, wait);
        pumped = true;
        if (rc && rc != -ETIMEDOUT)
            return rc;
    }
}

int st_server_send(st_server *s, uint64_t id, const void *b, size_t n) {
    sconn *c = conn_of(s, id);
    if (!c || c->dead)
        return ERR_NOTFOUND;
    uint8_t hdr[ST_HDR];
    put_le32(hdr, (uint32_t)n);
    size_t done = 0, total = ST_HDR + n;
    if (c->out_off == c->out_len) { /* nothing waiting: try to write it straight away */
        ssize_t w = send2(c->fd, hdr, ST_HDR, b, n, MSG_DONTWAIT);
        if (w < 0 && w != -EAGAIN && w != -EWOULDBLOCK) {
            conn_kill(s, c, NULL);
            return (int)w;
        }
        done = w < 0 ? 0 : (size_t)w;
        if (done == total)
            return 0;
    }
    size_t rest = total - done;
    if (c->out_len - c->out_off + rest > ST_OUT_MAX) {
        conn_kill(s, c, "the peer does not read what it is sent (64 MiB waiting)");
        return -ENOBUFS;
    }
    if (c->out_off && c->out_len + rest > c->out_cap) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_len + rest > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + rest)
            cap *= 2;
        c->out = xrealloc(c->out, cap);
        c->out_cap = cap;
    }
    if (done < ST_HDR) {
        memcpy(c->out + c->out_len, hdr + done, ST_HDR - done);
        c->out_len += ST_HDR - done;
        done = ST_HDR;
    }
    memcpy(c->out + c->out_len, (const uint8_t *)b + (done - ST_HDR), total - done);
    c->out_len += total - done;
    want_out(s, c, true);
    return 0;
}

void st_server_close(st_server *s) {
    if (!s)
        return;
    for (size_t fd = 0; fd < s->nbyfd; fd++)
        if (s->byfd[fd]) {
            conn_write_out(s, s->byfd[fd]); /* best effort: what is queued, if it fits now */
            conn_free(s, s->byfd[fd], false);
        }
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->ep >= 0)
        close(s->ep);
    free(s->byfd);
    free(s->ring);
    free(s);
}

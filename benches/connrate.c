/* connrate: TCP connection setup rate and latency, for nat_compare.sh.
 *
 *   connrate serve PORT [BIND_ADDR] [LIFETIME_S]
 *       Echo server: accept a connection, read 1 byte, write it back, close.
 *       One connection at a time (the client is sequential). Each accepted
 *       socket has a 2 s receive timeout; the server exits after LIFETIME_S
 *       seconds (default 3600), so it is bounded even if nobody kills it.
 *   connrate client HOST PORT DUR_S [MAX_CONNS]
 *       For DUR_S seconds (or MAX_CONNS connections), one after the other:
 *       connect, send 1 byte, receive 1 byte, close. Prints one line:
 *         conns=N errors=E rate=R connect_p50=.. connect_p99=..
 *         txn_p50=.. txn_p99=..
 *       rate in connections/s; latencies in µs: connect = the connect(2)
 *       call (SYN to SYN-ACK as the client sees it); txn = connect + the
 *       1-byte round trip (through a proxying NAT, connect can complete at
 *       the proxy before the far end was reached; txn cannot).
 *
 * The server closes first, and the client reads to end of file before it
 * closes, so TIME_WAIT stays on the server side: a sequential client that
 * closed first would pin one ephemeral port per connection for 60 s and run
 * out of ports after ~28 000 connections. Connect and receive time out after
 * 1 s; a failed connection counts as an error and the loop goes on.
 *
 * Build: gcc -O2 -o connrate connrate.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 4000000L

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_timeout(int fd, int opt, int ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof tv);
}

static int parse_port(const char *s)
{
    char *end;
    long p = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || p < 1 || p > 65535) {
        fprintf(stderr, "connrate: bad port %s (want 1-65535)\n", s);
        exit(2);
    }
    return (int)p;
}

static int serve(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: connrate serve PORT [BIND_ADDR] [LIFETIME_S]\n");
        return 2;
    }
    int port = parse_port(argv[2]);
    const char *bind_addr = argc > 3 ? argv[3] : "0.0.0.0";
    long lifetime = argc > 4 ? strtol(argv[4], NULL, 10) : 3600;
    if (lifetime <= 0) {
        fprintf(stderr, "connrate: bad lifetime %s (want seconds > 0)\n", argv[4]);
        return 2;
    }
    alarm((unsigned)lifetime);   /* default SIGALRM action: exit */
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "connrate: bad bind address %s (want IPv4)\n", bind_addr);
        return 2;
    }
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1024) < 0) {
        fprintf(stderr, "connrate: cannot listen on %s:%d: %s\n", bind_addr, port, strerror(errno));
        return 1;
    }
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "connrate: accept: %s\n", strerror(errno));
            usleep(10000);
            continue;
        }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_timeout(c, SO_RCVTIMEO, 2000);
        set_timeout(c, SO_SNDTIMEO, 2000);
        char b;
        if (recv(c, &b, 1, 0) == 1)
            (void)send(c, &b, 1, 0);
        close(c);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted, non-empty array, in µs */
static double pct(const uint32_t *v, long n, double p)
{
    long k = (long)(p * n + 0.999999) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k] / 1000.0;
}

static int client(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: connrate client HOST PORT DUR_S [MAX_CONNS]\n");
        return 2;
    }
    int port = parse_port(argv[3]);
    double dur = strtod(argv[4], NULL);
    long max = argc > 5 ? strtol(argv[5], NULL, 10) : MAX_SAMPLES;
    if (!(dur > 0 && dur <= 600) || max <= 0) {
        fprintf(stderr, "connrate: bad duration %s (want 0 < s <= 600) or count\n", argv[4]);
        return 2;
    }
    if (max > MAX_SAMPLES)
        max = MAX_SAMPLES;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1) {
        fprintf(stderr, "connrate: bad host %s (want an IPv4 address)\n", argv[2]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* samples in ns, as u32 (a sample over 4.29 s is clamped; timeouts are 1 s) */
    uint32_t *con = malloc(sizeof(uint32_t) * max), *txn = malloc(sizeof(uint32_t) * max);
    if (!con || !txn) {
        fprintf(stderr, "connrate: out of memory\n");
        return 1;
    }
    long n = 0, errors = 0;
    char last_err[128] = "";
    uint64_t start = now_ns(), end = start + (uint64_t)(dur * 1e9), t;
    int one = 1;
    while ((t = now_ns()) < end && n < max) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            fprintf(stderr, "connrate: socket: %s\n", strerror(errno));
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_timeout(fd, SO_SNDTIMEO, 1000);   /* also bounds a blocking connect */
        set_timeout(fd, SO_RCVTIMEO, 1000);
        uint64_t t0 = now_ns();
        const char *what = NULL;
        errno = 0;
        char b = 'x';
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
            what = "connect";
        uint64_t t1 = now_ns();
        if (!what && send(fd, &b, 1, 0) != 1)
            what = "send";
        if (!what && recv(fd, &b, 1, 0) != 1)
            what = "recv";
        uint64_t t2 = now_ns();
        if (!what) {
            char rest[16];
            while (recv(fd, rest, sizeof rest, 0) > 0)   /* to EOF: the server closes first */
                ;
        }
        close(fd);
        if (what) {
            errors++;
            int timed_out = errno == EINPROGRESS || errno == EAGAIN;   /* SO_SNDTIMEO / SO_RCVTIMEO */
            snprintf(last_err, sizeof last_err, "%s: %s", what,
                     timed_out ? "timed out after 1 s" : errno ? strerror(errno) : "connection closed");
            if (errors > 1000 && errors > n) {
                break;   /* nothing gets through: stop hammering */
            }
            continue;
        }
        con[n] = (uint32_t)((t1 - t0) > UINT32_MAX ? UINT32_MAX : (t1 - t0));
        txn[n] = (uint32_t)((t2 - t0) > UINT32_MAX ? UINT32_MAX : (t2 - t0));
        n++;
    }
    double secs = (now_ns() - start) / 1e9;
    qsort(con, n, sizeof *con, cmp_u32);
    qsort(txn, n, sizeof *txn, cmp_u32);
    if (n > 0)
        printf("conns=%ld errors=%ld rate=%.0f connect_p50=%.1f connect_p99=%.1f txn_p50=%.1f txn_p99=%.1f\n",
               n, errors, n / secs, pct(con, n, 0.5), pct(con, n, 0.99), pct(txn, n, 0.5), pct(txn, n, 0.99));
    else
        printf("conns=0 errors=%ld rate=0 connect_p50=nan connect_p99=nan txn_p50=nan txn_p99=nan\n", errors);
    if (errors)
        fprintf(stderr, "connrate: %ld failed connections to %s:%d, last: %s\n", errors, argv[2], port, last_err);
    return n > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "serve") == 0)
        return serve(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return client(argc, argv);
    fprintf(stderr, "usage: connrate serve PORT [BIND_ADDR] [LIFETIME_S]\n"
                    "       connrate client HOST PORT DUR_S [MAX_CONNS]\n");
    return 2;
}

// The ideal UDP DNS responder: the ceiling any DNS server can reach on this
// machine with this client, used by dns_compare.sh (setup "limit").
// One thread; poll() until readable, then recvmmsg up to BATCH queries,
// turn each into an answer in place (QR=1, RA=1, one A record 10.226.1.1
// pointing at the question name), sendmmsg them all back. No lookup, no
// validation beyond "has a 12-byte header and one question": nothing a real
// server could skip. Written for this repository (not derived from any server).
// Usage: limit_dns ADDR PORT [BATCH]   (gcc -O2 -o limit_dns limit_dns.c)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAXB 256
#define BUFSZ 512

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: limit_dns ADDR PORT [BATCH]\n"); return 2; }
  int batch = argc > 3 ? atoi(argv[3]) : 64;
  if (batch < 1 || batch > MAXB) batch = 64;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
  if (fd < 0 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("socket/bind"); return 1; }
  static unsigned char buf[MAXB][BUFSZ];
  static struct sockaddr_in from[MAXB];
  static struct iovec iov[MAXB];
  static struct mmsghdr msg[MAXB];
  static const unsigned char answer[16] = {
    0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 226, 1, 1 };
  struct pollfd p = { fd, POLLIN, 0 };
  fprintf(stderr, "ready\n");
  for (;;) {
    if (poll(&p, 1, -1) < 0) continue;
    for (;;) {
      for (int i = 0; i < batch; i++) {
        iov[i].iov_base = buf[i];
        iov[i].iov_len = BUFSZ - sizeof answer;
        memset(&msg[i].msg_hdr, 0, sizeof msg[i].msg_hdr);
        msg[i].msg_hdr.msg_name = &from[i];
        msg[i].msg_hdr.msg_namelen = sizeof from[i];
        msg[i].msg_hdr.msg_iov = &iov[i];
        msg[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(fd, msg, batch, MSG_DONTWAIT, NULL);
      if (n <= 0) break;
      int out = 0;
      for (int i = 0; i < n; i++) {
        unsigned len = msg[i].msg_len;
        unsigned char *b = buf[i];
        if (len < 17 || b[4] != 0 || b[5] != 1) continue;   // header + one question
        unsigned q = 12;                                     // end of the question name
        while (q < len && b[q] != 0 && b[q] < 64) q += 1 + b[q];
        if (q + 5 > len || b[q] != 0) continue;
        q += 5;                                              // root label, QTYPE, QCLASS
        b[2] = 0x84 | (b[2] & 0x01);   // QR, AA, keep RD
        b[3] = 0x80;                   // RA, NOERROR
        b[6] = 0; b[7] = 1; b[8] = b[9] = b[10] = b[11] = 0;  // 1 answer; EDNS etc. dropped
        memcpy(b + q, answer, sizeof answer);
        iov[out].iov_base = b;
        iov[out].iov_len = q + sizeof answer;
        msg[out].msg_hdr.msg_name = &from[i];
        msg[out].msg_hdr.msg_namelen = msg[i].msg_hdr.msg_namelen;
        msg[out].msg_hdr.msg_iov = &iov[out];
        msg[out].msg_hdr.msg_iovlen = 1;
        out++;
      }
      for (int sent = 0; sent < out;) {
        int k = sendmmsg(fd, msg + sent, out - sent, MSG_DONTWAIT);
        if (k <= 0) break;
        sent += k;
      }
      if (n < batch) break;
    }
  }
}

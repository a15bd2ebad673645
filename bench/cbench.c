/*
 * cbench: the C reference loops of `npm run bench` (built by the bench with the
 * system compiler into .cache/bench/cbench).
 *
 *   cbench send <port> <file> <count> <sendfile|write> [<key-hex> <salt-hex> <iv-hex>]
 *       connects to 127.0.0.1:<port>; with keys attaches the "tls" ULP and installs
 *       TLS 1.3 AES-128-GCM TX keys (rec_seq 0); then sends <file> <count> times,
 *       each time opened, fstat'ed and closed as a file server does, with
 *       sendfile(2) or with pread(2)+write(2) of 256 KiB chunks.
 *   cbench sink <total>
 *       listens on 127.0.0.1:0, accepts one connection and reads <total> bytes.
 *
 * Protocol with the bench (stdout lines, CLOCK_MONOTONIC nanoseconds, the clock
 * process.hrtime.bigint() reads): the sender prints "t0 <ns>" once connected and
 * set up, "sent" when every byte is handed to the kernel, then waits for a line
 * on stdin (the bench reads /proc/<pid>/stat meanwhile) and for the peer to close.
 * The sink prints "port <n>", then "done <ns>" after <total> bytes, then waits
 * for stdin to close. Errors go to stderr with exit status 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

static void die(const char *what) {
  fprintf(stderr, "cbench: %s: %s\n", what, strerror(errno));
  exit(1);
}

static unsigned long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

static void hex(const char *s, unsigned char *out, size_t n) {
  if (strlen(s) != n * 2) {
    fprintf(stderr, "cbench: expected %zu hex bytes, got '%s'\n", n, s);
    exit(2);
  }
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) exit(2);
    out[i] = (unsigned char)v;
  }
}

static void wait_stdin(void) {
  char line[16];
  if (fgets(line, sizeof line, stdin) == NULL) return;
}

static int do_send(int argc, char **argv) {
  if (argc < 6) return 2;
  int port = atoi(argv[2]);
  const char *file = argv[3];
  long count = atol(argv[4]);
  int use_sendfile = strcmp(argv[5], "sendfile") == 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect");
  if (argc >= 9) {
    if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof "tls") < 0) die("setsockopt(TCP_ULP)");
    struct tls12_crypto_info_aes_gcm_128 ci;
    memset(&ci, 0, sizeof ci);
    ci.info.version = TLS_1_3_VERSION;
    ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
    hex(argv[6], ci.key, sizeof ci.key);
    hex(argv[7], ci.salt, sizeof ci.salt);
    hex(argv[8], ci.iv, sizeof ci.iv);
    if (setsockopt(fd, SOL_TLS, TLS_TX, &ci, sizeof ci) < 0) die("setsockopt(TLS_TX)");
    memset(&ci, 0, sizeof ci);
  }
  static char buf[256 * 1024];
  printf("t0 %llu\n", now_ns());
  fflush(stdout);
  for (long i = 0; i < count; i++) {
    /* Each file is opened, sized and closed, as a server (and the addon's sendFile(path)) must. */
    int file_fd = open(file, O_RDONLY | O_CLOEXEC);
    if (file_fd < 0) die("open");
    struct stat st;
    if (fstat(file_fd, &st) < 0) die("fstat");
    size_t size = (size_t)st.st_size;
    if (use_sendfile) {
      off_t off = 0;
      while ((size_t)off < size) {
        ssize_t n = sendfile(fd, file_fd, &off, size - (size_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("sendfile");
      }
    } else {
      off_t off = 0;
      while ((size_t)off < size) {
        ssize_t r = pread(file_fd, buf, sizeof buf, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("pread");
        for (ssize_t w = 0; w < r;) {
          ssize_t n = write(fd, buf + w, (size_t)(r - w));
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) die("write");
          w += n;
        }
        off += r;
      }
    }
    close(file_fd);
  }
  printf("sent\n");
  fflush(stdout);
  wait_stdin();
  /* The receiver closes once it has every byte; closing first could drop records kTLS still holds. */
  while (recv(fd, buf, sizeof buf, 0) > 0) {
  }
  close(fd);
  return 0;
}

static int do_sink(int argc, char **argv) {
  if (argc < 3) return 2;
  unsigned long long total = strtoull(argv[2], NULL, 10);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  if (ls < 0) die("socket");
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
  if (listen(ls, 4) < 0) die("listen");
  socklen_t len = sizeof sa;
  if (getsockname(ls, (struct sockaddr *)&sa, &len) < 0) die("getsockname");
  printf("port %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  int fd = accept(ls, NULL, NULL);
  if (fd < 0) die("accept");
  close(ls);
  static char buf[256 * 1024];
  unsigned long long got = 0;
  while (got < total) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) die("recv");
    got += (unsigned long long)n;
  }
  printf("done %llu\n", now_ns());
  fflush(stdout);
  wait_stdin();
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "send") == 0) return do_send(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "sink") == 0) return do_sink(argc, argv);
  fprintf(stderr, "usage: cbench send <port> <file> <count> <sendfile|write> [key salt iv] | cbench sink <total>\n");
  return 2;
}

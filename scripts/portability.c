/* Compiled by scripts/portability.mjs against other C libraries and kernel
 * headers (musl, Debian bullseye's 5.10 uapi): native/kabi.h and every libc
 * declaration, macro and syscall wrapper the addon uses must be there. Never
 * linked or run; a missing name is a compile error. */
#define _GNU_SOURCE
#include "../native/kabi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef EKEYEXPIRED
#error "EKEYEXPIRED (the errno of a kTLS socket waiting for rekey) is missing"
#endif

int ktls_portability(int fd, const char* path) {
  int flags[] = {TCP_INFO, TCP_NODELAY, TCP_CORK, TCP_KEEPIDLE, TCP_FASTOPEN, TCP_FASTOPEN_CONNECT,
                 SO_TYPE, SO_SNDBUF, SO_PROTOCOL, SO_KEEPALIVE, SO_ERROR, SO_DOMAIN,
                 SPLICE_F_NONBLOCK, SPLICE_F_MOVE, SPLICE_F_MORE, MSG_DONTWAIT, MSG_NOSIGNAL,
                 SOCK_NONBLOCK, SOCK_CLOEXEC, O_NONBLOCK, O_CLOEXEC, O_RDONLY, O_NOCTTY,
                 POLLIN, POLLOUT, POLLHUP, POLLERR, SHUT_WR, SHUT_RDWR, AF_INET, AF_INET6, AF_UNIX,
                 EINPROGRESS, ENOTCONN, ENOPROTOOPT, EOPNOTSUPP, EAGAIN, EKEYEXPIRED, SIOCOUTQ};
  struct ktls_tcp_info ti;
  struct ktls_aes_gcm_128 keys;
  socklen_t len = sizeof(ti);
  char cbuf[CMSG_SPACE(sizeof(unsigned char))];
  struct iovec iov = {&ti, sizeof(ti)};
  struct msghdr msg;
  struct cmsghdr* c;
  struct stat st;
  struct pollfd p = {fd, POLLIN, 0};
  int pipes[2];
  int outq = 0;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = KTLS_SOL_TLS;
  c->cmsg_type = KTLS_TLS_SET_RECORD_TYPE;
  c->cmsg_len = CMSG_LEN(sizeof(unsigned char));
  *CMSG_DATA(c) = 21;
  c = CMSG_NXTHDR(&msg, c);
  memset(&keys, 0, sizeof(keys));
  keys.info.version = KTLS_TLS_1_3_VERSION;
  keys.info.cipher_type = KTLS_CIPHER_AES_GCM_128;
  explicit_bzero(&keys, sizeof(keys));
  return setsockopt(fd, SOL_TCP, KTLS_TCP_ULP, "tls", 4) + setsockopt(fd, KTLS_SOL_TLS, KTLS_TLS_TX, &keys, sizeof(keys)) +
         getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) + (int)sendmsg(fd, &msg, MSG_NOSIGNAL) + (int)recvmsg(fd, &msg, MSG_DONTWAIT) +
         (int)sendfile(fd, 0, NULL, 1) + (int)splice(fd, NULL, 1, NULL, 1, SPLICE_F_NONBLOCK) + pipe2(pipes, O_CLOEXEC) +
         fstat(fd, &st) + stat(path, &st) + S_ISSOCK(st.st_mode) + S_ISREG(st.st_mode) + S_ISFIFO(st.st_mode) +
         open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) + fcntl(fd, F_GETFL) + fcntl(fd, F_SETFL, O_NONBLOCK) +
         ioctl(fd, SIOCOUTQ, &outq) + poll(&p, 1, 0) + shutdown(fd, SHUT_WR) + getpeername(fd, NULL, NULL) +
         connect(fd, NULL, 0) + socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_TCP) + (int)read(fd, NULL, 0) +
         (int)write(fd, NULL, 0) + close(fd) + (int)ti.bytes_acked + flags[0] + (c != NULL);
}

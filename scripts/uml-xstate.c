// Preloaded into Debian's user-mode-linux kernels by scripts/uml.mjs so that
// they boot on hosts whose XSAVE area is larger than their own buffer.
//
// UML before 6.13 saves and restores a guest process's FPU state with
// PTRACE_GETREGSET/SETREGSET(NT_X86_XSTATE) through a buffer of a fixed 2696
// bytes (arch/x86/um/user-offsets.c: enough for AVX-512 and PKRU). The host's
// xstateregs_set() accepts only a whole standard-format buffer (count ==
// fpu_user_cfg.max_size, else EFAULT). With AMX (Intel Sapphire Rapids and
// later) that size is 11008 bytes, so every SETREGSET fails and the guest dies
// at its first process: "userspace - ptrace set fp regs failed, errno = 14".
// GETREGSET truncates to the caller's length and is fine as it is.
//
// This wraps ptrace(): a SETREGSET(NT_X86_XSTATE) the host refuses with EFAULT
// because the buffer is short is sent again as a whole-size buffer: the
// caller's bytes, zeros after them, and XSTATE_BV cleared of every component
// that does not lie wholly inside the caller's bytes (those get their init
// state, which they had anyway: a guest cannot use AMX without asking the host
// kernel for it). Upstream UML (6.13+) does the equivalent by sizing its
// buffer from the host's answer.
//
// Every other request goes to the kernel unchanged, with glibc's ptrace()
// semantics. Only libc symbols as old as glibc 2.2.5 are used, so the same
// object loads into each suite's UML whatever glibc it runs on.
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define XSTATE_NOTE 0x202 /* NT_X86_XSTATE */
#define XSTATE_BV_OFFSET 512
#define XSAVE_HEADER_END 576
#define WHOLE_MAX (64 * 1024)

static unsigned char whole[WHOLE_MAX] __attribute__((aligned(64)));
static size_t host_size; /* the host's standard-format XSAVE size, once known */
static int spin;

static long raw_ptrace(long request, long pid, long addr, long data) {
  return syscall(SYS_ptrace, request, pid, addr, data);
}

static void bytes_copy(unsigned char *to, const unsigned char *from, size_t n) {
  for (size_t i = 0; i < n; i++) to[i] = from[i];
}

static void bytes_zero(unsigned char *to, size_t n) {
  for (size_t i = 0; i < n; i++) to[i] = 0;
}

/* Clears the XSTATE_BV bits of components that end past `len` bytes. */
static void keep_components_within(unsigned char *buf, size_t len) {
  uint64_t bv;
  bytes_copy((unsigned char *)&bv, buf + XSTATE_BV_OFFSET, sizeof bv);
  for (unsigned i = 2; i < 64; i++) {
    if (!(bv & (1ull << i))) continue;
    unsigned size, offset, ecx, edx;
    if (!__get_cpuid_count(0xd, i, &size, &offset, &ecx, &edx) || (size_t)offset + size > len) bv &= ~(1ull << i);
  }
  bytes_copy(buf + XSTATE_BV_OFFSET, (const unsigned char *)&bv, sizeof bv);
}

/* SETREGSET(NT_X86_XSTATE) with a buffer shorter than the host's; -1 with errno on failure. */
static long set_short_xstate(long pid, const struct iovec *iov) {
  while (__atomic_exchange_n(&spin, 1, __ATOMIC_ACQUIRE)) {
  }
  long r = -1;
  int err = EFAULT;
  if (host_size == 0) {
    /* The kernel clamps a GETREGSET to its whole size and says how much it wrote. */
    struct iovec probe = {whole, WHOLE_MAX};
    if (raw_ptrace(PTRACE_GETREGSET, pid, XSTATE_NOTE, (long)&probe) == 0) host_size = probe.iov_len;
    else err = errno;
  }
  if (host_size > iov->iov_len && host_size <= WHOLE_MAX && iov->iov_len >= XSAVE_HEADER_END) {
    bytes_copy(whole, iov->iov_base, iov->iov_len);
    bytes_zero(whole + iov->iov_len, host_size - iov->iov_len);
    keep_components_within(whole, iov->iov_len);
    struct iovec padded = {whole, host_size};
    r = raw_ptrace(PTRACE_SETREGSET, pid, XSTATE_NOTE, (long)&padded);
    err = errno;
  }
  __atomic_store_n(&spin, 0, __ATOMIC_RELEASE);
  errno = err;
  return r;
}

long ptrace(enum __ptrace_request request, ...) {
  va_list ap;
  va_start(ap, request);
  long pid = va_arg(ap, long);
  long addr = va_arg(ap, long);
  long data = va_arg(ap, long);
  va_end(ap);

  if (request == PTRACE_SETREGSET && addr == XSTATE_NOTE && data) {
    const struct iovec *iov = (const struct iovec *)data;
    size_t known = __atomic_load_n(&host_size, __ATOMIC_RELAXED);
    if (known > iov->iov_len) return set_short_xstate(pid, iov);
    long r = raw_ptrace(request, pid, addr, data);
    if (r == 0 || errno != EFAULT) return r;
    return set_short_xstate(pid, iov);
  }
  /* glibc: PEEKTEXT/PEEKDATA/PEEKUSER return the word read, with errno 0. */
  if (request == PTRACE_PEEKTEXT || request == PTRACE_PEEKDATA || request == PTRACE_PEEKUSER) {
    long word;
    long r = raw_ptrace(request, pid, addr, (long)&word);
    if (r < 0) return r;
    errno = 0;
    return word;
  }
  return raw_ptrace(request, pid, addr, data);
}

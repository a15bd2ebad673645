// The kernel's struct tcp_info as far as we read it. glibc's tcp_info stops at
// tcpi_total_retrans, and <linux/tcp.h> clashes with <netinet/tcp.h>, so the
// 64-bit counters the kernel appends are declared here in its layout.
#pragma once

#include <netinet/tcp.h>
#include <cstddef>
#include <cstdint>

namespace ktls {

struct TcpInfoFull {
  tcp_info base;
  uint64_t pacing_rate;
  uint64_t max_pacing_rate;
  uint64_t bytes_acked;
  uint64_t bytes_received;
  uint32_t segs_out;
  uint32_t segs_in;
  uint32_t notsent_bytes;
  uint32_t min_rtt;
  uint32_t data_segs_in;
  uint32_t data_segs_out;
  uint64_t delivery_rate;
  uint64_t busy_time;
  uint64_t rwnd_limited;
  uint64_t sndbuf_limited;
  uint32_t delivered;
  uint32_t delivered_ce;
  uint64_t bytes_sent;
  uint64_t bytes_retrans;
};
static_assert(sizeof(tcp_info) == 104, "glibc tcp_info ends at tcpi_total_retrans");
static_assert(offsetof(TcpInfoFull, bytes_acked) == 120, "tcpi_bytes_acked offset");
static_assert(offsetof(TcpInfoFull, segs_out) == 136, "tcpi_segs_out offset");
static_assert(offsetof(TcpInfoFull, data_segs_out) == 156, "tcpi_data_segs_out offset");
static_assert(offsetof(TcpInfoFull, bytes_sent) == 200, "tcpi_bytes_sent offset");

}  // namespace ktls

// The file in which the host hands egg-init the sandbox's seccomp
// programs (the allowlist, then the ioctl guard):
//
//   "EGGSCMP1" | u32 n1 | n1 x sock_filter | u32 n2 | n2 x sock_filter
//
// Counts are little-endian; each sock_filter is 8 bytes in the host's
// (x86_64, little-endian) layout. Both counts are 1..4096 and nothing may
// follow the second program.
#ifndef EGG_GUEST_SECCOMP_FILE_H_
#define EGG_GUEST_SECCOMP_FILE_H_

#include <linux/filter.h>
#include <string.h>

#include <cstdint>
#include <string>
#include <vector>

namespace egg::guest {

inline std::string EncodeSeccompFile(const std::vector<sock_filter>& a,
                                     const std::vector<sock_filter>& b) {
  std::string out = "EGGSCMP1";
  for (const auto* p : {&a, &b}) {
    uint32_t n = static_cast<uint32_t>(p->size());
    out.append(reinterpret_cast<const char*>(&n), 4);
    out.append(reinterpret_cast<const char*>(p->data()),
               p->size() * sizeof(sock_filter));
  }
  return out;
}

}  // namespace egg::guest

#endif  // EGG_GUEST_SECCOMP_FILE_H_

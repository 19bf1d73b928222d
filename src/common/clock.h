// Milliseconds on the monotonic clock, for deadlines and elapsed times.
#ifndef EGG_COMMON_CLOCK_H_
#define EGG_COMMON_CLOCK_H_

#include <time.h>

#include <cstdint>

namespace egg {

inline uint64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 +
         static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

}  // namespace egg

#endif  // EGG_COMMON_CLOCK_H_

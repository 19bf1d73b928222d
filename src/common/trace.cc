#include "common/trace.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace egg {
namespace {

using Clock = std::chrono::steady_clock;

struct TraceState {
  std::mutex mu;
  bool started = false;
  Clock::time_point first;
  Clock::time_point last;
};

TraceState& State() {
  static TraceState state;
  return state;
}

}  // namespace

bool TraceEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("EGG_TRACE");
    return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

void TraceStep(std::string_view step) {
  if (!TraceEnabled()) return;
  Clock::time_point now = Clock::now();
  TraceState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.started) {
    s.started = true;
    s.first = now;
    s.last = now;
  }
  auto ms = [](Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  std::fprintf(stderr, "egg-trace: %8.3f ms (+%7.3f) %.*s\n", ms(now - s.first),
               ms(now - s.last), static_cast<int>(step.size()), step.data());
  s.last = now;
}

}  // namespace egg

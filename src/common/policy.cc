#include "egg/policy.h"

namespace egg {
namespace {
constexpr uint64_t kMiB = 1024ull * 1024;
constexpr uint64_t kGiB = 1024 * kMiB;
}  // namespace

Limits DefaultEggLimits() {
  Limits l;
  l.wall_ms = 30 * 60 * 1000;
  l.cpu_ms = 30 * 60 * 1000;
  l.memory_bytes = 2 * kGiB;
  l.processes = 256;
  l.scratch_bytes = 1 * kGiB;
  l.output_bytes = 64 * kMiB;
  return l;
}

Limits DefaultCellLimits() {
  Limits l;
  l.wall_ms = 10 * 60 * 1000;
  l.cpu_ms = 10 * 60 * 1000;
  l.memory_bytes = 1 * kGiB;
  l.processes = 128;
  l.scratch_bytes = 1 * kGiB;
  l.output_bytes = 16 * kMiB;
  return l;
}

Limits MaximumLimits() {
  Limits l;
  l.wall_ms = 7 * 24 * 3600 * 1000ull;
  l.cpu_ms = 7 * 24 * 3600 * 1000ull;
  l.memory_bytes = 1024 * kGiB;
  l.processes = 65536;
  l.scratch_bytes = 16 * 1024 * kGiB;
  l.output_bytes = 16 * kGiB;
  return l;
}

Limits MergeLimits(const Limits& limits, const Limits& defaults) {
  Limits out = limits;
  if (!out.wall_ms) out.wall_ms = defaults.wall_ms;
  if (!out.cpu_ms) out.cpu_ms = defaults.cpu_ms;
  if (!out.memory_bytes) out.memory_bytes = defaults.memory_bytes;
  if (!out.processes) out.processes = defaults.processes;
  if (!out.scratch_bytes) out.scratch_bytes = defaults.scratch_bytes;
  if (!out.output_bytes) out.output_bytes = defaults.output_bytes;
  return out;
}

}  // namespace egg

#include "egg/chunker.h"

#include <array>
#include <string>

#include "common/bytes.h"
#include "egg/hash.h"

namespace egg {
namespace {

constexpr uint64_t kMaskS = 0xFFFFC00000000000ull;  // top 18 bits
constexpr uint64_t kMaskL = 0xFFFC000000000000ull;  // top 14 bits

std::array<uint64_t, 256> MakeGearTable() {
  std::array<uint64_t, 256> table{};
  for (int i = 0; i < 256; ++i) {
    std::string seed = "egg-gear-v1";
    seed.push_back(static_cast<char>(i));
    Digest d = Sha256Of(seed);
    table[i] = LoadLe64(d.data());
  }
  return table;
}

}  // namespace

const uint64_t* GearTable() {
  static const std::array<uint64_t, 256> table = MakeGearTable();
  return table.data();
}

size_t FindChunkBoundary(std::span<const uint8_t> data) {
  size_t n = data.size();
  if (n <= kChunkMin) return n;
  if (n > kChunkMax) n = kChunkMax;
  size_t normal = n < kChunkAvg ? n : kChunkAvg;

  const uint64_t* gear = GearTable();
  const uint8_t* p = data.data();
  uint64_t h = 0;
  size_t i = kChunkMin;
  for (; i < normal; ++i) {
    h = (h << 1) + gear[p[i]];
    if ((h & kMaskS) == 0) return i + 1;
  }
  for (; i < n; ++i) {
    h = (h << 1) + gear[p[i]];
    if ((h & kMaskL) == 0) return i + 1;
  }
  return n;
}

}  // namespace egg

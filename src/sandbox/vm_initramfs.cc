// See vm_initramfs.h. The newc format: a 110-byte ASCII header ("070701"
// and thirteen 8-digit hex fields), the NUL-terminated name padded to a
// multiple of 4 bytes (header included), the data padded likewise.
#include "sandbox/vm_initramfs.h"

#include <algorithm>
#include <cstdio>

namespace egg::sandbox_internal {
namespace {

void Pad4(std::string* out) {
  while (out->size() % 4 != 0) out->push_back('\0');
}

void PutEntry(std::string* out, uint32_t ino, const CpioEntry& e) {
  char header[111];
  std::snprintf(header, sizeof(header),
                "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
                ino, e.mode, 0u, 0u, 1u, 0u,
                static_cast<uint32_t>(e.data.size()), 0u, 0u, e.rdev_major,
                e.rdev_minor, static_cast<uint32_t>(e.name.size() + 1), 0u);
  out->append(header, 110);
  out->append(e.name);
  out->push_back('\0');
  Pad4(out);
  out->append(e.data);
  Pad4(out);
}

}  // namespace

std::string WriteCpioNewc(std::vector<CpioEntry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const CpioEntry& a, const CpioEntry& b) {
              return a.name < b.name;
            });
  std::string out;
  uint32_t ino = 1;
  for (const CpioEntry& e : entries) PutEntry(&out, ino++, e);
  CpioEntry trailer;
  trailer.name = "TRAILER!!!";
  PutEntry(&out, 0, trailer);
  return out;
}

}  // namespace egg::sandbox_internal

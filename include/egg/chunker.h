// Content-defined chunking with the parameters fixed by docs/FORMAT.md
// ("Chunking"). Eggs and the local store cut files with this chunker so
// that the same file content always gives the same chunks.
#ifndef EGG_CHUNKER_H_
#define EGG_CHUNKER_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace egg {

inline constexpr size_t kChunkMin = 16 * 1024;
inline constexpr size_t kChunkAvg = 64 * 1024;
inline constexpr size_t kChunkMax = 256 * 1024;

// The 256-entry gear table: entry i is the first 8 bytes (little-endian)
// of SHA-256("egg-gear-v1" || byte i).
const uint64_t* GearTable();

// Returns the length of the next chunk at the start of `data`. `data` must
// hold at least kChunkMax bytes unless it is the rest of the file, in
// which case `data.size()` may be smaller. Returns 0 only for empty data.
size_t FindChunkBoundary(std::span<const uint8_t> data);

}  // namespace egg

#endif  // EGG_CHUNKER_H_

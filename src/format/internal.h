// Pieces shared by the egg writer, the reader and the directory scanner.
// Not part of the public API.
#ifndef EGG_FORMAT_INTERNAL_H_
#define EGG_FORMAT_INTERNAL_H_

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "egg/egg.h"

namespace egg::format_internal {

inline constexpr int kZstdLevel = 3;

// A scanned directory entry: the tree entry without chunks, and where its
// content lives on the host.
struct ScannedEntry {
  TreeEntry entry;
  std::string host_path;
};

// Lists `dir` recursively, sorted by path bytes, modes normalised,
// symlinks validated. kInvalidArgument naming the offending path.
[[nodiscard]] Result<std::vector<ScannedEntry>> ScanMetadata(
    const std::string& dir);

// Reads a regular file (not following a symlink) and calls `chunk` for
// each content-defined chunk in order. Fails if the file's size is not
// `expected_size` (it changed during the build).
[[nodiscard]] Status ChunkFile(
    const std::string& host_path, uint64_t expected_size,
    const std::function<Status(std::vector<uint8_t>&&)>& chunk);

// One zstd frame at kZstdLevel with the content size recorded.
[[nodiscard]] Result<std::vector<uint8_t>> CompressChunk(
    std::span<const uint8_t> raw);

// Checks that `frame` hashes to entry.frame, is exactly one zstd frame
// decompressing to entry.raw_length bytes that hash to entry.raw; the raw
// bytes go to *raw. kVerificationFailed / kCorruption otherwise.
[[nodiscard]] Status CheckFrame(std::span<const uint8_t> frame,
                                const ChunkEntry& entry,
                                std::vector<uint8_t>* raw);

inline constexpr char kHeaderMagic[4] = {'E', 'G', 'G', 'F'};
inline constexpr char kManifestMagic[4] = {'E', 'G', 'G', 'M'};
inline constexpr char kIndexMagic[4] = {'E', 'G', 'G', 'I'};
inline constexpr char kTrailerMagic[4] = {'E', 'G', 'G', 'T'};
inline constexpr size_t kManifestFixedSize = 160;
inline constexpr size_t kLayoutEntrySize = 48;
inline constexpr size_t kTreeRefSize = 80;
inline constexpr size_t kTreeNameBytes = 32;
inline constexpr size_t kIndexHeaderSize = 16;
inline constexpr size_t kIndexEntrySize = 80;
inline constexpr std::string_view kBlocksDomain = "egg-blocks-v1";

// The block region digest over index entries taken in offset order.
Digest BlockRegionDigest(const std::vector<const ChunkEntry*>& by_offset);

// Encodes the chunk index section (entries sorted by raw digest).
std::vector<uint8_t> EncodeIndex(const std::vector<ChunkEntry>& sorted);

// Largest frame a chunk of kChunkMax bytes can compress to.
uint64_t MaxFrameLength();

}  // namespace egg::format_internal

#endif  // EGG_FORMAT_INTERNAL_H_

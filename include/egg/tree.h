// Trees: sorted lists of files, directories and symlinks whose content is
// named by chunk digests. Encoding and rules in docs/FORMAT.md ("Tree
// section"). A tree's identity is the SHA-256 of its encoding; the local
// store keeps encoded trees and chunks outside eggs with these functions.
#ifndef EGG_TREE_H_
#define EGG_TREE_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "egg/hash.h"
#include "egg/status.h"

namespace egg {

enum class EntryKind : uint8_t { kFile = 1, kDir = 2, kSymlink = 3 };

const char* EntryKindName(EntryKind kind);

inline constexpr size_t kTreeMaxPathBytes = 4096;
inline constexpr size_t kTreeMaxNameBytes = 255;
inline constexpr size_t kTreeMaxDepth = 64;
inline constexpr size_t kTreeMaxLinkTargetBytes = 4095;
inline constexpr uint64_t kTreeMaxFileSize = 1ull << 48;  // 256 TiB
inline constexpr uint64_t kTreeMaxEntries = 1ull << 24;

struct TreeEntry {
  std::string path;  // relative, '/'-separated, see IsValidTreePath
  EntryKind kind = EntryKind::kFile;
  uint16_t mode = 0644;  // files 0644 or 0755, dirs 0755, symlinks 0777
  uint64_t size = 0;     // files: bytes; symlinks: target length; dirs: 0
  std::string target;    // symlinks only
  std::vector<Digest> chunks;  // files only: raw chunk digests in order

  bool operator==(const TreeEntry&) const = default;
};

struct Tree {
  std::vector<TreeEntry> entries;  // sorted by path bytes, unique

  bool operator==(const Tree&) const = default;
};

// Gives a chunk's uncompressed bytes by raw digest, e.g. from the local
// store. Implementations must be safe to call from one thread at a time;
// the writer checks the bytes against the digest.
class ChunkSource {
 public:
  virtual ~ChunkSource() = default;
  [[nodiscard]] virtual Result<std::vector<uint8_t>> ReadChunk(
      const Digest& raw) = 0;
};

// Receives chunks, e.g. into the local store. `frame` is the chunk's zstd
// frame at the egg's fixed level (the bytes an egg stores for it).
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  [[nodiscard]] virtual Status PutChunk(const Digest& raw,
                                        std::span<const uint8_t> raw_bytes,
                                        std::span<const uint8_t> frame) = 0;
};

// Path rules: 1..kTreeMaxPathBytes bytes, components separated by one '/',
// no leading or trailing '/', no empty, "." or ".." component, at most
// kTreeMaxDepth components of at most kTreeMaxNameBytes, no byte below 0x20
// and no 0x7f.
bool IsValidTreePath(std::string_view path);

// Symlink target rules for a link at `link_path`: relative, non-empty, at
// most kTreeMaxLinkTargetBytes, no empty or "." component, ".." only as
// leading components and no more of them than the link's directory depth,
// no control bytes. Such a target cannot leave the tree.
bool IsValidLinkTarget(std::string_view link_path, std::string_view target);

// Checks every rule of a tree (paths, order, parents, kinds, modes, sizes,
// targets). kCorruption naming the first offending entry.
[[nodiscard]] Status ValidateTree(const Tree& tree);

// Encodes a tree (ValidateTree must pass; kInvalidArgument otherwise).
[[nodiscard]] Result<std::vector<uint8_t>> EncodeTree(const Tree& tree);
// Decodes and validates; rejects trailing bytes. kCorruption on any rule.
[[nodiscard]] Result<Tree> DecodeTree(std::span<const uint8_t> bytes);

// Digest of an encoded tree (its identity).
Digest TreeDigest(std::span<const uint8_t> encoded);

// Every chunk digest an encoded tree references (sorted, unique). Matches
// Store::ReferenceFn's needs; sub-trees are never referenced.
struct TreeRefs {
  std::vector<Digest> chunks;
};
[[nodiscard]] Result<TreeRefs> TreeReferences(std::span<const uint8_t> bytes);

// Scans a directory into a tree, chunking every file and passing each
// chunk to `sink` (may be null to only compute digests). Entries are
// sorted, modes normalised (0755 if the owner may execute, else 0644),
// symlinks kept and validated. Fails with kInvalidArgument naming the
// path for special files, hard-to-represent names or escaping symlinks.
[[nodiscard]] Result<Tree> ScanDirectory(const std::string& dir,
                                         ChunkSink* sink);

}  // namespace egg

#endif  // EGG_TREE_H_

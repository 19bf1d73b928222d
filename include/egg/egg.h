// The egg file format: writing, opening, verifying and reading eggs. The
// byte layout is specified in docs/FORMAT.md; this header is the whole API
// of the egg_format library.
//
// An egg is written once by WriteEgg and read through one EggFile, which
// parses the structure from one open descriptor. Verification and reading
// use that same parse, so a verifier and a reader never disagree about
// which bytes a name refers to. Every byte of an egg is treated as hostile.
#ifndef EGG_EGG_H_
#define EGG_EGG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "egg/chunker.h"
#include "egg/hash.h"
#include "egg/status.h"
#include "egg/tree.h"

namespace egg {

// Version constants. A reader accepts exactly kFormatMajor and any minor
// up to kFormatMinor; see docs/FORMAT.md "Versions".
inline constexpr uint8_t kFormatMajor = 1;
inline constexpr uint8_t kFormatMinor = 0;

inline constexpr size_t kHeaderSize = 64;
inline constexpr size_t kTrailerSize = 64;
inline constexpr size_t kMaxTrees = 64;
inline constexpr uint64_t kMaxManifestJsonBytes = 4ull << 20;
inline constexpr uint64_t kMaxNotebookBytes = 64ull << 20;
inline constexpr uint64_t kMaxSignatureBytes = 16ull << 20;
inline constexpr uint64_t kMaxChunks = 1ull << 22;
inline constexpr uint64_t kMaxTreeSectionBytes = 256ull << 20;

// Prefix hashed before the manifest section to give the content root.
inline constexpr std::string_view kContentRootDomain = "egg-content-root-v1";

// One named tree of an egg to be written.
struct TreeInput {
  std::string name;  // see IsValidTreeName
  // Either a directory to scan (directory non-empty) ...
  std::string directory;
  // ... or a prebuilt tree whose chunks come from `source`.
  Tree tree;
  ChunkSource* source = nullptr;
};

struct EggInput {
  nlohmann::json manifest = nlohmann::json::object();  // must be an object
  nlohmann::json notebook = nlohmann::json::object();  // must be an object
  std::vector<TreeInput> trees;  // any order; written sorted by name
  std::vector<uint8_t> signatures;  // usually empty at build time
};

// Called with (bytes done, bytes total) of file content; may be called from
// the writing thread only.
using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

struct WriteOptions {
  bool force = false;   // replace an existing file at out_path
  unsigned threads = 0;  // compression workers; 0 = hardware threads
  ProgressFn progress;
};

// What was written.
struct WriteSummary {
  Digest content_root{};
  uint64_t file_bytes = 0;   // size of the egg
  uint64_t raw_bytes = 0;    // file content before dedup and compression
  uint64_t chunk_count = 0;  // distinct chunks stored
  std::vector<std::pair<std::string, Digest>> tree_digests;  // by name
};

// Writes an egg atomically (temporary file beside out_path, fsync,
// rename). Fails with kInvalidArgument if out_path exists and !force, if a
// scanned directory holds a special file or an escaping symlink (the
// message names the path), or if the JSON is not an object; kIo on read
// or write errors. Output bytes depend only on the input content.
[[nodiscard]] Result<WriteSummary> WriteEgg(const EggInput& input,
                                            const std::string& out_path,
                                            const WriteOptions& options = {});

// Sizes and places of the sections, from the header, manifest and trailer.
struct SectionRef {
  uint64_t offset = 0;
  uint64_t length = 0;
  Digest digest{};
};
struct TreeRef {
  std::string name;
  SectionRef section;  // section.digest is the tree's identity
};
struct EggLayout {
  uint8_t major = 0;
  uint8_t minor = 0;
  SectionRef manifest;  // digest: SHA-256 of the manifest section
  SectionRef notebook;
  SectionRef blocks;  // digest: see docs/FORMAT.md "Block region digest"
  std::vector<TreeRef> trees;  // sorted by name
  SectionRef index;
  SectionRef signatures;  // digest unused (zero)
  uint64_t file_size = 0;
};

// One chunk index entry.
struct ChunkEntry {
  Digest raw{};    // SHA-256 of the uncompressed bytes
  Digest frame{};  // SHA-256 of the zstd frame
  uint64_t offset = 0;  // from the start of the block region
  uint32_t frame_length = 0;
  uint32_t raw_length = 0;
};

struct VerifyOptions {
  unsigned threads = 0;  // 0 = hardware threads
  ProgressFn progress;   // bytes of frames checked / total
  // Chunks for which this returns true are not read. For a caller that
  // never reads them from this egg, or reads them only through a checked
  // read (ReadChunk, ExtractTree ...): e.g. hatch, for a runtime tree
  // already materialised in the store. The index itself, and so every
  // chunk's digest, is still covered by the content root at Open().
  std::function<bool(const ChunkEntry&)> skip;
};

class EggFile {
 public:
  enum class Depth {
    kSummary,  // header, manifest, notebook, trailer, signature section
    kFull,     // also every tree and the chunk index (needed to read)
  };

  // Opens and parses. Every structural rule of docs/FORMAT.md is checked
  // for the sections read at `depth`, and their digests are compared with
  // the manifest. kCorruption for structural damage, kVerificationFailed
  // for a digest mismatch, kNotFound/kIo if the file cannot be read.
  [[nodiscard]] static Result<EggFile> Open(const std::string& path,
                                            Depth depth = Depth::kFull);

  EggFile(EggFile&&) noexcept;
  EggFile& operator=(EggFile&&) noexcept;
  ~EggFile();

  const std::string& path() const;
  const EggLayout& layout() const;
  // SHA-256(kContentRootDomain || manifest section). Signatures sign this.
  const Digest& content_root() const;
  // The manifest section bytes (layout table + JSON) the root is over.
  std::span<const uint8_t> manifest_section() const;
  const nlohmann::json& manifest() const;
  const std::string& manifest_json() const;  // canonical bytes
  const nlohmann::json& notebook() const;
  const std::string& notebook_json() const;  // canonical bytes
  std::span<const uint8_t> signatures() const;
  bool full() const;  // opened with Depth::kFull

  // Trees and index; empty unless full().
  const std::vector<std::pair<std::string, Tree>>& trees() const;
  const std::vector<ChunkEntry>& chunk_index() const;
  // kNotFound if the tree or path is absent.
  [[nodiscard]] Result<const Tree*> FindTree(std::string_view name) const;
  [[nodiscard]] Result<const TreeEntry*> FindEntry(
      std::string_view tree, std::string_view path) const;

  // Hashes every frame, decompresses it and hashes the result, using
  // `threads` workers and bounded memory. kVerificationFailed on any
  // digest mismatch; kCorruption if a frame does not decompress to exactly
  // its raw length. Needs full().
  [[nodiscard]] Status VerifyContent(const VerifyOptions& options = {}) const;

  // Streams a regular file's bytes to `out` chunk by chunk; each chunk's
  // frame digest and raw digest are checked before it is handed out.
  [[nodiscard]] Status StreamFile(
      std::string_view tree, std::string_view path,
      const std::function<Status(std::span<const uint8_t>)>& out) const;
  // Whole file; kInvalidArgument if larger than max_bytes.
  [[nodiscard]] Result<std::string> ReadFile(
      std::string_view tree, std::string_view path,
      uint64_t max_bytes = 256ull << 20) const;
  // One chunk's verified raw bytes.
  [[nodiscard]] Result<std::vector<uint8_t>> ReadChunk(
      const Digest& raw) const;

  // Writes the tree under `dir`, which must not exist (it is created with
  // mode 0700 and set to 0755 at the end). Never follows or creates a link
  // that leaves `dir`: every path is resolved component by component from
  // a directory descriptor with O_NOFOLLOW, every new name is created
  // exclusively. Checks every chunk as it goes.
  [[nodiscard]] Status ExtractTree(std::string_view tree,
                                   const std::string& dir) const;

  // Sends every chunk of a tree to `sink` (each checked first).
  [[nodiscard]] Status ExportTree(std::string_view tree,
                                  ChunkSink& sink) const;

  // Writes a new egg to out_path (atomically; refuses to overwrite unless
  // overwrite) with the same content bytes, `signatures` as the signature
  // section and a new trailer. The content root is unchanged. out_path may
  // be this egg's own path when overwrite is set.
  [[nodiscard]] Status WriteWithSignatures(
      std::span<const uint8_t> signatures, const std::string& out_path,
      bool overwrite) const;

 private:
  struct Impl;
  explicit EggFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The content root of an open egg (same as egg.content_root()).
Digest ContentRoot(const EggFile& egg);

// Reads the bytes `egg info` needs to compute the content root: the header
// and the manifest section (checked structurally), from one read of at
// most kHeaderSize + the manifest section.
[[nodiscard]] Result<std::vector<uint8_t>> ReadHeadBytes(
    const std::string& path);

// Content root over a manifest section's bytes.
Digest ContentRootOf(std::span<const uint8_t> manifest_section);

// Canonical JSON: nlohmann dump() with sorted keys and no whitespace.
// kInvalidArgument if the value holds invalid UTF-8.
[[nodiscard]] Result<std::string> CanonicalJson(const nlohmann::json& value);

// True for 1..32 bytes of [a-z0-9._-], starting with a letter or digit.
bool IsValidTreeName(std::string_view name);

}  // namespace egg

#endif  // EGG_EGG_H_

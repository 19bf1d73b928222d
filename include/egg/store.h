// The local content-addressed store shared by build, hatch, pull and
// runtimes. Layout and garbage-collection roots are described in
// docs/RUNTIMES.md.
//
// Every object is named by the SHA-256 of its uncompressed bytes and kept
// as one zstd frame. Writes land whole (temporary file in the same folder,
// fsync, rename), so two processes may fill the store at once; writing an
// object that is already present is a no-op. Every read decompresses and
// re-hashes: an object that does not match its name is removed and reported
// as kCorruption, never returned.
#ifndef EGG_STORE_H_
#define EGG_STORE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "egg/hash.h"
#include "egg/status.h"
#include "egg/tree.h"

namespace egg {

// What an object holds. Each kind lives in its own folder.
enum class ObjectKind {
  kChunk,  // file content: a chunk of a file (see docs/FORMAT.md)
  kTree,   // an encoded tree; its digest is the tree's identity
};

const char* ObjectKindName(ObjectKind kind);

struct StoreOptions {
  // The store's folder. Empty: $XDG_CACHE_HOME/egg, else $HOME/.cache/egg.
  // The location is not a trust root: every object is checked on read.
  std::string root;
  // zstd level for new objects.
  int compression_level = 3;
};

// Counts reported by Verify and Gc.
struct StoreStats {
  uint64_t objects = 0;     // objects looked at
  uint64_t bytes = 0;       // their size on disk
  uint64_t removed = 0;     // objects (or folders) removed
  uint64_t removed_bytes = 0;
  std::vector<std::string> problems;  // one line per corrupt object
};

// One line of `egg store ls`.
struct StoreEntry {
  ObjectKind kind;
  Digest digest;
  uint64_t stored_bytes;  // compressed size on disk
};

class Store {
 public:
  // Opens (creating if needed) the store. Holds a shared lock on
  // "<root>/lock" for the object's lifetime so that Gc in another process
  // cannot remove objects this one is about to reference.
  [[nodiscard]] static Result<Store> Open(const StoreOptions& options = {});

  // $XDG_CACHE_HOME/egg or $HOME/.cache/egg; kInvalidArgument if neither
  // variable is set to an absolute path.
  [[nodiscard]] static Result<std::string> DefaultRoot();

  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;
  ~Store();

  const std::string& root() const;

  // Adds `data` (uncompressed) under SHA-256(data) and returns the digest.
  [[nodiscard]] Result<Digest> Put(ObjectKind kind,
                                   std::span<const uint8_t> data);
  // Adds `data` and checks it hashes to `expected` first
  // (kVerificationFailed otherwise; nothing is written).
  [[nodiscard]] Status PutExpecting(ObjectKind kind, const Digest& expected,
                                    std::span<const uint8_t> data);
  // Adds an already compressed zstd frame whose uncompressed bytes must
  // hash to `expected` (checked before writing; kVerificationFailed or
  // kCorruption otherwise). For pulls that receive frames.
  [[nodiscard]] Status PutFrame(ObjectKind kind, const Digest& expected,
                                std::span<const uint8_t> frame);

  // True if an object file exists (its contents are not checked).
  bool Has(ObjectKind kind, const Digest& digest) const;

  // The uncompressed, verified bytes. kNotFound if absent; kCorruption if
  // the stored object is damaged (it is removed so that it can be fetched
  // again). At most `max_bytes` are accepted.
  [[nodiscard]] Result<std::vector<uint8_t>> Get(
      ObjectKind kind, const Digest& digest,
      uint64_t max_bytes = 256ull << 20) const;
  // The stored zstd frame, after checking that it decompresses to bytes
  // with the right digest (same failures as Get). For pushes.
  [[nodiscard]] Result<std::vector<uint8_t>> GetFrame(
      ObjectKind kind, const Digest& digest,
      uint64_t max_bytes = 256ull << 20) const;

  // The stored zstd frame as it is on disk, NOT checked: the caller must
  // check the bytes against a digest it trusts before using them (a pull
  // compares them with an egg's frame digest). One open and one read, no
  // decompression. kNotFound if absent; kInvalidArgument if larger than
  // max_bytes.
  [[nodiscard]] Result<std::vector<uint8_t>> ReadFrameUnchecked(
      ObjectKind kind, const Digest& digest,
      uint64_t max_bytes = 256ull << 20) const;

  // Makes everything written so far durable (syncfs). Chunks are written
  // without a per-object fsync; Put of a tree calls this first, so a
  // durable tree never names a chunk that a crash could lose.
  [[nodiscard]] Status Sync();

  // Removes one object (absent is fine).
  [[nodiscard]] Status Remove(ObjectKind kind, const Digest& digest);

  // Every object, sorted by kind then digest.
  [[nodiscard]] Result<std::vector<StoreEntry>> List() const;

  // Reads every object and checks it against its name. Damaged objects
  // are removed and listed in problems. Fails only if the walk fails.
  [[nodiscard]] Result<StoreStats> Verify();

  // Garbage-collection roots: a tree is kept if it is marked kept, or is
  // named in a pin list. Pin lists are files "<root>/pins/<name>" holding
  // one "sha256:<hex>" per line; a component that needs a set of trees to
  // survive gc writes one (see Pin / Unpin).
  [[nodiscard]] Status MarkKept(const Digest& tree, bool kept);
  bool IsKept(const Digest& tree) const;
  [[nodiscard]] Status Pin(const std::string& name,
                           const std::vector<Digest>& trees);
  [[nodiscard]] Status Unpin(const std::string& name);
  // Every root tree (kept and pinned), sorted, without duplicates.
  [[nodiscard]] Result<std::vector<Digest>> Roots() const;

  // Function Gc uses to find what a tree references: chunk digests and
  // sub-tree digests. Supplied by the format layer (the store does not
  // decode trees itself).
  struct References {
    std::vector<Digest> chunks;
    std::vector<Digest> trees;
  };
  using ReferenceFn =
      Result<References> (*)(std::span<const uint8_t> encoded_tree);

  // Removes every object not reachable from Roots(), every materialised
  // folder of an unkept tree, runtime metadata of removed trees, and stale
  // temporary files. Needs exclusive use of the store: fails with kIo if
  // another process has it open. A root whose tree is missing or damaged
  // is reported in problems and kept objects stay.
  [[nodiscard]] Result<StoreStats> Gc(ReferenceFn references);

  // Folder paths inside the store, for the runtime layer.
  std::string TempDir() const;                       // "<root>/tmp"
  std::string MaterialisedPath(const Digest& tree) const;  // roots/<hex>
  std::string MetadataPath(const Digest& tree) const;  // runtimes/<hex>.json
  std::string ObjectPath(ObjectKind kind, const Digest& digest) const;

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  Status WriteChunkFile(const std::string& shard, const std::string& path,
                        std::span<const uint8_t> frame);
  std::unique_ptr<Impl> impl_;
};

// Adapters between the store and the format layer's chunk interfaces.
// Chunks handed to the sink are checked against their digest and written
// as given (the frame); chunks read from the source are verified.
class StoreChunkSink : public ChunkSink {
 public:
  explicit StoreChunkSink(Store& store) : store_(store) {}
  [[nodiscard]] Status PutChunk(const Digest& raw,
                                std::span<const uint8_t> raw_bytes,
                                std::span<const uint8_t> frame) override;

 private:
  Store& store_;
};

class StoreChunkSource : public ChunkSource {
 public:
  explicit StoreChunkSource(const Store& store) : store_(store) {}
  [[nodiscard]] Result<std::vector<uint8_t>> ReadChunk(
      const Digest& raw) override;

 private:
  const Store& store_;
};

}  // namespace egg

#endif  // EGG_STORE_H_

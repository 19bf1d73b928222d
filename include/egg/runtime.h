// Runtimes: the root filesystem a notebook runs in, kept as a tree in the
// local store (egg/store.h). A runtime's identity is its tree digest.
// Creation from a folder, a tarball or a list of Debian packages, and
// materialisation of a tree as a read-only folder for hatch, are described
// in docs/RUNTIMES.md.
#ifndef EGG_RUNTIME_H_
#define EGG_RUNTIME_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "egg/hash.h"
#include "egg/status.h"
#include "egg/store.h"
#include "egg/tree.h"

namespace egg {

struct PackageVersion {
  std::string name;
  std::string version;
  std::string architecture;

  bool operator==(const PackageVersion&) const = default;
};

// What is recorded about a runtime in "<store>/runtimes/<hex>.json".
// Only `digest` is an identity; the rest is informative.
struct RuntimeInfo {
  Digest digest{};           // tree digest
  std::string source;        // "folder", "tar", "debian" or "oci"
  std::string origin;        // folder or tarball path, or the suite
  std::string suite;         // debian: e.g. "bookworm"
  std::string variant;       // debian: mmdebstrap variant
  std::string architecture;  // debian: e.g. "amd64"
  std::string mirror;        // debian: mirror URI ("" = mmdebstrap default)
  int64_t source_date_epoch = 0;       // debian
  std::vector<std::string> requested;  // debian: packages asked for
  std::vector<PackageVersion> packages;  // debian: dpkg-query, sorted
  uint64_t files = 0;        // regular files in the tree
  uint64_t bytes = 0;        // their total size
  bool kept = false;         // a gc root
};

// How to treat entries that egg will not store as they are.
struct ImportOptions {
  // Setuid and setgid bits are refused with an error naming the entry
  // unless this is set, in which case they are cleared.
  bool strip_setuid = false;
  // Mark the runtime as a gc root.
  bool keep = true;
};

// Stores the tree of `dir` (not following symlinks) and records it as a
// runtime. Refuses device nodes, fifos and sockets, and setuid/setgid bits
// (see ImportOptions), naming the entry. The digest depends only on names,
// types, the executable bit, link targets and file contents.
[[nodiscard]] Result<RuntimeInfo> ImportRuntimeFolder(
    Store& store, const std::string& dir, const ImportOptions& options = {});

// Stores the tree held in a tarball (any format and compression libarchive
// reads). Every entry is checked before anything is written, and the
// whole tarball is refused with kInvalidArgument naming the first bad
// entry if any is: an absolute name, a ".." component, an empty or
// over-long name, a symlink whose relative target climbs out of the root,
// a hard link to anything but an earlier regular file of the same tarball,
// a device node, fifo or socket, setuid/setgid bits (unless stripped), or
// two entries with the same name. Absolute symlink targets are allowed:
// in a runtime they resolve inside the runtime's own root.
[[nodiscard]] Result<RuntimeInfo> ImportRuntimeTar(
    Store& store, const std::string& tarball,
    const ImportOptions& options = {});

struct DebianOptions {
  std::string suite = "bookworm";
  // mmdebstrap variant. "essential" installs the Essential:yes set and
  // the listed packages, with apt run from outside.
  std::string variant = "essential";
  std::string architecture;  // empty: the host's dpkg architecture
  std::string mirror;        // empty: mmdebstrap's default mirror
  std::vector<std::string> packages;
  // SOURCE_DATE_EPOCH for the build. Empty: a fixed date per known suite
  // (its release date), so that the same package versions give the same
  // digest whenever they are installed. kInvalidArgument for an unknown
  // suite without an explicit value.
  std::optional<int64_t> source_date_epoch;
  // Folder mmdebstrap fills before import; empty: inside the store.
  std::string work_dir;
};

// Checks package names and the suite (Debian's name rules) without
// running anything.
[[nodiscard]] Status ValidateDebianOptions(const DebianOptions& options);

// The SOURCE_DATE_EPOCH CreateDebianRuntime would use.
[[nodiscard]] Result<int64_t> DebianSourceDateEpoch(
    const DebianOptions& options);

// Runs mmdebstrap (as root: root mode; otherwise unshare mode), removes
// files that differ between runs (apt lists and caches, logs, machine-id,
// ldconfig cache, dpkg/debconf backups, /dev entries, resolv.conf,
// hostname), records package versions with dpkg-query, clears setuid
// bits, and stores the result. kNotSupported if mmdebstrap is missing;
// kIo if it fails (the message carries its last output line).
[[nodiscard]] Result<RuntimeInfo> CreateDebianRuntime(
    Store& store, const DebianOptions& options);

// Every runtime with metadata in the store, sorted by digest.
[[nodiscard]] Result<std::vector<RuntimeInfo>> ListRuntimes(
    const Store& store);
// One runtime's metadata; kNotFound if the store has none for it.
[[nodiscard]] Result<RuntimeInfo> ShowRuntime(const Store& store,
                                              const Digest& digest);

// The folder holding tree `digest` extracted read-only, extracting it on
// first use: into a temporary folder, every chunk verified, then renamed
// to "<store>/roots/<hex>" with a ".complete" marker written last.
// Concurrent callers are serialised by a lock file; a second call returns
// the existing folder without extracting again. Files are owned by the
// caller (root when hatch runs as root), modes come from the tree
// (0755/0644 and 0555 for folders), and nothing in the folder is writable
// by group or others. A folder without its marker is removed and
// extracted again.
[[nodiscard]] Result<std::string> MaterialiseTree(Store& store,
                                                  const Digest& digest);
// The same for a tree whose chunks come from `source` (e.g. an egg's data
// tree, from EggFile): the encoded tree is stored (so that a pin list can
// name it), chunks are read from `source` and verified, and the folder is
// keyed by the tree digest like any other.
[[nodiscard]] Result<std::string> MaterialiseTree(Store& store,
                                                  const Tree& tree,
                                                  ChunkSource& source);
// The same, for a runtime.
[[nodiscard]] Result<std::string> MaterialiseRuntime(Store& store,
                                                     const Digest& digest);
// Whether tree `digest` is materialised and complete in `store` (its
// marker is written only after every chunk was verified and the folder
// moved into place), so that MaterialiseTree() reads no chunk for it.
bool IsTreeMaterialised(const Store& store, const Digest& digest);

// Writes tree `digest` into `dir`, which must not exist yet.
[[nodiscard]] Status ExportTree(Store& store, const Digest& digest,
                                const std::string& dir);

// Records metadata for a tree already in the store (e.g. a runtime fetched
// from a registry: source "oci", origin the pinned reference) and marks
// it kept when info.kept. kNotFound if the store lacks the tree.
[[nodiscard]] Status RecordRuntime(Store& store, const RuntimeInfo& info);

// Marks or unmarks a runtime as a gc root.
[[nodiscard]] Status KeepRuntime(Store& store, const Digest& digest,
                                 bool keep);

// ReferenceFn for Store::Gc that decodes trees with the format layer.
[[nodiscard]] Result<Store::References> RuntimeTreeReferences(
    std::span<const uint8_t> encoded_tree);

}  // namespace egg

#endif  // EGG_RUNTIME_H_

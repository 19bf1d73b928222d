// Pieces shared by the runtime sources; not part of the public API.
#ifndef EGG_RUNTIME_INTERNAL_H_
#define EGG_RUNTIME_INTERNAL_H_

#include <string>
#include <string_view>
#include <vector>

#include "egg/runtime.h"
#include "egg/store.h"
#include "egg/tree.h"

namespace egg::runtime_internal {

// "'text'" with terminal control characters escaped.
std::string Quote(std::string_view text);

// Rewrites a symlink target found at `link_path` (relative to the runtime
// root) into the tree's relative spelling. Absolute targets resolve from
// the runtime root, which is "/" when the runtime runs. A target that
// climbs above the root, or names the root itself from the top level, is
// kInvalidArgument. Targets the tree already accepts are kept as they are.
[[nodiscard]] Result<std::string> NormaliseLinkTarget(
    std::string_view link_path, std::string_view target);

struct ScanTotals {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Walks `dir` without following symlinks, chunks every file into `store`
// and returns the sorted tree. Rejects special files and (unless
// options.strip_setuid) setuid/setgid bits, naming the path.
[[nodiscard]] Result<Tree> ScanFolder(Store& store, const std::string& dir,
                                      const ImportOptions& options,
                                      ScanTotals* totals);

// Encodes, stores and returns the tree's digest.
[[nodiscard]] Result<Digest> StoreTree(Store& store, const Tree& tree);

// Loads and decodes a stored tree.
[[nodiscard]] Result<Tree> LoadTree(const Store& store, const Digest& digest);

// Writes `tree` into the existing empty folder `dir`, reading chunks from
// `source` (each verified). Never follows a link: every parent is opened
// component by component with O_NOFOLLOW, every name created exclusively.
[[nodiscard]] Status ExtractTreeInto(const Tree& tree, ChunkSource& source,
                                     const std::string& dir);

// Metadata file "<store>/runtimes/<hex>.json".
[[nodiscard]] Status WriteRuntimeInfo(Store& store, const RuntimeInfo& info);
[[nodiscard]] Result<RuntimeInfo> ReadRuntimeInfo(const Store& store,
                                                  const Digest& digest);

// Validates and extracts a tarball into `staging` (an empty folder).
// drop_devices silently skips device nodes and fifos instead of refusing
// them (only for mmdebstrap's own output, whose /dev entries the sandbox
// replaces anyway).
[[nodiscard]] Status ExtractTarball(const std::string& tarball,
                                    const std::string& staging,
                                    const ImportOptions& options,
                                    bool drop_devices = false);

// Runs argv[0] with `argv` (no shell), stdout and stderr to `log_path`.
// Returns the exit status; kIo if it could not start or was killed.
[[nodiscard]] Result<int> RunLogged(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& env,
                                    const std::string& log_path);

}  // namespace egg::runtime_internal

#endif  // EGG_RUNTIME_INTERNAL_H_

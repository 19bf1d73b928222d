// Folder helpers shared by the store and the runtime layer. None of them
// follows symlinks.
#ifndef EGG_STORE_FS_UTIL_H_
#define EGG_STORE_FS_UTIL_H_

#include <string>
#include <vector>

#include "common/fd.h"
#include "egg/status.h"

namespace egg {

// mkdir that accepts an existing folder (but not an existing non-folder).
[[nodiscard]] Status MakeDir(const std::string& path, int mode);
// mkdir -p.
[[nodiscard]] Status MakeDirs(const std::string& path, int mode);

// Removes `path` and everything under it; read-only folders are made
// writable first. Symlinks are removed, never followed. Absent is fine.
[[nodiscard]] Status RemoveTree(const std::string& path);

// Names in a folder except "." and "..", sorted bytewise. kNotFound if the
// folder is absent.
[[nodiscard]] Result<std::vector<std::string>> ListDir(
    const std::string& path);

// Creates a fresh folder "<parent>/<prefix>XXXXXX" (mode 0700).
[[nodiscard]] Result<std::string> MakeTempDir(const std::string& parent,
                                              const std::string& prefix);

// An exclusive or shared flock on a lock file, released on destruction.
class FileLock {
 public:
  // Blocks until the lock is held.
  [[nodiscard]] static Result<FileLock> Acquire(const std::string& path,
                                                bool exclusive);
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace egg

#endif  // EGG_STORE_FS_UTIL_H_

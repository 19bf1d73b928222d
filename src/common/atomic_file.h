// Writes that land whole or not at all: a temporary file in the target's
// folder, fsync, then rename over the target.
#ifndef EGG_COMMON_ATOMIC_FILE_H_
#define EGG_COMMON_ATOMIC_FILE_H_

#include <string>
#include <string_view>

#include "common/fd.h"
#include "egg/status.h"

namespace egg {

class AtomicFile {
 public:
  // Creates "<dir>/.<name>.tmp-XXXXXX" with `mode` (before umask is not
  // consulted: the mode is set with fchmod). If !overwrite and the target
  // exists, Commit fails with kInvalidArgument and nothing is replaced.
  // A target that exists and is not a regular file or a symbolic link (a
  // folder, device, FIFO or socket) is never replaced: Create and Commit
  // fail with kInvalidArgument.
  static Result<AtomicFile> Create(const std::string& target, int mode,
                                   bool overwrite);

  AtomicFile(AtomicFile&&) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  ~AtomicFile();  // removes the temporary file unless committed

  int fd() const { return fd_.get(); }
  const std::string& temp_path() const { return temp_; }

  // Checks the target again (see Create), fsyncs, renames into place
  // (with RENAME_NOREPLACE when !overwrite), and fsyncs the folder. With
  // durable = false the two fsyncs are left out: readers still see the
  // old file or the whole new one, never a part, but after a crash of the
  // machine the file may be missing or empty. Only for files that are
  // cheap to make again (hatch results).
  Status Commit(bool durable = true);

 private:
  AtomicFile(std::string target, std::string temp, UniqueFd fd,
             bool overwrite);
  std::string target_;
  std::string temp_;
  UniqueFd fd_;
  bool overwrite_;
  bool committed_ = false;
};

// Checks, before any work whose result is to be written there, that an
// AtomicFile for `target` could be committed: its folder exists and is
// writable, and `target` is absent, a regular file or a symbolic link.
// kNotFound for a missing folder, kInvalidArgument for a target that is
// a folder, device, FIFO or socket, kIo for a folder egg may not write.
[[nodiscard]] Status CheckWritableTarget(const std::string& target);

// Whole-file convenience wrapper; `durable` as for Commit().
Status WriteFileAtomic(const std::string& target, std::string_view data,
                       int mode, bool overwrite, bool durable = true);

}  // namespace egg

#endif  // EGG_COMMON_ATOMIC_FILE_H_

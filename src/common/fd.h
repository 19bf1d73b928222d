// File descriptors owned by a move-only wrapper, and I/O helpers that retry
// EINTR and short transfers.
#ifndef EGG_COMMON_FD_H_
#define EGG_COMMON_FD_H_

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "egg/status.h"

namespace egg {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Retries a system call while it fails with EINTR.
template <typename F>
auto RetryEintr(F f) -> decltype(f()) {
  decltype(f()) r;
  do {
    r = f();
  } while (r == -1 && errno == EINTR);
  return r;
}

// "what: strerror(errno)" as an I/O error.
Error ErrnoError(const std::string& what, int err = errno);

// Opens with O_CLOEXEC added.
Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode = 0);

Status WriteAll(int fd, std::span<const uint8_t> data);
Status WriteAll(int fd, std::string_view data);
// Reads exactly data.size() bytes at offset; a short file is kCorruption.
Status PreadExact(int fd, std::span<uint8_t> data, uint64_t offset);
// Reads a whole (regular, small) file; fails past max_bytes.
Result<std::string> ReadFileToString(const std::string& path,
                                     uint64_t max_bytes = 64ull << 20);

// Gives the folder at `path` to uid:gid, through a descriptor opened
// without following a link: a folder swapped for a link to, say,
// /dev/null fails instead of giving away what the link names.
Status ChownFolder(const std::string& path, unsigned uid, unsigned gid);

// The names in the directory open at `dir_fd` (the fd stays open and its
// offset is not used), without "." and "..", sorted bytewise. `what`
// names the directory in an error.
Result<std::vector<std::string>> ReadDirSorted(int dir_fd,
                                               const std::string& what);

}  // namespace egg

#endif  // EGG_COMMON_FD_H_

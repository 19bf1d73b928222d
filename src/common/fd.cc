#include "common/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace egg {

Error ErrnoError(const std::string& what, int err) {
  return Error(Code::kIo, what + ": " + std::strerror(err));
}

Result<UniqueFd> OpenFile(const std::string& path, int flags, int mode) {
  int fd = RetryEintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC,
                                          mode); });
  if (fd < 0) {
    int err = errno;
    Error e = ErrnoError("'" + path + "'", err);
    if (err == ENOENT) return Fail(Code::kNotFound, e.message());
    return Fail(e);
  }
  return UniqueFd(fd);
}

Status WriteAll(int fd, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = RetryEintr(
        [&] { return ::write(fd, data.data() + done, data.size() - done); });
    if (n < 0) return Fail(ErrnoError("write"));
    done += static_cast<size_t>(n);
  }
  return {};
}

Status WriteAll(int fd, std::string_view data) {
  return WriteAll(fd, std::span<const uint8_t>(
                          reinterpret_cast<const uint8_t*>(data.data()),
                          data.size()));
}

Status PreadExact(int fd, std::span<uint8_t> data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = RetryEintr([&] {
      return ::pread(fd, data.data() + done, data.size() - done,
                     static_cast<off_t>(offset + done));
    });
    if (n < 0) return Fail(ErrnoError("read"));
    if (n == 0) return Fail(Code::kCorruption, "unexpected end of file");
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::string> ReadFileToString(const std::string& path,
                                     uint64_t max_bytes) {
  // O_NONBLOCK: a FIFO must not block the open; it is refused below.
  auto fd = OpenFile(path, O_RDONLY | O_NONBLOCK);
  if (!fd) return Fail(fd.error());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return Fail(ErrnoError("'" + path + "'"));
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalidArgument, "'" + path + "' is not a regular file");
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = RetryEintr([&] { return ::read(fd->get(), buf, sizeof buf); });
    if (n < 0) return Fail(ErrnoError("'" + path + "'"));
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return Fail(Code::kInvalidArgument, "'" + path + "' is too large");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status ChownFolder(const std::string& path, unsigned uid, unsigned gid) {
  auto fd = OpenFile(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) return Fail(fd.error());
  if (::fchown(fd->get(), uid, gid) != 0) {
    return Fail(ErrnoError("'" + path + "'"));
  }
  return {};
}

Result<std::vector<std::string>> ReadDirSorted(int dir_fd,
                                               const std::string& what) {
  int dup = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return Fail(ErrnoError(what));
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(dup), &::closedir);
  if (!dir) {
    ::close(dup);
    return Fail(ErrnoError(what));
  }
  ::rewinddir(dir.get());
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* d = ::readdir(dir.get())) {
    std::string_view name = d->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  if (errno != 0) return Fail(ErrnoError(what));
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace egg

#include "common/atomic_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace egg {
namespace {

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string BaseName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// kInvalidArgument when `target` exists and is neither a regular file
// nor a symbolic link: renaming over a device node would replace it.
Status CheckTargetKind(const std::string& target) {
  struct stat st;
  if (::lstat(target.c_str(), &st) != 0) return {};
  if (S_ISREG(st.st_mode)) return {};
  const char* link = "";
  if (S_ISLNK(st.st_mode)) {
    // The link itself is replaced, so one to a regular file (or to
    // nothing) is fine; one to /dev/stdout, a device or a folder is a
    // mistake that would replace a system link.
    if (::stat(target.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return {};
    link = "a link to ";
  }
  const char* kind = S_ISDIR(st.st_mode)    ? "a folder"
                     : S_ISCHR(st.st_mode)  ? "a character device"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISFIFO(st.st_mode) ? "a FIFO"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "not a regular file";
  return Fail(Code::kInvalidArgument,
              "'" + target + "' is " + link + kind +
                  "; egg replaces only regular files");
}

}  // namespace

Status CheckWritableTarget(const std::string& target) {
  if (target.empty() || target.back() == '/') {
    return Fail(Code::kInvalidArgument,
                "'" + target + "' names a folder, not a file");
  }
  if (auto s = CheckTargetKind(target); !s) return s;
  const std::string dir = DirName(target);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    int err = errno;
    Error e = ErrnoError("folder '" + dir + "' of '" + target + "'", err);
    return Fail(err == ENOENT ? Code::kNotFound : e.code(), e.message());
  }
  if (!S_ISDIR(st.st_mode)) {
    return Fail(Code::kNotFound,
                "'" + dir + "' (the folder of '" + target +
                    "') is not a folder");
  }
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
    return Fail(ErrnoError("cannot write in '" + dir + "'"));
  }
  return {};
}

Result<AtomicFile> AtomicFile::Create(const std::string& target, int mode,
                                      bool overwrite) {
  if (!overwrite && ::access(target.c_str(), F_OK) == 0) {
    return Fail(Code::kInvalidArgument,
                "'" + target + "' exists (use --force to replace it)");
  }
  if (auto s = CheckTargetKind(target); !s) return Fail(s.error());
  std::string templ =
      DirName(target) + "/." + BaseName(target) + ".tmp-XXXXXX";
  int fd = ::mkostemp(templ.data(), O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError("cannot create a file beside '" +
                                     target + "'"));
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(templ.c_str());
    return Fail(ErrnoError("chmod '" + templ + "'", err));
  }
  return AtomicFile(target, templ, UniqueFd(fd), overwrite);
}

AtomicFile::AtomicFile(std::string target, std::string temp, UniqueFd fd,
                       bool overwrite)
    : target_(std::move(target)),
      temp_(std::move(temp)),
      fd_(std::move(fd)),
      overwrite_(overwrite) {}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : target_(std::move(other.target_)),
      temp_(std::move(other.temp_)),
      fd_(std::move(other.fd_)),
      overwrite_(other.overwrite_),
      committed_(std::exchange(other.committed_, true)) {}

AtomicFile::~AtomicFile() {
  if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

Status AtomicFile::Commit(bool durable) {
  if (durable && ::fsync(fd_.get()) != 0) return Fail(ErrnoError("fsync"));
  fd_.Reset();
  // Time has passed since Create: the target may have become a device.
  if (auto s = CheckTargetKind(target_); !s) return s;
  int flags = overwrite_ ? 0 : RENAME_NOREPLACE;
  if (::renameat2(AT_FDCWD, temp_.c_str(), AT_FDCWD, target_.c_str(),
                  flags) != 0) {
    int err = errno;
    if (err == EEXIST) {
      return Fail(Code::kInvalidArgument,
                  "'" + target_ + "' exists (use --force to replace it)");
    }
    return Fail(ErrnoError("rename to '" + target_ + "'", err));
  }
  committed_ = true;
  if (!durable) return {};
  auto dir = OpenFile(DirName(target_), O_RDONLY | O_DIRECTORY);
  if (dir) ::fsync(dir->get());
  return {};
}

Status WriteFileAtomic(const std::string& target, std::string_view data,
                       int mode, bool overwrite, bool durable) {
  auto file = AtomicFile::Create(target, mode, overwrite);
  if (!file) return Fail(file.error());
  if (auto s = WriteAll(file->fd(), data); !s) return s;
  return file->Commit(durable);
}

}  // namespace egg

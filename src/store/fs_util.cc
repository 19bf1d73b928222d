#include "store/fs_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace egg {
namespace {

// Removes everything inside the folder open as `dir_fd`. `where` names it
// in errors.
Status EmptyDirAt(int dir_fd, const std::string& where) {
  int dup_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return Fail(ErrnoError("'" + where + "'"));
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dup_fd);
    return Fail(ErrnoError("'" + where + "'", err));
  }
  std::vector<std::pair<std::string, bool>> names;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (::fstatat(dir_fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;  // removed meanwhile
    }
    names.emplace_back(name, S_ISDIR(st.st_mode));
  }
  ::closedir(dir);

  for (const auto& [name, is_dir] : names) {
    std::string path = where + "/" + name;
    if (is_dir) {
      // A read-only folder cannot lose entries unless we are root.
      ::fchmodat(dir_fd, name.c_str(), 0700, 0);
      int fd = ::openat(dir_fd, name.c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return Fail(ErrnoError("'" + path + "'"));
      UniqueFd child(fd);
      if (auto s = EmptyDirAt(child.get(), path); !s) return s;
      if (::unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 &&
          errno != ENOENT) {
        return Fail(ErrnoError("cannot remove '" + path + "'"));
      }
    } else if (::unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return Fail(ErrnoError("cannot remove '" + path + "'"));
    }
  }
  return {};
}

}  // namespace

Status MakeDir(const std::string& path, int mode) {
  if (::mkdir(path.c_str(), static_cast<mode_t>(mode)) == 0) return {};
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::lstat(path.c_str(), &st) == 0 &&
      S_ISDIR(st.st_mode)) {
    return {};
  }
  return Fail(ErrnoError("cannot create folder '" + path + "'", err));
}

Status MakeDirs(const std::string& path, int mode) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i != path.size() && path[i] != '/') continue;
    std::string prefix = path.substr(0, i);
    if (auto s = MakeDir(prefix, mode); !s) return s;
  }
  return {};
}

Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return Fail(ErrnoError("'" + path + "'"));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Fail(ErrnoError("cannot remove '" + path + "'"));
    }
    return {};
  }
  ::chmod(path.c_str(), 0700);
  auto fd = OpenFile(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!fd) return Fail(fd.error());
  if (auto s = EmptyDirAt(fd->get(), path); !s) return s;
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrnoError("cannot remove '" + path + "'"));
  }
  return {};
}

Result<std::vector<std::string>> ListDir(const std::string& path) {
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    int err = errno;
    if (err == ENOENT) {
      return Fail(Code::kNotFound, "folder '" + path + "' does not exist");
    }
    return Fail(ErrnoError("'" + path + "'", err));
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::string> MakeTempDir(const std::string& parent,
                                const std::string& prefix) {
  std::string templ = parent + "/" + prefix + "XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    return Fail(ErrnoError("cannot create a folder in '" + parent + "'"));
  }
  return templ;
}

Result<FileLock> FileLock::Acquire(const std::string& path, bool exclusive) {
  auto fd = OpenFile(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
  if (!fd) return Fail(fd.error().Wrap("lock file"));
  int op = exclusive ? LOCK_EX : LOCK_SH;
  if (RetryEintr([&] { return ::flock(fd->get(), op); }) != 0) {
    return Fail(ErrnoError("cannot lock '" + path + "'"));
  }
  return FileLock(std::move(*fd));
}

}  // namespace egg

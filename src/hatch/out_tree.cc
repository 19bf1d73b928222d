#include "hatch/out_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "common/fd.h"

namespace egg::hatch {
namespace {

constexpr mode_t kDropped = S_ISUID | S_ISGID | S_ISVTX | S_IWGRP | S_IWOTH;

// Clears the dropped bits of the entry `name` in the folder `dir_fd`;
// a folder also gets u+rx, so that its owner can walk into it. By name:
// the entry was just seen not to be a link and nothing else runs, so
// this cannot follow one (fchmod would need a readable descriptor, and
// the cell may have left a file mode 0).
Status Clear(int dir_fd, const std::string& name, const struct stat& st,
             const std::string& shown, bool give, SanitizeStats* stats) {
  // Run as root, the sandbox's user was nobody on the host: the entry
  // becomes the hatching user's, so no other nobody process can change
  // it later (a link itself, never what it points to).
  if (give && ::geteuid() == 0 &&
      (st.st_uid != ::getuid() || st.st_gid != ::getgid())) {
    if (::fchownat(dir_fd, name.c_str(), ::getuid(), ::getgid(),
                   AT_SYMLINK_NOFOLLOW) != 0) {
      return Fail(ErrnoError("'" + shown + "'"));
    }
    ++stats->changed;
  }
  if (S_ISLNK(st.st_mode)) return {};
  mode_t mode = st.st_mode & 07777 & ~kDropped;
  if (S_ISDIR(st.st_mode)) mode |= S_IRUSR | S_IXUSR;
  if (mode == (st.st_mode & 07777)) return {};
  if (::fchmodat(dir_fd, name.c_str(), mode, 0) != 0) {
    return Fail(ErrnoError("'" + shown + "'"));
  }
  ++stats->changed;
  return {};
}

}  // namespace

Result<SanitizeStats> SanitizeOutputTree(const std::string& dir,
                                         uint64_t max_entries,
                                         bool give_to_caller) {
  SanitizeStats stats;
  int top = RetryEintr([&] {
    return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  });
  if (top < 0) return Fail(ErrnoError("'" + dir + "'"));
  UniqueFd current(top);
  struct stat st;
  if (::fstat(current.get(), &st) != 0) return Fail(ErrnoError(dir));
  if (give_to_caller && ::geteuid() == 0 &&
      (st.st_uid != ::getuid() || st.st_gid != ::getgid()) &&
      ::fchown(current.get(), ::getuid(), ::getgid()) != 0) {
    return Fail(ErrnoError("'" + dir + "'"));
  }
  if ((st.st_mode & kDropped) != 0 &&
      ::fchmod(current.get(), st.st_mode & 07777 & ~kDropped) != 0) {
    return Fail(ErrnoError("'" + dir + "'"));
  }

  // One frame a level: the names of that folder still to visit. Only
  // the deepest folder is open; ".." leads back up.
  std::vector<std::vector<std::string>> pending;
  std::string shown = dir;
  auto listed = ReadDirSorted(current.get(), "'" + shown + "'");
  if (!listed) return Fail(listed.error());
  pending.push_back(std::move(*listed));
  while (!pending.empty()) {
    if (pending.back().empty()) {
      pending.pop_back();
      if (pending.empty()) break;
      int up = RetryEintr([&] {
        return ::openat(current.get(), "..",
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      });
      if (up < 0) return Fail(ErrnoError("'" + shown + "/..'"));
      current = UniqueFd(up);
      shown.resize(shown.rfind('/'));
      continue;
    }
    std::string name = std::move(pending.back().back());
    pending.back().pop_back();
    if (++stats.entries > max_entries) {
      return Fail(Code::kInvalidArgument, "'" + dir + "' holds more than " +
                                              std::to_string(max_entries) +
                                              " entries");
    }
    std::string path = shown + "/" + name;
    if (::fstatat(current.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Fail(ErrnoError("'" + path + "'"));
    }
    if (auto s = Clear(current.get(), name, st, path, give_to_caller, &stats); !s) {
      return Fail(s.error());
    }
    if (!S_ISDIR(st.st_mode)) continue;
    int down = RetryEintr([&] {
      return ::openat(current.get(), name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    });
    if (down < 0) return Fail(ErrnoError("'" + path + "'"));
    current = UniqueFd(down);
    shown = path;
    auto names = ReadDirSorted(current.get(), "'" + shown + "'");
    if (!names) return Fail(names.error());
    pending.push_back(std::move(*names));
    if (pending.size() - 1 > stats.depth) stats.depth = pending.size() - 1;
  }
  return stats;
}

}  // namespace egg::hatch

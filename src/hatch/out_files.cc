// Listing /out: see out_files.h.
#include "hatch/out_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <span>

#include "common/fd.h"
#include "egg/hash.h"

namespace egg::hatch {
namespace {

// Past kMaxListDepth levels, sets *too_deep and goes no further.
void ListDir(int dirfd, const std::string& prefix, int depth, Listing* out,
             bool* too_deep) {
  if (depth > kMaxListDepth) {
    *too_deep = true;
    close(dirfd);
    return;
  }
  DIR* d = fdopendir(dirfd);
  if (d == nullptr) {
    close(dirfd);
    return;
  }
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (out->size() >= kMaxListedFiles) break;
    struct stat st;
    if (fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;
    }
    std::string path = prefix.empty() ? name : prefix + "/" + name;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(::dirfd(d), e->d_name,
                       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) ListDir(sub, path, depth + 1, out, too_deep);
    } else if (S_ISREG(st.st_mode)) {
      (*out)[path] = {static_cast<uint64_t>(st.st_size),
                      st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec,
                      st.st_ino, static_cast<uint64_t>(st.st_blocks) * 512};
    }
  }
  closedir(d);
}

}  // namespace

Listing ListOutput(const std::string& dir, bool* too_deep) {
  Listing out;
  bool deep = false;
  if (dir.empty()) return out;
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) ListDir(fd, "", 0, &out, &deep);
  if (too_deep != nullptr) *too_deep = deep;
  return out;
}

// Size of everything listed, each file by the larger of its apparent size
// (a sparse file counts in full, so a cell cannot hide bytes behind a
// hole) and its blocks on disk (blocks reserved past the end). Folders nested
// past the listing depth, where files would escape the count, and a listing cut
// at kMaxListedFiles give kOutUncountable.
uint64_t OutTotal(const std::string& dir) {
  if (dir.empty()) return 0;
  bool too_deep = false;
  Listing l = ListOutput(dir, &too_deep);
  return ListingTotal(l, too_deep);
}

uint64_t ListingTotal(const Listing& listing, bool too_deep) {
  if (too_deep || listing.size() >= kMaxListedFiles) return kOutUncountable;
  uint64_t total = 0;
  for (const auto& [path, stamp] : listing) {
    uint64_t bytes = std::max(stamp.size, stamp.allocated);
    if (total >= kOutUncountable - bytes) return kOutUncountable;
    total += bytes;
  }
  return total;
}

// Whether a cell that started with `baseline` bytes in /out has passed
// the egg's cap: it must be over the cap and have grown /out, so a later
// cell that writes nothing is not charged for an earlier one's files.
bool OutOverCap(uint64_t total, uint64_t baseline, uint64_t cap) {
  if (cap == 0) return false;
  if (total == kOutUncountable) return true;
  return total > cap && total > baseline;
}

namespace {

// `rel` below the folder `dir` as a regular file, read-only, through no
// symbolic link anywhere on the way: a cell can swap a folder of /out
// for a link to a host folder (or /dev) between the listing and this
// open, and the hatcher runs as the hatching user, not as the sandbox's.
// -1 if it cannot be opened so or is not a regular file; *st is its
// status otherwise.
int OpenBeneath(const std::string& dir, const std::string& rel,
                struct stat* st) {
  UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) return -1;
  // O_NONBLOCK: a FIFO swapped in for the file does not wait for a
  // writer (it is then refused as not regular).
  const int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  open_how how{};
  how.flags = flags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
                RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  int fd = static_cast<int>(RetryEintr([&] {
    return ::syscall(SYS_openat2, root.get(), rel.c_str(), &how, sizeof(how));
  }));
  if (fd < 0 && errno == ENOSYS) {
    // Before Linux 5.6: one folder at a time, none of them a link.
    UniqueFd at(::dup(root.get()));
    size_t pos = 0;
    while (at.valid()) {
      size_t slash = rel.find('/', pos);
      std::string part = rel.substr(pos, slash == std::string::npos
                                             ? std::string::npos
                                             : slash - pos);
      if (part.empty() || part == "." || part == "..") return -1;
      if (slash == std::string::npos) {
        fd = ::openat(at.get(), part.c_str(), flags);
        break;
      }
      at = UniqueFd(::openat(at.get(), part.c_str(),
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      pos = slash + 1;
    }
  }
  if (fd < 0) return -1;
  if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

std::string HashFile(const std::string& dir, const std::string& rel) {
  struct stat st;
  int fd = OpenBeneath(dir, rel, &st);
  if (fd < 0) return "";
  UniqueFd owned(fd);
  // The bytes it holds when opened: a writer that keeps appending does
  // not keep the hatcher hashing.
  uint64_t left = static_cast<uint64_t>(st.st_size);
  Sha256 h;
  uint8_t buf[1 << 16];
  while (left > 0) {
    ssize_t n = RetryEintr([&] {
      return read(fd, buf, static_cast<size_t>(
                               std::min<uint64_t>(left, sizeof(buf))));
    });
    if (n < 0) return "";
    if (n == 0) break;
    h.Update(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    left -= static_cast<uint64_t>(n);
  }
  return DigestHex(h.Finish());
}

}  // namespace

std::vector<OutputFile> ChangedFiles(const std::string& dir,
                                     const Listing& before,
                                     const Listing& after) {
  std::vector<OutputFile> files;
  for (const auto& [path, stamp] : after) {
    auto it = before.find(path);
    if (it != before.end() && it->second == stamp) continue;
    files.push_back({path, stamp.size, HashFile(dir, path)});
  }
  return files;
}

namespace {

// Adds to *total what `fds_fd` (an open /proc/PID/fd) holds on `dev`
// after deleting it, each file once (`seen`).
void AddDeletedOpen(int fds_fd, dev_t dev,
                    std::set<std::pair<dev_t, ino_t>>* seen, uint64_t* total) {
  DIR* fds = ::fdopendir(fds_fd);
  if (fds == nullptr) {
    ::close(fds_fd);
    return;
  }
  while (dirent* e = ::readdir(fds)) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    // Follows the descriptor's link to the open file itself.
    if (::fstatat(fds_fd, e->d_name, &st, 0) != 0 || st.st_dev != dev ||
        st.st_nlink != 0 || !S_ISREG(st.st_mode) ||
        !seen->insert({st.st_dev, st.st_ino}).second) {
      continue;
    }
    *total += std::max<uint64_t>(static_cast<uint64_t>(st.st_size),
                                 static_cast<uint64_t>(st.st_blocks) * 512);
  }
  ::closedir(fds);
}

}  // namespace

uint64_t DeletedOpenBytes(int root, dev_t dev, bool skip_root_fds) {
  if (root <= 0) return 0;
  std::vector<int> pids = {root};
  std::set<std::pair<dev_t, ino_t>> seen;
  uint64_t total = 0;
  char name[300];
  for (size_t i = 0; i < pids.size() && i < 65536; ++i) {
    std::snprintf(name, sizeof(name), "/proc/%d", pids[i]);
    // Every lookup below is relative to /proc/PID: it is walked once.
    UniqueFd proc(::open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!proc.valid()) continue;
    // Its children, through every thread (a thread can fork too).
    int tasks_fd = ::openat(proc.get(), "task", O_RDONLY | O_DIRECTORY |
                                                    O_CLOEXEC);
    if (DIR* tasks = tasks_fd < 0 ? nullptr : ::fdopendir(tasks_fd)) {
      while (dirent* t = ::readdir(tasks)) {
        if (t->d_name[0] == '.') continue;
        std::snprintf(name, sizeof(name), "task/%s/children", t->d_name);
        UniqueFd kids_fd(::openat(proc.get(), name, O_RDONLY | O_CLOEXEC));
        if (!kids_fd.valid()) continue;
        std::string kids;
        char buf[4096];
        while (kids.size() < (1u << 20)) {
          ssize_t n = RetryEintr(
              [&] { return ::read(kids_fd.get(), buf, sizeof(buf)); });
          if (n <= 0) break;
          kids.append(buf, static_cast<size_t>(n));
        }
        size_t pos = 0;
        while (pos < kids.size()) {
          size_t end = kids.find(' ', pos);
          if (end == std::string::npos) end = kids.size();
          int kid = std::atoi(kids.substr(pos, end - pos).c_str());
          if (kid > 0) pids.push_back(kid);
          pos = end + 1;
        }
      }
      ::closedir(tasks);
    } else if (tasks_fd >= 0) {
      ::close(tasks_fd);
    }
    if (i == 0 && skip_root_fds) continue;
    int fds_fd = ::openat(proc.get(), "fd", O_RDONLY | O_DIRECTORY |
                                                O_CLOEXEC);
    if (fds_fd >= 0) AddDeletedOpen(fds_fd, dev, &seen, &total);
  }
  return total;
}

uint64_t DeletedOpenBytesOf(const std::vector<int>& pids, dev_t dev) {
  std::set<std::pair<dev_t, ino_t>> seen;
  uint64_t total = 0;
  char name[64];
  for (int pid : pids) {
    if (pid <= 0) continue;
    std::snprintf(name, sizeof(name), "/proc/%d/fd", pid);
    int fds_fd = ::open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fds_fd >= 0) AddDeletedOpen(fds_fd, dev, &seen, &total);
  }
  return total;
}

size_t TrimFileList(std::vector<OutputFile>* files, uint64_t* budget) {
  size_t kept = 0;
  for (; kept < files->size(); ++kept) {
    uint64_t cost = (*files)[kept].path.size() + kFileEntryCost;
    if (cost > *budget) break;
    *budget -= cost;
  }
  size_t dropped = files->size() - kept;
  files->resize(kept);
  if (dropped > 0) *budget = 0;
  return dropped;
}

}  // namespace egg::hatch

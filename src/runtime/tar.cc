// Tarball import. Every entry passes the same checks twice: once over the
// whole tarball before anything is written, and again while extracting,
// so a tarball that changes between the passes cannot slip an entry in.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>

#include "common/fd.h"
#include "runtime/internal.h"

namespace egg::runtime_internal {
namespace {

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;

enum class Kind { kRoot, kDir, kFile, kSymlink, kHardlink, kSkip };

struct Checked {
  Kind kind = Kind::kFile;
  std::string path;    // normalised tree path
  std::string target;  // symlink: tree spelling; hard link: tree path
  bool executable = false;
};

struct CheckState {
  bool drop_devices = false;
  std::map<std::string, Kind> seen;
  uint64_t entries = 0;
};

Error Bad(const std::string& tarball, const std::string& name,
          const std::string& why) {
  return Error(Code::kInvalidArgument,
               Quote(tarball) + ": entry " + Quote(name) + " " + why);
}

// Strips "./" prefixes and trailing '/'. Empty means the root itself.
// Absolute names and ".." components are refused by the caller.
std::string StripName(std::string name) {
  while (name.size() >= 2 && name[0] == '.' && name[1] == '/') {
    name.erase(0, 2);
    while (!name.empty() && name[0] == '/' && name.size() > 1 &&
           name[1] == '/') {
      name.erase(0, 1);
    }
  }
  if (name == ".") name.clear();
  while (!name.empty() && name.back() == '/' && name.size() > 1) {
    name.pop_back();
  }
  return name;
}

bool HasDotDot(const std::string& name) {
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (name.compare(start, end - start, "..") == 0 && end - start == 2) {
      return true;
    }
    start = end + 1;
  }
  return false;
}

Result<std::string> CheckName(const std::string& tarball,
                              const std::string& raw) {
  if (!raw.empty() && raw[0] == '/') {
    return Fail(Bad(tarball, raw, "has an absolute name"));
  }
  if (HasDotDot(raw)) return Fail(Bad(tarball, raw, "has a '..' component"));
  std::string name = StripName(raw);
  if (!name.empty() && !IsValidTreePath(name)) {
    return Fail(Bad(tarball, raw, "has a name a tree cannot hold"));
  }
  return name;
}

Result<Checked> CheckEntry(const std::string& tarball,
                           struct archive_entry* e,
                           const ImportOptions& options, CheckState* state) {
  const char* raw_c = archive_entry_pathname(e);
  if (raw_c == nullptr) {
    return Fail(Code::kInvalidArgument,
                Quote(tarball) + ": an entry has no name");
  }
  std::string raw = raw_c;
  if (++state->entries > (1u << 24)) {
    return Fail(Bad(tarball, raw, "exceeds the entry limit"));
  }
  auto name = CheckName(tarball, raw);
  if (!name) return Fail(name.error());

  Checked c;
  c.path = *name;
  mode_t type = archive_entry_filetype(e);
  mode_t mode = archive_entry_perm(e) | (archive_entry_mode(e) & 07000);
  const char* hardlink = archive_entry_hardlink(e);
  if ((mode & (S_ISUID | S_ISGID)) && type != AE_IFLNK &&
      !options.strip_setuid) {
    return Fail(Bad(tarball, raw, "has the setuid or setgid bit"));
  }
  c.executable = (mode & S_IXUSR) != 0;

  if (hardlink != nullptr) {
    auto target = CheckName(tarball, hardlink);
    if (!target) {
      return Fail(Bad(tarball, raw, "is a hard link to a name outside "
                                    "the tarball"));
    }
    auto it = state->seen.find(*target);
    if (target->empty() || it == state->seen.end() ||
        (it->second != Kind::kFile && it->second != Kind::kHardlink)) {
      return Fail(Bad(tarball, raw, "is a hard link to " + Quote(hardlink) +
                                        ", which is not an earlier file "
                                        "of the tarball"));
    }
    c.kind = Kind::kHardlink;
    c.target = *target;
  } else if (type == AE_IFDIR) {
    c.kind = c.path.empty() ? Kind::kRoot : Kind::kDir;
  } else if (type == AE_IFREG) {
    c.kind = Kind::kFile;
  } else if (type == AE_IFLNK) {
    const char* target = archive_entry_symlink(e);
    if (target == nullptr || c.path.empty()) {
      return Fail(Bad(tarball, raw, "is a symlink without a target"));
    }
    auto fixed = NormaliseLinkTarget(c.path, target);
    if (!fixed) {
      return Fail(Bad(tarball, raw, "is a symlink that leaves the root (" +
                                        fixed.error().message() + ")"));
    }
    c.kind = Kind::kSymlink;
    c.target = *fixed;
  } else if (state->drop_devices && !c.path.empty() &&
             (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO)) {
    c.kind = Kind::kSkip;
    return c;
  } else {
    return Fail(Bad(tarball, raw,
                    "is a device node, fifo or socket; a runtime may "
                    "hold only files, folders and links"));
  }
  if (c.path.empty() && c.kind != Kind::kRoot) {
    return Fail(Bad(tarball, raw, "names the root but is not a folder"));
  }
  if (c.kind == Kind::kRoot) return c;

  // Every ancestor must be a folder (or not named at all).
  for (size_t slash = c.path.find('/'); slash != std::string::npos;
       slash = c.path.find('/', slash + 1)) {
    auto it = state->seen.find(c.path.substr(0, slash));
    if (it == state->seen.end()) {
      state->seen.emplace(c.path.substr(0, slash), Kind::kDir);
    } else if (it->second != Kind::kDir) {
      return Fail(Bad(tarball, raw, "lies under an entry that is not a "
                                    "folder"));
    }
  }
  auto [it, inserted] = state->seen.emplace(c.path, c.kind);
  if (!inserted && !(c.kind == Kind::kDir && it->second == Kind::kDir)) {
    return Fail(Bad(tarball, raw, "appears twice"));
  }
  return c;
}

Result<ArchivePtr> OpenArchive(const std::string& tarball) {
  ArchivePtr a(archive_read_new(), &archive_read_free);
  if (!a) return Fail(Code::kInternal, "libarchive: out of memory");
  archive_read_support_filter_all(a.get());
  archive_read_support_format_all(a.get());
  if (archive_read_open_filename(a.get(), tarball.c_str(), 1 << 16) !=
      ARCHIVE_OK) {
    return Fail(Code::kIo, Quote(tarball) + ": " +
                               archive_error_string(a.get()));
  }
  return a;
}

Error ArchiveError(const std::string& tarball, struct archive* a) {
  const char* why = archive_error_string(a);
  return Error(Code::kCorruption,
               Quote(tarball) + ": " + (why ? why : "unreadable tarball"));
}

// Opens the parent folder of `path` below root_fd, creating missing
// folders, never following a link.
Result<UniqueFd> OpenParentCreating(int root_fd, const std::string& path) {
  UniqueFd current(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return Fail(ErrnoError("dup"));
  size_t start = 0;
  for (size_t slash = path.find('/'); slash != std::string::npos;
       slash = path.find('/', start)) {
    std::string part = path.substr(start, slash - start);
    if (::mkdirat(current.get(), part.c_str(), 0755) != 0 &&
        errno != EEXIST) {
      return Fail(ErrnoError("cannot create the folder of " + Quote(path)));
    }
    int next = ::openat(current.get(), part.c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      return Fail(ErrnoError("cannot open the folder of " + Quote(path)));
    }
    current.Reset(next);
    start = slash + 1;
  }
  return current;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status WriteEntry(const std::string& tarball, struct archive* a, int root,
                  const Checked& c) {
  auto parent = OpenParentCreating(root, c.path);
  if (!parent) return Fail(parent.error());
  std::string name = BaseName(c.path);
  switch (c.kind) {
    case Kind::kRoot:
    case Kind::kSkip:
      return {};
    case Kind::kDir:
      if (::mkdirat(parent->get(), name.c_str(), 0755) != 0 &&
          errno != EEXIST) {
        return Fail(ErrnoError("cannot create " + Quote(c.path)));
      }
      return {};
    case Kind::kSymlink:
      if (::symlinkat(c.target.c_str(), parent->get(), name.c_str()) != 0) {
        return Fail(ErrnoError("cannot create " + Quote(c.path)));
      }
      return {};
    case Kind::kHardlink: {
      auto from = OpenParentCreating(root, c.target);
      if (!from) return Fail(from.error());
      if (::linkat(from->get(), BaseName(c.target).c_str(), parent->get(),
                   name.c_str(), 0) != 0) {
        return Fail(ErrnoError("cannot create " + Quote(c.path)));
      }
      return {};
    }
    case Kind::kFile:
      break;
  }
  int fd = ::openat(parent->get(), name.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
  if (fd < 0) return Fail(ErrnoError("cannot create " + Quote(c.path)));
  UniqueFd file(fd);
  std::vector<uint8_t> buf(1 << 16);
  while (true) {
    la_ssize_t n = archive_read_data(a, buf.data(), buf.size());
    if (n < 0) return Fail(ArchiveError(tarball, a));
    if (n == 0) break;
    if (auto s = WriteAll(fd, std::span<const uint8_t>(
                                  buf.data(), static_cast<size_t>(n)));
        !s) {
      return Fail(s.error().Wrap(Quote(c.path)));
    }
  }
  if (::fchmod(fd, c.executable ? 0755 : 0644) != 0) {
    return Fail(ErrnoError(Quote(c.path)));
  }
  return {};
}

}  // namespace

Status ExtractTarball(const std::string& tarball, const std::string& staging,
                      const ImportOptions& options, bool drop_devices) {
  // Pass 1: check every entry before writing anything.
  {
    auto a = OpenArchive(tarball);
    if (!a) return Fail(a.error());
    CheckState state;
    state.drop_devices = drop_devices;
    struct archive_entry* e;
    int r;
    while ((r = archive_read_next_header(a->get(), &e)) == ARCHIVE_OK) {
      if (auto c = CheckEntry(tarball, e, options, &state); !c) {
        return Fail(c.error());
      }
    }
    if (r != ARCHIVE_EOF) return Fail(ArchiveError(tarball, a->get()));
  }

  // Pass 2: the same checks, then write.
  auto a = OpenArchive(tarball);
  if (!a) return Fail(a.error());
  auto root = OpenFile(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!root) return Fail(root.error());
  CheckState state;
  state.drop_devices = drop_devices;
  struct archive_entry* e;
  int r;
  while ((r = archive_read_next_header(a->get(), &e)) == ARCHIVE_OK) {
    auto c = CheckEntry(tarball, e, options, &state);
    if (!c) return Fail(c.error());
    if (auto s = WriteEntry(tarball, a->get(), root->get(), *c); !s) {
      return s;
    }
  }
  if (r != ARCHIVE_EOF) return Fail(ArchiveError(tarball, a->get()));
  return {};
}

}  // namespace egg::runtime_internal

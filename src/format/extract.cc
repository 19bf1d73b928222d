// ExtractTree: writes a tree under a new directory without ever following
// or creating a link that leaves it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fd.h"
#include "common/text.h"
#include "format/internal.h"

namespace egg {
namespace {

std::string Quote(std::string_view s) {
  return "'" + EscapeForTerminal(s) + "'";
}

// Opens `rel` (a directory path inside the tree, "" for the root) below
// `root`, one component at a time, refusing symlinks at every step.
Result<UniqueFd> OpenDirBeneath(int root, std::string_view rel) {
  UniqueFd current(::fcntl(root, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return Fail(ErrnoError("dup"));
  size_t i = 0;
  while (i < rel.size()) {
    size_t end = rel.find('/', i);
    if (end == std::string_view::npos) end = rel.size();
    std::string part(rel.substr(i, end - i));
    i = end + 1;
    int fd = RetryEintr([&] {
      return ::openat(current.get(), part.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    });
    if (fd < 0) return Fail(ErrnoError("open " + Quote(rel)));
    current.Reset(fd);
  }
  return current;
}

}  // namespace

Status EggFile::ExtractTree(std::string_view tree,
                            const std::string& dir) const {
  auto t = FindTree(tree);
  if (!t) return Fail(t.error());
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) {
      return Fail(Code::kInvalidArgument,
                  Quote(dir) + " exists; extract needs a new directory");
    }
    return Fail(ErrnoError("mkdir " + Quote(dir)));
  }
  auto root = OpenFile(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!root) return Fail(root.error());

  std::string parent_path = "\x01";  // never a real path: forces a lookup
  UniqueFd parent;
  for (const TreeEntry& e : (*t)->entries) {
    size_t slash = e.path.rfind('/');
    std::string parent_rel =
        slash == std::string::npos ? "" : e.path.substr(0, slash);
    std::string name =
        slash == std::string::npos ? e.path : e.path.substr(slash + 1);
    if (parent_rel != parent_path) {
      auto fd = OpenDirBeneath(root->get(), parent_rel);
      if (!fd) return Fail(fd.error());
      parent = std::move(*fd);
      parent_path = parent_rel;
    }
    const std::string where = Quote(std::string(tree) + ":" + e.path);
    switch (e.kind) {
      case EntryKind::kDir:
        if (::mkdirat(parent.get(), name.c_str(), 0755) != 0) {
          return Fail(ErrnoError("mkdir " + where));
        }
        break;
      case EntryKind::kSymlink:
        if (::symlinkat(e.target.c_str(), parent.get(), name.c_str()) != 0) {
          return Fail(ErrnoError("symlink " + where));
        }
        break;
      case EntryKind::kFile: {
        int fd = RetryEintr([&] {
          return ::openat(parent.get(), name.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                              O_CLOEXEC,
                          0600);
        });
        if (fd < 0) return Fail(ErrnoError("create " + where));
        UniqueFd out(fd);
        auto s = StreamFile(tree, e.path,
                            [&](std::span<const uint8_t> b) -> Status {
                              return WriteAll(out.get(), b);
                            });
        if (!s) return s;
        if (::fchmod(out.get(), e.mode) != 0) {
          return Fail(ErrnoError("chmod " + where));
        }
        break;
      }
    }
  }
  if (::fchmod(root->get(), 0755) != 0) {
    return Fail(ErrnoError("chmod " + Quote(dir)));
  }
  return {};
}

}  // namespace egg

// Staging a manifest's data entries as one folder tree for the format
// writer: files are hard-linked where the file system allows (no copy of
// big data), copied otherwise. Sources are opened below the manifest's
// folder one component at a time without following a symlink, as the
// parser checked them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common/fd.h"
#include "egg/manifest.h"

namespace egg {
namespace {

Error StageError(const std::string& what, int err) {
  return Error(Code::kIo,
               "staging data: '" + what + "': " + std::strerror(err));
}

// Opens the folder holding the last component of `rel` below `root`.
Result<UniqueFd> OpenParent(int root, const std::string& rel, bool create,
                            std::string* last) {
  UniqueFd current(RetryEintr(
      [&] { return ::openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC); }));
  if (!current.valid()) return tl::unexpected(StageError(rel, errno));
  size_t start = 0;
  for (size_t slash; (slash = rel.find('/', start)) != std::string::npos;
       start = slash + 1) {
    std::string part = rel.substr(start, slash - start);
    if (create && ::mkdirat(current.get(), part.c_str(), 0755) != 0 &&
        errno != EEXIST) {
      return tl::unexpected(StageError(rel, errno));
    }
    int fd = RetryEintr([&] {
      return ::openat(current.get(), part.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    });
    if (fd < 0) return tl::unexpected(StageError(rel, errno));
    current.Reset(fd);
  }
  *last = rel.substr(start);
  return current;
}

Status CopyFile(int src_dir, const std::string& src_name, int dst_dir,
                const std::string& dst_name, const std::string& shown) {
  UniqueFd in(RetryEintr([&] {
    return ::openat(src_dir, src_name.c_str(),
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  }));
  if (!in.valid()) return tl::unexpected(StageError(shown, errno));
  struct stat st;
  if (::fstat(in.get(), &st) != 0) {
    return tl::unexpected(StageError(shown, errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kInvalidArgument,
                "staging data: '" + shown + "' is no longer a regular file");
  }
  UniqueFd out(RetryEintr([&] {
    return ::openat(dst_dir, dst_name.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    st.st_mode & 0755);
  }));
  if (!out.valid()) return tl::unexpected(StageError(shown, errno));
  std::vector<uint8_t> buf(1 << 20);
  while (true) {
    ssize_t n =
        RetryEintr([&] { return ::read(in.get(), buf.data(), buf.size()); });
    if (n < 0) return tl::unexpected(StageError(shown, errno));
    if (n == 0) break;
    std::span<const uint8_t> chunk(buf.data(), static_cast<size_t>(n));
    if (Status s = WriteAll(out.get(), chunk); !s) return s;
  }
  return {};
}

// Links one regular file into the stage, or copies it where a link is
// refused (another file system, protected_hardlinks, link count).
Status StageFile(int src_dir, const std::string& src_name, int dst_dir,
                 const std::string& dst_name, const std::string& shown) {
  if (::linkat(src_dir, src_name.c_str(), dst_dir, dst_name.c_str(), 0) == 0) {
    // linkat does not follow a symlink: check what was linked.
    struct stat st;
    if (::fstatat(dst_dir, dst_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode)) {
      return {};
    }
    return Fail(Code::kInvalidArgument,
                "staging data: '" + shown + "' is no longer a regular file");
  }
  if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != EACCES) {
    return tl::unexpected(StageError(shown, errno));
  }
  return CopyFile(src_dir, src_name, dst_dir, dst_name, shown);
}

Status StageFolder(int src, int dst, const std::string& shown,
                   const struct stat& skip, int depth) {
  if (depth > 256) {
    return Fail(Code::kInvalidArgument,
                "staging data: '" + shown + "' nests too deep");
  }
  auto listed = ReadDirSorted(src, "staging data: '" + shown + "'");
  if (!listed) return tl::unexpected(listed.error());
  std::vector<std::string> names = std::move(*listed);

  for (const std::string& name : names) {
    std::string path = shown + "/" + name;
    struct stat st;
    if (::fstatat(src, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return tl::unexpected(StageError(path, errno));
    }
    // The staging folder may sit inside a data folder; never copy it into
    // itself.
    if (st.st_dev == skip.st_dev && st.st_ino == skip.st_ino) continue;
    if (S_ISREG(st.st_mode)) {
      if (Status s = StageFile(src, name, dst, name, path); !s) return s;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      return Fail(Code::kInvalidArgument,
                  "staging data: '" + path + "' is not a file or folder");
    }
    if (::mkdirat(dst, name.c_str(), 0755) != 0) {
      return tl::unexpected(StageError(path, errno));
    }
    UniqueFd s_child(RetryEintr([&] {
      return ::openat(src, name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }));
    UniqueFd d_child(RetryEintr([&] {
      return ::openat(dst, name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }));
    if (!s_child.valid() || !d_child.valid()) {
      return tl::unexpected(StageError(path, errno));
    }
    if (Status s =
            StageFolder(s_child.get(), d_child.get(), path, skip, depth + 1);
        !s) {
      return s;
    }
  }
  return {};
}

}  // namespace

Status StageData(const Manifest& manifest, const std::string& stage_dir) {
  UniqueFd root(RetryEintr([&] {
    return ::open(manifest.folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }));
  if (!root.valid()) return tl::unexpected(StageError(manifest.folder, errno));
  UniqueFd stage(RetryEintr([&] {
    return ::open(stage_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }));
  if (!stage.valid()) return tl::unexpected(StageError(stage_dir, errno));
  struct stat skip;
  if (::fstat(stage.get(), &skip) != 0) {
    return tl::unexpected(StageError(stage_dir, errno));
  }

  for (const DataEntry& e : manifest.data) {
    std::string src_name, dst_name;
    auto src_parent = OpenParent(root.get(), e.from, false, &src_name);
    if (!src_parent) return tl::unexpected(src_parent.error());
    auto dst_parent = OpenParent(stage.get(), e.to, true, &dst_name);
    if (!dst_parent) return tl::unexpected(dst_parent.error());
    if (!e.is_folder) {
      if (Status s = StageFile(src_parent->get(), src_name, dst_parent->get(),
                               dst_name, e.from);
          !s) {
        return s;
      }
      continue;
    }
    if (::mkdirat(dst_parent->get(), dst_name.c_str(), 0755) != 0) {
      return tl::unexpected(StageError(e.to, errno));
    }
    UniqueFd src(RetryEintr([&] {
      return ::openat(src_parent->get(), src_name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }));
    UniqueFd dst(RetryEintr([&] {
      return ::openat(dst_parent->get(), dst_name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }));
    if (!src.valid() || !dst.valid()) {
      return tl::unexpected(StageError(e.from, errno));
    }
    if (Status s = StageFolder(src.get(), dst.get(), e.from, skip, 0); !s) {
      return s;
    }
  }
  return {};
}

}  // namespace egg

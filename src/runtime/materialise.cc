// Writing trees out as folders: materialised roots for hatch and export.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "runtime/internal.h"
#include "store/fs_util.h"

namespace egg {
namespace runtime_internal {
namespace {

// Opens the folder holding `path` (relative to root_fd), one component at
// a time without following links. The tree lists parents before children,
// so every parent already exists as a folder we created.
Result<UniqueFd> OpenParent(int root_fd, const std::string& path) {
  UniqueFd current(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!current.valid()) return Fail(ErrnoError("dup"));
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) return current;
    std::string part = path.substr(start, slash - start);
    int next = ::openat(current.get(), part.c_str(),
                        O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      return Fail(ErrnoError("cannot open the folder of " + Quote(path)));
    }
    current.Reset(next);
    start = slash + 1;
  }
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Status WriteFileEntry(int parent, const TreeEntry& e, ChunkSource& source) {
  std::string name = BaseName(e.path);
  int fd = ::openat(parent, name.c_str(),
                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
  if (fd < 0) return Fail(ErrnoError("cannot create " + Quote(e.path)));
  UniqueFd file(fd);
  uint64_t written = 0;
  for (const Digest& d : e.chunks) {
    auto bytes = source.ReadChunk(d);
    if (!bytes) return Fail(bytes.error().Wrap(Quote(e.path)));
    if (Sha256Of(*bytes) != d) {
      return Fail(Code::kVerificationFailed,
                  Quote(e.path) + ": chunk " + DigestRef(d) +
                      " does not match its digest");
    }
    if (auto s = WriteAll(fd, *bytes); !s) {
      return Fail(s.error().Wrap(Quote(e.path)));
    }
    written += bytes->size();
  }
  if (written != e.size) {
    return Fail(Code::kCorruption,
                Quote(e.path) + ": chunks do not add up to the file size");
  }
  if (::fchmod(fd, e.mode) != 0) return Fail(ErrnoError(Quote(e.path)));
  return {};
}

}  // namespace

Status ExtractTreeInto(const Tree& tree, ChunkSource& source,
                       const std::string& dir) {
  if (auto s = ValidateTree(tree); !s) return s;
  auto root = OpenFile(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (!root) return Fail(root.error());
  for (const TreeEntry& e : tree.entries) {
    auto parent = OpenParent(root->get(), e.path);
    if (!parent) return Fail(parent.error());
    std::string name = BaseName(e.path);
    switch (e.kind) {
      case EntryKind::kDir:
        if (::mkdirat(parent->get(), name.c_str(), 0755) != 0) {
          return Fail(ErrnoError("cannot create " + Quote(e.path)));
        }
        break;
      case EntryKind::kSymlink:
        if (::symlinkat(e.target.c_str(), parent->get(), name.c_str()) !=
            0) {
          return Fail(ErrnoError("cannot create " + Quote(e.path)));
        }
        break;
      case EntryKind::kFile:
        if (auto s = WriteFileEntry(parent->get(), e, source); !s) return s;
        break;
    }
  }
  if (::syncfs(root->get()) != 0) return Fail(ErrnoError("syncfs"));
  return {};
}

}  // namespace runtime_internal

using runtime_internal::ExtractTreeInto;
using runtime_internal::LoadTree;
using runtime_internal::Quote;

namespace {

std::string MarkerPath(const Store& store, const Digest& digest) {
  return store.MaterialisedPath(digest) + ".ok";
}

bool IsComplete(const Store& store, const Digest& digest) {
  auto marker = ReadFileToString(MarkerPath(store, digest), 4096);
  struct stat st;
  return marker && *marker == DigestRef(digest) + "\n" &&
         ::lstat(store.MaterialisedPath(digest).c_str(), &st) == 0 &&
         S_ISDIR(st.st_mode);
}

}  // namespace

namespace {

// `tree` is null to load it from the store; `source` null for the store.
Result<std::string> Materialise(Store& store, const Digest& digest,
                                const Tree* given, ChunkSource* source) {
  std::string path = store.MaterialisedPath(digest);
  if (IsComplete(store, digest)) return path;

  // One extraction at a time per tree; a later caller finds it done.
  auto lock = FileLock::Acquire(path + ".lock", true);
  if (!lock) return Fail(lock.error());
  if (IsComplete(store, digest)) return path;

  // A folder without its marker is from an interrupted extraction.
  ::unlink(MarkerPath(store, digest).c_str());
  if (auto s = RemoveTree(path); !s) return Fail(s.error());

  Result<Tree> loaded = given ? Result<Tree>(*given) : LoadTree(store, digest);
  if (!loaded) {
    return Fail(loaded.error().Wrap("tree " + DigestRef(digest)));
  }
  auto temp = MakeTempDir(store.TempDir(), "materialise-");
  if (!temp) return Fail(temp.error());
  StoreChunkSource store_source(store);
  auto extracted = ExtractTreeInto(*loaded, source ? *source : store_source,
                                   *temp);
  if (!extracted) {
    (void)RemoveTree(*temp);
    return Fail(extracted.error().Wrap("materialising " + DigestRef(digest)));
  }
  if (::chmod(temp->c_str(), 0755) != 0 ||
      ::rename(temp->c_str(), path.c_str()) != 0) {
    int err = errno;
    (void)RemoveTree(*temp);
    return Fail(ErrnoError("cannot move the materialised tree to " +
                               Quote(path),
                           err));
  }
  if (auto s = WriteFileAtomic(MarkerPath(store, digest),
                               DigestRef(digest) + "\n", 0444, true);
      !s) {
    return Fail(s.error());
  }
  return path;
}

}  // namespace

Result<std::string> MaterialiseTree(Store& store, const Digest& digest) {
  return Materialise(store, digest, nullptr, nullptr);
}

Result<std::string> MaterialiseTree(Store& store, const Tree& tree,
                                    ChunkSource& source) {
  auto encoded = EncodeTree(tree);
  if (!encoded) return Fail(encoded.error());
  auto digest = store.Put(ObjectKind::kTree, *encoded);
  if (!digest) return Fail(digest.error());
  return Materialise(store, *digest, &tree, &source);
}

bool IsTreeMaterialised(const Store& store, const Digest& digest) {
  return IsComplete(store, digest);
}

Result<std::string> MaterialiseRuntime(Store& store, const Digest& digest) {
  return MaterialiseTree(store, digest);
}

Status ExportTree(Store& store, const Digest& digest,
                  const std::string& dir) {
  auto tree = LoadTree(store, digest);
  if (!tree) return Fail(tree.error().Wrap("tree " + DigestRef(digest)));
  if (::mkdir(dir.c_str(), 0700) != 0) {
    return Fail(ErrnoError("cannot create " + Quote(dir)));
  }
  StoreChunkSource source(store);
  if (auto s = ExtractTreeInto(*tree, source, dir); !s) return s;
  if (::chmod(dir.c_str(), 0755) != 0) return Fail(ErrnoError(Quote(dir)));
  return {};
}

}  // namespace egg

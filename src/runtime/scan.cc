// Folder scanning into the store, and symlink target rewriting.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/fd.h"
#include "common/text.h"
#include "egg/chunker.h"
#include "runtime/internal.h"

namespace egg::runtime_internal {
namespace {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

Error Rejected(const std::string& where, const std::string& why) {
  return Error(Code::kInvalidArgument, Quote(where) + ": " + why);
}

// Chunks one open file into the store; returns its chunk digests.
Status ChunkFile(Store& store, int fd, const std::string& where,
                 TreeEntry* entry) {
  std::vector<uint8_t> buf(2 * kChunkMax);
  size_t have = 0;
  bool eof = false;
  uint64_t total = 0;
  while (true) {
    while (!eof && have < kChunkMax) {
      ssize_t n = RetryEintr(
          [&] { return ::read(fd, buf.data() + have, buf.size() - have); });
      if (n < 0) return Fail(ErrnoError(Quote(where)));
      if (n == 0) eof = true;
      have += static_cast<size_t>(n);
    }
    if (have == 0) break;
    size_t cut = FindChunkBoundary(std::span<const uint8_t>(buf.data(), have));
    if (cut == 0 || cut > have) {
      return Fail(Code::kInternal, "chunker returned a bad boundary");
    }
    auto digest = store.Put(ObjectKind::kChunk,
                            std::span<const uint8_t>(buf.data(), cut));
    if (!digest) return Fail(digest.error().Wrap(Quote(where)));
    entry->chunks.push_back(*digest);
    total += cut;
    std::memmove(buf.data(), buf.data() + cut, have - cut);
    have -= cut;
  }
  // The file changed while we read it: the tree would not match it.
  if (total != entry->size) {
    return Fail(Code::kIo, Quote(where) + " changed while it was read");
  }
  return {};
}

Status Walk(Store& store, int fd, const std::string& host,
            const std::string& rel, size_t depth,
            const ImportOptions& options, ScanTotals* totals,
            std::vector<TreeEntry>* out) {
  if (depth > 64) return Fail(Rejected(host, "nested too deeply"));
  auto listed = ReadDirSorted(fd, Quote(host));
  if (!listed) return Fail(listed.error());
  std::vector<std::string> names = std::move(*listed);

  for (const std::string& name : names) {
    std::string child_host = host + "/" + name;
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    if (!IsValidTreePath(child_rel)) {
      return Fail(Rejected(child_host, "name is not allowed in a tree"));
    }
    struct stat st;
    if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Fail(ErrnoError(Quote(child_host)));
    }
    if ((st.st_mode & (S_ISUID | S_ISGID)) && !options.strip_setuid &&
        !S_ISLNK(st.st_mode)) {
      return Fail(Rejected(child_host, "has the setuid or setgid bit"));
    }

    TreeEntry entry;
    entry.path = child_rel;
    if (S_ISREG(st.st_mode)) {
      entry.kind = EntryKind::kFile;
      entry.mode = (st.st_mode & S_IXUSR) ? 0755 : 0644;
      entry.size = static_cast<uint64_t>(st.st_size);
      int file = ::openat(fd, name.c_str(),
                          O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
      if (file < 0) return Fail(ErrnoError(Quote(child_host)));
      UniqueFd owned(file);
      if (auto s = ChunkFile(store, file, child_host, &entry); !s) return s;
      ++totals->files;
      totals->bytes += entry.size;
      out->push_back(std::move(entry));
    } else if (S_ISLNK(st.st_mode)) {
      char target[4097];
      ssize_t n = ::readlinkat(fd, name.c_str(), target, sizeof target);
      if (n < 0) return Fail(ErrnoError(Quote(child_host)));
      if (static_cast<size_t>(n) >= sizeof target) {
        return Fail(Rejected(child_host, "symlink target is too long"));
      }
      auto fixed = NormaliseLinkTarget(
          child_rel, std::string_view(target, static_cast<size_t>(n)));
      if (!fixed) return Fail(fixed.error().Wrap(Quote(child_host)));
      entry.kind = EntryKind::kSymlink;
      entry.mode = 0777;
      entry.target = *fixed;
      entry.size = entry.target.size();
      out->push_back(std::move(entry));
    } else if (S_ISDIR(st.st_mode)) {
      entry.kind = EntryKind::kDir;
      entry.mode = 0755;
      out->push_back(std::move(entry));
      int sub = ::openat(fd, name.c_str(),
                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) return Fail(ErrnoError(Quote(child_host)));
      UniqueFd owned(sub);
      if (auto s = Walk(store, sub, child_host, child_rel, depth + 1,
                        options, totals, out);
          !s) {
        return s;
      }
    } else {
      return Fail(Rejected(child_host,
                           "is a device node, fifo or socket; a runtime "
                           "may hold only files, folders and symlinks"));
    }
  }
  return {};
}

}  // namespace

std::string Quote(std::string_view text) {
  return "'" + EscapeForTerminal(text) + "'";
}

Result<std::string> NormaliseLinkTarget(std::string_view link_path,
                                        std::string_view target) {
  if (IsValidLinkTarget(link_path, target)) return std::string(target);
  if (target.empty()) {
    return Fail(Code::kInvalidArgument, "symlink has an empty target");
  }

  // Resolve lexically from the link's folder (or the root when absolute).
  std::vector<std::string> dir = SplitPath(link_path);
  dir.pop_back();
  std::vector<std::string> resolved;
  if (target.front() != '/') resolved = dir;
  for (const std::string& part : SplitPath(target)) {
    if (part == ".") continue;
    if (part == "..") {
      if (resolved.empty()) {
        return Fail(Code::kInvalidArgument,
                    "symlink target " + Quote(target) +
                        " leaves the root");
      }
      resolved.pop_back();
      continue;
    }
    resolved.push_back(part);
  }

  // Express it relative to the link's folder.
  size_t common = 0;
  while (common < dir.size() && common < resolved.size() &&
         dir[common] == resolved[common]) {
    ++common;
  }
  size_t ups = dir.size() - common;
  std::vector<std::string> rest(resolved.begin() + common, resolved.end());
  if (ups == 0 && rest.empty()) {
    // The link names its own folder: go up once and come back.
    if (dir.empty()) {
      return Fail(Code::kInvalidArgument,
                  "symlink target " + Quote(target) +
                      " names the root itself");
    }
    ups = 1;
    rest.push_back(dir.back());
  }
  std::string out;
  for (size_t i = 0; i < ups; ++i) out += out.empty() ? ".." : "/..";
  for (const std::string& part : rest) {
    if (!out.empty()) out += "/";
    out += part;
  }
  if (!IsValidLinkTarget(link_path, out)) {
    return Fail(Code::kInvalidArgument,
                "symlink target " + Quote(target) + " is not allowed");
  }
  return out;
}

Result<Tree> ScanFolder(Store& store, const std::string& dir,
                        const ImportOptions& options, ScanTotals* totals) {
  auto fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd) return Fail(fd.error().Wrap("runtime folder"));
  Tree tree;
  if (auto s = Walk(store, fd->get(), dir, "", 0, options, totals,
                    &tree.entries);
      !s) {
    return Fail(s.error());
  }
  std::sort(tree.entries.begin(), tree.entries.end(),
            [](const TreeEntry& a, const TreeEntry& b) {
              return a.path < b.path;
            });
  return tree;
}

Result<Digest> StoreTree(Store& store, const Tree& tree) {
  auto encoded = EncodeTree(tree);
  if (!encoded) return Fail(encoded.error());
  return store.Put(ObjectKind::kTree, *encoded);
}

Result<Tree> LoadTree(const Store& store, const Digest& digest) {
  auto bytes = store.Get(ObjectKind::kTree, digest, 1ull << 30);
  if (!bytes) return Fail(bytes.error());
  return DecodeTree(*bytes);
}

}  // namespace egg::runtime_internal

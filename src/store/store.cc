#include "egg/store.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <set>
#include <utility>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "store/fs_util.h"

namespace egg {
namespace {

constexpr char kVersionLine[] = "egg-store 1\n";

// Largest frame accepted before decompression: a frame never needs more
// than a few bytes per KiB over its content, so this bounds the read.
uint64_t MaxFrameBytes(uint64_t max_content) {
  return max_content + (max_content >> 7) + 4096;
}

const char* KindFolder(ObjectKind kind) {
  return kind == ObjectKind::kChunk ? "chunks" : "trees";
}

// Decompresses a single zstd frame holding at most max_bytes, rejecting
// trailing bytes and frames without a recorded size. Empty on failure,
// with the reason in *why.
std::optional<std::vector<uint8_t>> DecodeFrame(
    std::span<const uint8_t> frame, uint64_t max_bytes, std::string* why) {
  unsigned long long size =
      ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
    *why = "not a zstd frame with a known size";
    return std::nullopt;
  }
  if (size > max_bytes) {
    *why = "content of " + std::to_string(size) + " bytes exceeds the limit";
    return std::nullopt;
  }
  size_t frame_size = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_size) || frame_size != frame.size()) {
    *why = "bytes after the zstd frame";
    return std::nullopt;
  }
  std::vector<uint8_t> out(static_cast<size_t>(size));
  size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(),
                             frame.size());
  if (ZSTD_isError(n) || n != out.size()) {
    *why = "zstd frame does not decompress";
    return std::nullopt;
  }
  return out;
}

bool IsValidPinName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

}  // namespace

const char* ObjectKindName(ObjectKind kind) {
  return kind == ObjectKind::kChunk ? "chunk" : "tree";
}

struct Store::Impl {
  std::string root;
  int level = 3;
  UniqueFd lock;
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

const std::string& Store::root() const { return impl_->root; }

Result<std::string> Store::DefaultRoot() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/egg";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') {
    return std::string(home) + "/.cache/egg";
  }
  return Fail(Code::kInvalidArgument,
              "cannot place the store: set XDG_CACHE_HOME or HOME to an "
              "absolute path, or pass --store");
}

Result<Store> Store::Open(const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->level = options.compression_level;
  if (options.root.empty()) {
    auto root = DefaultRoot();
    if (!root) return Fail(root.error());
    impl->root = *root;
  } else {
    impl->root = options.root;
  }
  while (impl->root.size() > 1 && impl->root.back() == '/') {
    impl->root.pop_back();
  }
  const std::string& root = impl->root;

  // Layout: create what is missing; refuse a store of another version.
  if (auto s = MakeDirs(root, 0700); !s) return Fail(s.error());
  for (const char* sub : {"chunks", "trees", "tmp", "runtimes", "roots",
                          "kept", "pins"}) {
    if (auto s = MakeDir(root + "/" + sub, 0700); !s) return Fail(s.error());
  }
  std::string version_path = root + "/VERSION";
  auto version = ReadFileToString(version_path, 4096);
  if (!version && version.error().code() == Code::kNotFound) {
    auto s = WriteFileAtomic(version_path, kVersionLine, 0644, false);
    if (!s && ::access(version_path.c_str(), F_OK) != 0) {
      return Fail(s.error());
    }
    version = ReadFileToString(version_path, 4096);
  }
  if (!version) return Fail(version.error().Wrap("store"));
  if (*version != kVersionLine) {
    return Fail(Code::kNotSupported,
                "'" + version_path + "' names a store version this egg "
                "does not read");
  }

  // A shared lock for our lifetime keeps Gc in other processes out.
  auto lock = OpenFile(root + "/lock", O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
  if (!lock) return Fail(lock.error().Wrap("store lock"));
  if (RetryEintr([&] { return ::flock(lock->get(), LOCK_SH); }) != 0) {
    return Fail(ErrnoError("cannot lock the store '" + root + "'"));
  }
  impl->lock = std::move(*lock);
  return Store(std::move(impl));
}

std::string Store::TempDir() const { return impl_->root + "/tmp"; }

std::string Store::MaterialisedPath(const Digest& tree) const {
  return impl_->root + "/roots/" + DigestHex(tree);
}

std::string Store::MetadataPath(const Digest& tree) const {
  return impl_->root + "/runtimes/" + DigestHex(tree) + ".json";
}

std::string Store::ObjectPath(ObjectKind kind, const Digest& digest) const {
  std::string hex = DigestHex(digest);
  return impl_->root + "/" + KindFolder(kind) + "/" + hex.substr(0, 2) +
         "/" + hex;
}

bool Store::Has(ObjectKind kind, const Digest& digest) const {
  struct stat st;
  return ::lstat(ObjectPath(kind, digest).c_str(), &st) == 0 &&
         S_ISREG(st.st_mode);
}

namespace {

// An object file opened without following links, with its stat. `name`
// ("chunk sha256:...") names it in errors.
struct OpenedObject {
  UniqueFd fd;
  struct stat st;
};

Result<OpenedObject> OpenObject(const std::string& path,
                                const std::string& name) {
  auto fd = OpenFile(path, O_RDONLY | O_NOFOLLOW);
  if (!fd) {
    if (fd.error().code() == Code::kNotFound) {
      return Fail(Code::kNotFound, name + " is not in the store");
    }
    return Fail(fd.error().Wrap(name));
  }
  OpenedObject out{std::move(*fd), {}};
  if (::fstat(out.fd.get(), &out.st) != 0) {
    return Fail(ErrnoError("'" + path + "'"));
  }
  return out;
}

}  // namespace

Result<std::vector<uint8_t>> Store::GetFrame(ObjectKind kind,
                                             const Digest& digest,
                                             uint64_t max_bytes) const {
  std::string path = ObjectPath(kind, digest);
  std::string name = std::string(ObjectKindName(kind)) + " " +
                     DigestRef(digest);

  // Read the frame, bounded before allocation.
  auto opened = OpenObject(path, name);
  if (!opened) return Fail(opened.error());
  const UniqueFd& fd = opened->fd;
  const struct stat& st = opened->st;
  std::string why;
  std::vector<uint8_t> frame;
  if (!S_ISREG(st.st_mode)) {
    why = "not a regular file";
  } else if (static_cast<uint64_t>(st.st_size) > MaxFrameBytes(max_bytes)) {
    return Fail(Code::kInvalidArgument,
                name + " is larger than the caller accepts");
  } else {
    frame.resize(static_cast<size_t>(st.st_size));
    if (auto s = PreadExact(fd.get(), frame, 0); !s) {
      if (s.error().code() != Code::kCorruption) return Fail(s.error());
      why = "shorter than its size";
    }
  }

  // Check: decompress and re-hash; a damaged object is removed.
  if (why.empty()) {
    auto data = DecodeFrame(frame, max_bytes, &why);
    if (data && Sha256Of(*data) == digest) return frame;
    if (data) why = "content does not match its digest";
    if (why.find("exceeds the limit") != std::string::npos) {
      return Fail(Code::kInvalidArgument, name + ": " + why);
    }
  }
  ::unlink(path.c_str());
  return Fail(Code::kCorruption, "store object '" + path + "' is damaged (" +
                                     why + "); removed it");
}

Result<std::vector<uint8_t>> Store::ReadFrameUnchecked(
    ObjectKind kind, const Digest& digest, uint64_t max_bytes) const {
  std::string path = ObjectPath(kind, digest);
  std::string name = std::string(ObjectKindName(kind)) + " " +
                     DigestRef(digest);
  auto opened = OpenObject(path, name);
  if (!opened) return Fail(opened.error());
  const UniqueFd& fd = opened->fd;
  const struct stat& st = opened->st;
  if (!S_ISREG(st.st_mode)) {
    return Fail(Code::kCorruption, "'" + path + "' is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Fail(Code::kInvalidArgument,
                name + " is larger than the caller accepts");
  }
  std::vector<uint8_t> frame(static_cast<size_t>(st.st_size));
  if (auto s = PreadExact(fd.get(), frame, 0); !s) return Fail(s.error());
  return frame;
}

Result<std::vector<uint8_t>> Store::Get(ObjectKind kind, const Digest& digest,
                                        uint64_t max_bytes) const {
  auto frame = GetFrame(kind, digest, max_bytes);
  if (!frame) return Fail(frame.error());
  std::string why;
  auto data = DecodeFrame(*frame, max_bytes, &why);
  if (!data) return Fail(Code::kInternal, "checked frame failed: " + why);
  return std::move(*data);
}

Status Store::PutFrame(ObjectKind kind, const Digest& expected,
                       std::span<const uint8_t> frame) {
  std::string name = std::string(ObjectKindName(kind)) + " " +
                     DigestRef(expected);
  std::string why;
  auto data = DecodeFrame(frame, 1ull << 40, &why);
  if (!data) return Fail(Code::kCorruption, name + ": " + why);
  if (Sha256Of(*data) != expected) {
    return Fail(Code::kVerificationFailed,
                name + ": content does not match its digest");
  }

  // Already present and intact: nothing to do. Damaged: Get removed it.
  if (Has(kind, expected)) {
    auto existing = GetFrame(kind, expected, 1ull << 40);
    if (existing) return {};
    if (existing.error().code() != Code::kCorruption) {
      return Fail(existing.error());
    }
  }

  std::string path = ObjectPath(kind, expected);
  std::string shard = path.substr(0, path.rfind('/'));
  if (auto s = MakeDir(shard, 0700); !s) return s;
  if (kind == ObjectKind::kChunk) return WriteChunkFile(shard, path, frame);

  // A tree is the commit point: make every chunk written so far durable
  // before the tree that names them.
  if (auto s = Sync(); !s) return s;
  auto file = AtomicFile::Create(path, 0444, false);
  if (!file) {
    if (Has(kind, expected)) return {};  // another process won the race
    return Fail(file.error());
  }
  if (auto s = WriteAll(file->fd(), frame); !s) return s;
  auto committed = file->Commit();
  if (!committed && committed.error().code() == Code::kInvalidArgument &&
      Has(kind, expected)) {
    return {};  // written by another process between the checks
  }
  return committed;
}

Status Store::Sync() {
  auto fd = OpenFile(impl_->root, O_RDONLY | O_DIRECTORY);
  if (!fd) return Fail(fd.error());
  if (::syncfs(fd->get()) != 0) return Fail(ErrnoError("syncfs"));
  return {};
}

Status Store::WriteChunkFile(const std::string& shard, const std::string& path,
                             std::span<const uint8_t> frame) {
  // No fsync per chunk: a chunk lost or torn by a crash fails its check
  // on read and is fetched again, and Sync runs before any tree is written.
  std::string temp = shard + "/.chunk.tmp-XXXXXX";
  int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return Fail(ErrnoError("cannot create a file in '" + shard +
                                     "'"));
  UniqueFd owned(fd);
  auto s = WriteAll(fd, frame);
  if (s && ::fchmod(fd, 0444) != 0) s = Fail(ErrnoError("chmod"));
  owned.Reset();
  if (s && ::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(),
                       RENAME_NOREPLACE) == 0) {
    return {};
  }
  // EEXIST: another process stored the same chunk first.
  if (s && errno != EEXIST) s = Fail(ErrnoError("rename to '" + path + "'"));
  ::unlink(temp.c_str());
  return s;
}

Status Store::PutExpecting(ObjectKind kind, const Digest& expected,
                           std::span<const uint8_t> data) {
  if (Sha256Of(data) != expected) {
    return Fail(Code::kVerificationFailed,
                std::string(ObjectKindName(kind)) + " " +
                    DigestRef(expected) + ": content does not match");
  }
  if (Has(kind, expected)) {
    auto existing = GetFrame(kind, expected, 1ull << 40);
    if (existing) return {};
  }
  std::vector<uint8_t> frame(ZSTD_compressBound(data.size()));
  size_t n = ZSTD_compress(frame.data(), frame.size(), data.data(),
                           data.size(), impl_->level);
  if (ZSTD_isError(n)) {
    return Fail(Code::kInternal,
                std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  frame.resize(n);
  return PutFrame(kind, expected, frame);
}

Result<Digest> Store::Put(ObjectKind kind, std::span<const uint8_t> data) {
  Digest digest = Sha256Of(data);
  if (auto s = PutExpecting(kind, digest, data); !s) return Fail(s.error());
  return digest;
}

Status Store::Remove(ObjectKind kind, const Digest& digest) {
  std::string path = ObjectPath(kind, digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrnoError("cannot remove '" + path + "'"));
  }
  return {};
}

Result<std::vector<StoreEntry>> Store::List() const {
  std::vector<StoreEntry> out;
  for (ObjectKind kind : {ObjectKind::kChunk, ObjectKind::kTree}) {
    std::string base = impl_->root + "/" + KindFolder(kind);
    auto shards = ListDir(base);
    if (!shards) return Fail(shards.error());
    for (const auto& shard : *shards) {
      auto names = ListDir(base + "/" + shard);
      if (!names) {
        if (names.error().code() == Code::kNotFound) continue;
        // A stray file where a shard folder belongs is not an object.
        struct stat st;
        if (::lstat((base + "/" + shard).c_str(), &st) == 0 &&
            !S_ISDIR(st.st_mode)) {
          continue;
        }
        return Fail(names.error());
      }
      for (const auto& name : *names) {
        auto digest = ParseDigest(name);
        if (!digest || name.compare(0, 2, shard) != 0) continue;
        struct stat st;
        std::string path = base + "/" + shard + "/" + name;
        if (::lstat(path.c_str(), &st) != 0) continue;
        out.push_back({kind, *digest, static_cast<uint64_t>(st.st_size)});
      }
    }
  }
  return out;
}

Result<StoreStats> Store::Verify() {
  auto entries = List();
  if (!entries) return Fail(entries.error());
  StoreStats stats;
  for (const auto& e : *entries) {
    ++stats.objects;
    stats.bytes += e.stored_bytes;
    auto frame = GetFrame(e.kind, e.digest, 1ull << 40);
    if (!frame) {
      if (frame.error().code() == Code::kNotFound) continue;
      stats.problems.push_back(frame.error().message());
      if (frame.error().code() == Code::kCorruption) {
        ++stats.removed;
        stats.removed_bytes += e.stored_bytes;
      }
    }
  }
  return stats;
}

Status Store::MarkKept(const Digest& tree, bool kept) {
  std::string path = impl_->root + "/kept/" + DigestHex(tree);
  if (!kept) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Fail(ErrnoError("cannot remove '" + path + "'"));
    }
    return {};
  }
  if (IsKept(tree)) return {};
  auto s = WriteFileAtomic(path, "", 0644, false);
  if (!s && IsKept(tree)) return {};
  return s;
}

bool Store::IsKept(const Digest& tree) const {
  struct stat st;
  std::string path = impl_->root + "/kept/" + DigestHex(tree);
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Status Store::Pin(const std::string& name, const std::vector<Digest>& trees) {
  if (!IsValidPinName(name)) {
    return Fail(Code::kInvalidArgument,
                "pin name '" + name + "' must be letters, digits, '.', '_' "
                "or '-' and not start with '.'");
  }
  std::string text;
  for (const auto& d : trees) text += DigestRef(d) + "\n";
  return WriteFileAtomic(impl_->root + "/pins/" + name, text, 0644, true);
}

Status Store::Unpin(const std::string& name) {
  if (!IsValidPinName(name)) {
    return Fail(Code::kInvalidArgument, "bad pin name '" + name + "'");
  }
  std::string path = impl_->root + "/pins/" + name;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrnoError("cannot remove '" + path + "'"));
  }
  return {};
}

Result<std::vector<Digest>> Store::Roots() const {
  std::set<Digest> roots;
  auto kept = ListDir(impl_->root + "/kept");
  if (!kept) return Fail(kept.error());
  for (const auto& name : *kept) {
    if (auto d = ParseDigest(name)) roots.insert(*d);
  }

  // A pin list that cannot be read fails the whole call: gc must not run
  // without knowing everything that is pinned.
  auto pins = ListDir(impl_->root + "/pins");
  if (!pins) return Fail(pins.error());
  for (const auto& name : *pins) {
    if (!IsValidPinName(name)) continue;  // temporary files
    std::string path = impl_->root + "/pins/" + name;
    auto text = ReadFileToString(path, 16ull << 20);
    if (!text) return Fail(text.error().Wrap("pin list"));
    size_t start = 0;
    while (start < text->size()) {
      size_t end = text->find('\n', start);
      if (end == std::string::npos) end = text->size();
      std::string line = text->substr(start, end - start);
      start = end + 1;
      if (line.empty()) continue;
      auto d = ParseDigest(line);
      if (!d) {
        return Fail(Code::kCorruption,
                    "pin list '" + path + "' has a line that is not a "
                    "digest");
      }
      roots.insert(*d);
    }
  }
  return std::vector<Digest>(roots.begin(), roots.end());
}

Result<StoreStats> Store::Gc(ReferenceFn references) {
  int fd = impl_->lock.get();
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    return Fail(Code::kIo,
                "the store '" + impl_->root + "' is in use by another egg "
                "process; run gc again when it has finished");
  }
  // Back to shared whatever happens below.
  struct Relock {
    int fd;
    ~Relock() { ::flock(fd, LOCK_SH); }
  } relock{fd};

  StoreStats stats;
  auto roots = Roots();
  if (!roots) return Fail(roots.error());

  // Mark: everything reachable from a root.
  std::set<Digest> live_trees, live_chunks;
  std::vector<Digest> pending(roots->begin(), roots->end());
  while (!pending.empty()) {
    Digest tree = pending.back();
    pending.pop_back();
    if (!live_trees.insert(tree).second) continue;
    auto bytes = Get(ObjectKind::kTree, tree);
    if (!bytes) {
      stats.problems.push_back("root " + DigestRef(tree) + ": " +
                               bytes.error().message());
      continue;
    }
    auto refs = references(*bytes);
    if (!refs) {
      // Cannot know what it needs: keep every chunk rather than guess.
      return Fail(refs.error().Wrap("tree " + DigestRef(tree)));
    }
    live_chunks.insert(refs->chunks.begin(), refs->chunks.end());
    for (const auto& t : refs->trees) pending.push_back(t);
  }

  // Sweep objects.
  auto entries = List();
  if (!entries) return Fail(entries.error());
  for (const auto& e : *entries) {
    ++stats.objects;
    stats.bytes += e.stored_bytes;
    const auto& live =
        e.kind == ObjectKind::kChunk ? live_chunks : live_trees;
    if (live.count(e.digest)) continue;
    if (auto s = Remove(e.kind, e.digest); !s) return Fail(s.error());
    ++stats.removed;
    stats.removed_bytes += e.stored_bytes;
  }

  // Sweep materialised folders, their lock files, and metadata.
  std::set<Digest> root_set(roots->begin(), roots->end());
  std::string roots_dir = impl_->root + "/roots";
  auto folders = ListDir(roots_dir);
  if (!folders) return Fail(folders.error());
  for (const auto& name : *folders) {
    std::string hex = name.substr(0, std::min<size_t>(name.size(), 64));
    auto d = ParseDigest(hex);
    if (d && root_set.count(*d) &&
        (name.size() == 64 || name == hex + ".lock" ||
         name == hex + ".ok")) {
      continue;
    }
    if (auto s = RemoveTree(roots_dir + "/" + name); !s) return Fail(s.error());
    ++stats.removed;
  }
  auto metadata = ListDir(impl_->root + "/runtimes");
  if (!metadata) return Fail(metadata.error());
  for (const auto& name : *metadata) {
    auto d = ParseDigest(name.substr(0, std::min<size_t>(name.size(), 64)));
    if (d && live_trees.count(*d) && Has(ObjectKind::kTree, *d)) continue;
    ::unlink((impl_->root + "/runtimes/" + name).c_str());
  }

  // Nobody else has the store open, so temporary files are abandoned.
  auto temps = ListDir(TempDir());
  if (!temps) return Fail(temps.error());
  for (const auto& name : *temps) {
    if (auto s = RemoveTree(TempDir() + "/" + name); !s) return Fail(s.error());
  }
  for (ObjectKind kind : {ObjectKind::kChunk, ObjectKind::kTree}) {
    std::string base = impl_->root + "/" + KindFolder(kind);
    auto shards = ListDir(base);
    if (!shards) continue;
    for (const auto& shard : *shards) {
      auto names = ListDir(base + "/" + shard);
      if (!names) continue;
      for (const auto& name : *names) {
        if (name[0] == '.') ::unlink((base + "/" + shard + "/" + name).c_str());
      }
    }
  }
  return stats;
}

}  // namespace egg

namespace egg {

Status StoreChunkSink::PutChunk(const Digest& raw,
                                std::span<const uint8_t> raw_bytes,
                                std::span<const uint8_t> frame) {
  if (store_.Has(ObjectKind::kChunk, raw)) return {};
  if (Sha256Of(raw_bytes) != raw) {
    return Fail(Code::kVerificationFailed,
                "chunk " + DigestRef(raw) + ": content does not match");
  }
  if (!frame.empty()) return store_.PutFrame(ObjectKind::kChunk, raw, frame);
  return store_.PutExpecting(ObjectKind::kChunk, raw, raw_bytes);
}

Result<std::vector<uint8_t>> StoreChunkSource::ReadChunk(const Digest& raw) {
  return store_.Get(ObjectKind::kChunk, raw, 16ull << 20);
}

}  // namespace egg

// Directory scanning and file chunking for the writer and ScanDirectory.
#include <fcntl.h>
#include <sys/stat.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "common/fd.h"
#include "common/names.h"
#include "common/text.h"
#include "format/internal.h"

namespace egg::format_internal {
namespace {

std::string Quote(std::string_view s) {
  return "'" + EscapeForTerminal(s) + "'";
}

Error Rejected(const std::string& host, const std::string& why) {
  return Error(Code::kInvalidArgument, Quote(host) + ": " + why);
}

// Walks one directory level below `fd`, appending entries; recursion depth
// is bounded by kTreeMaxDepth.
Status Walk(int fd, const std::string& host, const std::string& rel,
            size_t depth, std::vector<ScannedEntry>* out) {
  if (depth > kTreeMaxDepth) {
    return Fail(Rejected(host, "nested deeper than " +
                                   std::to_string(kTreeMaxDepth) + " levels"));
  }
  auto listed = ReadDirSorted(fd, Quote(host));
  if (!listed) return Fail(listed.error());
  std::vector<std::string> names = std::move(*listed);

  for (const std::string& name : names) {
    std::string child_host = host + "/" + name;
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    if (auto s = CheckName(name); !s) {
      return Fail(Rejected(child_host, s.error().message()));
    }
    if (!IsValidTreePath(child_rel)) {
      return Fail(Rejected(child_host, "path is too long or too deep"));
    }
    struct stat st;
    if (::fstatat(fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Fail(ErrnoError(Quote(child_host)));
    }
    ScannedEntry se;
    se.entry.path = child_rel;
    se.host_path = child_host;
    if (S_ISREG(st.st_mode)) {
      se.entry.kind = EntryKind::kFile;
      se.entry.mode = (st.st_mode & S_IXUSR) ? 0755 : 0644;
      se.entry.size = static_cast<uint64_t>(st.st_size);
      if (se.entry.size >= kTreeMaxFileSize) {
        return Fail(Rejected(child_host, "file is too large"));
      }
      out->push_back(std::move(se));
    } else if (S_ISLNK(st.st_mode)) {
      char buf[kTreeMaxLinkTargetBytes + 1];
      ssize_t n = ::readlinkat(fd, name.c_str(), buf, sizeof buf);
      if (n < 0) return Fail(ErrnoError(Quote(child_host)));
      if (static_cast<size_t>(n) > kTreeMaxLinkTargetBytes) {
        return Fail(Rejected(child_host, "symlink target is too long"));
      }
      se.entry.kind = EntryKind::kSymlink;
      se.entry.mode = 0777;
      se.entry.target.assign(buf, static_cast<size_t>(n));
      se.entry.size = se.entry.target.size();
      if (!IsValidLinkTarget(child_rel, se.entry.target)) {
        return Fail(Rejected(child_host,
                             "symlink target " + Quote(se.entry.target) +
                                 " is absolute or may leave the tree"));
      }
      out->push_back(std::move(se));
    } else if (S_ISDIR(st.st_mode)) {
      se.entry.kind = EntryKind::kDir;
      se.entry.mode = 0755;
      out->push_back(std::move(se));
      int child = ::openat(fd, name.c_str(),
                           O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) return Fail(ErrnoError(Quote(child_host)));
      UniqueFd child_fd(child);
      if (auto s = Walk(child, child_host, child_rel, depth + 1, out); !s) {
        return s;
      }
    } else {
      return Fail(Rejected(child_host,
                           "special file (device, fifo or socket) cannot be "
                           "stored in an egg"));
    }
  }
  return {};
}

}  // namespace

Result<std::vector<ScannedEntry>> ScanMetadata(const std::string& dir) {
  auto fd = OpenFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd) return Fail(fd.error());
  std::vector<ScannedEntry> out;
  if (auto s = Walk(fd->get(), dir, "", 1, &out); !s) return Fail(s.error());
  std::sort(out.begin(), out.end(),
            [](const ScannedEntry& a, const ScannedEntry& b) {
              return a.entry.path < b.entry.path;
            });
  return out;
}

Status ChunkFile(const std::string& host_path, uint64_t expected_size,
                 const std::function<Status(std::vector<uint8_t>&&)>& chunk) {
  auto fd = OpenFile(host_path, O_RDONLY | O_NOFOLLOW);
  if (!fd) return Fail(fd.error());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) {
    return Fail(ErrnoError(Quote(host_path)));
  }
  if (!S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) != expected_size) {
    return Fail(Code::kIo, Quote(host_path) + " changed during the build");
  }

  constexpr size_t kBufSize = 4 * kChunkMax;
  std::vector<uint8_t> buf(kBufSize);
  size_t have = 0;
  size_t start = 0;
  uint64_t total = 0;
  bool eof = false;
  for (;;) {
    // Refill so that at least kChunkMax bytes are ahead unless at EOF.
    if (!eof && have - start < kChunkMax) {
      std::memmove(buf.data(), buf.data() + start, have - start);
      have -= start;
      start = 0;
      while (!eof && have < kBufSize) {
        ssize_t n = RetryEintr([&] {
          return ::read(fd->get(), buf.data() + have, kBufSize - have);
        });
        if (n < 0) return Fail(ErrnoError(Quote(host_path)));
        if (n == 0) eof = true;
        have += static_cast<size_t>(n);
        total += static_cast<uint64_t>(n);
      }
      if (total > expected_size) {
        return Fail(Code::kIo, Quote(host_path) + " changed during the build");
      }
    }
    if (start == have) break;
    size_t len = FindChunkBoundary(
        std::span<const uint8_t>(buf.data() + start, have - start));
    std::vector<uint8_t> piece(buf.begin() + start,
                               buf.begin() + start + len);
    start += len;
    if (auto s = chunk(std::move(piece)); !s) return s;
  }
  if (total != expected_size) {
    return Fail(Code::kIo, Quote(host_path) + " changed during the build");
  }
  return {};
}

Result<std::vector<uint8_t>> CompressChunk(std::span<const uint8_t> raw) {
  std::vector<uint8_t> frame(ZSTD_compressBound(raw.size()));
  thread_local std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> ctx(
      ZSTD_createCCtx(), &ZSTD_freeCCtx);
  if (!ctx) return Fail(Code::kInternal, "zstd: out of memory");
  size_t n = ZSTD_compressCCtx(ctx.get(), frame.data(), frame.size(),
                               raw.data(), raw.size(), kZstdLevel);
  if (ZSTD_isError(n)) {
    return Fail(Code::kInternal,
                std::string("zstd: ") + ZSTD_getErrorName(n));
  }
  frame.resize(n);
  return frame;
}

Status CheckFrame(std::span<const uint8_t> frame, const ChunkEntry& entry,
                  std::vector<uint8_t>* raw) {
  if (Sha256Of(frame) != entry.frame) {
    return Fail(Code::kVerificationFailed,
                "chunk " + DigestHex(entry.raw).substr(0, 16) +
                    ": frame digest mismatch");
  }
  // Exactly one frame: ZSTD_decompressDCtx would accept several.
  size_t frame_size = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_size) || frame_size != frame.size()) {
    return Fail(Code::kCorruption, "chunk " +
                                       DigestHex(entry.raw).substr(0, 16) +
                                       ": not exactly one zstd frame");
  }
  unsigned long long content = ZSTD_getFrameContentSize(frame.data(),
                                                        frame.size());
  if (content != entry.raw_length) {
    return Fail(Code::kCorruption, "chunk " +
                                       DigestHex(entry.raw).substr(0, 16) +
                                       ": frame declares the wrong size");
  }
  raw->resize(entry.raw_length);
  thread_local std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(
      ZSTD_createDCtx(), &ZSTD_freeDCtx);
  if (!ctx) return Fail(Code::kInternal, "zstd: out of memory");
  size_t n = ZSTD_decompressDCtx(ctx.get(), raw->data(), raw->size(),
                                 frame.data(), frame.size());
  if (ZSTD_isError(n) || n != entry.raw_length) {
    return Fail(Code::kCorruption, "chunk " +
                                       DigestHex(entry.raw).substr(0, 16) +
                                       ": frame does not decompress");
  }
  if (Sha256Of(*raw) != entry.raw) {
    return Fail(Code::kVerificationFailed,
                "chunk " + DigestHex(entry.raw).substr(0, 16) +
                    ": content digest mismatch");
  }
  return {};
}

uint64_t MaxFrameLength() { return ZSTD_compressBound(kChunkMax); }

}  // namespace egg::format_internal

namespace egg {

Result<Tree> ScanDirectory(const std::string& dir, ChunkSink* sink) {
  auto scanned = format_internal::ScanMetadata(dir);
  if (!scanned) return Fail(scanned.error());
  Tree tree;
  for (auto& se : *scanned) {
    if (se.entry.kind == EntryKind::kFile) {
      auto s = format_internal::ChunkFile(
          se.host_path, se.entry.size,
          [&](std::vector<uint8_t>&& raw) -> Status {
            Digest d = Sha256Of(raw);
            se.entry.chunks.push_back(d);
            if (sink == nullptr) return {};
            auto frame = format_internal::CompressChunk(raw);
            if (!frame) return Fail(frame.error());
            return sink->PutChunk(d, raw, *frame);
          });
      if (!s) return Fail(s.error());
    }
    tree.entries.push_back(std::move(se.entry));
  }
  return tree;
}

}  // namespace egg

#include "egg/tree.h"

#include <algorithm>
#include <set>

#include "common/bytes.h"
#include "common/names.h"
#include "common/text.h"

namespace egg {
namespace {

constexpr char kTreeMagic[4] = {'E', 'G', 'G', 'R'};

// Header of a tree section: magic, reserved, entry count.
constexpr size_t kTreeHeaderSize = 16;
// Fixed part of an entry after the path: kind, reserved, mode, size.
constexpr size_t kEntryFixedSize = 2 + 1 + 1 + 2 + 8;

Error Bad(const std::string& what) { return Error(Code::kCorruption, what); }

std::string Quote(std::string_view s) {
  return "'" + EscapeForTerminal(s) + "'";
}

std::vector<std::string_view> Split(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    parts.push_back(path.substr(i, end - i));
    i = end + 1;
  }
  return parts;
}

std::string_view Parent(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view()
                                         : path.substr(0, slash);
}

Status CheckEntry(const TreeEntry& e) {
  const std::string where = "tree entry " + Quote(e.path);
  switch (e.kind) {
    case EntryKind::kFile:
      if (e.mode != 0644 && e.mode != 0755) {
        return Fail(Bad(where + ": file mode is not 0644 or 0755"));
      }
      if (e.size >= kTreeMaxFileSize) {
        return Fail(Bad(where + ": absurd file size"));
      }
      if (!e.target.empty()) return Fail(Bad(where + ": file with target"));
      if (e.chunks.size() > e.size) {
        return Fail(Bad(where + ": more chunks than bytes"));
      }
      if (e.size > 0 && e.chunks.empty()) {
        return Fail(Bad(where + ": non-empty file without chunks"));
      }
      return {};
    case EntryKind::kDir:
      if (e.mode != 0755) return Fail(Bad(where + ": dir mode is not 0755"));
      if (e.size != 0 || !e.target.empty() || !e.chunks.empty()) {
        return Fail(Bad(where + ": directory with content"));
      }
      return {};
    case EntryKind::kSymlink:
      if (e.mode != 0777) {
        return Fail(Bad(where + ": symlink mode is not 0777"));
      }
      if (!e.chunks.empty() || e.size != e.target.size()) {
        return Fail(Bad(where + ": symlink size is not its target length"));
      }
      if (!IsValidLinkTarget(e.path, e.target)) {
        return Fail(Bad(where + ": symlink target " + Quote(e.target) +
                        " may leave the tree"));
      }
      return {};
  }
  return Fail(Bad(where + ": unknown kind"));
}

}  // namespace

const char* EntryKindName(EntryKind kind) {
  switch (kind) {
    case EntryKind::kFile:
      return "file";
    case EntryKind::kDir:
      return "dir";
    case EntryKind::kSymlink:
      return "symlink";
  }
  return "unknown";
}

bool IsValidTreePath(std::string_view path) {
  if (path.empty() || path.size() > kTreeMaxPathBytes) return false;
  auto parts = Split(path);
  if (parts.size() > kTreeMaxDepth) return false;
  for (std::string_view part : parts) {
    if (part.size() > kTreeMaxNameBytes || !CheckName(part)) return false;
  }
  return true;
}

bool IsValidLinkTarget(std::string_view link_path, std::string_view target) {
  if (target.empty() || target.size() > kTreeMaxLinkTargetBytes) return false;
  if (target.front() == '/') return false;
  size_t depth = Split(link_path).size() - 1;
  size_t ups = 0;
  bool seen_name = false;
  for (std::string_view part : Split(target)) {
    if (part == "..") {
      if (seen_name) return false;
      if (++ups > depth) return false;
      continue;
    }
    seen_name = true;
    if (!CheckName(part)) return false;
  }
  return true;
}

Status ValidateTree(const Tree& tree) {
  if (tree.entries.size() > kTreeMaxEntries) {
    return Fail(Bad("tree has too many entries"));
  }
  std::set<std::string_view> dirs;
  const TreeEntry* prev = nullptr;
  for (const TreeEntry& e : tree.entries) {
    if (!IsValidTreePath(e.path)) {
      return Fail(Bad("tree path " + Quote(e.path) + " is not allowed"));
    }
    if (prev != nullptr && !(prev->path < e.path)) {
      return Fail(Bad("tree entries are not sorted or repeat at " +
                      Quote(e.path)));
    }
    std::string_view parent = Parent(e.path);
    if (!parent.empty() && dirs.count(parent) == 0) {
      return Fail(Bad("tree entry " + Quote(e.path) +
                      " has no directory entry for its parent"));
    }
    if (auto s = CheckEntry(e); !s) return s;
    if (e.kind == EntryKind::kDir) dirs.insert(e.path);
    prev = &e;
  }
  return {};
}

Result<std::vector<uint8_t>> EncodeTree(const Tree& tree) {
  if (auto s = ValidateTree(tree); !s) {
    return Fail(Code::kInvalidArgument, s.error().message());
  }
  ByteWriter w;
  w.Bytes(std::string_view(kTreeMagic, 4));
  w.Le32(0);
  w.Le64(tree.entries.size());
  for (const TreeEntry& e : tree.entries) {
    w.Le16(static_cast<uint16_t>(e.path.size()));
    w.Bytes(e.path);
    w.U8(static_cast<uint8_t>(e.kind));
    w.U8(0);
    w.Le16(e.mode);
    w.Le64(e.size);
    if (e.kind == EntryKind::kSymlink) w.Bytes(e.target);
    if (e.kind == EntryKind::kFile) {
      w.Le32(static_cast<uint32_t>(e.chunks.size()));
      for (const Digest& d : e.chunks) w.Bytes(d);
    }
  }
  return std::move(w.buffer());
}

Result<Tree> DecodeTree(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  auto magic = r.String(4);
  uint32_t reserved = r.Le32();
  uint64_t count = r.Le64();
  if (!r.ok() || magic != std::string_view(kTreeMagic, 4)) {
    return Fail(Bad("tree section: bad magic"));
  }
  if (reserved != 0) return Fail(Bad("tree section: reserved bytes set"));
  // Each entry takes at least kEntryFixedSize + 1 bytes; bound the count
  // by the bytes present before allocating for it.
  if (count > kTreeMaxEntries ||
      count > (bytes.size() - kTreeHeaderSize) / (kEntryFixedSize + 1)) {
    return Fail(Bad("tree section: entry count exceeds the section"));
  }

  Tree tree;
  tree.entries.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    TreeEntry e;
    uint16_t path_len = r.Le16();
    e.path = std::string(r.String(path_len));
    uint8_t kind = r.U8();
    uint8_t pad = r.U8();
    e.mode = r.Le16();
    e.size = r.Le64();
    if (!r.ok()) return Fail(Bad("tree section: truncated entry"));
    if (pad != 0) return Fail(Bad("tree section: reserved byte set"));
    if (kind < 1 || kind > 3) {
      return Fail(Bad("tree entry " + Quote(e.path) + ": unknown kind"));
    }
    e.kind = static_cast<EntryKind>(kind);
    if (e.kind == EntryKind::kSymlink) {
      if (e.size > kTreeMaxLinkTargetBytes) {
        return Fail(Bad("tree entry " + Quote(e.path) +
                        ": symlink target too long"));
      }
      e.target = std::string(r.String(e.size));
    } else if (e.kind == EntryKind::kFile) {
      uint32_t chunk_count = r.Le32();
      if (!r.ok() || chunk_count > r.remaining() / 32) {
        return Fail(Bad("tree entry " + Quote(e.path) +
                        ": chunk list exceeds the section"));
      }
      e.chunks.resize(chunk_count);
      for (Digest& d : e.chunks) {
        auto b = r.Bytes(32);
        std::copy(b.begin(), b.end(), d.begin());
      }
    }
    if (!r.ok()) return Fail(Bad("tree section: truncated entry"));
    tree.entries.push_back(std::move(e));
  }
  if (!r.AtEnd()) return Fail(Bad("tree section: trailing bytes"));
  if (auto s = ValidateTree(tree); !s) return Fail(s.error());
  return tree;
}

Digest TreeDigest(std::span<const uint8_t> encoded) {
  return Sha256Of(encoded);
}

Result<TreeRefs> TreeReferences(std::span<const uint8_t> bytes) {
  auto tree = DecodeTree(bytes);
  if (!tree) return Fail(tree.error());
  TreeRefs refs;
  for (const TreeEntry& e : tree->entries) {
    refs.chunks.insert(refs.chunks.end(), e.chunks.begin(), e.chunks.end());
  }
  std::sort(refs.chunks.begin(), refs.chunks.end());
  refs.chunks.erase(std::unique(refs.chunks.begin(), refs.chunks.end()),
                    refs.chunks.end());
  return refs;
}

}  // namespace egg

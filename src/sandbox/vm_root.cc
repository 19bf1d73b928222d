// The micro-VM's selection of a composed runtime root; see vm_root.h.
#include "sandbox/vm_root.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <set>

#include "common/bytes.h"
#include "common/fd.h"
#include "egg/hash.h"

namespace egg::sandbox_internal {
namespace {

namespace fs = std::filesystem;

// Where the dynamic loader looks on a Debian amd64 root.
constexpr const char* kLibraryDirs[] = {"/lib/x86_64-linux-gnu",
                                        "/usr/lib/x86_64-linux-gnu",
                                        "/lib64",
                                        "/usr/lib64",
                                        "/lib",
                                        "/usr/lib"};
constexpr int kMaxSymlinkHops = 40;
constexpr size_t kMaxEntries = 200000;
constexpr uint64_t kMaxElfBytes = 512ull << 20;

bool IsUnder(const std::string& path, const std::string& prefix) {
  return path == prefix || (path.size() > prefix.size() &&
                            path.compare(0, prefix.size(), prefix) == 0 &&
                            path[prefix.size()] == '/');
}

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// "/a/./b/../c" -> "/a/c", in the sandbox's namespace.
std::string Normalise(const std::string& path) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const std::string& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

class Selector {
 public:
  explicit Selector(const SandboxSpec& spec) : spec_(spec) {}

  RootSelection Take() { return std::move(selection_); }

  // The host path of a sandbox path, through the longest matching part.
  std::string HostOf(const std::string& path) const {
    const SandboxBind* best = nullptr;
    for (const SandboxBind& p : spec_.root_parts()) {
      if (IsUnder(path, p.sandbox) &&
          (best == nullptr || p.sandbox.size() > best->sandbox.size())) {
        best = &p;
      }
    }
    if (best == nullptr) return "";
    return best->host + path.substr(best->sandbox.size());
  }

  // Adds `path` (and what it needs); false if it is not in the root.
  bool Add(const std::string& start) {
    std::string path = Normalise(start);
    for (int hop = 0; hop < kMaxSymlinkHops; ++hop) {
      std::string resolved;
      if (!ResolveParents(path, &resolved)) return false;
      path = resolved;
      std::string host = HostOf(path);
      struct stat st;
      if (host.empty() || ::lstat(host.c_str(), &st) != 0) return false;
      if (S_ISLNK(st.st_mode)) {
        std::error_code ec;
        std::string link = fs::read_symlink(host, ec).string();
        if (ec) return false;
        Put(path, {RootEntry::kSymlink, "", link, 0777});
        path = Normalise(link[0] == '/' ? link : Parent(path) + "/" + link);
        continue;
      }
      if (S_ISDIR(st.st_mode)) return AddTree(path, host);
      if (S_ISREG(st.st_mode)) {
        AddFile(path, host, st.st_mode & 07777);
        return true;
      }
      return false;
    }
    return false;
  }

  // The ELF files of a read-only bind need their libraries from the root.
  void AddElfDepsOf(const std::string& host_path, int depth) {
    std::error_code ec;
    if (fs::is_regular_file(host_path, ec)) {
      NeedElf(host_path);
      return;
    }
    if (depth > 3) return;
    for (const auto& e : fs::directory_iterator(host_path, ec)) {
      if (e.is_symlink(ec)) continue;
      AddElfDepsOf(e.path().string(), depth + 1);
    }
  }

  // Small parts are carried whole.
  void AddSmallParts() {
    for (const SandboxBind& p : spec_.root_parts()) {
      uint64_t total = 0;
      size_t count = 0;
      std::error_code ec;
      bool small = true;
      for (auto it = fs::recursive_directory_iterator(
               p.host, fs::directory_options::skip_permission_denied, ec);
           small && it != fs::recursive_directory_iterator();
           it.increment(ec)) {
        if (ec) break;
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
          total += it->file_size(ec);
        }
        small = total <= kWholePartBytes && ++count <= 20000;
      }
      if (small && !ec) Add(p.sandbox);
    }
  }

  // Follows the ELF dependencies of every file added so far.
  void Drain() {
    while (!pending_.empty()) {
      std::string host = pending_.front();
      pending_.pop_front();
      NeedElf(host);
    }
  }

 private:
  // Resolves symlinks among `path`'s parents, recording them.
  bool ResolveParents(const std::string& path, std::string* out) {
    std::string done;
    size_t pos = 1;
    int hops = 0;
    std::string rest = path;
    while (pos <= rest.size()) {
      size_t end = rest.find('/', pos);
      if (end == std::string::npos) {
        *out = rest;
        return true;
      }
      std::string prefix = rest.substr(0, end);
      std::string host = HostOf(prefix);
      struct stat st;
      if (!host.empty() && ::lstat(host.c_str(), &st) == 0 &&
          S_ISLNK(st.st_mode)) {
        if (++hops > kMaxSymlinkHops) return false;
        std::error_code ec;
        std::string link = fs::read_symlink(host, ec).string();
        if (ec) return false;
        Put(prefix, {RootEntry::kSymlink, "", link, 0777});
        std::string target =
            link[0] == '/' ? link : Parent(prefix) + "/" + link;
        rest = Normalise(target + rest.substr(end));
        pos = 1;
        continue;
      }
      pos = end + 1;
    }
    *out = rest;
    return true;
  }

  void Put(const std::string& path, RootEntry entry) {
    if (selection_.size() >= kMaxEntries) return;
    selection_.emplace(path, std::move(entry));
  }

  void AddFile(const std::string& path, const std::string& host,
               uint32_t mode) {
    if (selection_.count(path)) return;
    Put(path, {RootEntry::kFile, host, "", mode});
    pending_.push_back(host);
    // Python's standard library lives beside its binary's name.
    std::string name = path.substr(path.rfind('/') + 1);
    if (name.rfind("python3.", 0) == 0 && name.find('/') == std::string::npos) {
      Add("/usr/lib/" + name);
    }
  }

  bool AddTree(const std::string& path, const std::string& host) {
    if (selection_.count(path)) return true;
    Put(path, {RootEntry::kDir, "", "", 0755});
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(
             host, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec || selection_.size() >= kMaxEntries) break;
      std::string rel = it->path().string().substr(host.size());
      std::string inside = path + rel;
      struct stat st;
      if (::lstat(it->path().c_str(), &st) != 0) continue;
      if (S_ISLNK(st.st_mode)) {
        Put(inside, {RootEntry::kSymlink, "",
                     fs::read_symlink(it->path(), ec).string(), 0777});
      } else if (S_ISDIR(st.st_mode)) {
        Put(inside, {RootEntry::kDir, "", "", st.st_mode & 07777});
      } else if (S_ISREG(st.st_mode)) {
        Put(inside,
            {RootEntry::kFile, it->path().string(), "", st.st_mode & 07777});
        pending_.push_back(it->path().string());
      }
    }
    return true;
  }

  void NeedElf(const std::string& host) {
    if (!seen_elf_.insert(host).second) return;
    struct stat st;
    if (::stat(host.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<uint64_t>(st.st_size) > kMaxElfBytes) {
      return;
    }
    char magic[4] = {};
    {
      auto fd = OpenFile(host, O_RDONLY);
      if (!fd || ::pread(fd->get(), magic, 4, 0) != 4) return;
    }
    if (std::string(magic, 4) !=
        "\x7f"
        "ELF")
      return;
    auto bytes = ReadFileToString(host, kMaxElfBytes);
    if (!bytes) return;
    ElfDeps deps = ReadElfDeps(*bytes);
    if (!deps.interpreter.empty()) Add(deps.interpreter);
    for (const std::string& name : deps.needed) {
      if (name.find('/') != std::string::npos) {
        if (name[0] == '/') Add(name);
        continue;
      }
      for (const char* dir : kLibraryDirs) {
        std::string candidate = std::string(dir) + "/" + name;
        std::string h = HostOf(candidate);
        if (!h.empty() && ::access(h.c_str(), F_OK) == 0) {
          Add(candidate);
          break;
        }
      }
    }
  }

  const SandboxSpec& spec_;
  RootSelection selection_;
  std::deque<std::string> pending_;
  std::set<std::string> seen_elf_;
};

}  // namespace

ElfDeps ReadElfDeps(const std::string& text) {
  ElfDeps deps;
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  uint64_t size = text.size();
  // ELF64, little-endian, version 1.
  if (size < 64 ||
      text.compare(0, 4,
                   "\x7f"
                   "ELF") != 0 ||
      p[4] != 2 || p[5] != 1) {
    return deps;
  }
  uint64_t phoff = LoadLe64(p + 32);
  uint16_t phentsize = LoadLe16(p + 54);
  uint16_t phnum = LoadLe16(p + 56);
  if (phentsize < 56 || phoff > size ||
      static_cast<uint64_t>(phnum) * phentsize > size - phoff) {
    return deps;
  }
  struct Load {
    uint64_t vaddr, offset, filesz;
  };
  std::vector<Load> loads;
  uint64_t dyn_off = 0, dyn_size = 0;
  for (uint16_t i = 0; i < phnum; ++i) {
    const uint8_t* ph = p + phoff + static_cast<uint64_t>(i) * phentsize;
    uint32_t type = LoadLe32(ph);
    uint64_t offset = LoadLe64(ph + 8);
    uint64_t vaddr = LoadLe64(ph + 16);
    uint64_t filesz = LoadLe64(ph + 32);
    if (offset > size || filesz > size - offset) continue;
    if (type == 1) loads.push_back({vaddr, offset, filesz});
    if (type == 2) {
      dyn_off = offset;
      dyn_size = filesz;
    }
    if (type == 3 && filesz > 1) {
      std::string interp = text.substr(offset, filesz);
      deps.interpreter = interp.substr(0, interp.find('\0'));
    }
  }
  // The string table is named by its address: map it through PT_LOAD.
  auto file_offset = [&loads](uint64_t addr, uint64_t* out) {
    for (const Load& l : loads) {
      if (addr >= l.vaddr && addr - l.vaddr < l.filesz) {
        *out = l.offset + (addr - l.vaddr);
        return true;
      }
    }
    return false;
  };
  uint64_t strtab = 0, strsz = 0;
  std::vector<uint64_t> needed;
  for (uint64_t at = dyn_off; dyn_size >= 16 && at + 16 <= dyn_off + dyn_size;
       at += 16) {
    uint64_t tag = LoadLe64(p + at);
    uint64_t value = LoadLe64(p + at + 8);
    if (tag == 0) break;
    if (tag == 1) needed.push_back(value);
    if (tag == 5) strtab = value;
    if (tag == 10) strsz = value;
  }
  uint64_t table = 0;
  if (needed.empty() || !file_offset(strtab, &table) || table > size) {
    return deps;
  }
  uint64_t limit = std::min<uint64_t>(size - table, strsz ? strsz : size);
  for (uint64_t off : needed) {
    if (off >= limit) continue;
    const char* s = text.data() + table + off;
    size_t max = limit - off;
    size_t len = ::strnlen(s, max);
    if (len > 0 && len < max) deps.needed.emplace_back(s, len);
  }
  return deps;
}

Result<RootSelection> SelectComposedRoot(const SandboxSpec& spec) {
  Selector selector(spec);
  const std::string& command = spec.argv()[0];
  bool in_bind = false;
  for (const SandboxBind& b : spec.binds()) {
    if (IsUnder(command, b.sandbox)) in_bind = true;
  }
  if (!in_bind && !selector.Add(command)) {
    return Fail(Code::kNotFound, "vm: the command '" + command +
                                     "' is not in the composed runtime root");
  }
  for (const std::string& need : spec.root_needs()) {
    if (!selector.Add(need)) {
      return Fail(Code::kNotFound, "vm: the needed path '" + need +
                                       "' is not in the composed root");
    }
  }
  selector.AddSmallParts();
  for (const SandboxBind& b : spec.binds()) selector.AddElfDepsOf(b.host, 0);
  selector.Drain();
  return selector.Take();
}

std::string SelectionKey(const RootSelection& selection) {
  std::string text;
  for (const auto& [path, e] : selection) {
    text += path + '\0' + std::to_string(e.kind) + '\0' +
            std::to_string(e.mode) + '\0' + e.link + '\0';
    if (e.kind == RootEntry::kFile) {
      struct stat st {};
      ::stat(e.host.c_str(), &st);
      text += e.host + '\0' + std::to_string(st.st_dev) + ':' +
              std::to_string(st.st_ino) + ':' + std::to_string(st.st_size) +
              ':' + std::to_string(st.st_mtim.tv_sec) + '.' +
              std::to_string(st.st_mtim.tv_nsec) + ':' +
              std::to_string(st.st_ctim.tv_sec) + '.' +
              std::to_string(st.st_ctim.tv_nsec);
    }
    text += '\n';
  }
  return DigestHex(Sha256Of(text));
}

Status StageSelection(const RootSelection& selection,
                      const std::string& folder) {
  std::error_code ec;
  // The map is sorted, so a folder comes before what it holds; parents
  // that were never selected themselves are made on the way.
  for (const auto& [path, e] : selection) {
    fs::path target = folder + path;
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      return Fail(Code::kIo, "staging '" + path + "': " + ec.message());
    }
    switch (e.kind) {
      case RootEntry::kDir:
        fs::create_directory(target, ec);
        break;
      case RootEntry::kSymlink:
        fs::create_symlink(e.link, target, ec);
        break;
      case RootEntry::kFile:
        fs::copy_file(e.host, target, ec);
        break;
    }
    if (ec) {
      return Fail(Code::kIo, "staging '" + path + "': " + ec.message());
    }
    // No set-id bits: the guest's cell must not gain privilege from them.
    if (e.kind != RootEntry::kSymlink) ::chmod(target.c_str(), e.mode & 0777);
  }
  return {};
}

}  // namespace egg::sandbox_internal

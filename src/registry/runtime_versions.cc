// The runtime_versions state file: the newest trusted version of each
// runtime name, so that an older signed version offered later (a rollback
// to a runtime with known holes) is refused.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "common/text.h"
#include "egg/registry.h"

namespace egg {
namespace {

constexpr std::string_view kHeader = "egg-runtime-versions 1";
constexpr uint64_t kMaxVersionsFileBytes = 16ull << 20;

std::optional<uint64_t> ParseVersion(std::string_view text) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return std::nullopt;
    v = v * 10 + digit;
  }
  return v;
}

Result<std::vector<RuntimeVersionRecord>> ParseVersions(
    std::string_view text, const std::string& path) {
  std::vector<RuntimeVersionRecord> out;
  size_t line_no = 0;
  auto bad = [&](const std::string& why) {
    return Fail(Code::kCorruption, "runtime_versions " + path + " line " +
                                       std::to_string(line_no) + ": " + why);
  };
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return bad("no final newline");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (line_no == 1) {
      if (line != kHeader) return bad("expected \"egg-runtime-versions 1\"");
      continue;
    }
    size_t a = line.find(' ');
    size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
    if (b == std::string_view::npos ||
        line.find(' ', b + 1) != std::string_view::npos) {
      return bad("expected \"<name> <version> sha256:<tree>\"");
    }
    RuntimeVersionRecord r;
    r.name = std::string(line.substr(0, a));
    if (!ValidateRuntimeName(r.name)) return bad("malformed name");
    auto version = ParseVersion(line.substr(a + 1, b - a - 1));
    if (!version) return bad("malformed version");
    r.version = *version;
    std::string_view tree = line.substr(b + 1);
    auto digest = tree.starts_with("sha256:")
                      ? ParseDigest(tree)
                      : Result<Digest>(Fail(Code::kCorruption, ""));
    if (!digest) return bad("malformed tree digest");
    r.tree = *digest;
    if (!out.empty() && out.back().name >= r.name) {
      return bad("names out of order or repeated");
    }
    out.push_back(std::move(r));
  }
  if (line_no == 0) {
    ++line_no;
    return bad("empty file (expected \"egg-runtime-versions 1\")");
  }
  return out;
}

std::string EncodeVersions(const std::vector<RuntimeVersionRecord>& records) {
  std::string out = std::string(kHeader) + "\n";
  for (const auto& r : records) {
    out += r.name + " " + std::to_string(r.version) + " " + DigestRef(r.tree) +
           "\n";
  }
  return out;
}

}  // namespace

Result<std::vector<RuntimeVersionRecord>> ReadRuntimeVersions(
    const std::string& path) {
  auto text = ReadFileToString(path, kMaxVersionsFileBytes);
  if (!text) {
    if (text.error().code() == Code::kNotFound) {
      return std::vector<RuntimeVersionRecord>{};
    }
    return Fail(text.error().Wrap("runtime_versions"));
  }
  return ParseVersions(*text, path);
}

Status CheckRuntimeVersion(const std::vector<RuntimeVersionRecord>& records,
                           const RuntimeVersion& offered) {
  for (const auto& r : records) {
    if (r.name != offered.name) continue;
    std::string what = "runtime \"" + offered.name + "\" version " +
                       std::to_string(offered.version);
    if (offered.version < r.version) {
      return Fail(Code::kVerificationFailed,
                  what + " is older than version " + std::to_string(r.version) +
                      ", already trusted here; rollback refused");
    }
    if (offered.version == r.version && offered.tree != r.tree) {
      return Fail(Code::kVerificationFailed,
                  what + " names tree " + DigestRef(offered.tree) +
                      ", but that version was trusted here as " +
                      DigestRef(r.tree) + "; refused");
    }
  }
  return {};
}

std::optional<RuntimeVersionRecord> NewerRuntimeVersion(
    const std::vector<RuntimeVersionRecord>& records, std::string_view name,
    uint64_t version) {
  for (const auto& r : records) {
    if (r.name == name && r.version > version) return r;
  }
  return std::nullopt;
}

Status RecordRuntimeVersion(const std::string& path,
                            const RuntimeVersion& runtime) {
  if (auto st = ValidateRuntimeName(runtime.name); !st) return st;
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    // The state file's folder (by default the trust config's) may not
    // exist yet.
    std::string dir = path.substr(0, slash);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return Fail(Code::kIo,
                  "runtime_versions folder " + dir + ": " + ec.message());
    }
  }
  auto lock = OpenFile(path + ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (!lock) return Fail(lock.error().Wrap("runtime_versions lock"));
  if (RetryEintr([&] { return ::flock(lock->get(), LOCK_EX); }) != 0) {
    return Fail(ErrnoError("locking " + path + ".lock"));
  }
  auto records = ReadRuntimeVersions(path);
  if (!records) return Fail(records.error());
  if (auto st = CheckRuntimeVersion(*records, runtime); !st) return st;
  auto it = std::find_if(records->begin(), records->end(),
                         [&](const auto& r) { return r.name == runtime.name; });
  if (it != records->end() && it->version == runtime.version) return {};
  if (it != records->end()) {
    it->version = runtime.version;
    it->tree = runtime.tree;
  } else {
    records->push_back({runtime.name, runtime.version, runtime.tree});
    std::sort(records->begin(), records->end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
  }
  return WriteFileAtomic(path, EncodeVersions(*records), 0600, true);
}

}  // namespace egg

// Kernelspecs (kernel.json) and connection files.
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/rand.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "common/fd.h"
#include "egg/kernel.h"

namespace egg {
namespace {

constexpr size_t kMaxSpecBytes = 64u << 10;
constexpr size_t kMaxArgs = 64;

bool ValidKernelName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '-') {
      return false;
    }
  }
  return true;
}

// Opens `path` (relative) with every component resolved inside `root_fd`:
// a symlink in the runtime cannot reach the host's files.
Result<UniqueFd> OpenInRoot(int root_fd, const std::string& path) {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = RetryEintr([&] {
    return syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
  });
  if (fd < 0) return Fail(ErrnoError("opening '" + path + "' in the runtime"));
  return UniqueFd(static_cast<int>(fd));
}

Result<std::string> ReadCapped(int fd, const std::string& what) {
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = RetryEintr([&] { return read(fd, buf, sizeof(buf)); });
    if (n < 0) return Fail(ErrnoError("reading " + what));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxSpecBytes) {
      return Fail(Code::kInvalidArgument, what + " is larger than 64 KiB");
    }
  }
  return out;
}

}  // namespace

Result<KernelSpec> ParseKernelSpec(std::string_view json,
                                   const std::string& name) {
  std::string what = "kernelspec '" + name + "'";
  if (json.size() > kMaxSpecBytes) {
    return Fail(Code::kInvalidArgument, what + " is larger than 64 KiB");
  }
  int depth = 0;
  for (char c : json) {
    if (c == '[' || c == '{') ++depth;
    if (depth > 64) {
      return Fail(Code::kInvalidArgument, what + " is nested too deeply");
    }
  }
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Fail(Code::kInvalidArgument, what + " is not a JSON object");
  }
  KernelSpec spec;
  spec.name = name;
  auto argv = j.find("argv");
  if (argv == j.end() || !argv->is_array() || argv->empty() ||
      argv->size() > kMaxArgs) {
    return Fail(Code::kInvalidArgument,
                what + ": 'argv' must be an array of 1 to 64 strings");
  }
  for (const auto& a : *argv) {
    if (!a.is_string() ||
        a.get<std::string>().find('\0') != std::string::npos) {
      return Fail(Code::kInvalidArgument,
                  what + ": 'argv' must hold strings without NUL");
    }
    spec.argv.push_back(a.get<std::string>());
  }
  for (auto [field, out] : {std::pair{"display_name", &spec.display_name},
                            std::pair{"language", &spec.language}}) {
    auto it = j.find(field);
    if (it == j.end()) continue;
    if (!it->is_string()) {
      return Fail(Code::kInvalidArgument,
                  what + ": '" + field + "' must be a string");
    }
    *out = it->get<std::string>();
  }
  auto mode = j.find("interrupt_mode");
  if (mode != j.end()) {
    if (!mode->is_string() || (*mode != "signal" && *mode != "message")) {
      return Fail(Code::kInvalidArgument,
                  what + ": 'interrupt_mode' must be signal or message");
    }
    spec.interrupt_by_message = *mode == "message";
  }
  return spec;
}

Result<KernelSpec> FindKernelSpec(const std::string& root,
                                  const std::string& name) {
  if (!ValidKernelName(name)) {
    return Fail(Code::kInvalidArgument,
                "kernel name '" + name +
                    "' must be 1-64 of A-Z a-z 0-9 . _ - (not starting .)");
  }
  auto root_fd = OpenFile(root.empty() ? "/" : root, O_PATH | O_DIRECTORY);
  if (!root_fd) return Fail(root_fd.error());
  for (const char* dir :
       {"usr/local/share/jupyter/kernels/", "usr/share/jupyter/kernels/"}) {
    std::string path = std::string(dir) + name + "/kernel.json";
    auto fd = OpenInRoot(root_fd->get(), path);
    if (!fd) continue;
    auto text = ReadCapped(fd->get(), "/" + path);
    if (!text) return Fail(text.error());
    return ParseKernelSpec(*text, name);
  }
  return Fail(Code::kNotFound, "no Jupyter kernel '" + name +
                                   "' in the runtime (looked for "
                                   "/usr/share/jupyter/kernels/" +
                                   name + "/kernel.json)");
}

std::string DefaultKernelName(const std::string& language) {
  std::string l;
  for (char c : language) l += static_cast<char>(std::tolower(c));
  if (l == "python" || l == "python3" || l == "py") return "python3";
  if (l == "r") return "ir";
  return l;
}

Result<KernelConnection> NewIpcConnection(const std::string& ip) {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof(raw)) != 1) {
    return Fail(Code::kInternal, "no random bytes for the kernel's key");
  }
  static const char kHex[] = "0123456789abcdef";
  KernelConnection c;
  c.ip = ip;
  for (unsigned char b : raw) {
    c.key += kHex[b >> 4];
    c.key += kHex[b & 15];
  }
  OPENSSL_cleanse(raw, sizeof(raw));
  return c;
}

std::string ConnectionFileJson(const KernelConnection& c) {
  nlohmann::json j = {{"transport", "ipc"},
                      {"ip", c.ip},
                      {"shell_port", c.shell_port},
                      {"iopub_port", c.iopub_port},
                      {"stdin_port", c.stdin_port},
                      {"control_port", c.control_port},
                      {"hb_port", c.hb_port},
                      {"key", c.key},
                      {"signature_scheme", "hmac-sha256"},
                      {"kernel_name", ""}};
  return j.dump(1) + "\n";
}

}  // namespace egg

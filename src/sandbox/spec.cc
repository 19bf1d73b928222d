// SandboxSpecBuilder: validates each setting and keeps the first error.
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "egg/sandbox.h"
#include "sandbox/log.h"

namespace egg {
namespace {

// Paths the sandbox layout owns; binds may not replace them.
constexpr const char* kReserved[] = {"/",    "/proc",    "/dev",
                                     "/tmp", "/scratch", "/out"};

bool IsNormalisedAbsolute(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  if (path.size() > 1 && path.back() == '/') return false;
  if (path.size() >= PATH_MAX) return false;
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (path.size() > 1 && (part.empty() || part == "." || part == ".."))
      return false;
    start = end + 1;
  }
  return path.find('\0') == std::string::npos;
}

bool IsUnder(const std::string& path, const std::string& folder) {
  if (folder == "/") return true;
  return path == folder || (path.size() > folder.size() &&
                            path.compare(0, folder.size(), folder) == 0 &&
                            path[folder.size()] == '/');
}

bool IsEnvName(const std::string& name) {
  if (name.empty() || name.size() > 256) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

}  // namespace

Result<SandboxBackend> ParseSandboxBackend(std::string_view name) {
  if (name == "namespaces") return SandboxBackend::kNamespaces;
  if (name == "none") return SandboxBackend::kNone;
  if (name == "gvisor") return SandboxBackend::kGvisor;
  if (name == "oci") return SandboxBackend::kOci;
  if (name == "vm") return SandboxBackend::kVm;
  return Fail(Code::kInvalidArgument,
              "unknown sandbox backend '" + std::string(name) + "'");
}

const char* SandboxBackendName(SandboxBackend backend) {
  switch (backend) {
    case SandboxBackend::kNamespaces:
      return "namespaces";
    case SandboxBackend::kNone:
      return "none";
    case SandboxBackend::kGvisor:
      return "gvisor";
    case SandboxBackend::kOci:
      return "oci";
    case SandboxBackend::kVm:
      return "vm";
  }
  return "?";
}

const char* LimitKindName(LimitKind kind) {
  switch (kind) {
    case LimitKind::kNone:
      return "none";
    case LimitKind::kMemory:
      return "memory";
    case LimitKind::kProcesses:
      return "processes";
    case LimitKind::kCpu:
      return "cpu";
    case LimitKind::kWall:
      return "wall";
    case LimitKind::kScratch:
      return "scratch";
  }
  return "?";
}

SandboxSpecBuilder::SandboxSpecBuilder() { spec_.limits_ = DefaultEggLimits(); }

void SandboxSpecBuilder::Keep(Error error) {
  if (!error_) error_ = std::move(error);
}

Status SandboxSpecBuilder::CheckSandboxPath(const std::string& path,
                                            const char* what) {
  if (!IsNormalisedAbsolute(path)) {
    return Fail(Code::kInvalidArgument,
                std::string(what) + " '" + path +
                    "' is not an absolute normalised sandbox path");
  }
  return {};
}

Status SandboxSpecBuilder::CheckHostPath(const std::string& path,
                                         const char* what) {
  if (!IsNormalisedAbsolute(path)) {
    return Fail(Code::kInvalidArgument,
                std::string(what) + " '" + path +
                    "' is not an absolute normalised host path");
  }
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return Fail(Code::kNotFound,
                std::string(what) + " '" + path + "' does not exist");
  }
  if (path != resolved) {
    return Fail(Code::kInvalidArgument,
                std::string(what) + " '" + path +
                    "' is not canonical (it resolves to '" + resolved + "')");
  }
  return {};
}

SandboxSpecBuilder& SandboxSpecBuilder::RuntimeRoot(
    const std::string& host_folder) {
  if (!Ok()) return *this;
  if (auto s = CheckHostPath(host_folder, "runtime root"); !s) {
    Keep(s.error());
  } else if (!spec_.root_folder_.empty() || !spec_.root_parts_.empty()) {
    Keep(Error(Code::kInvalidArgument, "runtime root given twice"));
  } else if (host_folder == "/") {
    Keep(Error(Code::kInvalidArgument,
               "the host's / cannot be the runtime root"));
  } else {
    spec_.root_folder_ = host_folder;
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::RuntimeRootPart(
    const std::string& host, const std::string& sandbox) {
  if (!Ok()) return *this;
  if (auto s = CheckHostPath(host, "runtime root part"); !s) {
    Keep(s.error());
  } else if (auto t = CheckSandboxPath(sandbox, "runtime root part"); !t) {
    Keep(t.error());
  } else if (!spec_.root_folder_.empty()) {
    Keep(Error(Code::kInvalidArgument,
               "runtime root parts given with a runtime root folder"));
  } else if (host == "/" || sandbox == "/") {
    Keep(Error(Code::kInvalidArgument, "a runtime root part cannot be /"));
  } else {
    spec_.root_parts_.push_back({host, sandbox, false, false, std::nullopt});
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::RuntimeRootNeeds(
    const std::string& sandbox_path) {
  if (!Ok()) return *this;
  if (auto s = CheckSandboxPath(sandbox_path, "runtime root need"); !s) {
    Keep(s.error());
  } else {
    spec_.root_needs_.push_back(sandbox_path);
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::RuntimeRoot(
    const std::string& host_folder, const Digest& content) {
  RuntimeRoot(host_folder);
  if (Ok()) spec_.root_digest_ = content;
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::ReadOnly(const std::string& host,
                                                 const std::string& sandbox,
                                                 const Digest& content) {
  size_t before = spec_.binds_.size();
  ReadOnly(host, sandbox);
  if (Ok() && spec_.binds_.size() == before + 1) {
    spec_.binds_.back().content = content;
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::ReadOnly(const std::string& host,
                                                 const std::string& sandbox) {
  if (!Ok()) return *this;
  if (auto s = CheckHostPath(host, "read-only bind"); !s) {
    Keep(s.error());
  } else if (auto t = CheckSandboxPath(sandbox, "read-only bind"); !t) {
    Keep(t.error());
  } else if (host == "/") {
    Keep(Error(Code::kInvalidArgument, "the host's / cannot be bound"));
  } else {
    spec_.binds_.push_back({host, sandbox, false, false, std::nullopt});
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Exchange(const std::string& host,
                                                 const std::string& sandbox) {
  if (!Ok()) return *this;
  if (auto s = CheckHostPath(host, "exchange folder"); !s) {
    Keep(s.error());
  } else if (auto t = CheckSandboxPath(sandbox, "exchange folder"); !t) {
    Keep(t.error());
  } else if (host == "/" || sandbox == "/") {
    Keep(Error(Code::kInvalidArgument, "the exchange folder cannot be /"));
  } else {
    spec_.binds_.push_back({host, sandbox, true, false, std::nullopt});
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Output(const std::string& host_folder) {
  if (!Ok()) return *this;
  struct stat st;
  if (auto s = CheckHostPath(host_folder, "output folder"); !s) {
    Keep(s.error());
  } else if (::stat(host_folder.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    Keep(Error(Code::kInvalidArgument,
               "output folder '" + host_folder + "' is not a folder"));
  } else if (host_folder == "/") {
    Keep(Error(Code::kInvalidArgument, "the host's / cannot be /out"));
  } else {
    spec_.output_ = host_folder;
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::SetLimits(const Limits& limits) {
  if (!Ok()) return *this;
  Limits merged = MergeLimits(limits, DefaultEggLimits());
  Limits max = MaximumLimits();
  auto check = [&](const std::optional<uint64_t>& v,
                   const std::optional<uint64_t>& m, const char* name) {
    if (*v == 0 || *v > *m) {
      Keep(Error(Code::kInvalidArgument,
                 std::string("limit ") + name + " = " + std::to_string(*v) +
                     " is outside 1.." + std::to_string(*m)));
    }
  };
  check(merged.wall_ms, max.wall_ms, "wall_ms");
  check(merged.cpu_ms, max.cpu_ms, "cpu_ms");
  check(merged.memory_bytes, max.memory_bytes, "memory_bytes");
  check(merged.processes, max.processes, "processes");
  check(merged.scratch_bytes, max.scratch_bytes, "scratch_bytes");
  check(merged.output_bytes, max.output_bytes, "output_bytes");
  if (*merged.memory_bytes < (4ull << 20)) {
    Keep(Error(Code::kInvalidArgument, "limit memory_bytes is below 4 MiB"));
  }
  if (*merged.scratch_bytes < 4096) {
    Keep(Error(Code::kInvalidArgument, "limit scratch_bytes is below 4 KiB"));
  }
  if (Ok()) spec_.limits_ = merged;
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Command(std::vector<std::string> argv) {
  if (!Ok()) return *this;
  if (argv.empty()) {
    Keep(Error(Code::kInvalidArgument, "command is empty"));
    return *this;
  }
  if (auto s = CheckSandboxPath(argv[0], "command"); !s) {
    Keep(s.error());
    return *this;
  }
  for (const std::string& a : argv) {
    if (a.find('\0') != std::string::npos) {
      Keep(Error(Code::kInvalidArgument, "command argument holds a NUL"));
      return *this;
    }
  }
  spec_.argv_ = std::move(argv);
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Env(const std::string& name,
                                            const std::string& value) {
  if (!Ok()) return *this;
  if (!IsEnvName(name)) {
    Keep(Error(Code::kInvalidArgument, "environment name '" + name +
                                           "' is not [A-Za-z_][A-Za-z0-9_]*"));
  } else if (value.find('\0') != std::string::npos) {
    Keep(Error(Code::kInvalidArgument,
               "environment value of '" + name + "' holds a NUL"));
  } else {
    std::string prefix = name + "=";
    std::erase_if(spec_.env_, [&](const std::string& e) {
      return e.compare(0, prefix.size(), prefix) == 0;
    });
    spec_.env_.push_back(prefix + value);
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Cwd(const std::string& sandbox_path) {
  if (!Ok()) return *this;
  if (auto s = CheckSandboxPath(sandbox_path, "working folder"); !s) {
    Keep(s.error());
  } else {
    spec_.cwd_ = sandbox_path;
  }
  return *this;
}

static bool FdIsOpen(int fd) { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

SandboxSpecBuilder& SandboxSpecBuilder::Stdin(int host_fd) {
  if (!Ok()) return *this;
  if (!FdIsOpen(host_fd)) {
    Keep(Error(Code::kInvalidArgument, "stdin fd is not open"));
  } else {
    spec_.stdin_fd_ = host_fd;
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Stdout(int host_fd) {
  if (!Ok()) return *this;
  if (!FdIsOpen(host_fd)) {
    Keep(Error(Code::kInvalidArgument, "stdout fd is not open"));
  } else {
    spec_.stdout_fd_ = host_fd;
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Stderr(int host_fd) {
  if (!Ok()) return *this;
  if (!FdIsOpen(host_fd)) {
    Keep(Error(Code::kInvalidArgument, "stderr fd is not open"));
  } else {
    spec_.stderr_fd_ = host_fd;
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::PassFd(int host_fd, int sandbox_fd) {
  if (!Ok()) return *this;
  if (!FdIsOpen(host_fd)) {
    Keep(Error(Code::kInvalidArgument,
               "fd " + std::to_string(host_fd) + " is not open"));
  } else if (sandbox_fd < 3 || sandbox_fd >= 1024) {
    Keep(Error(
        Code::kInvalidArgument,
        "sandbox fd " + std::to_string(sandbox_fd) + " is outside 3..1023"));
  } else if (std::any_of(spec_.fds_.begin(), spec_.fds_.end(),
                         [&](const SandboxFd& f) {
                           return f.sandbox_fd == sandbox_fd;
                         })) {
    Keep(Error(Code::kInvalidArgument,
               "sandbox fd " + std::to_string(sandbox_fd) + " given twice"));
  } else {
    spec_.fds_.push_back({host_fd, sandbox_fd});
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::WeakenNetwork() {
  if (!Ok()) return *this;
  sandbox_internal::LogWarning("the sandbox shares the host's network");
  spec_.network_ = true;
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::WeakenHostPath(const HostPath& path) {
  if (!Ok()) return *this;
  if (auto s = CheckHostPath(path.host, "host path"); !s) {
    Keep(s.error());
  } else if (auto t = CheckSandboxPath(path.sandbox, "host path"); !t) {
    Keep(t.error());
  } else if (path.host == "/") {
    Keep(Error(Code::kInvalidArgument, "the host's / cannot be bound"));
  } else {
    sandbox_internal::LogWarning(
        "the sandbox sees host path '" + path.host + "' at '" + path.sandbox +
        (path.writable ? "' writable" : "' read-only"));
    spec_.binds_.push_back(
        {path.host, path.sandbox, path.writable, true, std::nullopt});
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::WeakenDevice(
    const std::string& host_device) {
  if (!Ok()) return *this;
  struct stat st;
  if (auto s = CheckHostPath(host_device, "device"); !s) {
    Keep(s.error());
  } else if (!IsUnder(host_device, "/dev") ||
             ::stat(host_device.c_str(), &st) != 0 ||
             !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
    Keep(Error(Code::kInvalidArgument,
               "device '" + host_device + "' is not a device under /dev"));
  } else {
    sandbox_internal::LogWarning("the sandbox may use device '" + host_device +
                                 "'");
    spec_.devices_.push_back(host_device);
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::WeakenPermissions(
    const Permissions& permissions) {
  if (permissions.network) WeakenNetwork();
  for (const HostPath& p : permissions.host_paths) WeakenHostPath(p);
  for (const std::string& d : permissions.devices) WeakenDevice(d);
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::WeakenToNoSandbox() {
  if (!Ok()) return *this;
  sandbox_internal::LogWarning(
      "NO SANDBOX: the program runs on the host with your rights; only "
      "resource limits apply");
  spec_.backend_ = SandboxBackend::kNone;
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::Backend(std::string_view name) {
  if (!Ok()) return *this;
  if (name == "auto") {
    auto choice = ChooseSandboxBackend();
    if (!choice) {
      Keep(choice.error());
    } else {
      sandbox_internal::LogInfo("auto chose '" +
                                std::string(SandboxBackendName(
                                    choice->backend)) +
                                "': " + choice->reason);
      spec_.backend_ = choice->backend;
      if (!choice->oci_runtime.empty()) {
        spec_.oci_runtime_ = choice->oci_runtime;
      }
    }
    return *this;
  }
  if (name.rfind("oci:", 0) == 0) {
    // "oci:crun": the backend and its runtime in one word, for callers
    // that pass a single isolation string through.
    spec_.backend_ = SandboxBackend::kOci;
    return OciRuntime(name.substr(4));
  }
  auto backend = ParseSandboxBackend(name);
  if (!backend) {
    Keep(backend.error());
  } else if (*backend == SandboxBackend::kNone) {
    Keep(Error(Code::kInvalidArgument,
               "the none backend is chosen only by WeakenToNoSandbox()"));
  } else {
    spec_.backend_ = *backend;
  }
  return *this;
}

SandboxSpecBuilder& SandboxSpecBuilder::OciRuntime(std::string_view name) {
  if (!Ok()) return *this;
  if (name != "runc" && name != "crun") {
    Keep(Error(
        Code::kInvalidArgument,
        "unknown OCI runtime '" + std::string(name) + "' (runc or crun)"));
  } else {
    spec_.oci_runtime_ = std::string(name);
  }
  return *this;
}

Result<SandboxSpec> SandboxSpecBuilder::Build() && {
  if (error_) return Fail(*error_);
  if (spec_.argv_.empty()) {
    return Fail(Code::kInvalidArgument, "sandbox spec has no command");
  }
  if (spec_.backend_ != SandboxBackend::kNone && spec_.root_folder_.empty() &&
      spec_.root_parts_.empty()) {
    return Fail(Code::kInvalidArgument, "sandbox spec has no runtime root");
  }

  // Bind targets must be unique and must not replace the layout's own.
  std::vector<std::string> targets;
  for (const SandboxBind& b : spec_.root_parts_) targets.push_back(b.sandbox);
  for (const SandboxBind& b : spec_.binds_) targets.push_back(b.sandbox);
  for (const std::string& d : spec_.devices_) targets.push_back(d);
  std::vector<std::string> sorted = targets;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i] == sorted[i - 1]) {
      return Fail(Code::kInvalidArgument,
                  "two binds target '" + sorted[i] + "'");
    }
  }
  for (const SandboxBind& b : spec_.binds_) {
    for (const char* r : kReserved) {
      if (b.sandbox == r ||
          (std::string_view(r) != "/" && IsUnder(b.sandbox, r))) {
        return Fail(Code::kInvalidArgument,
                    "bind target '" + b.sandbox +
                        "' is reserved by the sandbox layout");
      }
    }
  }
  return std::move(spec_);
}

}  // namespace egg

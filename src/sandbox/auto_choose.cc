// ProbeSandboxBackend and ChooseSandboxBackend: which backends really
// work on this host, and the strongest of them for `--isolation auto`.
//
// A probe starts a real sandbox running /usr/bin/true from the host's /usr
// (the same path hatch takes) under a deadline, so a runtime that is
// installed but broken (gVisor's kvm platform, a KVM that cannot boot a
// guest, crun on a hybrid cgroup host) counts as not working.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <sstream>

#include "common/atomic_file.h"
#include "common/fd.h"
#include "egg/sandbox.h"
#include "sandbox/oci_backend.h"
#include "sandbox/vm_backend.h"

namespace egg {
namespace {

using Clock = std::chrono::steady_clock;

// auto tries these in order: strongest first. oci (runc/crun) is the
// same kind of isolation as namespaces (which adds Landlock), so auto
// never picks it. vm only counts where KVM runs guests (see below).
constexpr SandboxBackend kAutoOrder[] = {
    SandboxBackend::kVm, SandboxBackend::kGvisor, SandboxBackend::kNamespaces};

Result<Outcome> RunTrue(SandboxBackend backend, std::string_view oci_runtime) {
  SandboxSpecBuilder b;
  b.RuntimeRootPart("/usr", "/usr");
  if (::access("/usr/lib64", F_OK) == 0) {
    b.RuntimeRootPart("/usr/lib64", "/lib64");
  }
  b.RuntimeRootPart("/usr/lib", "/lib");
  b.Backend(SandboxBackendName(backend));
  if (backend == SandboxBackend::kOci) b.OciRuntime(oci_runtime);
  Limits limits;
  limits.wall_ms = backend == SandboxBackend::kVm ? 60000 : 15000;
  b.SetLimits(limits).Command({"/usr/bin/true"});
  auto spec = std::move(b).Build();
  if (!spec) return Fail(spec.error());
  auto box = StartSandbox(*spec);
  if (!box) return Fail(box.error());
  return (*box)->Wait();
}

// The boot id (so the cache dies with the boot), the user (what works for
// root, e.g. gVisor, may not work for another user, who must not take
// root's answers) and what is installed.
std::string CacheKey() {
  std::string key =
      ReadFileToString("/proc/sys/kernel/random/boot_id", 64).value_or("");
  key += " uid:" + std::to_string(::geteuid());
  for (const char* p : {"/usr/bin/runsc", "/usr/sbin/runc", "/usr/bin/crun",
                        "/usr/bin/qemu-system-x86_64"}) {
    struct stat st;
    key += std::string(" ") + p + ":" +
           (::stat(p, &st) == 0 ? std::to_string(st.st_mtime) : "-");
  }
  auto init = sandbox_internal::FindGuestInit();
  struct stat st;
  if (init && ::stat(init->c_str(), &st) == 0) {
    key += " init:" + std::to_string(st.st_mtime);
  }
  std::string out;
  for (char c : key) out += (c == '\n') ? ' ' : c;
  return out;
}

std::string CachePath() {
  return std::string(sandbox_internal::kIsolationStateDir) + "/auto-probes";
}

// Cache file: the key line, then "backend runtime works ms detail".
std::vector<BackendProbe> LoadCache(const std::string& key) {
  auto text = ReadFileToString(CachePath(), 1 << 16);
  if (!text) return {};
  std::istringstream in(*text);
  std::string line;
  if (!std::getline(in, line) || line != key) return {};
  std::vector<BackendProbe> probes;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string name, runtime;
    BackendProbe p;
    int works = 0;
    if (!(words >> name >> runtime >> works >> p.ms)) return {};
    auto b = ParseSandboxBackend(name);
    if (!b) return {};
    p.backend = *b;
    p.oci_runtime = runtime == "-" ? "" : runtime;
    p.works = works != 0;
    std::getline(words, p.detail);
    if (!p.detail.empty() && p.detail[0] == ' ') p.detail.erase(0, 1);
    probes.push_back(p);
  }
  return probes;
}

void SaveCache(const std::string& key, const std::vector<BackendProbe>& ps) {
  if (::geteuid() != 0) return;
  ::mkdir(sandbox_internal::kIsolationStateDir, 0711);
  std::string text = key + "\n";
  for (const BackendProbe& p : ps) {
    std::string detail;
    for (char c : p.detail) detail += (c == '\n') ? ' ' : c;
    text += std::string(SandboxBackendName(p.backend)) + " " +
            (p.oci_runtime.empty() ? "-" : p.oci_runtime) + " " +
            (p.works ? "1" : "0") + " " + std::to_string(p.ms) + " " + detail +
            "\n";
  }
  (void)WriteFileAtomic(CachePath(), text, 0644, true);
}

}  // namespace

BackendProbe ProbeSandboxBackend(SandboxBackend backend,
                                 std::string_view oci_runtime) {
  BackendProbe p;
  p.backend = backend;
  if (backend == SandboxBackend::kOci) p.oci_runtime = oci_runtime;
  if (backend == SandboxBackend::kNone) {
    p.works = true;
    p.detail = "no isolation";
    return p;
  }
  auto start = Clock::now();
  auto outcome = RunTrue(backend, oci_runtime);
  p.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                               start)
             .count();
  if (!outcome) {
    p.detail = outcome.error().message();
  } else if (!outcome->exited || outcome->exit_code != 0) {
    p.detail =
        "a trivial program did not succeed in it (" +
        std::string(outcome->exited ? "exit " : "signal ") +
        std::to_string(outcome->exited ? outcome->exit_code : outcome->signal) +
        ")";
  } else {
    p.works = true;
    p.detail = "started and ran a program in " + std::to_string(p.ms) + " ms";
  }
  return p;
}

Result<BackendChoice> ChooseSandboxBackend() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::string key = CacheKey();
  std::vector<BackendProbe> probes = LoadCache(key);
  bool cached = !probes.empty();
  if (!cached) {
    for (SandboxBackend b : kAutoOrder) {
      BackendProbe p;
      if (b == SandboxBackend::kVm && !sandbox_internal::ProbeKvm().works) {
        // A VM under TCG works (ProbeSandboxBackend boots one) but takes
        // seconds to boot and runs every instruction in an emulator: a
        // numerical cell is many times slower and meets its wall limit.
        // gVisor also keeps host-kernel bugs out of the cell's reach, at
        // a fraction of the cost, so auto passes over a TCG-only vm.
        p.backend = b;
        p.detail = "passed over: no usable KVM (" +
                   sandbox_internal::ProbeKvm().detail +
                   "), and under TCG emulation a guest boots in seconds "
                   "and runs cells many times slower (--isolation vm "
                   "still uses it)";
      } else {
        p = ProbeSandboxBackend(b, "");
      }
      probes.push_back(p);
      if (p.works) break;
    }
    SaveCache(key, probes);
  }

  BackendChoice choice;
  choice.probes = probes;
  std::string passed;
  for (const BackendProbe& p : probes) {
    if (!p.works) {
      passed += std::string(passed.empty() ? "" : "; ") +
                SandboxBackendName(p.backend) +
                (p.detail.rfind("passed over", 0) == 0
                     ? " " + p.detail
                     : " does not work here (" + p.detail + ")");
      continue;
    }
    choice.backend = p.backend;
    choice.oci_runtime = p.oci_runtime;
    choice.reason = std::string("the strongest backend that works here; ") +
                    SandboxBackendName(p.backend) + " " + p.detail +
                    (cached ? " (probed earlier this boot)" : "");
    if (!passed.empty()) choice.reason += "; " + passed;
    return choice;
  }
  return Fail(Code::kNotSupported, "no sandbox backend works here: " + passed);
}

}  // namespace egg

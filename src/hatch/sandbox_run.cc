// RunCellsInSandbox: the agent as the first process of an egg sandbox.
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "common/fd.h"
#include "egg/hatch.h"
#include "egg/sandbox.h"

namespace egg {
namespace {

namespace fs = std::filesystem;

// The smaller of a cell's limit and the egg's: a cell never gets more than
// the sandbox was built with.
void Clamp(std::optional<uint64_t>& cell, const std::optional<uint64_t>& egg) {
  if (cell && egg && *cell > *egg) cell = *egg;
}

Limits ClampToEgg(Limits cell, const Limits& egg) {
  Clamp(cell.wall_ms, egg.wall_ms);
  Clamp(cell.cpu_ms, egg.cpu_ms);
  Clamp(cell.memory_bytes, egg.memory_bytes);
  Clamp(cell.processes, egg.processes);
  Clamp(cell.scratch_bytes, egg.scratch_bytes);
  Clamp(cell.output_bytes, egg.output_bytes);
  return cell;
}

class SandboxAgentHost : public AgentHost {
 public:
  SandboxAgentHost(std::unique_ptr<Sandbox> box, UniqueFd fd, uint64_t grace,
                   Limits egg_limits)
      : box_(std::move(box)),
        fd_(std::move(fd)),
        grace_ms_(grace),
        egg_limits_(egg_limits) {}
  ~SandboxAgentHost() override { Kill(); }

  int control_fd() const override { return fd_.get(); }

  Status BeforeCell(const Limits& limits) override {
    Limits l;
    l.memory_bytes = limits.memory_bytes;
    l.processes = limits.processes;
    l.cpu_ms = limits.cpu_ms;
    // The agent enforces the cell's wall time; the sandbox's is a backstop.
    if (limits.wall_ms) l.wall_ms = *limits.wall_ms + grace_ms_;
    return box_->SetLimits(ClampToEgg(l, egg_limits_));
  }

  std::optional<HostEnd> Ended() override {
    if (end_) return end_;
    auto polled = box_->Poll();
    if (!polled) {
      end_ = HostEnd{"", "sandbox: " + polled.error().message()};
      return end_;
    }
    if (!*polled) return std::nullopt;
    const Outcome& o = **polled;
    HostEnd e;
    if (o.stopped_by != LimitKind::kNone) {
      e.limit = LimitKindName(o.stopped_by);
      e.reason = "the sandbox was stopped by its " + e.limit + " limit";
    } else if (o.exited) {
      e.reason = "the agent exited with status " + std::to_string(o.exit_code);
    } else {
      e.reason = "the agent was killed by signal " + std::to_string(o.signal);
    }
    end_ = e;
    return end_;
  }

  Status AfterCell() override { return box_->SyncOutput(); }

  LimitEvents LimitEventCounts() override {
    Sandbox::LimitEvents e = box_->GetLimitEvents();
    return {e.oom_kills, e.pids_max};
  }

  void Kill() override {
    if (!killed_) {
      killed_ = true;
      (void)box_->Kill();
    }
  }

 private:
  std::unique_ptr<Sandbox> box_;
  UniqueFd fd_;
  uint64_t grace_ms_;
  Limits egg_limits_;
  bool killed_ = false;
  std::optional<HostEnd> end_;
};

// A private copy of the agent and drivers, so that nothing else in the
// folder they came from is visible in the sandbox.
class EggDir {
 public:
  ~EggDir() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  Status Make(const AgentFiles& files) {
    auto made = MakeHatchTempDir();
    if (!made) return Fail(made.error());
    path_ = *made;
    std::error_code ec;
    fs::copy_file(files.agent, path_ + "/egg-agent", ec);
    if (!ec) fs::create_directory(path_ + "/drivers", ec);
    if (!ec) {
      fs::copy(files.drivers_dir, path_ + "/drivers",
               fs::copy_options::recursive, ec);
    }
    if (ec) {
      return Fail(Code::kIo,
                  "copying the agent to '" + path_ + "': " + ec.message());
    }
    chmod(path_.c_str(), 0755);
    chmod((path_ + "/egg-agent").c_str(), 0755);
    return {};
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

Result<RunReport> RunCellsInSandbox(const std::vector<CellInput>& cells,
                                    const SandboxRunSetup& setup,
                                    RunOptions options) {
  if (setup.no_sandbox) {
    // No isolation: the agent is a plain child process on the host.
    std::fprintf(stderr,
                 "egg: warning: running cells with NO sandbox: "
                 "they can do anything you can\n");
    auto host = StartLocalAgent(setup.agent.agent);
    if (!host) return Fail(host.error());
    options.output_dir = setup.output_dir;
    options.out_max_bytes =
        MergeLimits(setup.egg_limits, DefaultEggLimits())
            .output_bytes.value_or(0);
    options.setup.drivers_dir = setup.agent.drivers_dir;
    options.setup.cwd = setup.output_dir;
    options.setup.cell_dir = setup.output_dir;
    return RunCells(cells, **host, options);
  }

  EggDir egg_dir;
  if (auto s = egg_dir.Make(setup.agent); !s) return Fail(s.error());

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Fail(ErrnoError("socketpair"));
  }
  UniqueFd ours(sv[0]);
  UniqueFd theirs(sv[1]);

  SandboxSpecBuilder b;
  b.Backend(setup.isolation);
  if (setup.host_runtime) {
    std::fprintf(stderr,
                 "egg: warning: the runtime is the host's own /usr, /bin, "
                 "/lib and /etc (read-only), not the egg's\n");
    for (const char* part :
         {"/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"}) {
      // On a merged-/usr host /bin and /lib are links into /usr: bind
      // what they point to.
      std::error_code ec;
      fs::path real = fs::canonical(part, ec);
      if (!ec && fs::is_directory(real, ec)) {
        b.RuntimeRootPart(real.string(), part);
      }
    }
    // A micro-VM carries only what it is told of these parts: the
    // drivers' interpreters and the common tools cells call.
    for (const char* tool :
         {"python3", "bash", "sh", "Rscript", "env", "cat", "ls", "head",
          "tail", "wc", "sort", "uniq", "cut", "tr", "grep", "sed", "awk",
          "echo", "printf", "pwd", "hostname", "id", "date", "true", "false",
          "mkdir", "rm", "cp", "mv", "touch", "sleep", "seq"}) {
      std::string path = std::string("/usr/bin/") + tool;
      std::error_code ec;
      if (fs::exists(path, ec)) b.RuntimeRootNeeds(path);
    }
  } else {
    b.RuntimeRoot(setup.runtime_root);
  }
  if (!setup.data_dir.empty()) b.ReadOnly(setup.data_dir, "/data");
  b.ReadOnly(egg_dir.path(), "/.egg");
  b.Output(setup.output_dir);
  b.SetLimits(setup.egg_limits);
  b.WeakenPermissions(setup.granted);
  b.Command({kSandboxAgentPath});
  b.Cwd("/out");
  b.PassFd(theirs.get(), 3);
  auto spec = std::move(b).Build();
  if (!spec) {
    return Fail(Code::kSandboxSetup, "sandbox spec: " + spec.error().message());
  }
  auto box = StartSandbox(*spec);
  if (!box) return Fail(box.error());
  theirs.Reset();

  Limits egg_limits = MergeLimits(setup.egg_limits, DefaultEggLimits());
  std::vector<CellInput> clamped = cells;
  for (auto& c : clamped) {
    c.limits =
        ClampToEgg(MergeLimits(c.limits, DefaultCellLimits()), egg_limits);
  }
  std::string isolation = SandboxBackendName(spec->backend());
  if (spec->backend() == SandboxBackend::kOci) {
    isolation += ":" + spec->oci_runtime();
  }
  SandboxAgentHost host(std::move(*box), std::move(ours), options.grace_ms,
                        egg_limits);
  options.output_dir = setup.output_dir;
  options.out_max_bytes = egg_limits.output_bytes.value_or(0);
  options.setup.drivers_dir = kSandboxDriversDir;
  options.setup.cwd = "/out";
  options.setup.cell_dir = "/tmp";
  auto report = RunCells(clamped, host, options);
  if (report) report->isolation = isolation;
  return report;
}

}  // namespace egg

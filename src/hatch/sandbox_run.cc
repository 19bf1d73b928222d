// RunCellsInSandbox: the agent as the first process of an egg sandbox.
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/fd.h"
#include "common/trace.h"
#include "egg/hatch.h"
#include "egg/sandbox.h"
#include "hatch/out_files.h"
#include "hatch/out_tree.h"

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

  uint64_t HiddenOutBytes() override {
    if (out_dev_ == 0) return 0;
    if (first_is_agent_) {
      // One read of the box's control group lists its processes.
      if (auto members = box_->Members()) {
        std::erase(*members, box_->pid());
        return hatch::DeletedOpenBytesOf(*members, out_dev_);
      }
    }
    return hatch::DeletedOpenBytes(box_->pid(), out_dev_, first_is_agent_);
  }
  // The file system of the output folder (0: unknown).
  void set_out_dev(dev_t dev) { out_dev_ = dev; }
  // Whether the box's first process is the agent itself (namespaces and
  // none), not a runtime's process that may hold the cells' files.
  void set_first_is_agent(bool yes) { first_is_agent_ = yes; }

  Status BeforeCell(const Limits& limits) override {
    Limits l;
    l.memory_bytes = limits.memory_bytes;
    l.processes = limits.processes;
    l.cpu_ms = limits.cpu_ms;
    l = ClampToEgg(l, egg_limits_);
    // The agent enforces the cell's wall time; the sandbox's is a backstop
    // a grace period later (the sandbox was started with the egg's wall
    // time plus the same grace), so that the agent, which stops only the
    // session, always acts first.
    if (limits.wall_ms) {
      uint64_t wall = *limits.wall_ms;
      if (egg_limits_.wall_ms) wall = std::min(wall, *egg_limits_.wall_ms);
      l.wall_ms = wall + grace_ms_;
    }
    return box_->SetLimits(l);
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

  // Sandbox::Kill() ends the whole box (docs/SANDBOX.md, teardown).
  bool KillEndsEverything() const override { return true; }

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
  dev_t out_dev_ = 0;
  bool first_is_agent_ = false;
};

// Runs `cells` in one sandbox with setup.granted.
Result<RunReport> RunInOneSandbox(const std::vector<CellInput>& cells,
                                  const SandboxRunSetup& setup,
                                  RunOptions options);

// What `cell` may use: its own permissions where it has them, each kept
// only as far as the person granted it for the egg; otherwise the egg's.
Permissions CellPermissions(const CellInput& cell, const Permissions& egg) {
  if (!cell.permissions) return egg;
  Permissions p;
  p.network = cell.permissions->network && egg.network;
  for (const HostPath& want : cell.permissions->host_paths) {
    for (const HostPath& have : egg.host_paths) {
      if (want.host == have.host && want.sandbox == have.sandbox) {
        p.host_paths.push_back(
            {want.host, want.sandbox, want.writable && have.writable});
      }
    }
  }
  for (const std::string& d : cell.permissions->devices) {
    if (std::find(egg.devices.begin(), egg.devices.end(), d) !=
        egg.devices.end()) {
      p.devices.push_back(d);
    }
  }
  return p;
}

}  // namespace

Result<RunReport> RunCellsInSandbox(const std::vector<CellInput>& cells,
                                    const SandboxRunSetup& setup,
                                    RunOptions options) {
  // Consecutive cells with the same permissions form one sandbox's run.
  std::vector<std::pair<size_t, size_t>> runs;  // [begin, end)
  std::vector<Permissions> allowed;
  bool warned = false;
  for (size_t i = 0; i < cells.size(); ++i) {
    Permissions p = CellPermissions(cells[i], setup.granted);
    if (setup.no_sandbox && !warned && !(p == setup.granted)) {
      std::fprintf(stderr,
                   "egg: warning: with no sandbox, the narrower permissions "
                   "of cell %lu (and of any later cell) are not enforced\n",
                   static_cast<unsigned long>(cells[i].index) + 1);
      warned = true;
    }
    if (!runs.empty() && (setup.no_sandbox || p == allowed.back())) {
      runs.back().second = i + 1;
    } else {
      runs.push_back({i, i + 1});
      allowed.push_back(std::move(p));
    }
  }
  if (runs.size() <= 1) {
    SandboxRunSetup one = setup;
    if (!allowed.empty() && !setup.no_sandbox) one.granted = allowed.front();
    return RunInOneSandbox(cells, one, std::move(options));
  }
  // The report is final only after the last sandbox: the caller gets it
  // on return, not from one sandbox's teardown. /out stays the sandbox
  // user's from one sandbox to the next, and is given back after them.
  options.on_report = nullptr;
  options.out_kept_for_next = true;

  const Limits egg_limits = MergeLimits(setup.egg_limits, DefaultEggLimits());
  const uint64_t start = MonotonicMs();
  RunReport report;
  std::vector<std::string> ran;  // languages that had a session so far
  std::string stop;              // why no later cell runs; "" while they do
  for (size_t r = 0; r < runs.size(); ++r) {
    std::vector<CellInput> part(cells.begin() + runs[r].first,
                                cells.begin() + runs[r].second);
    const uint64_t spent = MonotonicMs() - start;
    if (stop.empty() && egg_limits.wall_ms && spent >= *egg_limits.wall_ms) {
      stop = "not run: the egg's wall time is spent";
    }
    if (!stop.empty()) {
      for (const CellInput& c : part) {
        CellResult skipped;
        skipped.index = c.index;
        skipped.id = c.id;
        skipped.language = c.language;
        skipped.note = stop;
        if (options.on_cell) options.on_cell(skipped);
        report.cells.push_back(std::move(skipped));
      }
      continue;
    }
    SandboxRunSetup one = setup;
    one.granted = allowed[r];
    if (egg_limits.wall_ms) {
      one.egg_limits.wall_ms = *egg_limits.wall_ms - spent;
    }
    auto got = RunInOneSandbox(part, one, options);
    if (!got) return got;
    // The run-wide caps go on from sandbox to sandbox.
    for (const CellResult& c : got->cells) {
      options.streams_spent += c.stdout_data.bytes.size() +
                               c.stderr_data.bytes.size() +
                               c.display.bytes.size();
    }
    std::vector<std::string> here;  // languages started in this sandbox
    for (CellResult& c : got->cells) {
      auto has = [](const std::vector<std::string>& v, const std::string& x) {
        return std::find(v.begin(), v.end(), x) != v.end();
      };
      if (c.status != CellStatus::kNotRun && !has(here, c.language)) {
        here.push_back(c.language);
        if (has(ran, c.language)) {
          c.fresh_session = true;
          if (c.note.empty()) {
            c.note =
                "fresh session: its permissions are not the previous "
                "cell's";
          }
        }
      }
      report.cells.push_back(std::move(c));
    }
    ran.insert(ran.end(), here.begin(), here.end());
    report.isolation = got->isolation;
    if (got->interrupted) {
      report.interrupted = true;
      stop = "not run: interrupted";
    } else if (!got->agent_error.empty()) {
      report.agent_error = got->agent_error;
      stop = "not run: " + got->agent_error;
    } else if (!got->run_ended.empty()) {
      report.run_ended = got->run_ended;
      stop = "not run: " + got->run_ended;
    } else if (options.stop_on_error && !got->AllSucceeded()) {
      stop = "not run: an earlier cell failed";
    }
  }
  if (!setup.output_dir.empty()) {
    auto cleaned = hatch::SanitizeOutputTree(setup.output_dir);
    if (!cleaned && report.agent_error.empty() && !report.interrupted) {
      report.agent_error =
          "securing the output folder: " + cleaned.error().message();
    }
  }
  return report;
}

namespace {

Result<RunReport> RunInOneSandbox(const std::vector<CellInput>& cells,
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
    const Limits egg = MergeLimits(setup.egg_limits, DefaultEggLimits());
    options.out_max_bytes = egg.output_bytes.value_or(0);
    options.egg_wall_ms = egg.wall_ms.value_or(0);
    options.streams_max_bytes = egg.output_bytes.value_or(0);
    options.setup.drivers_dir = setup.agent.drivers_dir;
    options.setup.cwd = setup.output_dir;
    options.setup.cell_dir = setup.output_dir;
    if (options.runner) return options.runner(cells, **host, options);
    return RunCells(cells, **host, options);
  }

  // The agent binary and the drivers folder are bound read-only, each on
  // its own, at /.egg: nothing else of the folder they live in is seen.
  // Binding instead of copying them to a private folder saves a copy of
  // a multi-megabyte static binary per hatch and gives the same view: a
  // read-only bind cannot be written from inside, and a bind pins the
  // inode, so replacing the file on the host does not change it mid-run.
  std::error_code ec;
  std::string agent = fs::canonical(setup.agent.agent, ec).string();
  std::string drivers =
      ec ? "" : fs::canonical(setup.agent.drivers_dir, ec).string();
  if (ec) {
    return Fail(Code::kSandboxSetup,
                "finding the agent and drivers: " + ec.message());
  }

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
    // drivers' interpreters and the common tools cells call. Other
    // backends bind the parts whole and need no list.
    const bool may_be_vm =
        setup.isolation == "vm" || setup.isolation == "auto";
    for (const char* tool :
         {"python3", "bash",  "sh",    "Rscript", "env",    "cat", "ls",
          "head",    "tail",  "wc",    "sort",    "uniq",   "cut", "tr",
          "grep",    "sed",   "awk",   "echo",    "printf", "pwd", "hostname",
          "id",      "date",  "true",  "false",   "mkdir",  "rm",  "cp",
          "mv",      "touch", "sleep", "seq"}) {
      std::string path = std::string("/usr/bin/") + tool;
      std::error_code ec;
      if (may_be_vm && fs::exists(path, ec)) b.RuntimeRootNeeds(path);
    }
  } else {
    if (setup.runtime_digest) {
      b.RuntimeRoot(setup.runtime_root, *setup.runtime_digest);
    } else {
      b.RuntimeRoot(setup.runtime_root);
    }
  }
  if (!setup.data_dir.empty() && setup.data_digest) {
    b.ReadOnly(setup.data_dir, "/data", *setup.data_digest);
  } else if (!setup.data_dir.empty()) {
    b.ReadOnly(setup.data_dir, "/data");
  }
  b.ReadOnly(agent, kSandboxAgentPath);
  b.ReadOnly(drivers, kSandboxDriversDir);
  b.Output(setup.output_dir);
  if (!setup.exchange_dir.empty()) {
    b.Exchange(setup.exchange_dir, kSandboxExchangeDir);
  }
  // The sandbox's own wall limit is the backstop behind the agent's: the
  // egg's wall time plus the grace period (see BeforeCell).
  Limits box_limits = setup.egg_limits;
  if (auto wall = MergeLimits(setup.egg_limits, DefaultEggLimits()).wall_ms) {
    box_limits.wall_ms = *wall + options.grace_ms;
  }
  b.SetLimits(box_limits);
  b.WeakenPermissions(setup.granted);
  b.Command({kSandboxAgentPath});
  b.Cwd("/out");
  b.PassFd(theirs.get(), 3);
  auto spec = std::move(b).Build();
  if (!spec) {
    return Fail(Code::kSandboxSetup, "sandbox spec: " + spec.error().message());
  }
  TraceStep("hatch: sandbox spec built");
  auto box = StartSandbox(*spec);
  if (!box) return Fail(box.error());
  TraceStep("hatch: sandbox started");
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
  struct stat out_st;
  if (!setup.output_dir.empty() &&
      ::stat(setup.output_dir.c_str(), &out_st) == 0) {
    host.set_out_dev(out_st.st_dev);
  }
  host.set_first_is_agent(spec->backend() == SandboxBackend::kNamespaces ||
                          spec->backend() == SandboxBackend::kNone);
  options.output_dir = setup.output_dir;
  options.out_max_bytes = egg_limits.output_bytes.value_or(0);
  options.egg_wall_ms = egg_limits.wall_ms.value_or(0);
  options.streams_max_bytes = egg_limits.output_bytes.value_or(0);
  options.setup.drivers_dir = kSandboxDriversDir;
  options.setup.cwd = "/out";
  options.setup.cell_dir = "/tmp";
  auto report = options.runner ? options.runner(clamped, host, options)
                               : RunCells(clamped, host, options);
  if (report) report->isolation = isolation;
  // The runner killed the box; `host` waits for its end and removes its
  // groups when it goes out of scope, after this.
  host.Kill();
  if (report && options.on_report) options.on_report(*report);
  return report;
}

}  // namespace

}  // namespace egg

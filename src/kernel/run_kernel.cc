// RunCellsWithKernel: the kernel as a process started by egg-agent inside
// the sandbox, driven over its sockets in the shared exchange folder.
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "egg/kernel.h"
#include "egg/policy.h"
// The agent protocol client is internal to egg_hatch; this runner is its
// second user.
#include "hatch/agent_client.h"
#include "hatch/out_files.h"
#include "hatch/wire.h"

namespace egg {
namespace {

constexpr int kHandshakeMs = 30000;
constexpr uint64_t kSessionStartMs = 30000;
// The kernel's own stdout and stderr (not the cells': those travel as
// iopub messages). Past this the agent stops the kernel.
constexpr uint64_t kKernelLogCap = 1u << 20;
constexpr size_t kLogTail = 2000;

uint64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 +
         static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// The kernel as the one "cell" of a per-cell-command session: the agent
// writes the connection file (the cell's code) and runs the kernelspec's
// argv with "{connection_file}" as the file, with no wall time; the cell
// ends when the kernel process does.
class AgentKernel final : public KernelProcess {
 public:
  AgentKernel(hatch::AgentClient& client, AgentHost& host, uint32_t session)
      : client_(client), host_(host), session_(session) {}
  ~AgentKernel() override { Kill(); }

  Status Start(const KernelSpec& spec, const std::string& connection_json,
               const SessionSetup& setup,
               const std::vector<std::string>& extra_env) {
    wire::StartSession m;
    m.session = session_;
    m.mode = wire::SessionMode::kPerCellCommand;
    for (std::string a : spec.argv) {
      size_t at;
      while ((at = a.find("{connection_file}")) != std::string::npos) {
        a.replace(at, 17, "{file}");
      }
      m.argv.push_back(a);
    }
    m.env = setup.env;
    if (m.env.empty()) {
      m.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp",
               "LANG=C.UTF-8"};
    }
    m.env.insert(m.env.end(), extra_env.begin(), extra_env.end());
    m.cwd = setup.cwd;
    m.cell_dir = setup.cell_dir;
    m.cell_suffix = ".json";
    if (auto s = client_.Send(wire::Encode(m)); !s) return s;
    uint64_t deadline = NowMs() + kSessionStartMs;
    while (!started_) {
      if (ended_) return Fail(Code::kIo, "the kernel did not start: " + why_);
      if (NowMs() >= deadline) {
        return Fail(Code::kIo, "the agent did not start the kernel in time");
      }
      if (auto s = Pump(100); !s) return s;
    }
    wire::RunCell run{session_, 0, 0, kKernelLogCap, connection_json};
    return client_.Send(wire::Encode(run));
  }

  std::optional<std::string> Ended() override {
    if (!ended_) (void)Pump(0);
    if (!ended_) return std::nullopt;
    return why_;
  }

  void Kill() override {
    if (ended_ || stopped_) return;
    stopped_ = true;
    if (!client_.Send(wire::EncodeStopSession(session_))) {
      host_.Kill();
      End("killed by egg");
      return;
    }
    uint64_t deadline = NowMs() + 5000;
    while (!ended_ && NowMs() < deadline) {
      if (!Pump(100)) break;
    }
    if (!ended_) {
      // The agent did not stop it: end the whole box.
      host_.Kill();
      End("killed by egg (with its sandbox)");
    }
  }

  // The end of what the kernel wrote to its own stdout and stderr.
  const std::string& log_tail() const { return log_; }
  // The agent or its box failed: no further kernel can start.
  const std::string& agent_error() const { return agent_error_; }

 private:
  void End(const std::string& why) {
    if (ended_) return;
    ended_ = true;
    why_ = why;
  }

  // Reads agent frames for up to timeout_ms; any error ends the kernel.
  Status Pump(int timeout_ms) {
    for (int round = 0; round < 64; ++round) {
      auto frame = client_.Next(round == 0 ? timeout_ms : 0);
      if (!frame) {
        agent_error_ = frame.error().message();
        if (auto end = host_.Ended()) agent_error_ = end->reason;
        End("the agent failed: " + agent_error_);
        return Fail(Code::kIo, agent_error_);
      }
      if (!*frame) {
        if (auto end = host_.Ended()) {
          agent_error_ = end->reason;
          End("the sandbox ended: " + end->reason);
        }
        return {};
      }
      Handle(**frame);
    }
    return {};
  }

  void Handle(const hatch::AgentFrame& f) {
    switch (f.type) {
      case wire::Type::kSessionStarted: {
        wire::SessionStarted m;
        if (wire::Decode(f.payload, &m) && m.session == session_) {
          started_ = true;
        }
        return;
      }
      case wire::Type::kStdout:
      case wire::Type::kStderr: {
        wire::Output m;
        if (!wire::Decode(f.payload, &m) || m.session != session_) return;
        log_ += m.data;
        if (log_.size() > kLogTail) log_.erase(0, log_.size() - kLogTail);
        return;
      }
      case wire::Type::kCellDone: {
        wire::CellDone m;
        if (!wire::Decode(f.payload, &m) || m.session != session_) return;
        if (m.outcome == wire::Outcome::kLimit) {
          End("it wrote more than " + std::to_string(kKernelLogCap) +
              " bytes to its own stdout/stderr and was stopped");
        } else if (m.outcome == wire::Outcome::kNotStarted) {
          End("the agent could not start it");
        } else if (m.signal != 0) {
          End("killed by signal " + std::to_string(m.signal));
        } else {
          End("exited with status " + std::to_string(m.status));
        }
        return;
      }
      case wire::Type::kSessionEnded: {
        wire::SessionEnded m;
        if (!wire::Decode(f.payload, &m) || m.session != session_) return;
        End(m.reason == wire::EndReason::kStartFailed
                ? "it could not be started" +
                      (note_.empty() ? "" : ": " + note_)
                : "its session ended");
        return;
      }
      case wire::Type::kError: {
        wire::ErrorMsg m;
        if (wire::Decode(f.payload, &m) && m.session == session_) {
          note_ = m.message.substr(0, 300);
        }
        return;
      }
      default:
        return;
    }
  }

  hatch::AgentClient& client_;
  AgentHost& host_;
  uint32_t session_;
  bool started_ = false;
  bool ended_ = false;
  bool stopped_ = false;
  std::string why_;
  std::string note_;
  std::string log_;
  std::string agent_error_;
};

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    out += (c >= 0x20 && c < 0x7f) || c == '\n' ? static_cast<char>(c) : '?';
  }
  return out;
}

// IPython runs `!` lines through a pseudo-terminal, and the sandbox has
// none (no /dev/pts): a startup file in the exchange folder makes them run
// without one, only when no pty can be opened. Returns the kernel's extra
// environment ("" when the folder cannot be written: `!` lines then fail).
std::vector<std::string> IpythonShim(const KernelRunSetup& setup) {
  std::string lang;
  for (char c : setup.spec.language) lang += static_cast<char>(tolower(c));
  if (lang != "python") return {};
  std::string dir = setup.exchange_host_dir + "/ipython/profile_default";
  std::error_code ec;
  std::filesystem::create_directories(dir + "/startup", ec);
  if (ec) return {};
  // IPython writes its profile (history, caches) here; as root the
  // sandbox runs as nobody, as for the exchange folder itself.
  if (geteuid() == 0) {
    for (const std::string& d :
         {setup.exchange_host_dir + "/ipython", dir, dir + "/startup"}) {
      chmod(d.c_str(), 0777);
    }
  }
  static const char kShim[] =
      "# Written by egg: run ! lines without a pseudo-terminal when the\n"
      "# sandbox has none.\n"
      "def _egg_no_pty():\n"
      "    import os\n"
      "    try:\n"
      "        a, b = os.openpty()\n"
      "        os.close(a)\n"
      "        os.close(b)\n"
      "    except OSError:\n"
      "        ip = get_ipython()\n"
      "        ip.system = ip.system_raw\n"
      "_egg_no_pty()\n"
      "del _egg_no_pty\n";
  if (!WriteFileAtomic(dir + "/startup/00-egg-no-pty.py", kShim, 0644, true)) {
    return {};
  }
  return {"IPYTHONDIR=" + setup.exchange_sandbox_dir + "/ipython"};
}

}  // namespace

Result<RunReport> RunCellsWithKernel(const std::vector<CellInput>& cells,
                                     AgentHost& host, const RunOptions& options,
                                     const KernelRunSetup& setup) {
  if (setup.spec.argv.empty()) {
    return Fail(Code::kInvalidArgument, "the kernelspec has no argv");
  }
  RunReport report;
  report.cells.resize(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    report.cells[i].index = cells[i].index;
    report.cells[i].id = cells[i].id;
    report.cells[i].language = cells[i].language;
  }
  auto cancelled = [&] {
    return options.cancel != nullptr && options.cancel->load();
  };

  hatch::AgentClient agent(host.control_fd());
  std::string agent_error;
  if (auto s = agent.Handshake(kHandshakeMs); !s) {
    agent_error = "agent handshake failed: " + s.error().message();
  }
  KernelOptions kopts = setup.options;
  kopts.cancel = options.cancel;
  // What a cell may grow: /out and the exchange folder (the kernel can
  // write files beside its sockets there, on the host's disk), counted
  // together against the egg's output cap and measured while the cell
  // runs, as the built-in drivers' runner does for /out.
  auto files_total = [&]() -> uint64_t {
    uint64_t out = hatch::OutTotal(options.output_dir);
    uint64_t exchange = hatch::OutTotal(setup.exchange_host_dir);
    if (out == hatch::kOutUncountable || exchange == hatch::kOutUncountable ||
        out > hatch::kOutUncountable - exchange) {
      return hatch::kOutUncountable;
    }
    return out + exchange;
  };
  uint64_t out_baseline = 0;
  if (options.out_max_bytes != 0) {
    kopts.files_over_limit = [&] {
      return hatch::OutOverCap(files_total(), out_baseline,
                               options.out_max_bytes);
    };
  }
  std::vector<std::string> extra_env = IpythonShim(setup);

  // Files in /out, listed around each cell as the built-in drivers'
  // runner does (CellResult::files).
  hatch::Listing listed = hatch::ListOutput(options.output_dir);
  uint64_t files_budget = hatch::kFileListBudget;
  std::unique_ptr<AgentKernel> process;
  std::unique_ptr<KernelClient> kernel;
  uint32_t next_session = 1;
  bool died_before = false;
  std::string start_error;  // the kernel could not start: later cells skip
  bool failed = false;
  for (size_t i = 0; i < cells.size(); ++i) {
    CellResult& r = report.cells[i];
    if (cancelled()) report.interrupted = true;
    if (report.interrupted) {
      r.note = "not run: interrupted";
    } else if (!agent_error.empty()) {
      r.note = "not run: the agent failed";
    } else if (!start_error.empty()) {
      r.note = "not run: the kernel could not start";
    } else if (failed && options.stop_on_error) {
      r.note = "not run: an earlier cell failed";
    } else if (options.out_max_bytes != 0 &&
               files_total() == hatch::kOutUncountable) {
      r.note =
          "not run: /out can no longer be counted against the egg's "
          "output limit";
    }
    if (!r.note.empty()) {
      if (options.on_cell) options.on_cell(r);
      continue;
    }

    Limits limits = MergeLimits(cells[i].limits, DefaultCellLimits());
    if (auto s = host.BeforeCell(limits); !s) {
      r.status = CellStatus::kAgentFailed;
      r.note = "could not set the cell's limits: " + s.error().message();
      agent_error = r.note;
      if (options.on_cell) options.on_cell(r);
      continue;
    }
    AgentHost::LimitEvents before = host.LimitEventCounts();

    // While a kernel starts, what it writes counts from here.
    out_baseline = options.out_max_bytes == 0 ? 0 : files_total();
    if (kernel == nullptr) {
      // A fresh kernel, with fresh sockets and a fresh key.
      uint32_t id = next_session++;
      std::string name = "k" + std::to_string(id);
      auto conn = NewIpcConnection(setup.exchange_sandbox_dir + "/" + name);
      process = std::make_unique<AgentKernel>(agent, host, id);
      Status started =
          conn ? process->Start(setup.spec, ConnectionFileJson(*conn),
                                options.setup, extra_env)
               : Status(Fail(conn.error()));
      if (started) {
        auto client = KernelClient::Connect(
            setup.exchange_host_dir + "/" + name, *conn, *process, kopts);
        if (client) {
          kernel = std::move(*client);
        } else {
          started = Fail(client.error());
        }
      }
      if (!started) {
        r.status = CellStatus::kSessionDied;
        r.note = "the kernel '" + setup.spec.name +
                 "' could not start: " + started.error().message();
        if (options.out_max_bytes != 0 &&
            hatch::OutOverCap(files_total(), out_baseline,
                              options.out_max_bytes)) {
          r.status = CellStatus::kLimit;
          r.limit = "output";
        }
        std::string tail = Printable(process->log_tail());
        if (!tail.empty()) r.stderr_data.bytes = tail;
        if (!process->agent_error().empty()) {
          agent_error = process->agent_error();
          r.status = CellStatus::kAgentFailed;
        }
        process->Kill();
        process.reset();
        start_error = r.note;
        failed = true;
        if (options.on_cell) options.on_cell(r);
        continue;
      }
      if (died_before) {
        r.fresh_session = true;
        died_before = false;
      }
    }

    bool fresh = r.fresh_session;
    out_baseline = options.out_max_bytes == 0 ? 0 : files_total();
    KernelCellOutcome out = kernel->Execute(cells[i]);
    r = std::move(out.result);
    hatch::Listing after = hatch::ListOutput(options.output_dir);
    r.files = hatch::ChangedFiles(options.output_dir, listed, after);
    if (size_t dropped = hatch::TrimFileList(&r.files, &files_budget)) {
      r.note += std::string(r.note.empty() ? "" : "; ") +
                std::to_string(dropped) +
                " changed files in /out not listed (the run's list is full)";
    }
    listed = std::move(after);
    if (options.out_max_bytes != 0 &&
        hatch::OutOverCap(files_total(), out_baseline, options.out_max_bytes) &&
        r.status != CellStatus::kAgentFailed) {
      r.status = CellStatus::kLimit;
      r.limit = "output";
      r.note = "the cell's files in /out passed the egg's output limit";
      out.kernel_dead = true;  // its state goes with it, as for a driver
    }
    if (fresh) {
      r.fresh_session = true;
      std::string why =
          "the previous kernel ended; this cell runs in a fresh one "
          "(earlier state is gone)";
      r.note = r.note.empty() ? why : why + "; " + r.note;
    }
    AgentHost::LimitEvents now = host.LimitEventCounts();
    if (r.status != CellStatus::kOk || out.kernel_dead) {
      if (now.oom_kills > before.oom_kills) {
        r.status = CellStatus::kLimit;
        r.limit = "memory";
      } else if (now.pids_max > before.pids_max) {
        r.status = CellStatus::kLimit;
        r.limit = "processes";
      }
    }
    if (out.kernel_dead) {
      std::string tail = Printable(process->log_tail());
      if (r.status == CellStatus::kSessionDied && !tail.empty() &&
          r.stderr_data.bytes.empty()) {
        r.stderr_data.bytes = tail;
      }
      kernel.reset();
      process->Kill();
      // A cell stopped at a limit may take the sandbox with it (the egg's
      // wall time backstop): that is the limit, already reported, not an
      // agent failure. A later cell that needs the agent finds out itself.
      if (!process->agent_error().empty() && r.status != CellStatus::kLimit) {
        agent_error = process->agent_error();
      }
      process.reset();
      died_before = true;
    }
    if (cancelled()) report.interrupted = true;
    for (const auto& o : out.outputs) {
      r.display.bytes +=
          o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      r.display.bytes += '\n';
    }
    if (r.status != CellStatus::kOk) failed = true;
    if (options.on_cell) options.on_cell(r);
  }

  if (kernel != nullptr) kernel->Shutdown();
  kernel.reset();
  process.reset();
  if (agent_error.empty() && !report.interrupted) {
    if (agent.Send(wire::EncodeShutdown())) {
      uint64_t deadline = NowMs() + 5000;
      while (NowMs() < deadline) {
        if (!agent.Next(100)) break;
      }
    }
  }
  host.Kill();
  report.agent_error = report.interrupted ? "" : agent_error;
  return report;
}

}  // namespace egg

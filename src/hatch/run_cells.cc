// RunCells: drives one agent through a notebook's cells.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <string>

#include "common/clock.h"
#include "common/fd.h"
#include "common/trace.h"
#include "egg/hash.h"
#include "egg/hatch.h"
#include "hatch/agent_client.h"
#include "hatch/out_files.h"
#include "hatch/out_tree.h"
#include "hatch/wire.h"

namespace egg {
namespace {

using hatch::AgentClient;
using hatch::AgentFrame;
using hatch::ChangedFiles;
using hatch::kOutUncountable;
using hatch::Listing;
using hatch::ListingTotal;
using hatch::ListOutput;
using hatch::OutOverCap;
using hatch::OutTotal;

constexpr int kHandshakeMs = 30000;
constexpr int kSessionStartMs = 30000;
constexpr int kPollMs = 100;
// How long a sandbox that stopped itself on a limit may take to be seen
// as ended.
constexpr uint64_t kSandboxEndWaitMs = 2000;
// How long the agent may take to kill a stopped session's tree.
constexpr uint64_t kSessionStopWaitMs = 10000;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return s;
}

// ---- the run
// ------------------------------------------------------------------

struct LiveSession {
  uint32_t id = 0;
  bool alive = false;
  bool died_before = false;
  bool starting = false;  // asked for, its start not yet confirmed
};

class Runner {
 public:
  Runner(AgentHost& host, const RunOptions& options)
      : host_(host), options_(options), client_(host.control_fd()) {}

  RunReport Run(const std::vector<CellInput>& cells,
                const std::vector<LanguageSession>& langs);

 private:
  bool Cancelled() const {
    return options_.cancel != nullptr && options_.cancel->load();
  }
  void AgentFailed(const std::string& why) {
    if (agent_error_.empty()) agent_error_ = why;
    host_.Kill();
  }
  // How the sandbox ended, waiting up to `ms` for it: when the control
  // channel closes because the sandbox stopped itself on a limit, its
  // end may take a moment to be seen.
  std::optional<HostEnd> WaitEnded(uint64_t ms) {
    uint64_t until = MonotonicMs() + ms;
    while (true) {
      if (auto end = host_.Ended()) return end;
      if (MonotonicMs() >= until) return std::nullopt;
      usleep(20000);
    }
  }
  // Starts (or reuses) the session for a language. False with *why set if
  // it could not be started.
  bool EnsureSession(const std::string& key, const LanguageSession& lang,
                     bool* fresh, std::string* why);
  // Asks the agent for a session of the language (EnsureSession waits
  // for it). False with *why set if the request could not be sent.
  bool RequestSession(const std::string& key, const LanguageSession& lang,
                      std::string* why);
  void BlameLimitEvents(const AgentHost::LimitEvents& before,
                        const LanguageSession& lang, LiveSession& session,
                        CellResult* r);
  void WaitSessionEnded(uint32_t id);
  // Runs one cell. `out_baseline` is /out's total before it; *out_over
  // is set if /out passed the egg's cap while it ran, *reported if the
  // agent reported the cell done.
  void RunOne(const CellInput& cell, const LanguageSession& lang,
              uint64_t out_baseline, bool* out_over, bool* reported,
              CellResult* result);
  // After a cell the agent reported done: the cap check on /out, from
  // the listing `after` that also reports the cell's files.
  // True when the cell was charged for /out passing the egg's limit.
  bool CheckOutAfterCell(const Listing& after, bool after_deep,
                         uint64_t out_baseline, bool out_over,
                         const CellInput& cell, CellResult* r);
  // Handles a frame that is not about the running cell. False if it breaks
  // the protocol.
  bool HandleAside(const AgentFrame& f);
  void KeepOutput(CellResult* r, bool is_err, const std::string& data,
                  uint64_t cap);
  void KeepDisplay(CellResult* r, const std::string& data, uint64_t cap);
  // `listed` (OutTotal of /out) plus what the box's processes hold open
  // there after deleting it.
  uint64_t WithHidden(uint64_t listed) {
    if (listed == kOutUncountable) return listed;
    uint64_t hidden = host_.HiddenOutBytes();
    // What /out's file system gained that neither the listing nor an
    // open descriptor explains (a descriptor in flight in a socket, a
    // mapping of a deleted file): past a margin it counts too. Other
    // programs writing to the same file system count there as well,
    // hence the margin.
    uint64_t used = FsUsed();
    if (used != 0 && fs_used_start_ != 0 && used > fs_used_start_) {
      uint64_t grown = used - fs_used_start_;
      uint64_t explained = (listed > listed_start_ ? listed - listed_start_
                                                   : 0) +
                           hidden;
      uint64_t margin = std::max<uint64_t>(options_.out_max_bytes,
                                           options_.unexplained_margin);
      if (grown > explained && grown - explained > margin) {
        hidden += grown - explained;
      }
    }
    return hidden > kOutUncountable - 1 - listed ? kOutUncountable - 1
                                                 : listed + hidden;
  }
  // Bytes in use on /out's file system (0: unknown).
  uint64_t FsUsed() const {
    struct statfs st;
    if (options_.output_dir.empty() ||
        ::statfs(options_.output_dir.c_str(), &st) != 0) {
      return 0;
    }
    return static_cast<uint64_t>(st.f_blocks - st.f_bfree) *
           static_cast<uint64_t>(st.f_frsize);
  }
  // What the run-wide cap on kept streams still allows.
  uint64_t StreamsRoom() const {
    if (options_.streams_max_bytes == 0) return UINT64_MAX;
    return streams_kept_ >= options_.streams_max_bytes
               ? 0
               : options_.streams_max_bytes - streams_kept_;
  }
  // What is left of the egg's wall time (UINT64_MAX without one).
  uint64_t EggWallLeft() const {
    if (options_.egg_wall_ms == 0) return UINT64_MAX;
    uint64_t spent = MonotonicMs() - run_started_ms_;
    return spent >= options_.egg_wall_ms ? 0 : options_.egg_wall_ms - spent;
  }

  AgentHost& host_;
  const RunOptions& options_;
  AgentClient client_;
  std::map<std::string, LiveSession> sessions_;
  uint32_t next_session_ = 1;
  std::string agent_error_;
  bool interrupted_ = false;
  uint64_t run_started_ms_ = MonotonicMs();
  uint64_t streams_kept_ = options_.streams_spent;  // kept for all so far
  uint64_t fs_used_start_ = 0;  // FsUsed() when the run began
  uint64_t listed_start_ = 0;   // /out's listed total then
  std::string run_ended_;      // why no later cell runs ("": they do)
  uint64_t files_budget_ = hatch::kFileListBudget;
};

bool Runner::HandleAside(const AgentFrame& f) {
  if (f.type == wire::Type::kSessionStarted) {
    // A session asked for early whose first cell did not wait for it
    // (it was refused before it ran).
    wire::SessionStarted m;
    if (!wire::Decode(f.payload, &m)) return false;
    for (auto& [key, s] : sessions_) {
      if (s.id == m.session && s.starting) {
        s.starting = false;
        s.alive = true;
        return true;
      }
    }
    return false;
  }
  if (f.type == wire::Type::kSessionEnded) {
    wire::SessionEnded m;
    if (!wire::Decode(f.payload, &m)) return false;
    for (auto& [key, s] : sessions_) {
      if (s.id == m.session && (s.alive || s.starting)) {
        s.alive = false;
        s.starting = false;
        s.died_before = m.reason != wire::EndReason::kStopped;
      }
    }
    return true;
  }
  if (f.type == wire::Type::kError) {
    wire::ErrorMsg m;
    return wire::Decode(f.payload, &m);
  }
  return false;
}

bool Runner::RequestSession(const std::string& key,
                            const LanguageSession& lang, std::string* why) {
  LiveSession& s = sessions_[key];
  s.id = next_session_++;
  s.starting = true;
  wire::StartSession m;
  m.session = s.id;
  m.mode = lang.per_cell_command ? wire::SessionMode::kPerCellCommand
                                 : wire::SessionMode::kDriver;
  m.argv = lang.argv;
  m.env = options_.setup.env;
  if (m.env.empty()) {
    m.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp",
             "LANG=C.UTF-8"};
  }
  m.env.insert(m.env.end(), lang.env.begin(), lang.env.end());
  m.cwd = options_.setup.cwd;
  m.cell_dir = options_.setup.cell_dir;
  m.cell_suffix = lang.suffix;
  if (auto st = client_.Send(wire::Encode(m)); !st) {
    AgentFailed(st.error().message());
    *why = agent_error_;
    return false;
  }
  return true;
}

bool Runner::EnsureSession(const std::string& key, const LanguageSession& lang,
                           bool* fresh, std::string* why) {
  LiveSession& s = sessions_[key];
  *fresh = s.died_before;
  if (s.alive) return true;
  if (!s.starting && !RequestSession(key, lang, why)) return false;
  s.starting = false;
  std::string error_text;
  uint64_t deadline = MonotonicMs() + kSessionStartMs;
  while (MonotonicMs() < deadline) {
    auto frame = client_.Next(kPollMs);
    if (!frame) {
      AgentFailed(frame.error().message());
      *why = agent_error_;
      return false;
    }
    if (!*frame) {
      if (auto end = host_.Ended()) {
        AgentFailed(end->reason);
        *why = agent_error_;
        return false;
      }
      continue;
    }
    const AgentFrame& f = **frame;
    if (f.type == wire::Type::kSessionStarted) {
      wire::SessionStarted started;
      if (!wire::Decode(f.payload, &started) || started.session != s.id) {
        AgentFailed("agent sent a malformed session-started frame");
        *why = agent_error_;
        return false;
      }
      s.alive = true;
      TraceStep("cells: session started");
      return true;
    }
    if (f.type == wire::Type::kError) {
      wire::ErrorMsg e;
      if (wire::Decode(f.payload, &e) && e.session == s.id) {
        error_text = e.message;
      }
    }
    if (f.type == wire::Type::kSessionEnded) {
      wire::SessionEnded ended;
      if (wire::Decode(f.payload, &ended) && ended.session == s.id) {
        *why = "could not start the " + key + " session" +
               (error_text.empty() ? "" : ": " + error_text);
        return false;
      }
    }
    if (!HandleAside(f)) {
      AgentFailed("agent sent an unexpected frame while starting a session");
      *why = agent_error_;
      return false;
    }
  }
  AgentFailed("the agent did not start the " + key + " session in time");
  *why = agent_error_;
  return false;
}

void Runner::KeepOutput(CellResult* r, bool is_err, const std::string& data,
                        uint64_t cap) {
  // The agent enforces the cap; this is the hatcher's own bound on what a
  // misbehaving agent can make it store.
  uint64_t kept = r->stdout_data.bytes.size() + r->stderr_data.bytes.size() +
                  r->display.bytes.size();
  uint64_t room = std::min(kept >= cap ? 0 : cap - kept, StreamsRoom());
  CapturedStream& s = is_err ? r->stderr_data : r->stdout_data;
  size_t take = static_cast<size_t>(std::min<uint64_t>(room, data.size()));
  s.bytes.append(data, 0, take);
  s.dropped += data.size() - take;
  streams_kept_ += take;
}

void Runner::KeepDisplay(CellResult* r, const std::string& data, uint64_t cap) {
  uint64_t kept = r->stdout_data.bytes.size() + r->stderr_data.bytes.size() +
                  r->display.bytes.size();
  uint64_t room = std::min(kept >= cap ? 0 : cap - kept, StreamsRoom());
  size_t take = static_cast<size_t>(std::min<uint64_t>(room, data.size()));
  r->display.bytes.append(data, 0, take);
  r->display.dropped += data.size() - take;
  streams_kept_ += take;
}

void Runner::RunOne(const CellInput& cell, const LanguageSession& lang,
                    uint64_t out_baseline, bool* out_over, bool* reported,
                    CellResult* r) {
  Limits limits = MergeLimits(cell.limits, DefaultCellLimits());
  limits.wall_ms =
      std::max<uint64_t>(1, std::min(*limits.wall_ms, EggWallLeft()));
  std::string key = Lower(cell.language);
  uint64_t started = MonotonicMs();

  if (!lang.per_cell_command && cell.code.find('\0') != std::string::npos &&
      (key == "bash" || key == "sh" || key == "shell")) {
    r->status = CellStatus::kError;
    r->note = "the cell's code contains a NUL byte, which a shell cannot run";
    return;
  }
  if (auto st = host_.BeforeCell(limits); !st) {
    r->status = CellStatus::kAgentFailed;
    r->note = "could not set the cell's limits: " + st.error().message();
    AgentFailed(r->note);
    return;
  }
  AgentHost::LimitEvents events_before = host_.LimitEventCounts();
  bool fresh = false;
  std::string why;
  if (!EnsureSession(key, lang, &fresh, &why)) {
    r->status =
        agent_error_.empty() ? CellStatus::kError : CellStatus::kAgentFailed;
    r->note = why;
    return;
  }
  LiveSession& session = sessions_[key];
  if (fresh) {
    r->fresh_session = true;
    r->note = "the previous " + key +
              " session ended; this cell runs in a "
              "fresh one (earlier state is gone)";
    session.died_before = false;
  }

  wire::RunCell m{session.id, cell.index, *limits.wall_ms, *limits.output_bytes,
                  cell.code};
  if (auto st = client_.Send(wire::Encode(m)); !st) {
    r->status = CellStatus::kAgentFailed;
    AgentFailed(st.error().message());
    r->note = agent_error_;
    return;
  }
  uint64_t hard_deadline = started + *limits.wall_ms + options_.grace_ms;

  // /out is polled while the cell runs; past the egg's output cap the
  // session is stopped and the cell reported with the output limit (the
  // check once the cell is done is CheckOutAfterCell's).
  uint64_t next_out_check = MonotonicMs() + kPollMs;
  auto check_out = [&] {
    if (*out_over || options_.out_max_bytes == 0 ||
        !OutOverCap(WithHidden(OutTotal(options_.output_dir)), out_baseline,
                    options_.out_max_bytes)) {
      return;
    }
    *out_over = true;
    (void)client_.Send(wire::EncodeStopSession(session.id));
  };
  while (true) {
    if (MonotonicMs() >= next_out_check) {
      check_out();
      next_out_check = MonotonicMs() + kPollMs;
    }
    if (Cancelled()) {
      interrupted_ = true;
      AgentFailed("interrupted");
      r->status = CellStatus::kError;
      r->note = "interrupted while running";
      break;
    }
    if (MonotonicMs() >= hard_deadline) {
      AgentFailed(
          "the agent did not stop a cell past its wall time; "
          "the sandbox was killed");
      r->status = CellStatus::kLimit;
      r->limit = "wall_time";
      r->note = agent_error_;
      break;
    }
    auto frame = client_.Next(kPollMs);
    if (!frame) {
      std::string what = frame.error().message();
      if (auto end = WaitEnded(kSandboxEndWaitMs)) {
        AgentHost::LimitEvents now = host_.LimitEventCounts();
        if (!end->limit.empty()) {
          r->status = CellStatus::kLimit;
          r->limit = end->limit;
          what = end->reason;
        } else if (now.oom_kills > events_before.oom_kills ||
                   now.pids_max > events_before.pids_max) {
          // The sandbox itself died while this cell met a limit (gVisor's
          // Sentry shares the task limit with the cell's processes, and a
          // fork bomb takes it down): the limit stopped the sandbox, and
          // the run ends with that reason.
          r->status = CellStatus::kLimit;
          r->limit =
              now.oom_kills > events_before.oom_kills ? "memory" : "processes";
          what = "the sandbox ended when the cell met its " + r->limit +
                 " limit (" + end->reason + ")";
        } else {
          r->status = CellStatus::kAgentFailed;
          what = end->reason;
        }
      } else {
        r->status = CellStatus::kAgentFailed;
      }
      AgentFailed(what);
      r->note = agent_error_;
      break;
    }
    if (!*frame) {
      if (auto end = host_.Ended()) {
        // Frames already sent are still read: the loop ends on EOF.
        (void)end;
      }
      continue;
    }
    const AgentFrame& f = **frame;
    if (f.type == wire::Type::kStdout || f.type == wire::Type::kStderr) {
      wire::Output out;
      if (!wire::Decode(f.payload, &out) || out.session != session.id ||
          out.cell != cell.index) {
        r->status = CellStatus::kAgentFailed;
        AgentFailed("agent sent output for the wrong cell");
        r->note = agent_error_;
        break;
      }
      KeepOutput(r, f.type == wire::Type::kStderr, out.data,
                 *limits.output_bytes);
      continue;
    }
    if (f.type == wire::Type::kDisplay) {
      wire::Display d;
      if (!wire::Decode(f.payload, &d) || d.session != session.id ||
          d.cell != cell.index || d.mime != wire::kDisplayRecordsMime) {
        r->status = CellStatus::kAgentFailed;
        AgentFailed("agent sent a malformed display frame");
        r->note = agent_error_;
        break;
      }
      KeepDisplay(r, d.data, *limits.output_bytes);
      continue;
    }
    if (f.type == wire::Type::kCellDone) {
      wire::CellDone done;
      if (!wire::Decode(f.payload, &done) || done.session != session.id ||
          done.cell != cell.index) {
        r->status = CellStatus::kAgentFailed;
        AgentFailed("agent sent a malformed cell-done frame");
        r->note = agent_error_;
        break;
      }
      r->exit_code = done.status;
      r->signal = done.signal;
      r->duration_ms = done.duration_ns / 1000000;
      // What the agent read past the cap and dropped counts as dropped;
      // it is attributed to stdout, since the agent does not say which.
      r->stdout_data.dropped += done.dropped_bytes;
      switch (done.outcome) {
        case wire::Outcome::kCompleted:
          r->status = (done.status == 0 && done.signal == 0)
                          ? CellStatus::kOk
                          : CellStatus::kError;
          break;
        case wire::Outcome::kSessionDied:
          r->status = CellStatus::kSessionDied;
          session.alive = false;
          session.died_before = true;
          break;
        case wire::Outcome::kLimit:
          r->status = CellStatus::kLimit;
          r->limit =
              done.limit == wire::Limit::kWallTime ? "wall_time" : "output";
          if (!lang.per_cell_command) {
            session.alive = false;
            session.died_before = true;
          }
          break;
        case wire::Outcome::kNotStarted:
          r->status = CellStatus::kError;
          if (r->note.empty()) r->note = "the cell could not be started";
          break;
      }
      if (r->stdout_data.truncated() || r->stderr_data.truncated() ||
          r->display.truncated()) {
        if (r->status == CellStatus::kOk || r->status == CellStatus::kError) {
          r->status = CellStatus::kLimit;
          r->limit = "output";
        }
      }
      BlameLimitEvents(events_before, lang, session, r);
      *reported = true;
      return;
    }
    if (f.type == wire::Type::kError) {
      wire::ErrorMsg e;
      if (wire::Decode(f.payload, &e)) {
        if (e.session == session.id) {
          r->note += (r->note.empty() ? "" : "; ") + e.message;
        }
        continue;
      }
    }
    if (!HandleAside(f)) {
      r->status = CellStatus::kAgentFailed;
      AgentFailed("agent sent an unexpected or malformed frame");
      r->note = agent_error_;
      break;
    }
  }
  r->duration_ms = MonotonicMs() - started;
}

bool Runner::CheckOutAfterCell(const Listing& after, bool after_deep,
                               uint64_t out_baseline, bool out_over,
                               const CellInput& cell, CellResult* r) {
  if (options_.out_max_bytes == 0) return false;
  LiveSession& session = sessions_[Lower(cell.language)];
  if (!out_over && OutOverCap(WithHidden(ListingTotal(after, after_deep)),
                              out_baseline, options_.out_max_bytes)) {
    out_over = true;
    (void)client_.Send(wire::EncodeStopSession(session.id));
  }
  if (out_over && r->status != CellStatus::kAgentFailed) {
    r->status = CellStatus::kLimit;
    r->limit = "output";
    r->note = ListingTotal(after, after_deep) == kOutUncountable
                  ? "/out can no longer be counted against the egg's output "
                    "limit (folders deeper than " +
                        std::to_string(hatch::kMaxListDepth) + " or " +
                        std::to_string(hatch::kMaxListedFiles) +
                        " files or more)"
                  : "the cell's files in /out passed the egg's output limit";
    session.alive = false;
    session.died_before = true;
    return true;
  }
  return false;
}

// The OOM killer takes one process (often the interpreter, which then
// looks like a plain SIGKILL), and a fork bomb can hit the task limit
// while its shell survives: the box's counters say which limit it was.
void Runner::BlameLimitEvents(const AgentHost::LimitEvents& before,
                              const LanguageSession& lang, LiveSession& session,
                              CellResult* r) {
  AgentHost::LimitEvents now = host_.LimitEventCounts();
  const char* limit = nullptr;
  if (now.oom_kills > before.oom_kills) {
    limit = "memory";
  } else if (now.pids_max > before.pids_max) {
    limit = "processes";
  }
  if (limit == nullptr || r->status == CellStatus::kAgentFailed) return;
  r->status = CellStatus::kLimit;
  r->limit = limit;
  // A shell that met the task limit may have lost a child half-way, and
  // what the cell forked may still hold every task slot: the session is
  // not trusted for the next cell. Stopping it kills its whole tree; the
  // next cell of the language starts a fresh one and says so.
  if (!lang.per_cell_command && session.alive) {
    if (auto st = client_.Send(wire::EncodeStopSession(session.id)); !st) {
      AgentFailed(st.error().message());
      return;
    }
    session.alive = false;
    session.died_before = true;
    WaitSessionEnded(session.id);
  }
}

// Forks a dying fork bomb makes while the agent kills its tree are
// counted too: the next cell's counts start only once the tree is gone.
// Frames about anything else are handled as usual; a closed channel is
// left for the next read to report.
void Runner::WaitSessionEnded(uint32_t id) {
  uint64_t until = MonotonicMs() + kSessionStopWaitMs;
  while (MonotonicMs() < until) {
    auto frame = client_.Next(kPollMs);
    if (!frame) return;
    if (!*frame) continue;
    const AgentFrame& f = **frame;
    wire::SessionEnded m;
    bool ended = f.type == wire::Type::kSessionEnded &&
                 wire::Decode(f.payload, &m) && m.session == id;
    if (!HandleAside(f)) {
      AgentFailed("agent sent an unexpected or malformed frame");
      return;
    }
    if (ended) return;
  }
}

RunReport Runner::Run(const std::vector<CellInput>& cells,
                      const std::vector<LanguageSession>& langs) {
  RunReport report;
  report.cells.resize(cells.size());
  for (size_t i = 0; i < cells.size(); ++i) {
    report.cells[i].index = cells[i].index;
    report.cells[i].id = cells[i].id;
    report.cells[i].language = cells[i].language;
  }

  // The first cell's session is asked for before the agent's hello is
  // read: the interpreter's start, the longest step before the first
  // cell runs, then overlaps the hatcher reading that hello. The agent
  // reads no request before it has said hello, and nothing the agent
  // sends is trusted before the hello is checked. The session starts
  // under the box's limits, the cell's are set before its code is sent.
  if (!cells.empty() && !langs[0].per_cell_command) {
    std::string why;
    (void)RequestSession(Lower(cells[0].language), langs[0], &why);
  }
  if (auto st = client_.Handshake(kHandshakeMs); !st) {
    AgentFailed("agent handshake failed: " + st.error().message());
  }
  TraceStep("cells: agent said hello");
  // One walk of /out per cell serves the cell's report, the cap check
  // after it and the next cell's baseline.
  bool before_deep = false;
  Listing before = ListOutput(options_.output_dir, &before_deep);
  if (options_.out_max_bytes != 0) {
    fs_used_start_ = FsUsed();
    listed_start_ = ListingTotal(before, before_deep);
    if (listed_start_ == kOutUncountable) listed_start_ = 0;
  }
  bool failed = false;
  for (size_t i = 0; i < cells.size(); ++i) {
    CellResult& r = report.cells[i];
    if (Cancelled()) interrupted_ = true;
    if (interrupted_) {
      r.note = "not run: interrupted";
    } else if (!agent_error_.empty()) {
      r.note = "not run: " + agent_error_;
    } else if (failed && options_.stop_on_error) {
      r.note = "not run: an earlier cell failed";
    } else if (!run_ended_.empty()) {
      r.note = "not run: " + run_ended_;
    } else if (EggWallLeft() == 0) {
      r.note = "not run: the egg's wall time is spent";
    } else if (options_.out_max_bytes != 0 &&
               ListingTotal(before, before_deep) == kOutUncountable) {
      // Files in /out can no longer be counted: nothing more runs.
      r.note =
          "not run: /out can no longer be counted against the egg's "
          "output limit";
    } else {
      const uint64_t out_baseline = ListingTotal(before, before_deep);
      bool out_over = false;
      bool done = false;
      RunOne(cells[i], langs[i], out_baseline, &out_over, &done, &r);
      if (r.status == CellStatus::kLimit && agent_error_.empty() &&
          (r.limit == "memory" || r.limit == "cpu")) {
        // The sandbox stops itself on these, a moment after the cell was
        // charged: the run ends here, and no later cell is blamed.
        if (auto end = WaitEnded(kSandboxEndWaitMs)) AgentFailed(end->reason);
      }
      if (auto st = host_.AfterCell(); !st) {
        AgentFailed("reading the output back: " + st.error().message());
      }
      TraceStep("cells: cell done");
      bool after_deep = false;
      Listing after = ListOutput(options_.output_dir, &after_deep);
      if (done &&
          CheckOutAfterCell(after, after_deep, out_baseline, out_over, cells[i],
                            &r) &&
          agent_error_.empty()) {
        // The egg's output limit is for the whole run: once /out is past
        // it the run ends, and the sandbox goes with anything an earlier
        // cell left writing in the background (which then cannot charge
        // cell after cell).
        run_ended_ =
            "the egg's output limit is spent (files in /out passed it)";
        r.note += i > 0 ? "; the run ends here (a process an earlier cell "
                          "left running may have written them)"
                        : "; the run ends here";
      }
      r.files = ChangedFiles(options_.output_dir, before, after);
      if (size_t dropped = hatch::TrimFileList(&r.files, &files_budget_)) {
        r.note += std::string(r.note.empty() ? "" : "; ") +
                  std::to_string(dropped) +
                  " changed files in /out not listed (the run's list is full)";
      }
      before = std::move(after);
      before_deep = after_deep;
      if (r.status != CellStatus::kOk) failed = true;
    }
    if (options_.on_cell) options_.on_cell(r);
  }

  // A box whose kill ends everything needs no orderly shutdown: the
  // agent's would scan and kill each session's tree just before the box
  // is killed anyway. Only a bare agent (no sandbox) is asked.
  if (agent_error_.empty() && !host_.KillEndsEverything()) {
    // Ask the agent to end everything, and wait for it to close.
    if (client_.Send(wire::EncodeShutdown())) {
      uint64_t deadline = MonotonicMs() + 5000;
      while (MonotonicMs() < deadline) {
        auto frame = client_.Next(kPollMs);
        if (!frame) break;
      }
    }
  }
  TraceStep("cells: agent shut down");
  host_.Kill();
  TraceStep("cells: sandbox killed");
  // Nothing of the sandbox runs now: take from /out every mode bit that
  // would give a file a privilege on the host (set-user-ID and the like).
  if (!options_.output_dir.empty()) {
    auto cleaned = hatch::SanitizeOutputTree(options_.output_dir, 10'000'000,
                                             !options_.out_kept_for_next);
    if (!cleaned && agent_error_.empty()) {
      AgentFailed("securing the output folder: " + cleaned.error().message());
    }
    TraceStep("cells: output folder secured");
  }
  report.interrupted = interrupted_;
  report.agent_error = interrupted_ ? "" : agent_error_;
  report.run_ended = run_ended_;
  return report;
}

}  // namespace

const char* CellStatusName(CellStatus status) {
  switch (status) {
    case CellStatus::kOk:
      return "ok";
    case CellStatus::kError:
      return "error";
    case CellStatus::kSessionDied:
      return "session_died";
    case CellStatus::kLimit:
      return "limit";
    case CellStatus::kNotRun:
      return "not_run";
    case CellStatus::kAgentFailed:
      return "agent_failed";
  }
  return "unknown";
}

bool RunReport::AllSucceeded() const {
  if (interrupted || !agent_error.empty()) return false;
  return std::all_of(cells.begin(), cells.end(), [](const CellResult& c) {
    return c.status == CellStatus::kOk;
  });
}

Result<RunReport> RunCells(const std::vector<CellInput>& cells, AgentHost& host,
                           const RunOptions& options) {
  std::vector<LanguageSession> langs;
  for (const auto& cell : cells) {
    auto lang = SessionForLanguage(cell.language, options.setup);
    if (!lang)
      return Fail(lang.error().Wrap("cell " + std::to_string(cell.index + 1)));
    langs.push_back(std::move(*lang));
  }
  Runner runner(host, options);
  return runner.Run(cells, langs);
}

}  // namespace egg

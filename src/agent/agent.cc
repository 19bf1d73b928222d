// egg-agent: the first process inside a hatch sandbox. It starts language
// sessions, feeds them cells, and streams their output back to the hatcher
// as framed messages on the control fd (fd 3 by default). docs/HATCH.md
// describes the protocol.
//
// The agent is static and single-threaded: one poll loop over the control
// fd, a signalfd for SIGCHLD/SIGTERM, and each session's pipes. Nothing a
// cell writes reaches the control fd except inside an output frame.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "hatch/wire.h"

namespace egg::agent {
namespace {

constexpr char kAgentVersion[] = "egg-agent 0.1.0";
constexpr size_t kStatusLineMax = 64;
// Output read after a cell's status, before the cell is closed. Bounds the
// drain when a background process keeps writing.
constexpr size_t kDrainMax = 1u << 20;
constexpr int kExecFailed = 127;

// ---- small helpers ----------------------------------------------------------

void Log(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t len = std::min(static_cast<size_t>(n), sizeof(buf) - 2);
  buf[len++] = '\n';
  ssize_t ignored = write(2, "egg-agent: ", 11);
  ignored = write(2, buf, len);
  (void)ignored;
}

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<uint64_t>(ts.tv_nsec);
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& o) noexcept : fd_(o.Release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) Reset(o.Release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

bool WriteFully(int fd, const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool MakePipe(Fd* r, Fd* w) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return false;
  r->Reset(p[0]);
  w->Reset(p[1]);
  return true;
}

void SetNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

std::string EnvLookup(const std::vector<std::string>& env, const char* name) {
  size_t n = strlen(name);
  for (const auto& e : env) {
    if (e.size() > n && e.compare(0, n, name) == 0 && e[n] == '=') {
      return e.substr(n + 1);
    }
  }
  return "";
}

// Finds argv[0] on the session's PATH, as execvp would, before fork.
std::string ResolveProgram(const std::string& name,
                           const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) return name;
  std::string path = EnvLookup(env, "PATH");
  if (path.empty()) path = "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + name;
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    start = end + 1;
  }
  return "";
}

// ---- process tree
// ------------------------------------------------------------

struct ProcInfo {
  pid_t pid, ppid, pgrp, sid;
  bool zombie;
};

std::vector<ProcInfo> ScanProcesses() {
  std::vector<ProcInfo> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = '\0';
    // The command name may hold ')' and spaces; fields follow the last ')'.
    char* p = strrchr(buf, ')');
    if (p == nullptr) continue;
    char state = 0;
    long ppid = 0, pgrp = 0, sid = 0;
    if (sscanf(p + 1, " %c %ld %ld %ld", &state, &ppid, &pgrp, &sid) != 4) {
      continue;
    }
    out.push_back({static_cast<pid_t>(pid), static_cast<pid_t>(ppid),
                   static_cast<pid_t>(pgrp), static_cast<pid_t>(sid),
                   state == 'Z' || state == 'X'});
  }
  closedir(d);
  return out;
}

// SIGKILLs every live process in session/group `leader` or descended from
// it, again and again until none is left, so that a process forked during
// the kill is caught too. The leader itself is included if alive.
// TODO(security): a process that both calls setsid() and loses its parent
// before this runs escapes; the sandbox's cgroup kill (and, as PID 1, the
// agent's final kill of everything) ends it.
void KillTree(pid_t leader) {
  if (leader <= 0) return;
  pid_t self = getpid();
  for (int round = 0; round < 500; ++round) {
    std::vector<ProcInfo> procs = ScanProcesses();
    std::set<pid_t> targets;
    for (const auto& p : procs) {
      if (p.pid == leader || p.sid == leader || p.pgrp == leader) {
        targets.insert(p.pid);
      }
    }
    // Descendants by parent links, to a fixed point.
    bool grew = true;
    while (grew) {
      grew = false;
      for (const auto& p : procs) {
        if (!targets.count(p.pid) && targets.count(p.ppid)) {
          targets.insert(p.pid);
          grew = true;
        }
      }
    }
    int live = 0;
    for (const auto& p : procs) {
      if (!targets.count(p.pid) || p.pid == self || p.zombie) continue;
      kill(p.pid, SIGKILL);
      ++live;
    }
    if (live == 0) return;
    usleep(1000);
  }
  Log("processes of session %d survived repeated SIGKILL", leader);
}

// ---- spawning
// ----------------------------------------------------------------

struct SpawnFds {
  int out = -1, err = -1;
  int code = -1, status = -1;  // driver mode only: become fds 3 and 4
  int display = -1;            // driver mode only: becomes fd 5
};

struct CStrings {
  std::vector<std::string> storage;
  std::vector<char*> ptrs;
  explicit CStrings(const std::vector<std::string>& v) : storage(v) {
    for (auto& s : storage) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
};

// Reports errno on `report` and one line on fd 2, then exits;
// async-signal-safe, for the child.
[[noreturn]] void ChildFail(int report, const char* what, int err) {
  if (report >= 0) {
    ssize_t w = write(report, &err, sizeof(err));
    (void)w;
  }
  const char* msg = strerror(err);
  ssize_t ignored = write(2, "egg-agent: ", 11);
  ignored = write(2, what, strlen(what));
  ignored = write(2, ": ", 2);
  ignored = write(2, msg, strlen(msg));
  ignored = write(2, "\n", 1);
  (void)ignored;
  _exit(kExecFailed);
}

// Forks and execs `program` in a new session (so its group can be killed),
// with stdin /dev/null and the given fds. Returns the pid, or -1 with
// *error set. Exec failure is reported through a CLOEXEC pipe.
pid_t Spawn(const std::string& program, const std::vector<std::string>& argv,
            const std::vector<std::string>& env, const std::string& cwd,
            const SpawnFds& fds, std::string* error) {
  CStrings cargv(argv);
  CStrings cenv(env);
  Fd err_r, err_w;
  if (!MakePipe(&err_r, &err_w)) {
    *error = std::string("pipe: ") + strerror(errno);
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + strerror(errno);
    return -1;
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    int report = fcntl(err_w.get(), F_DUPFD_CLOEXEC, 10);
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) ChildFail(report, "open /dev/null", errno);
    // Move every source fd above 10 first so the dup2s cannot clobber one.
    int src[6] = {devnull, fds.out, fds.err, fds.code, fds.status, fds.display};
    for (int& fd : src) {
      if (fd < 0) continue;
      int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
      if (moved < 0) ChildFail(report, "dup", errno);
      fd = moved;
    }
    for (int target = 0; target < 6; ++target) {
      if (src[target] < 0) continue;
      if (dup2(src[target], target) < 0) ChildFail(report, "dup2", errno);
    }
    // Everything else the agent holds is CLOEXEC already; this is a second
    // line for any fd that is not (close_range may be missing: harmless).
    unsigned first = fds.display >= 0 ? 6 : fds.code >= 0 ? 5 : 3;
    if (report > static_cast<int>(first)) {
      syscall(SYS_close_range, first, static_cast<unsigned>(report) - 1, 0);
    }
    syscall(SYS_close_range, static_cast<unsigned>(report) + 1, ~0u, 0);
    if (chdir(cwd.empty() ? "/" : cwd.c_str()) != 0) {
      ChildFail(report, "chdir", errno);
    }
    execve(program.c_str(), cargv.ptrs.data(), cenv.ptrs.data());
    ChildFail(report, "exec", errno);
  }
  err_w.Reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(err_r.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n == sizeof(child_errno)) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    *error = "cannot run '" + program + "': " + strerror(child_errno);
    return -1;
  }
  return pid;
}

// ---- sessions
// ------------------------------------------------------------------

struct Session {
  uint32_t id = 0;
  wire::StartSession spec;
  std::string program;
  pid_t leader = -1;   // the driver, or the current per-cell process
  pid_t sid = -1;      // the leader's session id (its pid), kept after it dies
  bool ended = false;  // SessionEnded sent; erased at the end of the loop
  Fd code_w, status_r, out_r, err_r;
  Fd display_r;     // driver mode: the driver's display records (fd 5)
  Fd out_w, err_w;  // per-cell mode: kept to hand to each cell
  bool out_eof = false, err_eof = false, display_eof = false;
  std::string pending_code;
  size_t pending_off = 0;
  std::string status_buf;

  bool running = false;
  uint32_t cell = 0;
  uint64_t started_ns = 0;
  uint64_t deadline_ns = 0;  // 0 = none
  uint64_t cap = 0;          // 0 = none
  uint64_t sent = 0;
  uint64_t dropped = 0;
  std::string cell_file;
};

class Agent {
 public:
  Agent(int control_fd, int signal_fd)
      : control_(control_fd), signal_fd_(signal_fd) {}

  // Runs until the hatcher says Shutdown or closes the control fd.
  int Run();

 private:
  void Send(const std::vector<uint8_t>& frame);
  void SendError(uint32_t session, const std::string& message);
  bool ReadControl();
  bool Dispatch(wire::Type type, std::span<const uint8_t> payload);
  void OnStartSession(const wire::StartSession& m);
  void OnRunCell(wire::RunCell m);
  void OnStopSession(uint32_t id);
  void StartPerCellProcess(Session& s, const std::string& code);

  void OnSignals();
  void Reap();
  void OnLeaderExit(Session& s, int wstatus);
  enum class Stream { kStdout, kStderr, kDisplay };
  void ReadOutput(Session& s, Stream stream, size_t budget);
  void Drain(Session& s);
  void OnStatusReadable(Session& s);
  void WriteCode(Session& s);
  void FinishCell(Session& s, wire::Outcome outcome, wire::Limit limit,
                  int status, int signal);
  void EndSession(uint32_t id, wire::EndReason reason, int code, int sig);
  void KillSession(Session& s, wire::Limit limit, wire::EndReason reason);
  void CheckDeadlines();
  void ShutdownAll();

  Session* Find(uint32_t id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second->ended) return nullptr;
    return it->second.get();
  }
  void EraseEnded() {
    std::erase_if(sessions_, [](const auto& kv) { return kv.second->ended; });
  }

  int control_;
  int signal_fd_;
  std::vector<uint8_t> inbuf_;
  std::map<uint32_t, std::unique_ptr<Session>> sessions_;
  bool done_ = false;
  int exit_code_ = 0;
};

void Agent::Send(const std::vector<uint8_t>& frame) {
  if (!WriteFully(control_, frame.data(), frame.size())) {
    // The hatcher is gone; nothing is left to report to.
    done_ = true;
  }
}

void Agent::SendError(uint32_t session, const std::string& message) {
  Send(wire::Encode(wire::ErrorMsg{session, message}));
}

void Agent::OnStartSession(const wire::StartSession& m) {
  if (sessions_.count(m.session) != 0) {
    SendError(m.session, "session id already in use");
    return;
  }
  auto s = std::make_unique<Session>();
  s->id = m.session;
  s->spec = m;
  s->program = ResolveProgram(m.argv[0], m.env);
  if (s->program.empty()) {
    SendError(m.session, "program not found: " + m.argv[0]);
    Send(wire::Encode(
        wire::SessionEnded{m.session, wire::EndReason::kStartFailed, 0, 0}));
    return;
  }

  Fd out_w, err_w;
  if (!MakePipe(&s->out_r, &out_w) || !MakePipe(&s->err_r, &err_w)) {
    SendError(m.session, std::string("pipe: ") + strerror(errno));
    Send(wire::Encode(
        wire::SessionEnded{m.session, wire::EndReason::kStartFailed, 0, 0}));
    return;
  }
  SetNonBlocking(s->out_r.get());
  SetNonBlocking(s->err_r.get());

  if (m.mode == wire::SessionMode::kPerCellCommand) {
    s->out_w = std::move(out_w);
    s->err_w = std::move(err_w);
    Send(wire::Encode(wire::SessionStarted{m.session, 0}));
    sessions_[m.session] = std::move(s);
    return;
  }

  Fd code_r, status_w, display_w;
  if (!MakePipe(&code_r, &s->code_w) || !MakePipe(&s->status_r, &status_w) ||
      !MakePipe(&s->display_r, &display_w)) {
    SendError(m.session, std::string("pipe: ") + strerror(errno));
    Send(wire::Encode(
        wire::SessionEnded{m.session, wire::EndReason::kStartFailed, 0, 0}));
    return;
  }
  SetNonBlocking(s->code_w.get());
  SetNonBlocking(s->status_r.get());
  SetNonBlocking(s->display_r.get());
  SpawnFds fds{out_w.get(), err_w.get(), code_r.get(), status_w.get(),
               display_w.get()};
  std::string error;
  pid_t pid = Spawn(s->program, m.argv, m.env, m.cwd, fds, &error);
  if (pid < 0) {
    SendError(m.session, "cannot start session: " + error);
    Send(wire::Encode(
        wire::SessionEnded{m.session, wire::EndReason::kStartFailed, 0, 0}));
    return;
  }
  s->leader = pid;
  s->sid = pid;
  Send(wire::Encode(
      wire::SessionStarted{m.session, static_cast<uint32_t>(pid)}));
  sessions_[m.session] = std::move(s);
}

void Agent::OnRunCell(wire::RunCell m) {
  Session* s = Find(m.session);
  wire::CellDone refused{
      m.session, m.cell, wire::Outcome::kNotStarted, wire::Limit::kNone, 0, 0,
      0,         0};
  if (s == nullptr || s->running) {
    SendError(m.session, s == nullptr ? "no such session" : "session busy");
    Send(wire::Encode(refused));
    return;
  }
  s->running = true;
  s->cell = m.cell;
  s->started_ns = NowNs();
  s->deadline_ns = m.wall_ms ? s->started_ns + m.wall_ms * 1000000ull : 0;
  s->cap = m.output_bytes;
  s->sent = 0;
  s->dropped = 0;
  s->status_buf.clear();

  if (s->spec.mode == wire::SessionMode::kPerCellCommand) {
    StartPerCellProcess(*s, m.code);
    return;
  }
  if (s->leader < 0) {
    s->running = false;
    SendError(m.session, "session has ended");
    Send(wire::Encode(refused));
    return;
  }
  s->pending_code =
      std::to_string(m.cell) + " " + std::to_string(m.code.size()) + "\n";
  s->pending_code += m.code;
  s->pending_off = 0;
  WriteCode(*s);
}

void Agent::StartPerCellProcess(Session& s, const std::string& code) {
  std::string templ = (s.spec.cell_dir.empty() ? "/tmp" : s.spec.cell_dir) +
                      "/egg-cell-" + std::to_string(s.cell) + "-XXXXXX" +
                      s.spec.cell_suffix;
  std::vector<char> path(templ.begin(), templ.end());
  path.push_back('\0');
  int fd = mkostemps(path.data(), static_cast<int>(s.spec.cell_suffix.size()),
                     O_CLOEXEC);
  std::string error;
  if (fd < 0) {
    error = "cannot create cell file in '" + s.spec.cell_dir +
            "': " + strerror(errno);
  } else {
    bool ok = WriteFully(fd, reinterpret_cast<const uint8_t*>(code.data()),
                         code.size());
    close(fd);
    s.cell_file = path.data();
    if (!ok) error = std::string("cannot write cell file: ") + strerror(errno);
  }
  if (error.empty()) {
    std::vector<std::string> argv = s.spec.argv;
    for (auto& a : argv) {
      size_t at;
      while ((at = a.find("{file}")) != std::string::npos) {
        a.replace(at, 6, s.cell_file);
      }
    }
    SpawnFds fds{s.out_w.get(), s.err_w.get(), -1, -1};
    pid_t pid = Spawn(s.program, argv, s.spec.env, s.spec.cwd, fds, &error);
    if (pid > 0) {
      s.leader = pid;
      s.sid = pid;
      return;
    }
  }
  SendError(s.id, error);
  FinishCell(s, wire::Outcome::kNotStarted, wire::Limit::kNone, 0, 0);
}

void Agent::WriteCode(Session& s) {
  while (s.pending_off < s.pending_code.size()) {
    ssize_t w = write(s.code_w.get(), s.pending_code.data() + s.pending_off,
                      s.pending_code.size() - s.pending_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return;
    if (w <= 0) {
      // The driver closed its code pipe; its exit is reported on reaping.
      break;
    }
    s.pending_off += static_cast<size_t>(w);
  }
  s.pending_code.clear();
  s.pending_off = 0;
}

// Display records share the cell's output cap with stdout and stderr.
void Agent::ReadOutput(Session& s, Stream stream, size_t budget) {
  Fd& fd = stream == Stream::kStdout   ? s.out_r
           : stream == Stream::kStderr ? s.err_r
                                       : s.display_r;
  bool& eof = stream == Stream::kStdout   ? s.out_eof
              : stream == Stream::kStderr ? s.err_eof
                                          : s.display_eof;
  if (!fd.valid()) return;
  uint8_t buf[wire::kOutputChunk];
  while (budget > 0 && !eof) {
    ssize_t n = read(fd.get(), buf, std::min(sizeof(buf), budget));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;  // EAGAIN: nothing buffered
    if (n == 0) {
      eof = true;
      return;
    }
    budget -= static_cast<size_t>(n);
    size_t keep = static_cast<size_t>(n);
    if (s.cap != 0) {
      uint64_t room = s.sent >= s.cap ? 0 : s.cap - s.sent;
      if (keep > room) keep = static_cast<size_t>(room);
    }
    if (keep > 0 && stream == Stream::kDisplay) {
      Send(wire::Encode(
          wire::Display{s.id, s.cell, wire::kDisplayRecordsMime,
                        std::string(reinterpret_cast<char*>(buf), keep)}));
      s.sent += keep;
    } else if (keep > 0) {
      Send(wire::EncodeOutput(
          stream == Stream::kStderr ? wire::Type::kStderr : wire::Type::kStdout,
          s.id, s.cell, {buf, keep}));
      s.sent += keep;
    }
    s.dropped += static_cast<size_t>(n) - keep;
    if (s.dropped > 0) return;
  }
}

void Agent::Drain(Session& s) {
  ReadOutput(s, Stream::kStdout, kDrainMax);
  ReadOutput(s, Stream::kStderr, kDrainMax);
  ReadOutput(s, Stream::kDisplay, kDrainMax);
}

void Agent::FinishCell(Session& s, wire::Outcome outcome, wire::Limit limit,
                       int status, int signal) {
  wire::CellDone done{
      s.id,     s.cell, outcome, limit, status, signal, NowNs() - s.started_ns,
      s.dropped};
  Send(wire::Encode(done));
  s.running = false;
  s.deadline_ns = 0;
  s.pending_code.clear();
  s.pending_off = 0;
  if (!s.cell_file.empty()) {
    unlink(s.cell_file.c_str());
    s.cell_file.clear();
  }
}

void Agent::EndSession(uint32_t id, wire::EndReason reason, int code, int sig) {
  Session* s = Find(id);
  if (s == nullptr) return;
  KillTree(s->sid);
  if (s->leader > 0) {
    while (waitpid(s->leader, nullptr, 0) < 0 && errno == EINTR) {
    }
    s->leader = -1;
  }
  if (!s->cell_file.empty()) unlink(s->cell_file.c_str());
  s->ended = true;
  s->code_w.Reset();
  s->status_r.Reset();
  s->display_r.Reset();
  Send(wire::Encode(wire::SessionEnded{id, reason, code, sig}));
}

// Kills a session whose running cell broke a limit (or was stopped), then
// closes the cell and, for a driver, the session.
void Agent::KillSession(Session& s, wire::Limit limit, wire::EndReason reason) {
  pid_t leader = s.leader;
  int ws = 0;
  KillTree(s.sid);
  if (leader > 0) {
    while (waitpid(leader, &ws, 0) < 0 && errno == EINTR) {
    }
    s.leader = -1;
  }
  if (limit == wire::Limit::kWallTime) Drain(s);
  int sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
  int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 0;
  if (s.running) {
    FinishCell(s,
               limit == wire::Limit::kNone ? wire::Outcome::kSessionDied
                                           : wire::Outcome::kLimit,
               limit, code, sig);
  }
  if (s.spec.mode == wire::SessionMode::kDriver ||
      reason == wire::EndReason::kStopped) {
    EndSession(s.id, reason, code, sig);
  }
}

void Agent::OnLeaderExit(Session& s, int wstatus) {
  s.leader = -1;
  int sig = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
  int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 0;
  if (s.spec.mode == wire::SessionMode::kPerCellCommand) {
    // The cell is its process: done when it exits. Background processes
    // it left end now, not with the session.
    KillTree(s.sid);
    if (!s.running) return;
    Drain(s);
    bool over = s.dropped > 0;
    FinishCell(s, over ? wire::Outcome::kLimit : wire::Outcome::kCompleted,
               over ? wire::Limit::kOutput : wire::Limit::kNone, code, sig);
    return;
  }
  if (s.running) {
    // A status written just before the driver died still counts.
    OnStatusReadable(s);
  }
  if (s.ended) return;
  if (s.running) {
    Drain(s);
    FinishCell(s, wire::Outcome::kSessionDied, wire::Limit::kNone, code, sig);
  }
  EndSession(s.id, wire::EndReason::kExited, code, sig);
}

void Agent::OnStatusReadable(Session& s) {
  char buf[kStatusLineMax];
  while (s.status_buf.find('\n') == std::string::npos) {
    ssize_t n = read(s.status_r.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    if (n == 0) {
      // The status pipe closed: the driver died (its exit is reaped next)
      // or a cell closed it, and then no cell can finish.
      // If a cell closed it, the cell ends at its wall time.
      s.status_r.Reset();
      int ws;
      if (s.leader > 0 && waitpid(s.leader, &ws, WNOHANG) == s.leader) {
        OnLeaderExit(s, ws);
      }
      return;
    }
    s.status_buf.append(buf, static_cast<size_t>(n));
    if (s.status_buf.size() > kStatusLineMax) break;
  }
  // Parse "<cell> <status>\n"; anything else is a driver protocol error.
  size_t nl = s.status_buf.find('\n');
  long cell = -1, status = 0;
  bool ok = false;
  if (nl != std::string::npos && nl < kStatusLineMax) {
    std::string line = s.status_buf.substr(0, nl);
    char tail = 0;
    ok = sscanf(line.c_str(), "%ld %ld%c", &cell, &status, &tail) == 2 &&
         cell == static_cast<long>(s.cell) && status >= -2147483647L &&
         status <= 2147483647L && nl + 1 == s.status_buf.size();
  }
  if (!ok) {
    SendError(s.id, "driver sent a malformed status record");
    Drain(s);
    FinishCell(s, wire::Outcome::kSessionDied, wire::Limit::kNone, -1, 0);
    KillSession(s, wire::Limit::kNone, wire::EndReason::kProtocol);
    return;
  }
  s.status_buf.clear();
  Drain(s);
  if (s.dropped > 0) {
    KillSession(s, wire::Limit::kOutput, wire::EndReason::kLimit);
    return;
  }
  FinishCell(s, wire::Outcome::kCompleted, wire::Limit::kNone,
             static_cast<int>(status), 0);
}

void Agent::Reap() {
  int ws;
  pid_t pid;
  while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
    for (auto& [id, s] : sessions_) {
      if (!s->ended && s->leader == pid) {
        OnLeaderExit(*s, ws);
        break;
      }
    }
  }
}

void Agent::OnStopSession(uint32_t id) {
  Session* s = Find(id);
  if (s == nullptr) {
    SendError(id, "no such session");
    return;
  }
  KillSession(*s, wire::Limit::kNone, wire::EndReason::kStopped);
}

void Agent::ShutdownAll() {
  std::vector<uint32_t> ids;
  for (auto& [id, s] : sessions_) ids.push_back(id);
  for (uint32_t id : ids) {
    Session* s = Find(id);
    if (s != nullptr)
      KillSession(*s, wire::Limit::kNone, wire::EndReason::kStopped);
  }
  if (getpid() == 1) {
    // As init of the sandbox's PID namespace, end every stray process.
    kill(-1, SIGKILL);
    while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
    }
  }
  done_ = true;
}

void Agent::CheckDeadlines() {
  uint64_t now = NowNs();
  std::vector<uint32_t> expired;
  for (auto& [id, s] : sessions_) {
    if (s->running && s->deadline_ns != 0 && now >= s->deadline_ns) {
      expired.push_back(id);
    }
  }
  for (uint32_t id : expired) {
    Session* s = Find(id);
    if (s != nullptr) {
      KillSession(*s, wire::Limit::kWallTime, wire::EndReason::kLimit);
    }
  }
}

bool Agent::Dispatch(wire::Type type, std::span<const uint8_t> payload) {
  switch (type) {
    case wire::Type::kStartSession: {
      wire::StartSession m;
      if (!wire::Decode(payload, &m)) return false;
      OnStartSession(m);
      return true;
    }
    case wire::Type::kRunCell: {
      wire::RunCell m;
      if (!wire::Decode(payload, &m)) return false;
      OnRunCell(std::move(m));
      return true;
    }
    case wire::Type::kStopSession: {
      uint32_t id;
      if (!wire::DecodeSessionId(payload, &id)) return false;
      OnStopSession(id);
      return true;
    }
    case wire::Type::kShutdown:
      if (!payload.empty()) return false;
      ShutdownAll();
      return true;
    default:
      return false;
  }
}

// Reads what the control fd has and handles every complete frame. Returns
// false when the hatcher is gone or sent a malformed frame.
bool Agent::ReadControl() {
  uint8_t buf[64 << 10];
  ssize_t n = read(control_, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  inbuf_.insert(inbuf_.end(), buf, buf + n);
  size_t off = 0;
  while (!done_ && inbuf_.size() - off >= wire::kHeaderSize) {
    wire::Header h;
    std::span<const uint8_t> rest(inbuf_.data() + off, inbuf_.size() - off);
    if (auto err = wire::DecodeHeader(rest, wire::kMaxHatcherPayload,
                                      /*from_agent=*/false, &h)) {
      Log("rejected control frame: %s", err->c_str());
      return false;
    }
    if (rest.size() - wire::kHeaderSize < h.length) break;
    if (!Dispatch(h.type, rest.subspan(wire::kHeaderSize, h.length))) {
      Log("rejected malformed control message of type %d",
          static_cast<int>(h.type));
      return false;
    }
    off += wire::kHeaderSize + h.length;
  }
  inbuf_.erase(inbuf_.begin(), inbuf_.begin() + static_cast<long>(off));
  return true;
}

void Agent::OnSignals() {
  signalfd_siginfo info;
  while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    if (info.ssi_signo == SIGCHLD) continue;
    Log("signal %u: stopping", info.ssi_signo);
    ShutdownAll();
  }
  Reap();
}

int Agent::Run() {
  Send(wire::Encode(wire::Hello{wire::kVersion, kAgentVersion}));
  while (!done_) {
    // Build the poll set: control, signals, and each running session.
    std::vector<pollfd> pfds;
    std::vector<std::pair<uint32_t, int>> owners;  // session, role
    pfds.push_back({control_, POLLIN, 0});
    pfds.push_back({signal_fd_, POLLIN, 0});
    uint64_t next_deadline = 0;
    EraseEnded();
    for (auto& [id, s] : sessions_) {
      if (!s->running) continue;
      if (!s->out_eof) {
        pfds.push_back({s->out_r.get(), POLLIN, 0});
        owners.push_back({id, 0});
      }
      if (!s->err_eof) {
        pfds.push_back({s->err_r.get(), POLLIN, 0});
        owners.push_back({id, 1});
      }
      if (s->display_r.valid() && !s->display_eof) {
        pfds.push_back({s->display_r.get(), POLLIN, 0});
        owners.push_back({id, 4});
      }
      if (s->status_r.valid()) {
        pfds.push_back({s->status_r.get(), POLLIN, 0});
        owners.push_back({id, 2});
      }
      if (s->pending_off < s->pending_code.size()) {
        pfds.push_back({s->code_w.get(), POLLOUT, 0});
        owners.push_back({id, 3});
      }
      if (s->deadline_ns != 0 &&
          (next_deadline == 0 || s->deadline_ns < next_deadline)) {
        next_deadline = s->deadline_ns;
      }
    }
    int timeout = -1;
    if (next_deadline != 0) {
      uint64_t now = NowNs();
      timeout = next_deadline <= now
                    ? 0
                    : static_cast<int>(std::min<uint64_t>(
                          (next_deadline - now) / 1000000 + 1, 60000));
    }
    int r = poll(pfds.data(), pfds.size(), timeout);
    if (r < 0 && errno != EINTR) {
      Log("poll: %s", strerror(errno));
      ShutdownAll();
      return 1;
    }

    if (pfds[1].revents) OnSignals();
    if (!done_ && pfds[0].revents && !ReadControl()) {
      ShutdownAll();
      exit_code_ = 0;
      break;
    }
    for (size_t i = 2; i < pfds.size() && !done_; ++i) {
      if (pfds[i].revents == 0) continue;
      Session* s = Find(owners[i - 2].first);
      if (s == nullptr || !s->running) continue;
      switch (owners[i - 2].second) {
        case 0:
        case 1:
        case 4:
          ReadOutput(*s,
                     owners[i - 2].second == 0   ? Stream::kStdout
                     : owners[i - 2].second == 1 ? Stream::kStderr
                                                 : Stream::kDisplay,
                     4 * wire::kOutputChunk);
          if (s->dropped > 0) {
            KillSession(*s, wire::Limit::kOutput, wire::EndReason::kLimit);
          }
          break;
        case 2:
          OnStatusReadable(*s);
          break;
        case 3:
          WriteCode(*s);
          break;
      }
    }
    if (!done_) CheckDeadlines();
  }
  return exit_code_;
}

}  // namespace
}  // namespace egg::agent

int main(int argc, char** argv) {
  int control = 3;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--control-fd") == 0 && i + 1 < argc) {
      control = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("%s\n", egg::agent::kAgentVersion);
      return 0;
    } else {
      egg::agent::Log("usage: egg-agent [--control-fd N]");
      return 2;
    }
  }
  if (control < 3 || fcntl(control, F_GETFD) < 0) {
    egg::agent::Log("control fd %d is not open", control);
    return 2;
  }

  // Cells must not reach the control fd: close it on exec, and make the
  // agent non-dumpable so /proc/1/fd and ptrace are closed to them.
  fcntl(control, F_SETFD, FD_CLOEXEC);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  if (chdir("/") != 0) return 2;
  signal(SIGPIPE, SIG_IGN);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    egg::agent::Log("signalfd: %s", strerror(errno));
    return 2;
  }
  egg::agent::Agent agent(control, sfd);
  return agent.Run();
}

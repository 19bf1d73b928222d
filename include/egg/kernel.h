// Running cells on a Jupyter kernel: the kernel client (Jupyter messaging
// protocol 5.3 over ZeroMQ, HMAC-SHA256 signed, IPC transport), the
// kernelspec reader, and the runner that starts the kernel inside the
// hatch sandbox through egg-agent. docs/NOTEBOOKS.md ("The Jupyter kernel
// path") and docs/HATCH.md describe how a hatch picks it.
//
// The kernel is hostile: it runs the egg's code and shares its sandbox.
// Every message is read with caps (frames, bytes, JSON depth), its
// signature is checked before it is parsed, and no wait is unbounded: a
// kernel that dies, hangs, stops answering its heartbeat, floods output or
// forges a message makes the cell fail with the reason, never egg hang.
//
// Usage (a kernel the caller started, e.g. in a test):
//   KernelConnection conn = NewIpcConnection("/tmp/k/kernel");
//   ... write ConnectionFileJson(conn), start the kernel ...
//   auto client = KernelClient::Connect("/tmp/k/kernel", conn, process, {});
//   KernelCellOutcome out = (*client)->Execute(cell);
#ifndef EGG_KERNEL_H_
#define EGG_KERNEL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "egg/hatch.h"
#include "egg/status.h"

namespace egg {

// A kernelspec (kernel.json). argv holds "{connection_file}" where the
// connection file's path goes.
struct KernelSpec {
  std::string name;  // the folder name, e.g. "python3", "ir"
  std::vector<std::string> argv;
  std::string display_name;
  std::string language;
  bool interrupt_by_message = false;  // "interrupt_mode": "message"
};

// Decodes kernel.json (at most 64 KiB, argv 1..64 strings without NUL).
// kInvalidArgument names the field.
[[nodiscard]] Result<KernelSpec> ParseKernelSpec(std::string_view json,
                                                 const std::string& name);

// Reads <root>/usr/local/share/jupyter/kernels/<name>/kernel.json, else
// <root>/usr/share/jupyter/kernels/<name>/kernel.json, resolving every
// path inside `root` (symlinks cannot leave it). `name` must match
// [A-Za-z0-9._-]{1,64} and not start with '.'. kNotFound when neither
// exists.
[[nodiscard]] Result<KernelSpec> FindKernelSpec(const std::string& root,
                                                const std::string& name);

// The kernelspec name for a notebook language when none is named:
// python -> "python3", r -> "ir", other languages as they are.
std::string DefaultKernelName(const std::string& language);

// Where the kernel binds (transport "ipc": "<ip>-<port>") and the key that
// signs every message (64 hex digits from the system's CSPRNG).
struct KernelConnection {
  std::string ip;  // the socket path prefix as the kernel sees it
  std::string key;
  int shell_port = 1, iopub_port = 2, stdin_port = 3, control_port = 4,
      hb_port = 5;
};
[[nodiscard]] Result<KernelConnection> NewIpcConnection(const std::string& ip);
std::string ConnectionFileJson(const KernelConnection& connection);

// The kernel's process, as far as the client can see and control it.
class KernelProcess {
 public:
  virtual ~KernelProcess() = default;
  // Non-blocking. Once the kernel has ended, why ("exited with status 1",
  // "killed by signal 9"); nothing while it runs.
  virtual std::optional<std::string> Ended() = 0;
  // Ends the kernel and everything it started. Safe to call twice.
  virtual void Kill() = 0;
  // Sends SIGINT if this host can; false if it cannot (then the client
  // relies on interrupt_request and, failing that, Kill).
  virtual bool Interrupt() { return false; }
};

// Starts `spec` on this host with no isolation (tests, --no-sandbox):
// "{connection_file}" in argv becomes `connection_file`; stdin is
// /dev/null, stdout and stderr go to `log_fd` (-1: /dev/null).
[[nodiscard]] Result<std::unique_ptr<KernelProcess>> StartLocalKernel(
    const KernelSpec& spec, const std::string& connection_file,
    const std::vector<std::string>& env, int log_fd = -1);

struct KernelOptions {
  uint64_t startup_ms = 60000;            // sockets up and kernel_info answered
  uint64_t interrupt_grace_ms = 5000;     // after interrupting, before killing
  uint64_t heartbeat_timeout_ms = 30000;  // no heartbeat this long: dead
  uint64_t heartbeat_interval_ms = 1000;
  // Set (e.g. from a signal handler) to stop: the running cell's kernel is
  // killed and the cell reported as interrupted.
  const std::atomic<bool>* cancel = nullptr;
  // Asked about every 100 ms while a cell runs: true when the files the
  // cell can write (/out, the exchange folder) passed their cap. The
  // kernel is then killed at once (an interrupt would let it write on)
  // and the cell reported with the "output" limit.
  std::function<bool()> files_over_limit;
};

// What one cell gave. `result` holds the status (ok, error, session_died,
// limit with "wall_time" or "output"), the note, the raw stream bytes
// (stdout/stderr streams, capped as the outputs are) and the duration.
struct KernelCellOutcome {
  CellResult result;
  nlohmann::json outputs = nlohmann::json::array();  // nbformat 4 outputs
  std::optional<int64_t> execution_count;
  bool kernel_dead = false;  // the kernel is gone; start a new one
};

// A connected kernel. Not thread-safe; one cell at a time.
class KernelClient {
 public:
  virtual ~KernelClient() = default;

  // Connects to a kernel binding at "<host_prefix>-<port>" (the host's
  // path of the folder the kernel writes its sockets to) and waits until
  // it answers kernel_info and its iopub stream is live, within
  // options.startup_ms. Each socket must be a real socket, not a symlink
  // (the folder is writable by the kernel). kSessionDied-worthy failures
  // (the process ended, a deadline) are kIo with the reason; a bad
  // signature is kVerificationFailed.
  [[nodiscard]] static Result<std::unique_ptr<KernelClient>> Connect(
      const std::string& host_prefix, const KernelConnection& connection,
      KernelProcess& process, const KernelOptions& options);

  // Runs one cell (silent=false, store_history=true, allow_stdin=false)
  // under cell.limits (wall_ms, output_bytes; unset take the defaults).
  virtual KernelCellOutcome Execute(const CellInput& cell) = 0;

  // Asks the kernel to shut down, then kills its process.
  virtual void Shutdown() = 0;
};

// How RunCellsWithKernel starts the kernel inside the agent's world.
struct KernelRunSetup {
  KernelSpec spec;
  // The folder shared with the kernel: its host path and the path the
  // kernel sees. The kernel's sockets are created in it.
  std::string exchange_host_dir;
  std::string exchange_sandbox_dir;
  KernelOptions options;
};

// Runs `cells` in order on one kernel started by the agent behind `host`
// (a per-cell-command session whose one "cell" is the kernel process).
// Each cell's nbformat outputs are its CellResult::display records (one
// JSON object per line, as the display driver's), so RunFromHatch and the
// results JSON carry them. A kernel that died is started again for the next
// cell, which is marked fresh_session. Returns one result per cell, like
// RunCells; an Error only for misuse found before anything runs.
[[nodiscard]] Result<RunReport> RunCellsWithKernel(
    const std::vector<CellInput>& cells, AgentHost& host,
    const RunOptions& options, const KernelRunSetup& setup);

}  // namespace egg

#endif  // EGG_KERNEL_H_

// Running an egg's cells: the hatcher side of the agent protocol, the
// language drivers, and the results of a run.
//
// The agent (egg-agent, a static program) runs inside the sandbox as its
// first process and talks to the hatcher over one byte-stream fd (fd 3 in
// the sandbox). RunCells() drives it: one live session per language (so a
// variable set in cell 1 exists in cell 3), per-cell limits, output caps
// and wall time, and a fresh session after one dies. Every frame from the
// agent is treated as hostile. docs/HATCH.md documents the protocol, the
// drivers and the results JSON.
//
// Usage:
//   auto host = StartLocalAgent(agent_path);            // or a sandbox
//   RunOptions options;
//   options.setup.drivers_dir = "/.egg/drivers";
//   Result<RunReport> report = RunCells(cells, **host, options);
//   std::string json = ResultsJson(*report, meta);
#ifndef EGG_HATCH_H_
#define EGG_HATCH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "egg/hash.h"
#include "egg/policy.h"
#include "egg/status.h"

namespace egg {

// Where the agent and drivers are seen inside the sandbox.
inline constexpr char kSandboxAgentPath[] = "/.egg/egg-agent";
inline constexpr char kSandboxDriversDir[] = "/.egg/drivers";
inline constexpr char kSandboxExchangeDir[] = "/.egg-exchange";

// One code cell to run.
struct CellInput {
  uint32_t index = 0;    // the cell's position in the notebook (0-based)
  std::string id;        // the notebook's cell id, for results
  std::string language;  // "python", "bash", "sh", "r", or a command one
  std::string code;
  Limits limits;  // per-cell limits; unset fields take the defaults
  // The cell's own permissions, which the manifest lets only narrow the
  // egg's; unset: the egg's. RunCellsInSandbox gives the cell at most
  // these and what was granted.
  std::optional<Permissions> permissions;
};

// A language run as one process per cell, declared by the runtime or the
// manifest: argv where "{file}" is replaced by the cell's file, e.g.
// {"node", "{file}"} with suffix ".js".
struct CommandLanguage {
  std::string language;
  std::vector<std::string> argv;
  std::string suffix;
};

// How sessions are started inside the agent's world.
struct SessionSetup {
  std::string drivers_dir = kSandboxDriversDir;
  // Environment of every session ("NAME=value"); empty takes a minimal one.
  std::vector<std::string> env;
  std::string cwd = "/out";
  std::string cell_dir = "/tmp";  // per-cell command files
  std::vector<CommandLanguage> commands;
  // Python cells run under the display driver (python_display.py), which
  // writes Jupyter display records (execute_result, display_data, error)
  // to its fd 5; they arrive in CellResult::display.
  bool rich_display = false;
};

// The session a language runs in: driver argv, or a per-cell command.
struct LanguageSession {
  bool per_cell_command = false;
  std::vector<std::string> argv;
  std::string suffix;
  std::vector<std::string> env;  // "NAME=value" added to the session's
};

// Python ("python", "python3", "py"), bash, sh and R ("r") have drivers;
// other languages need a CommandLanguage. kNotSupported names the language
// otherwise. Language names are matched case-insensitively.
[[nodiscard]] Result<LanguageSession> SessionForLanguage(
    const std::string& language, const SessionSetup& setup);

// How the box an agent ran in ended.
struct HostEnd {
  std::string limit;   // "memory", "cpu_time", "wall_time", ...; "" if none
  std::string reason;  // one line, e.g. "exited with status 2"
};

// How the hatcher reaches an agent: a stream fd and control over the box
// it runs in. Implementations: StartLocalAgent (no isolation; tests and
// --no-sandbox) and the sandbox adapter in cmd_hatch.
class AgentHost {
 public:
  virtual ~AgentHost() = default;
  // The hatcher's end of the control stream; owned by the host.
  virtual int control_fd() const = 0;
  // Applies a cell's memory, CPU and process limits before it runs.
  [[nodiscard]] virtual Status BeforeCell(const Limits& limits) = 0;
  // Non-blocking. Once the box has ended, why; nothing while it runs.
  virtual std::optional<HostEnd> Ended() = 0;
  // Ends the agent and everything it started. Safe to call twice.
  virtual void Kill() = 0;
  // True when Kill() by itself ends every process the agent started (a
  // sandbox: its first process is the agent, and killing it ends the
  // box). RunCells then skips asking the agent to shut down first.
  virtual bool KillEndsEverything() const { return false; }
  // Limit events counted by the box so far (never decreasing): OOM kills
  // and refused forks. A cell during which one grew is reported with the
  // memory or processes limit. Zeros when the box cannot count them.
  struct LimitEvents {
    uint64_t oom_kills = 0;
    uint64_t pids_max = 0;
  };
  virtual LimitEvents LimitEventCounts() { return {}; }
  // After each cell, before its output files are listed: brings the
  // output folder up to date (a no-op unless the box copies /out).
  [[nodiscard]] virtual Status AfterCell() { return {}; }
  // Bytes of files on the output folder's file system that the box's
  // processes deleted but still hold open: they fill the host's disk
  // though no listing of /out shows them. 0 where it cannot be known.
  virtual uint64_t HiddenOutBytes() { return 0; }
};

// Forks and execs `agent_path` with a socketpair end as its fd 3, with no
// isolation at all. The agent's stderr is the caller's.
[[nodiscard]] Result<std::unique_ptr<AgentHost>> StartLocalAgent(
    const std::string& agent_path);

// Host paths of the agent binary and drivers folder shipped with egg:
// beside the running executable, or in ../lib/egg from it.
struct AgentFiles {
  std::string agent;        // .../egg-agent
  std::string drivers_dir;  // .../drivers
};
[[nodiscard]] Result<AgentFiles> FindAgentFiles();

enum class CellStatus {
  kOk,           // ran to the end with status 0
  kError,        // ran to the end with a non-zero status or an exception
  kSessionDied,  // the interpreter exited or was killed
  kLimit,        // stopped by a limit (see CellResult::limit)
  kNotRun,       // not run: an earlier failure or an interrupt
  kAgentFailed,  // the agent or its box failed during the cell
};
const char* CellStatusName(CellStatus status);  // "ok", "error", ...

// Raw bytes of one stream, never decoded.
struct CapturedStream {
  std::string bytes;     // what was kept (at most the cap)
  uint64_t dropped = 0;  // bytes produced past the cap and not kept
  bool truncated() const { return dropped > 0; }
};

struct OutputFile {
  std::string path;  // relative to /out
  uint64_t size = 0;
  std::string sha256;  // lower-case hex
};

struct CellResult {
  uint32_t index = 0;
  std::string id;
  std::string language;
  CellStatus status = CellStatus::kNotRun;
  std::string limit;  // "wall_time", "output", "memory", ...; "" if none
  int exit_code = 0;  // driver status or process exit code
  int signal = 0;     // signal that ended the interpreter, 0 if none
  uint64_t duration_ms = 0;
  CapturedStream stdout_data;
  CapturedStream stderr_data;
  // This cell started a fresh session because the previous one of its
  // language died; `note` says so in words.
  bool fresh_session = false;
  std::string note;
  std::vector<OutputFile> files;  // files in /out new or changed by it
  // Display records the driver wrote on its fd 5 during this cell (JSON
  // lines, untrusted; see ParseDisplayRecords in egg/notebook.h). They
  // count toward the cell's output cap with stdout and stderr.
  CapturedStream display;
};

struct RunReport;

struct RunOptions {
  SessionSetup setup;
  bool stop_on_error = false;  // later cells are kNotRun after a failure
  // Host folder seen as /out, listed after each cell; "" skips listing.
  std::string output_dir;
  // Cap on the total apparent size of the files in output_dir (0: none).
  // Polled every 100 ms while a cell runs and at its end; past it the
  // session is stopped and the cell reported with limit "output".
  uint64_t out_max_bytes = 0;
  // The egg's wall time for the whole run (0: none): each cell's wall time
  // is cut to what is left, and once it is spent no further cell runs.
  uint64_t egg_wall_ms = 0;
  // Cap on the stdout, stderr and display bytes kept for all the cells
  // together (0: none): past it a cell's streams are cut, counted and
  // marked as at its own cap, so the results stay bounded however many
  // cells an egg has.
  uint64_t streams_max_bytes = 0;
  // What earlier sandboxes of the same run kept of the streams (cells
  // with permissions of their own run in sandboxes of their own): it
  // counts against streams_max_bytes as this run's own would.
  uint64_t streams_spent = 0;
  // A later sandbox of the same run uses output_dir: the files there stay
  // the sandbox user's (their modes are still cleared) until the last.
  bool out_kept_for_next = false;
  // Growth of output_dir's file system past what its listing and the
  // open descriptors of the box explain (a descriptor in flight in a
  // socket, a mapping of a deleted file) counts against out_max_bytes
  // once it passes the larger of this and out_max_bytes: other programs
  // writing to the same file system count there too.
  uint64_t unexplained_margin = 1ull << 30;
  // Set from a signal handler to stop: the running cell's box is killed,
  // later cells are kNotRun and the report says interrupted.
  const std::atomic<bool>* cancel = nullptr;
  // Called after each cell (e.g. to print a summary line).
  std::function<void(const CellResult&)> on_cell;
  // RunCellsInSandbox only: called with the final report once the cells
  // are done and the box has been killed (nothing in it runs), before
  // the hatcher waits for the box's end and removes its control groups,
  // so that work on the report (the results file) overlaps the kernel's
  // teardown. Not called when the run fails, has no sandbox or spans
  // several sandboxes (the caller then has the report on return).
  // RunCellsInSandbox still returns only after the teardown.
  std::function<void(const RunReport&)> on_report;
  // Slack past a cell's wall time before the hatcher kills the whole box
  // when the agent has not reported (the agent enforces wall time first).
  uint64_t grace_ms = 5000;
  // Runs the cells on the agent in place of RunCells (e.g.
  // RunCellsWithKernel from egg/kernel.h); empty: RunCells.
  std::function<Result<RunReport>(const std::vector<CellInput>&, AgentHost&,
                                  const RunOptions&)>
      runner;
};

struct RunReport {
  std::vector<CellResult> cells;
  bool interrupted = false;
  std::string agent_error;  // why the agent failed, "" if it did not
  // Why no later cell may run although the run was not interrupted and
  // the agent did not fail (the egg's output limit spent), "" if none.
  std::string run_ended;
  // The isolation the cells really ran under ("vm", "oci:runc", ...; the
  // choice `auto` made), "" when RunCells was called directly.
  std::string isolation;
  bool AllSucceeded() const;
};

// Runs `cells` in order on the agent behind `host`. Returns a report with
// one result per cell even when cells fail or the agent dies (then
// agent_error says why); an Error only for misuse (e.g. a language with no
// session, kNotSupported) found before anything runs.
[[nodiscard]] Result<RunReport> RunCells(const std::vector<CellInput>& cells,
                                         AgentHost& host,
                                         const RunOptions& options);

// Running the agent in a sandbox (egg/sandbox.h) and the cells in it.
struct SandboxRunSetup {
  std::string isolation = "namespaces";  // a SandboxBackend name
  bool no_sandbox = false;  // the `none` backend: no isolation at all
  // Host folder whose entries appear read-only at / (the runtime) ...
  std::string runtime_root;
  // ... or, for tests, / composed read-only from the host's /usr, /bin,
  // /lib, /lib64, /sbin and /etc. A weakening: it logs a warning.
  bool host_runtime = false;
  std::string data_dir;  // host folder seen read-only at /data; "" none
  // The tree digests of runtime_root and data_dir when known: the vm
  // backend caches its disk images by them.
  std::optional<Digest> runtime_digest;
  std::optional<Digest> data_digest;
  std::string output_dir;  // host folder seen as /out (fresh, existing)
  AgentFiles agent;        // host agent and drivers, bound at /.egg
  Limits egg_limits;       // whole-egg limits; unset take the defaults
  Permissions granted;     // weakenings the person granted
  // A fresh host folder seen writable at kSandboxExchangeDir, shared by
  // egg and the cells (the Jupyter kernel's sockets); "" for none.
  std::string exchange_dir;
};

// Builds the sandbox, starts the agent in it and runs `cells`. The agent
// and drivers are copied to a private folder bound read-only at /.egg.
// Cells run with the permissions granted for the egg, narrowed by their
// own: consecutive cells with the same permissions share one sandbox (and
// its sessions); where they change, the sandbox is replaced by one with
// the next cells' permissions, and the first cell of each language there
// is a fresh session. The egg's wall time covers all the sandboxes.
// kSandboxSetup (or kNotSupported) when the sandbox cannot be built;
// otherwise as RunCells. options.output_dir and options.setup.drivers_dir
// are filled in.
[[nodiscard]] Result<RunReport> RunCellsInSandbox(
    const std::vector<CellInput>& cells, const SandboxRunSetup& setup,
    RunOptions options);

// Hatch's temporary folders are "<parent>/egg-hatch-<pid>-XXXXXX" (0700),
// named for the hatch process that owns them. Returns the path, or kIo.
[[nodiscard]] Result<std::string> MakeHatchTempDir(
    const std::string& parent = "/tmp");

// Removes the folders of the form above whose owning pid is no longer
// alive (a hatch killed by SIGKILL cannot clean up after itself). Only
// real folders owned by this user are touched; a live pid's folder, even
// one that reused a dead hatch's pid, is kept. Returns how many were
// removed. Best effort: failures are skipped.
size_t SweepStaleHatchDirs(const std::string& parent = "/tmp");

// Context written at the top of the results JSON.
struct ResultsMeta {
  std::string egg;                   // file name of the egg
  std::string egg_digest;            // "sha256:..." of the egg's content
  std::string isolation;             // "namespaces", "none", ...
  std::vector<std::string> signers;  // as shown by verify
  std::vector<std::string> granted;  // permissions granted
};

// The results document (docs/HATCH.md, "Results JSON"): stdout/stderr as
// UTF-8 text when valid, else base64 with "encoding": "base64".
std::string ResultsJson(const RunReport& report, const ResultsMeta& meta);

// JSON-safe form of raw bytes and its inverse (for tests and readers).
struct EncodedBytes {
  std::string encoding;  // "utf-8" or "base64"
  std::string data;
};
EncodedBytes EncodeBytes(const std::string& bytes);
[[nodiscard]] Result<std::string> DecodeBytes(const EncodedBytes& encoded);

}  // namespace egg

#endif  // EGG_HATCH_H_

// Running an egg's cells as `egg hatch` does, shared by hatch and
// `egg build --precompute`: the consent rules (what the egg asks for
// beyond the defaults, agreed before any cell runs), the cells of its
// notebook, and the sandbox with its runtime, data and /out.
//
// This lives with the CLI rather than in src/hatch because it needs the
// notebook library, which itself depends on egg_hatch.
#ifndef EGG_CLI_EGG_RUN_H_
#define EGG_CLI_EGG_RUN_H_

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "egg/egg.h"
#include "egg/hatch.h"
#include "egg/notebook.h"
#include "egg/policy.h"
#include "egg/status.h"

namespace egg::cli {

// "'text'" with control characters escaped.
std::string QuoteForTerminal(const std::string& s);

// Asks a y/N question on /dev/tty (never stdin). Returns nullopt when
// there is no terminal.
std::optional<bool> AskTerminal(const std::string& question);

// A --grant word: network, limits, host-path:/PATH or device:/PATH.
// kInvalidArgument for anything else (a typo), before anything runs.
[[nodiscard]] Status CheckGrant(const std::string& grant);

// What the person agreed the egg may have.
struct Consent {
  Permissions permissions;
  Limits limits;  // the egg's limits merged with the defaults
  std::vector<std::string> granted;  // --grant words, for the results
};

// Lists on stderr what `manifest` asks beyond the defaults and agrees it:
// every ask must be named in `grants` or confirmed on /dev/tty. Returns
// kPermissionDenied ("not granted: ...") when it is not (exit 5: nothing
// may run), kInvalidArgument for malformed permissions or limits.
[[nodiscard]] Result<Consent> AgreeToEgg(
    const nlohmann::json& manifest, const std::vector<std::string>& grants);

// The code cells of `notebook` with their per-cell limits, in order.
[[nodiscard]] Result<std::vector<CellInput>> CellsOf(const Notebook& notebook);

struct EggRunOptions {
  std::string isolation = "namespaces";
  bool no_sandbox = false;
  bool host_runtime = false;
  std::string store;  // "" = the default store
  // Host folder seen as /out, created by the run (it must not exist)
  // once the runtime and data are in place.
  std::string output_dir;
  bool stop_on_error = false;
  // Python cells run under the display driver; their display records
  // arrive in each CellResult::display (RunFromHatch turns them into
  // nbformat outputs).
  bool rich_display = true;
  std::function<void(const CellResult&)> on_cell;
  // RunOptions::on_report: the report while the box is torn down.
  std::function<void(const RunReport&)> on_report;
  // "" runs the cells with egg's session drivers. "jupyter" runs them on
  // the Jupyter kernel the notebook names (kernel_name), else the default
  // kernel of its language; any other word names a kernelspec of the
  // runtime (docs/NOTEBOOKS.md, "The Jupyter kernel path").
  std::string kernel;
  std::string kernel_name;   // the notebook's kernelspec name, if any
};

// Runs `cells` of `egg` in the sandbox under `consent`: the runtime tree
// materialised in the store (or the host's with host_runtime), the data
// tree extracted read-only at /data. SIGINT and SIGTERM stop the run
// (the report says interrupted). Errors as RunCellsInSandbox.
[[nodiscard]] Result<RunReport> RunEggCells(const EggFile& egg,
                                            const std::vector<CellInput>& cells,
                                            const Consent& consent,
                                            const EggRunOptions& options);

// For EggFile::VerifyContent: when the egg's runtime tree (authenticated
// by the content root at Open) is already materialised in the store at
// `store_dir` ("" = the default store), a filter that is true for the
// chunks only that tree uses. RunEggCells will take the runtime from the
// store and read none of them; were the folder gone by then, it would
// extract them from the egg with checked reads. An empty function
// otherwise (every chunk is verified).
std::function<bool(const ChunkEntry&)> MaterialisedRuntimeChunks(
    const EggFile& egg, const std::string& store_dir);

// The exit code for an error of RunEggCells.
int RunErrorExitCode(const Error& error);

// One summary line per cell on stderr, with the end of a failing cell's
// stderr, escaped.
void PrintCellLine(const CellResult& c);

}  // namespace egg::cli

#endif  // EGG_CLI_EGG_RUN_H_

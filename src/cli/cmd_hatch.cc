// egg hatch: verifies an egg, asks the person for what it needs beyond the
// defaults, and runs its cells in a sandbox, writing a results JSON.
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/egg_run.h"
#include "common/atomic_file.h"
#include "common/text.h"
#include "common/trace.h"
#include "egg/crypto.h"
#include "egg/egg.h"
#include "egg/hatch.h"
#include "egg/manifest.h"
#include "egg/notebook.h"
#include "egg/sandbox.h"

namespace egg::cli {
namespace {

namespace fs = std::filesystem;

struct HatchArgs {
  std::string egg;
  std::string results;
  std::string out_dir;
  std::string isolation = "namespaces";
  std::string oci_runtime;
  bool no_sandbox = false;
  bool host_runtime = false;
  std::vector<std::string> grants;
  bool allow_unsigned = false;
  std::string trusted;
  std::string store;  // "" = the default store
  bool keep_going = false;
  bool stop_on_error = false;
  bool json = false;
  bool strict = false;  // compare without normalising anything away
  std::string kernel;   // "" built-in drivers; "jupyter" or a kernelspec
};

std::string Quote(const std::string& s) { return QuoteForTerminal(s); }

std::string DefaultResultsPath(const std::string& egg) {
  std::string base = egg;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".egg") == 0) {
    base.resize(base.size() - 4);
  }
  return base + ".results.json";
}

std::string DefaultOutDir(const std::string& egg) {
  std::string base = egg;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".egg") == 0) {
    base.resize(base.size() - 4);
  }
  return base + ".out";
}

// Each cell of the results gets its nbformat outputs (what `egg export
// --results` shows), and "outputs_error" when its display records were
// refused (the cell then counts as failed). Returns whether any was.
bool AddOutputs(const NotebookRun& fresh, nlohmann::json& doc) {
  bool refused = false;
  auto& cells = doc["cells"];
  if (!cells.is_array()) return false;
  for (size_t i = 0; i < cells.size() && i < fresh.cells.size(); ++i) {
    const CellRun& run = fresh.cells[i];
    if (!run.ran) continue;
    cells[i]["outputs"] = run.outputs;
    size_t at = run.failure.find("display records: ");
    if (at != std::string::npos) {
      cells[i]["outputs_error"] = run.failure.substr(at);
      refused = true;
      Warn("cell " + std::to_string(cells[i].value("index", 0) + 1) + ": " +
           run.failure.substr(at));
    }
  }
  return refused;
}

int RunHatch(const HatchArgs& a) {
  // 1. Open once, verify from that same open file, and say who signed.
  TraceStep("hatch: start");
  // Compiles the seccomp program on another thread while the egg is
  // verified: nothing of the egg's is involved in it.
  if (!a.no_sandbox) PrepareSandboxSetup();
  auto trust = crypto::LoadTrust(a.trusted);
  if (!trust) return Report(trust.error());
  TraceStep("hatch: trusted keys loaded");
  auto egg = EggFile::Open(a.egg, EggFile::Depth::kFull);
  if (!egg) {
    Report(egg.error());
    return egg.error().code() == Code::kCorruption ||
                   egg.error().code() == Code::kVerificationFailed
               ? kExitVerificationFailed
               : ExitCodeFor(egg.error().code());
  }
  TraceStep("hatch: egg opened");
  // Nothing is verified or run when the results could not be written.
  const std::string results =
      a.results.empty() ? DefaultResultsPath(a.egg) : a.results;
  if (auto s = CheckWritableTarget(results); !s) {
    Report(s.error().Wrap("results"));
    return kExitUsage;
  }
  // The results must not replace the egg they are about.
  struct stat egg_st, results_st;
  if (::stat(a.egg.c_str(), &egg_st) == 0 &&
      ::stat(results.c_str(), &results_st) == 0 &&
      egg_st.st_dev == results_st.st_dev &&
      egg_st.st_ino == results_st.st_ino) {
    Report(Error(Code::kInvalidArgument,
                 "results: '" + results + "'" +
                     " is the egg itself; name another file with -o"));
    return kExitUsage;
  }
  // A runtime already materialised in the store (from chunks verified
  // when it was extracted) is used from there: its chunks in this egg are
  // never read, so they are not hashed again (docs/HATCH.md, step 1).
  VerifyOptions verify_options;
  if (!a.host_runtime) {
    verify_options.skip = MaterialisedRuntimeChunks(*egg, a.store);
  }
  if (auto s = egg->VerifyContent(verify_options); !s) {
    Report(s.error());
    return kExitVerificationFailed;
  }
  TraceStep("hatch: content verified");
  const crypto::AllowedSigners* trust_ptr = *trust ? &**trust : nullptr;
  crypto::ChainReport chain =
      crypto::VerifyChain(egg->content_root(), egg->signatures(), trust_ptr,
                          static_cast<int64_t>(std::time(nullptr)));
  TraceStep("hatch: signatures checked");
  std::string summary = crypto::ChainSummary(chain);
  std::fprintf(
      stderr, "egg: %s: content intact%s; signatures: %s\n",
      Quote(a.egg).c_str(),
      verify_options.skip ? " (runtime taken from the store, not re-read)" : "",
      summary.c_str());
  if (chain.state == crypto::SignatureState::kInvalid) {
    Report(Error(Code::kVerificationFailed, summary));
    return kExitVerificationFailed;
  }
  // The manifest comes from whoever made the egg: apply the manifest
  // rules before anything from it is shown or asked.
  std::vector<std::string> tree_names;
  for (const TreeRef& t : egg->layout().trees) tree_names.push_back(t.name);
  if (auto stored =
          ParseStoredManifest(egg->manifest(), egg->notebook(), tree_names);
      !stored) {
    return Report(stored.error());
  }
  if (chain.state != crypto::SignatureState::kTrusted && !a.allow_unsigned) {
    auto yes = AskTerminal(
        "this egg is not signed by a key you trust. "
        "Run it anyway?");
    if (!yes) {
      Report(Error(Code::kPermissionDenied,
                   "the egg is not signed by a trusted key; pass "
                   "--allow-unsigned to run it without a terminal"));
      return kExitRefused;
    }
    if (!*yes) {
      Report(Error(Code::kPermissionDenied, "not confirmed"));
      return kExitRefused;
    }
  }

  // 2. What the egg asks for beyond the defaults, agreed before any cell.
  auto notebook = NotebookFromJson(egg->notebook());
  if (!notebook) return Report(notebook.error());
  auto cells = CellsOf(*notebook);
  if (!cells) return Report(cells.error());
  auto consent = AgreeToEgg(egg->manifest(), a.grants);
  if (!consent) {
    Report(consent.error());
    return consent.error().code() == Code::kPermissionDenied
               ? kExitRefused
               : ExitCodeFor(consent.error().code());
  }

  TraceStep("hatch: manifest, notebook and consent");

  // 3. The cells, in the sandbox.
  EggRunOptions options;
  options.isolation = a.isolation;
  options.no_sandbox = a.no_sandbox;
  options.host_runtime = a.host_runtime;
  options.store = a.store;
  options.output_dir = a.out_dir.empty() ? DefaultOutDir(a.egg) : a.out_dir;
  options.stop_on_error = a.stop_on_error;
  options.on_cell = PrintCellLine;
  options.kernel = a.kernel;
  options.kernel_name = notebook->kernel_name;
  // 4. Compare with stored outputs, write results, say how it went: in a
  // sandbox while the killed box is being torn down (on_report), else
  // once the run has returned.
  bool display_refused = false;
  bool finished = false;
  bool results_lost = false;
  auto finish = [&](const RunReport& report) {
    finished = true;
    TraceStep("hatch: cells run");
    std::error_code ec;
    std::string output_dir = fs::canonical(options.output_dir, ec).string();

    NotebookRun fresh = RunFromHatch(report, "");
    ReproReport repro = CompareNotebook(
        *notebook, fresh, a.strict ? StrictCompareOptions() : CompareOptions{});
    ResultsMeta meta;
    meta.egg = fs::path(a.egg).filename().string();
    meta.egg_digest = DigestRef(egg->content_root());
    // What really ran (auto's choice), not the word asked for.
    meta.isolation = a.no_sandbox               ? "none"
                     : report.isolation.empty() ? a.isolation
                                                : report.isolation;
    meta.signers = crypto::ChainReportLines(chain);
    meta.granted = consent->granted;
    std::string json = ResultsJson(report, meta);
    auto doc = nlohmann::json::parse(json, nullptr, false);
    if (!doc.is_discarded()) {
      doc["reproducibility"] = ReportToJson(repro);
      display_refused = AddOutputs(fresh, doc);
      doc["output_dir"] = output_dir;
      json = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
             "\n";
    }
    TraceStep("hatch: outputs compared, results encoded");
    // Renamed into place but not fsynced: two fsyncs cost more than the
    // rest of a short notebook's run on a busy disk, and a results file
    // lost in a machine crash is made again by hatching again.
    if (auto s = WriteFileAtomic(results, json, 0644, true,
                                 /*durable=*/false);
        !s) {
      Report(s.error().Wrap("writing the results"));
      results_lost = true;
      return;
    }
    if (a.json) std::fwrite(json.data(), 1, json.size(), stdout);
    if (repro.code_cells > 0) {
      std::fprintf(stderr, "%s", FormatReport(repro).c_str());
    }
    std::fprintf(stderr, "egg: results in %s, files in %s\n",
                 Quote(results).c_str(), Quote(output_dir).c_str());
    TraceStep("hatch: results written");
  };
  options.on_report = finish;
  auto report = RunEggCells(*egg, *cells, *consent, options);
  if (!report) {
    Report(report.error());
    return RunErrorExitCode(report.error());
  }
  if (!finished) finish(*report);
  TraceStep("hatch: sandbox gone");
  if (results_lost) return kExitUsage;

  if (report->interrupted) return kExitInterrupted;
  if (!report->agent_error.empty()) {
    Report(Error(Code::kSandboxSetup, report->agent_error));
  }
  return report->AllSucceeded() && !display_refused ? kExitOk : kExitCellFailed;
}

Registration reg(40, "hatch", [](CLI::App& app) {
  auto a = std::make_shared<HatchArgs>();
  CLI::App* sub = app.add_subcommand("hatch",
                                     "Verify an egg and run its cells in a "
                                     "sandbox");
  sub->add_option("egg", a->egg, "The egg")->required();
  sub->add_option("-o,--results", a->results,
                  "Results JSON (default NAME.results.json beside the egg)");
  sub->add_option("--out-dir", a->out_dir,
                  "Fresh folder for the cells' /out (default NAME.out)");
  sub->add_option("--isolation", a->isolation,
                  "Sandbox backend: namespaces (default), gvisor, oci, vm, "
                  "auto (the strongest that works here) or none");
  sub->add_option("--oci-runtime", a->oci_runtime,
                  "With --isolation oci: runc (default) or crun");
  sub->add_flag("--no-sandbox", a->no_sandbox,
                "Run with no isolation at all (same as --isolation none)");
  sub->add_flag("--host-runtime", a->host_runtime,
                "Use the host's /usr, /bin, /lib and /etc read-only as the "
                "runtime (for testing)");
  sub->add_option("--grant", a->grants,
                  "Grant a permission without asking: network, "
                  "host-path:PATH, device:PATH, limits");
  sub->add_flag("--strict", a->strict,
                "Compare outputs exactly: no address, timing or float "
                "normalisation");
  sub->add_flag("--allow-unsigned", a->allow_unsigned,
                "Run an unsigned or untrusted egg without asking");
  sub->add_option("--trusted", a->trusted, "OpenSSH allowed_signers file");
  sub->add_option("--store", a->store,
                  "Store whose cache holds the materialised runtime "
                  "(default $XDG_CACHE_HOME/egg)");
  sub->add_flag("--keep-going", a->keep_going,
                "Run every cell even after one fails (default)");
  sub->add_flag("--stop-on-error", a->stop_on_error,
                "Stop at the first failing cell");
  sub->add_flag("--json", a->json, "Also print the results JSON on stdout");
  sub->add_option("--kernel", a->kernel,
                  "Run the cells on a Jupyter kernel of the runtime: "
                  "'jupyter' (the notebook's kernel) or a kernelspec name "
                  "(default: egg's own session drivers)");
  return std::pair<CLI::App*, Runner>(sub, [a, sub] {
    HatchArgs args = *a;
    if (sub->count("--kernel") != 0 && args.kernel.empty()) {
      return Report(Error(Code::kInvalidArgument,
                          "--kernel needs 'jupyter' or a kernelspec name"));
    }
    if (!args.kernel.empty() && args.isolation == "auto") {
      // A kernel's sockets cross only the namespaces boundary, so auto has
      // one choice; the person is told rather than refused.
      Warn(
          "--isolation auto with --kernel: using namespaces, the only "
          "sandbox a kernel's sockets can cross");
      args.isolation = "namespaces";
    }
    if (args.isolation == "none") {
      args.no_sandbox = true;
    } else if (args.isolation != "namespaces" && args.isolation != "gvisor" &&
               args.isolation != "oci" && args.isolation != "vm" &&
               args.isolation != "auto") {
      return Report(Error(Code::kInvalidArgument,
                          "unknown isolation " + Quote(args.isolation) +
                              " (namespaces, gvisor, oci, vm, auto, none)"));
    }
    if (!args.oci_runtime.empty()) {
      if (args.isolation != "oci" ||
          (args.oci_runtime != "runc" && args.oci_runtime != "crun")) {
        return Report(Error(Code::kInvalidArgument,
                            "--oci-runtime takes runc or crun, with "
                            "--isolation oci"));
      }
      args.isolation = "oci:" + args.oci_runtime;
    }
    for (const auto& g : args.grants) {
      if (auto s = CheckGrant(g); !s) return Report(s.error());
    }
    if (args.keep_going && args.stop_on_error) {
      return Report(Error(Code::kInvalidArgument,
                          "--keep-going and --stop-on-error conflict"));
    }
    return RunHatch(args);
  });
});

}  // namespace
}  // namespace egg::cli

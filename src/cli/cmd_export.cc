// egg export: an egg's notebook (or a .ipynb) as ipynb, one self-contained
// HTML page, or Markdown, with the stored outputs or the fresh ones of a
// hatch (--results). With --report, also the reproducibility report on
// stderr. The egg's notebook is read from its summary sections; nothing is
// run.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/cli.h"
#include "common/atomic_file.h"
#include "common/fd.h"
#include "egg/egg.h"
#include "egg/notebook.h"

namespace egg::cli {
namespace {

struct ExportArgs {
  std::string input;
  std::string to = "html";
  std::string out;
  std::string results;
  bool report = false;
  bool strict = false;
  bool force = false;
  size_t max_output_bytes = 1u << 20;
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The notebook of an egg, or of a .ipynb file.
Result<Notebook> LoadNotebook(const std::string& path) {
  if (EndsWith(path, ".ipynb")) {
    auto imported = ImportIpynb(path);
    if (!imported) return Fail(imported.error());
    for (const auto& w : imported->warnings) Warn(path + ": " + w);
    return std::move(imported->notebook);
  }
  auto egg = EggFile::Open(path, EggFile::Depth::kSummary);
  if (!egg) return Fail(egg.error().Wrap(path));
  auto nb = NotebookFromJson(egg->notebook());
  if (!nb) return Fail(nb.error().Wrap(path));
  return nb;
}

int Run(const ExportArgs& a) {
  auto format = ParseExportFormat(a.to);
  if (!format) return Report(format.error());
  auto notebook = LoadNotebook(a.input);
  if (!notebook) return Report(notebook.error());

  std::optional<NotebookRun> run;
  std::optional<ReproReport> report;
  if (!a.results.empty()) {
    auto text = ReadFileToString(a.results, 1ull << 30);
    if (!text) return Report(text.error().Wrap(a.results));
    auto parsed = ParseRunResults(*text);
    if (!parsed) return Report(parsed.error().Wrap(a.results));
    run = std::move(*parsed);
    report = CompareNotebook(
        *notebook, *run, a.strict ? StrictCompareOptions() : CompareOptions{});
  } else if (a.report) {
    return Report(
        Error(Code::kInvalidArgument, "--report needs --results RESULTS.json"));
  }

  ExportOptions options;
  options.run = run ? &*run : nullptr;
  options.report = report ? &*report : nullptr;
  options.title = std::filesystem::path(a.input).stem().string();
  options.max_output_bytes = a.max_output_bytes;
  auto document = ExportNotebook(*notebook, *format, options);
  if (!document) return Report(document.error());

  if (a.out.empty() || a.out == "-") {
    std::fwrite(document->data(), 1, document->size(), stdout);
  } else if (auto s = WriteFileAtomic(a.out, *document, 0644, a.force); !s) {
    return Report(s.error().Wrap(a.out));
  }
  if (a.report && report) {
    std::fputs(FormatReport(*report).c_str(), stderr);
  }
  if (report && report->reproduced < report->code_cells && a.report) {
    return kExitCellFailed;
  }
  return kExitOk;
}

Registration reg(75, "export", [](CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  auto* cmd = app.add_subcommand(
      "export", "Export an egg's notebook as ipynb, HTML or Markdown");
  cmd->add_option("egg", a->input, "The egg (or a .ipynb notebook)")
      ->required();
  cmd->add_option("--to", a->to, "ipynb, html or md (default html)");
  cmd->add_option("-o,--output", a->out,
                  "Write here (atomically) instead of stdout");
  cmd->add_option("--results", a->results,
                  "Use the fresh outputs of this egg hatch results JSON");
  cmd->add_flag("--report", a->report,
                "Print the reproducibility report on stderr; exit 4 if a "
                "cell did not reproduce (needs --results)");
  cmd->add_flag("--force", a->force, "Replace an existing output file");
  cmd->add_flag("--strict", a->strict,
                "With --results: compare exactly (no address, timing or "
                "float normalisation)");
  cmd->add_option("--max-output-bytes", a->max_output_bytes,
                  "Cut HTML/Markdown outputs over this size (default 1 MiB)")
      ->check(WholeNumber(uint64_t{1} << 40));
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli

// Jupyter notebooks in and out of eggs: importing nbformat 4, the egg's
// notebook JSON section, exporting to ipynb/HTML/Markdown, and comparing
// fresh outputs with stored ones (the reproducibility report).
//
// Outputs are kept as nbformat-4 output objects (stream, display_data,
// execute_result, error) in nlohmann::json, with every multi-line string
// already joined into one string. Everything here treats its input as
// hostile: decoders check every field and fail with kInvalidArgument and a
// message naming the cell (1-based) and the field.
#ifndef EGG_NOTEBOOK_H_
#define EGG_NOTEBOOK_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "egg/status.h"

namespace egg {

enum class CellType { kCode, kMarkdown, kRaw };

const char* CellTypeName(CellType type);  // "code", "markdown", "raw"

struct NotebookCell {
  std::string id;  // [A-Za-z0-9_-]{1,64}, unique in the notebook
  CellType type = CellType::kCode;
  std::string language;  // code cells: "python", "r", "bash", ...
  std::string source;
  // Stored (precomputed) outputs: an array of nbformat-4 output objects.
  nlohmann::json outputs = nlohmann::json::array();
  // Markdown/raw attachments: {name: {mime: base64 string}}.
  nlohmann::json attachments = nlohmann::json::object();
  std::optional<int64_t> execution_count;
  // Fields of the egg section this library does not interpret
  // ("permissions", "limits", ...), kept as they were.
  nlohmann::json extra = nlohmann::json::object();
};

struct Notebook {
  std::string language;     // kernel language, lower case ("python", "r")
  std::string kernel_name;  // kernelspec name ("python3", "ir")
  std::string kernel_display_name;  // kernelspec display_name
  std::vector<NotebookCell> cells;
};

struct NotebookImport {
  Notebook notebook;
  std::vector<std::string> warnings;  // things dropped or guessed
};

// Limits on what the decoders accept.
inline constexpr uint64_t kMaxIpynbBytes = 256ull << 20;
inline constexpr size_t kMaxCells = 100000;
inline constexpr int kMaxJsonDepth = 64;

// Reads an nbformat-4 notebook (.ipynb). Fails with kNotFound/kIo if the
// file cannot be read and kInvalidArgument, naming the cell and field
// ("cell 7: 'outputs' must be an array"), if it is not valid nbformat 4.
[[nodiscard]] Result<NotebookImport> ImportIpynb(const std::string& path);
[[nodiscard]] Result<NotebookImport> ParseIpynb(std::string_view text);

// Parses JSON text with a nesting limit, without exceptions.
[[nodiscard]] Result<nlohmann::json> ParseJsonText(std::string_view text,
                                                   std::string_view what);

// The egg's notebook JSON section:
//   {"language": "python", "kernel": {"name", "display_name"},
//    "cells": [{"id", "type", "language", "source", "outputs",
//               "attachments"?, "execution_count"?, ...extra}]}
// See docs/NOTEBOOKS.md. NotebookFromJson checks every field.
nlohmann::json NotebookToJson(const Notebook& notebook);
[[nodiscard]] Result<Notebook> NotebookFromJson(const nlohmann::json& json);

// Checks one output object and returns it normalised (multi-line arrays
// joined). `where` prefixes error messages ("cell 3: output 2").
[[nodiscard]] Result<nlohmann::json> NormalizeOutput(
    const nlohmann::json& output, const std::string& where);

// --- Fresh results of a hatch ---------------------------------------------

struct CellRun {
  std::string id;    // the cell's id
  bool ran = false;  // false: skipped (not reached, refused, ...)
  bool failed = false;
  std::string failure;  // why, when failed: "timeout", "kernel died", ...
  nlohmann::json outputs = nlohmann::json::array();  // nbformat-4 outputs
  std::optional<int64_t> execution_count;
  double seconds = 0;
};

struct NotebookRun {
  std::vector<CellRun> cells;
  const CellRun* Find(std::string_view id) const;
};

// Results JSON: {"cells": [{"id", "ran"?, "status"?: "ok"|"error"|...,
// "failure"?, "outputs"?, "stdout"?, "stderr"?, "execution_count"?,
// "seconds"?}]}. Raw "stdout"/"stderr" strings become stream outputs when
// "outputs" is absent. Unknown fields are ignored.
[[nodiscard]] Result<NotebookRun> ParseRunResults(std::string_view text);
nlohmann::json RunResultsToJson(const NotebookRun& run);

struct RunReport;  // egg/hatch.h

// Reads a display file written by the Python display driver
// (src/hatch/drivers/python_display.py): one nbformat output object per
// line. Every record is checked with NormalizeOutput; kInvalidArgument
// names the line. At most kMaxDisplayRecords records.
inline constexpr size_t kMaxDisplayRecords = 10000;
[[nodiscard]] Result<nlohmann::json> ParseDisplayRecords(std::string_view text);

// Turns a hatch run into fresh outputs. For each cell, the display file
// "<display_dir>/cell-<index>.jsonl" is used when present and valid (""
// skips the lookup); otherwise raw stdout/stderr become stream outputs
// and a failed cell gets an error output naming its status. A display
// file that fails to parse is reported in the cell's `failure` note.
NotebookRun RunFromHatch(const RunReport& report,
                         const std::string& display_dir);

// --- Comparison ------------------------------------------------------------

enum class ImageCompare { kPixels, kHash, kIgnore };

struct CompareOptions {
  bool ignore_addresses = true;  // 0x7f3a... -> 0xADDR
  bool ignore_timings = true;    // "1.2 ms", "Wall time: 3 s" -> TIME
  bool ignore_trailing_whitespace = true;
  bool strip_ansi = true;           // colour codes (tracebacks)
  bool compare_stderr = false;      // warnings vary between versions
  bool compare_tracebacks = false;  // errors compare by ename and evalue
  // Decimal numbers with a '.' or exponent in text match when within this
  // relative difference (float summation changed between Python
  // versions); integers always match exactly. 0 demands equal text.
  double float_relative_tolerance = 1e-12;
  ImageCompare images = ImageCompare::kPixels;
  int pixel_tolerance = 16;            // per channel, 0-255
  double max_differing_pixels = 0.01;  // fraction allowed past tolerance
  std::vector<std::string> ignore_mime_types;
};

struct OutputComparison {
  bool equal = false;
  std::string diff;  // short, human-readable; empty when equal
};

// Compares two output arrays (nbformat-4, normalised) under `options`.
// Consecutive stream outputs of one name are joined before comparing.
OutputComparison CompareOutputs(const nlohmann::json& stored,
                                const nlohmann::json& fresh,
                                const CompareOptions& options);

// Applies the text normalisations of `options` (exposed for tests).
std::string NormalizeText(std::string_view text, const CompareOptions& options);

enum class CellVerdict {
  kReproduced,  // fresh output equals the stored one
  kDiffers,     // it does not; see diff
  kFailed,      // the cell failed to run (timeout, kernel death, ...)
  kNotRun,      // the cell did not run
  kNoStored,    // nothing stored to compare with, the fresh run printed
  kNotCode,     // markdown or raw cell
};

const char* CellVerdictName(CellVerdict verdict);

struct CellReport {
  size_t index = 0;  // 0-based
  std::string id;
  CellVerdict verdict = CellVerdict::kNotRun;
  std::string diff;
  // For a reproduced cell: the normalisations it needed to match, in a
  // fixed order ("addresses", "timings", "floats"); empty when the texts
  // matched without them. A real difference can hide behind these.
  std::vector<std::string> normalised;
};

// The verdict as shown to a person: "reproduced (after normalising:
// addresses, timings)" when normalisation was needed, else the name.
std::string CellVerdictText(const CellReport& report);

// Options that normalise nothing away: addresses, timings and float
// tolerance off (`--strict`).
CompareOptions StrictCompareOptions();

struct ReproReport {
  std::vector<CellReport> cells;
  size_t code_cells = 0;
  size_t reproduced = 0;
  size_t reproduced_after_normalising = 0;  // of `reproduced`
  const CellReport* Find(std::string_view id) const;
};

ReproReport CompareNotebook(const Notebook& notebook, const NotebookRun& run,
                            const CompareOptions& options);
// "cell 3 (id abc): differs\n  - stored ...\n  + fresh ...", then a total
// line. Text from the egg is escaped for a terminal.
std::string FormatReport(const ReproReport& report);
nlohmann::json ReportToJson(const ReproReport& report);

// --- Images ----------------------------------------------------------------

struct Image {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> rgba;  // width * height * 4 bytes
};

inline constexpr uint64_t kMaxImagePixels = 64ull << 20;

// Decodes a PNG with libpng into 8-bit RGBA. Fails with kInvalidArgument
// on a damaged PNG or one over kMaxImagePixels.
[[nodiscard]] Result<Image> DecodePng(std::string_view png);
// Decodes standard base64 (whitespace allowed); kInvalidArgument if bad.
[[nodiscard]] Result<std::string> DecodeBase64(std::string_view text);
std::string EncodeBase64(std::string_view bytes);

// --- Export ----------------------------------------------------------------

enum class ExportFormat { kIpynb, kHtml, kMarkdown };

[[nodiscard]] Result<ExportFormat> ParseExportFormat(std::string_view name);

struct ExportOptions {
  // When set, outputs come from this run; cells it lacks keep the stored
  // outputs. When null, the stored outputs are exported.
  const NotebookRun* run = nullptr;
  // When set, HTML and Markdown mark each code cell reproduced or not.
  const ReproReport* report = nullptr;
  std::string title = "notebook";
  // Text outputs and images over this are cut with a marker.
  size_t max_output_bytes = 1u << 20;
};

// All three return the whole document. Nothing from the notebook can run
// script in the HTML page: see docs/NOTEBOOKS.md for the rules.
[[nodiscard]] Result<std::string> ExportNotebook(const Notebook& notebook,
                                                 ExportFormat format,
                                                 const ExportOptions& options);

// HTML-escapes text (&, <, >, ", ').
std::string EscapeHtml(std::string_view text);
// Renders markdown with cmark-gfm (tables, strikethrough, autolinks), raw
// HTML and dangerous URLs suppressed.
std::string RenderMarkdown(std::string_view markdown);
// Syntax-highlighted, escaped HTML for code in `language`.
std::string HighlightCode(std::string_view code, std::string_view language);

}  // namespace egg

#endif  // EGG_NOTEBOOK_H_

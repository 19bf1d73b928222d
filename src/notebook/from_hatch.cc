// From a hatch run (egg/hatch.h) to nbformat outputs: display files from
// the Python display driver when present, raw streams otherwise.
#include <cctype>
#include <optional>

#include "common/fd.h"
#include "egg/hatch.h"
#include "egg/notebook.h"
#include "notebook/internal.h"

namespace egg {
namespace notebook_internal {

using nlohmann::json;

// Raw bytes as valid UTF-8 (bad sequences become U+FFFD), so that the
// JSON holding them can always be written.
std::string ValidUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    auto b = static_cast<uint8_t>(bytes[i]);
    size_t len = b < 0x80           ? 1
                 : (b >> 5) == 0x6  ? 2
                 : (b >> 4) == 0xE  ? 3
                 : (b >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<uint8_t>(bytes[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len > 1) {
      // Reject overlong forms and surrogates through a decode.
      uint32_t cp = b & (0x7F >> len);
      for (size_t k = 1; k < len; ++k) {
        cp = (cp << 6) | (static_cast<uint8_t>(bytes[i + k]) & 0x3F);
      }
      static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (!ok) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(bytes.substr(i, len));
    i += len;
  }
  return out;
}

// "ZeroDivisionError: division by zero" as the last line of a Python
// traceback on stderr, for runs without the display driver.
std::optional<json> PythonErrorFromStderr(std::string_view err) {
  size_t end = err.find_last_not_of("\n ");
  if (end == std::string_view::npos) return std::nullopt;
  size_t start = err.rfind('\n', end);
  start = start == std::string_view::npos ? 0 : start + 1;
  std::string_view line = err.substr(start, end - start + 1);
  size_t colon = line.find(": ");
  std::string_view name = line.substr(0, colon);
  if (name.empty() || name.size() > 200) return std::nullopt;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
          c == '.')) {
      return std::nullopt;
    }
  }
  std::string_view value =
      colon == std::string_view::npos ? "" : line.substr(colon + 2);
  size_t dot = name.rfind('.');
  if (dot != std::string_view::npos) name = name.substr(dot + 1);
  return json{{"output_type", "error"},
              {"ename", ValidUtf8(name)},
              {"evalue", ValidUtf8(value)},
              {"traceback", json::array()}};
}

}  // namespace notebook_internal

namespace {

using nlohmann::json;
using notebook_internal::PythonErrorFromStderr;
using notebook_internal::ValidUtf8;

constexpr uint64_t kMaxDisplayFileBytes = 256ull << 20;

std::string FailureOf(const CellResult& cell) {
  std::string what = CellStatusName(cell.status);
  if (!cell.limit.empty()) what += " (" + cell.limit + " limit)";
  if (!cell.note.empty()) what += ": " + cell.note;
  return what;
}

// Output a cell wrote to fd 1 past the driver (a subprocess, C code) is
// in the raw stdout but in no stream record. Stdout records are matched
// against the raw text in order; at the first that does not continue it,
// the rest of the raw text is placed there and later stdout records are
// dropped. The raw bytes stay the truth, and the work stays linear
// whatever the records hold.
json WithRawStdout(const json& records, const std::string& raw) {
  json out = json::array();
  size_t cursor = 0;
  bool matching = true;
  auto rest_of_raw = [&] {
    if (cursor < raw.size()) {
      out.push_back({{"output_type", "stream"},
                     {"name", "stdout"},
                     {"text", raw.substr(cursor)}});
    }
    cursor = raw.size();
  };
  for (const json& o : records) {
    if (o.value("output_type", "") == "stream" &&
        o.value("name", "") == "stdout") {
      const std::string& text = o["text"].get_ref<const std::string&>();
      if (matching && raw.size() - cursor >= text.size() &&
          raw.compare(cursor, text.size(), text) == 0) {
        cursor += text.size();
        out.push_back(o);
      } else if (matching) {
        matching = false;
        rest_of_raw();
      }
      continue;
    }
    out.push_back(o);
  }
  rest_of_raw();
  return out;
}

}  // namespace

Result<json> ParseDisplayRecords(std::string_view text) {
  json outputs = json::array();
  size_t line_no = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    std::string where = "display line " + std::to_string(line_no);
    if (outputs.size() >= kMaxDisplayRecords) {
      return Fail(Code::kInvalidArgument,
                  where + ": more than " + std::to_string(kMaxDisplayRecords) +
                      " outputs");
    }
    auto record = ParseJsonText(line, where);
    if (!record) return Fail(record.error());
    auto output = NormalizeOutput(*record, where);
    if (!output) return Fail(output.error());
    outputs.push_back(std::move(*output));
  }
  return outputs;
}

NotebookRun RunFromHatch(const RunReport& report,
                         const std::string& display_dir) {
  NotebookRun run;
  for (const CellResult& cell : report.cells) {
    CellRun out;
    out.id = cell.id;
    out.ran = cell.status != CellStatus::kNotRun;
    // Only a cell that finished with status ok, or that raised an error
    // the notebook records as an error output, can be reproduced: an
    // interrupt, a limit or a bare non-zero exit is a failure even when
    // the partial output happens to match the stored one.
    out.failed = out.ran && cell.status != CellStatus::kOk &&
                 cell.status != CellStatus::kError;
    out.seconds = static_cast<double>(cell.duration_ms) / 1000.0;

    bool have_display = false;
    std::string display_error;
    if (!cell.display.bytes.empty()) {
      // Records that came through the agent (egg hatch): a cell that
      // breaks them fails, whatever its status.
      auto outputs = ParseDisplayRecords(cell.display.bytes);
      if (outputs) {
        out.outputs =
            WithRawStdout(*outputs, ValidUtf8(cell.stdout_data.bytes));
        have_display = true;
      } else {
        display_error = "display records: " + outputs.error().message();
      }
    } else if (!display_dir.empty() && out.ran) {
      std::string path =
          display_dir + "/cell-" + std::to_string(cell.index) + ".jsonl";
      auto text = ReadFileToString(path, kMaxDisplayFileBytes);
      if (text) {
        auto outputs = ParseDisplayRecords(*text);
        if (outputs) {
          out.outputs = std::move(*outputs);
          have_display = true;
        } else {
          out.failure = outputs.error().message();
        }
      }
    }
    if (!have_display) {
      std::string stdout_text = ValidUtf8(cell.stdout_data.bytes);
      std::string stderr_text = ValidUtf8(cell.stderr_data.bytes);
      if (!stdout_text.empty()) {
        out.outputs.push_back({{"output_type", "stream"},
                               {"name", "stdout"},
                               {"text", stdout_text}});
      }
      if (!stderr_text.empty()) {
        out.outputs.push_back({{"output_type", "stream"},
                               {"name", "stderr"},
                               {"text", stderr_text}});
      }
      std::string lang = cell.language;
      if (cell.status == CellStatus::kError &&
          (lang == "python" || lang == "python3" || lang == "py")) {
        if (auto error = PythonErrorFromStderr(stderr_text)) {
          out.outputs.push_back(std::move(*error));
        }
      }
    }
    if (cell.status == CellStatus::kError) {
      bool raised = false;
      for (const auto& o : out.outputs) {
        raised = raised || o.value("output_type", "") == "error";
      }
      out.failed = !raised;
    }
    if (!display_error.empty() && out.ran) {
      out.failed = true;
      out.failure = display_error;
      if (cell.status != CellStatus::kOk) {
        out.failure = FailureOf(cell) + "; " + display_error;
      }
    } else if (out.failed) {
      std::string file_error = std::move(out.failure);
      out.failure = FailureOf(cell);
      if (!file_error.empty()) out.failure += "; " + file_error;
    }
    run.cells.push_back(std::move(out));
  }
  return run;
}

}  // namespace egg

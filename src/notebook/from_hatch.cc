// From a hatch run (egg/hatch.h) to nbformat outputs: display files from
// the Python display driver when present, raw streams otherwise.
#include <algorithm>
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

// The field of a stream record that stands for raw bytes instead of
// holding text: "this many bytes of the raw stream, at this point".
constexpr char kRawBytesField[] = "egg_raw_bytes";
constexpr uint64_t kMaxRawBytes = 1ull << 40;

// A stream record that refers to raw bytes ({"output_type": "stream",
// "name", "egg_raw_bytes": N}, no "text"): checked here, since
// NormalizeOutput knows only nbformat. Returns nullopt for any other
// record.
Result<std::optional<json>> RawReference(const json& record,
                                         const std::string& where) {
  if (!record.is_object() || !record.contains(kRawBytesField)) {
    return std::optional<json>();
  }
  const json& n = record[kRawBytesField];
  auto name = record.find("name");
  if (record.value("output_type", json()) != "stream" ||
      record.contains("text") || name == record.end() ||
      (*name != "stdout" && *name != "stderr") || !n.is_number_unsigned() ||
      n.get<uint64_t>() > kMaxRawBytes) {
    return Fail(Code::kInvalidArgument,
                where + ": '" + kRawBytesField +
                    "' must be a byte count on a stdout or stderr stream "
                    "without 'text'");
  }
  return std::optional<json>(json{{"output_type", "stream"},
                                  {"name", *name},
                                  {kRawBytesField, n.get<uint64_t>()}});
}

// Places the raw streams into the records. A raw reference takes its
// bytes from its stream at that stream's cursor (fewer when the stream
// was cut at the output cap). Output a cell wrote to fd 1 past the
// driver (a subprocess, C code) is in the raw stdout but in no record:
// stdout text records are matched against the raw bytes in order; at the
// first that does not continue them, the rest of the raw stdout is
// placed there and later stdout records are dropped; what is left at the
// end is appended. Raw stderr is only taken by reference (the driver
// writes a cell's traceback there as well as in its error record). The
// raw bytes stay the truth, and the work stays linear whatever the
// records hold.
json WithRawStreams(const json& records, const std::string& raw_out,
                    const std::string& raw_err) {
  json out = json::array();
  size_t cursor = 0, err_cursor = 0;
  bool matching = true;
  auto rest_of_raw = [&] {
    if (cursor < raw_out.size()) {
      out.push_back({{"output_type", "stream"},
                     {"name", "stdout"},
                     {"text", ValidUtf8(raw_out.substr(cursor))}});
    }
    cursor = raw_out.size();
  };
  for (const json& o : records) {
    if (o.value("output_type", "") != "stream") {
      out.push_back(o);
      continue;
    }
    bool is_out = o.value("name", "") == "stdout";
    if (o.contains(kRawBytesField)) {
      const std::string& raw = is_out ? raw_out : raw_err;
      size_t& at = is_out ? cursor : err_cursor;
      uint64_t take = std::min<uint64_t>(o[kRawBytesField].get<uint64_t>(),
                                         raw.size() - at);
      if (take > 0) {
        out.push_back({{"output_type", "stream"},
                       {"name", o["name"]},
                       {"text", ValidUtf8(raw.substr(at, take))}});
        at += take;
      }
      continue;
    }
    if (!is_out) {
      out.push_back(o);
      continue;
    }
    const std::string& text = o["text"].get_ref<const std::string&>();
    if (matching && raw_out.size() - cursor >= text.size() &&
        raw_out.compare(cursor, text.size(), text) == 0) {
      cursor += text.size();
      out.push_back(o);
    } else if (matching) {
      matching = false;
      rest_of_raw();
    }
  }
  rest_of_raw();
  return out;
}

// One decoder for display records; `allow_raw` admits raw references
// (records that came through the agent, resolved by WithRawStreams).
Result<json> ParseRecords(std::string_view text, bool allow_raw) {
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
    if (allow_raw) {
      auto reference = RawReference(*record, where);
      if (!reference) return Fail(reference.error());
      if (reference->has_value()) {
        outputs.push_back(std::move(**reference));
        continue;
      }
    }
    auto output = NormalizeOutput(*record, where);
    if (!output) return Fail(output.error());
    outputs.push_back(std::move(*output));
  }
  return outputs;
}

}  // namespace

Result<json> ParseDisplayRecords(std::string_view text) {
  return ParseRecords(text, false);
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
      auto outputs = ParseRecords(cell.display.bytes, true);
      if (outputs) {
        out.outputs = WithRawStreams(*outputs, cell.stdout_data.bytes,
                                     cell.stderr_data.bytes);
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

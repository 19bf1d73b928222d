// nbformat-4 import and the egg's notebook JSON section. One decoder per
// structure: DecodeCell/NormalizeOutput are used for both .ipynb files and
// the egg section, so a hostile egg meets the same checks as a notebook.
#include <algorithm>
#include <cctype>
#include <set>

#include "common/fd.h"
#include "common/text.h"
#include "egg/notebook.h"
#include "notebook/internal.h"

namespace egg {
namespace {

using nlohmann::json;

Error Invalid(const std::string& where, const std::string& what) {
  return Error(Code::kInvalidArgument, where + ": " + what);
}

// nlohmann's parser recurses per nesting level; refuse deep input before
// handing it over.
Status CheckDepth(std::string_view text, std::string_view what) {
  if (JsonNestingWithin(text, kMaxJsonDepth)) return {};
  return Fail(Code::kInvalidArgument,
              std::string(what) + ": JSON nested deeper than " +
                  std::to_string(kMaxJsonDepth) + " levels");
}

// A multi-line string: nbformat allows a string or an array of strings.
Result<std::string> MultiLine(const json& value, const std::string& where,
                              const char* field) {
  if (value.is_string()) return value.get<std::string>();
  if (!value.is_array()) {
    return Fail(Invalid(where, std::string("'") + field +
                                   "' must be a string or a list of "
                                   "strings"));
  }
  std::string out;
  for (const auto& line : value) {
    if (!line.is_string()) {
      return Fail(Invalid(
          where, std::string("'") + field + "' must contain only strings"));
    }
    out += line.get_ref<const std::string&>();
  }
  return out;
}

bool IsJsonMime(std::string_view mime) {
  return mime == "application/json" ||
         (mime.size() > 5 && mime.substr(mime.size() - 5) == "+json");
}

bool IsValidMime(std::string_view mime) {
  if (mime.empty() || mime.size() > 255) return false;
  size_t slash = mime.find('/');
  if (slash == std::string_view::npos || slash == 0 ||
      slash + 1 == mime.size()) {
    return false;
  }
  for (char c : mime) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '/' && c != '.' &&
        c != '+' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

// {mime: data}, with text data joined.
Result<json> MimeBundle(const json& value, const std::string& where,
                        const char* field) {
  if (!value.is_object()) {
    return Fail(
        Invalid(where, std::string("'") + field + "' must be an object"));
  }
  json out = json::object();
  for (const auto& [mime, data] : value.items()) {
    if (!IsValidMime(mime)) {
      return Fail(
          Invalid(where, std::string("'") + field + "' has a bad MIME type"));
    }
    if (IsJsonMime(mime)) {
      out[mime] = data;
      continue;
    }
    auto text =
        MultiLine(data, where + ": '" + field + "." + mime + "'", "data");
    if (!text) return Fail(text.error());
    out[mime] = std::move(*text);
  }
  return out;
}

bool IsValidCellId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

Result<std::optional<int64_t>> ExecutionCount(const json& cell,
                                              const std::string& where) {
  auto it = cell.find("execution_count");
  if (it == cell.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) {
    return Fail(Invalid(where,
                        "'execution_count' must be an integer or "
                        "null"));
  }
  return it->get<int64_t>();
}

Result<json> Outputs(const json& value, const std::string& where) {
  if (!value.is_array()) {
    return Fail(Invalid(where, "'outputs' must be an array"));
  }
  json out = json::array();
  size_t n = 0;
  for (const auto& output : value) {
    ++n;
    auto normal =
        NormalizeOutput(output, where + ": output " + std::to_string(n));
    if (!normal) return Fail(normal.error());
    out.push_back(std::move(*normal));
  }
  return out;
}

Result<json> Attachments(const json& cell, const std::string& where) {
  auto it = cell.find("attachments");
  if (it == cell.end() || it->is_null()) return json::object();
  if (!it->is_object()) {
    return Fail(Invalid(where, "'attachments' must be an object"));
  }
  json out = json::object();
  for (const auto& [name, bundle] : it->items()) {
    if (name.empty() || name.size() > 255) {
      return Fail(Invalid(where, "an attachment name is empty or too long"));
    }
    auto b = MimeBundle(bundle, where, "attachments");
    if (!b) return Fail(b.error());
    out[name] = std::move(*b);
  }
  return out;
}

std::string LowerAscii(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// The kernel language: kernelspec.language, else language_info.name, else
// a guess from the kernel name.
std::string KernelLanguage(const json& metadata, const std::string& name) {
  std::string lang =
      StringField(metadata.value("kernelspec", json()), "language");
  if (lang.empty()) {
    lang = StringField(metadata.value("language_info", json()), "name");
  }
  if (lang.empty()) {
    std::string k = LowerAscii(name);
    if (k.rfind("python", 0) == 0) lang = "python";
    if (k == "ir" || k == "r") lang = "r";
    if (k == "bash") lang = "bash";
  }
  return LowerAscii(lang);
}

// Decodes one cell; `ipynb` selects the nbformat field names
// ("cell_type", "metadata") over the egg section's ("type", "extra").
Result<NotebookCell> DecodeCell(const json& cell, size_t index,
                                const std::string& default_language,
                                bool ipynb) {
  std::string where = "cell " + std::to_string(index + 1);
  if (!cell.is_object()) return Fail(Invalid(where, "must be an object"));

  const char* type_key = ipynb ? "cell_type" : "type";
  auto type_it = cell.find(type_key);
  if (type_it == cell.end() || !type_it->is_string()) {
    return Fail(
        Invalid(where, std::string("'") + type_key + "' must be a string"));
  }
  NotebookCell out;
  const std::string& type = type_it->get_ref<const std::string&>();
  if (type == "code") {
    out.type = CellType::kCode;
  } else if (type == "markdown") {
    out.type = CellType::kMarkdown;
  } else if (type == "raw") {
    out.type = CellType::kRaw;
  } else {
    return Fail(Invalid(where, std::string("'") + type_key +
                                   "' must be code, markdown or raw"));
  }

  auto id_it = cell.find("id");
  if (id_it != cell.end()) {
    if (!id_it->is_string() ||
        !IsValidCellId(id_it->get_ref<const std::string&>())) {
      return Fail(Invalid(where,
                          "'id' must be 1-64 characters of "
                          "[A-Za-z0-9_-]"));
    }
    out.id = id_it->get<std::string>();
  } else if (!ipynb) {
    return Fail(Invalid(where, "'id' is missing"));
  }

  auto source_it = cell.find("source");
  if (source_it == cell.end()) {
    return Fail(Invalid(where, "'source' is missing"));
  }
  auto source = MultiLine(*source_it, where, "source");
  if (!source) return Fail(source.error());
  out.source = std::move(*source);

  if (ipynb) {
    auto meta = cell.find("metadata");
    if (meta != cell.end() && !meta->is_object()) {
      return Fail(Invalid(where, "'metadata' must be an object"));
    }
  }

  if (out.type == CellType::kCode) {
    out.language = default_language;
    if (!ipynb) {
      auto lang = cell.find("language");
      if (lang != cell.end()) {
        if (!lang->is_string()) {
          return Fail(Invalid(where, "'language' must be a string"));
        }
        out.language = lang->get<std::string>();
      }
    }
    auto outputs_it = cell.find("outputs");
    if (outputs_it == cell.end()) {
      if (ipynb) return Fail(Invalid(where, "'outputs' is missing"));
    } else {
      auto outputs = Outputs(*outputs_it, where);
      if (!outputs) return Fail(outputs.error());
      out.outputs = std::move(*outputs);
    }
    auto count = ExecutionCount(cell, where);
    if (!count) return Fail(count.error());
    out.execution_count = *count;
  } else {
    auto outputs_it = cell.find("outputs");
    if (outputs_it != cell.end() && ipynb) {
      return Fail(Invalid(where, "only code cells may have 'outputs'"));
    }
  }

  auto attachments = Attachments(cell, where);
  if (!attachments) return Fail(attachments.error());
  out.attachments = std::move(*attachments);

  if (!ipynb) {
    static const std::set<std::string> kKnown = {
        "id",      "type",        "language",       "source",
        "outputs", "attachments", "execution_count"};
    for (const auto& [key, value] : cell.items()) {
      if (!kKnown.count(key)) out.extra[key] = value;
    }
  }
  return out;
}

// Gives every cell an id; ids must be unique.
Status AssignIds(std::vector<NotebookCell>& cells) {
  std::set<std::string> seen;
  for (const auto& cell : cells) {
    if (!cell.id.empty()) seen.insert(cell.id);
  }
  std::set<std::string> used;
  for (size_t i = 0; i < cells.size(); ++i) {
    auto& cell = cells[i];
    if (cell.id.empty()) {
      // Deterministic ids for nbformat < 4.5, which has none.
      std::string base = "cell-" + std::to_string(i + 1);
      std::string id = base;
      for (int k = 2; seen.count(id) || used.count(id); ++k) {
        id = base + "-" + std::to_string(k);
      }
      cell.id = id;
    } else if (used.count(cell.id)) {
      return Fail(Invalid("cell " + std::to_string(i + 1),
                          "'id' \"" + cell.id + "\" repeats an earlier cell"));
    }
    used.insert(cell.id);
  }
  return {};
}

// A raw stream of the hatch results: a string, or {"encoding": "utf-8" |
// "base64", "data": ...} as egg hatch writes it.
Result<std::string> RawStream(const json& cell, const char* name,
                              const std::string& where) {
  auto it = cell.find(name);
  if (it == cell.end() || it->is_null()) return std::string();
  if (it->is_string()) {
    return notebook_internal::ValidUtf8(it->get_ref<const std::string&>());
  }
  if (!it->is_object()) {
    return Fail(Invalid(
        where, std::string("'") + name + "' must be a string or an object"));
  }
  std::string encoding = StringField(*it, "encoding");
  std::string data = StringField(*it, "data");
  if (encoding == "base64") {
    auto bytes = DecodeBase64(data);
    if (!bytes) return Fail(bytes.error().Wrap(where + ": '" + name + "'"));
    return notebook_internal::ValidUtf8(*bytes);
  }
  if (encoding != "utf-8" && !encoding.empty()) {
    return Fail(Invalid(
        where, std::string("'") + name + ".encoding' must be utf-8 or base64"));
  }
  return notebook_internal::ValidUtf8(data);
}

}  // namespace

const char* CellTypeName(CellType type) {
  switch (type) {
    case CellType::kCode:
      return "code";
    case CellType::kMarkdown:
      return "markdown";
    case CellType::kRaw:
      return "raw";
  }
  return "code";
}

Result<json> ParseJsonText(std::string_view text, std::string_view what) {
  if (auto depth = CheckDepth(text, what); !depth) return Fail(depth.error());
  json value = json::parse(text.begin(), text.end(), nullptr,
                           /*allow_exceptions=*/false);
  if (value.is_discarded()) {
    return Fail(Code::kInvalidArgument, std::string(what) + ": not valid JSON");
  }
  return value;
}

Result<json> NormalizeOutput(const json& output, const std::string& where) {
  if (!output.is_object()) return Fail(Invalid(where, "must be an object"));
  auto type_it = output.find("output_type");
  if (type_it == output.end() || !type_it->is_string()) {
    return Fail(Invalid(where, "'output_type' must be a string"));
  }
  const std::string& type = type_it->get_ref<const std::string&>();
  json out = {{"output_type", type}};

  if (type == "stream") {
    auto name = output.find("name");
    if (name == output.end() || !name->is_string() ||
        (*name != "stdout" && *name != "stderr")) {
      return Fail(Invalid(where, "'name' must be stdout or stderr"));
    }
    auto text_it = output.find("text");
    if (text_it == output.end()) {
      return Fail(Invalid(where, "'text' is missing"));
    }
    auto text = MultiLine(*text_it, where, "text");
    if (!text) return Fail(text.error());
    out["name"] = *name;
    out["text"] = std::move(*text);
    return out;
  }

  if (type == "display_data" || type == "execute_result") {
    auto data_it = output.find("data");
    if (data_it == output.end()) {
      return Fail(Invalid(where, "'data' is missing"));
    }
    auto data = MimeBundle(*data_it, where, "data");
    if (!data) return Fail(data.error());
    out["data"] = std::move(*data);
    auto meta = output.find("metadata");
    if (meta == output.end() || meta->is_null()) {
      out["metadata"] = json::object();
    } else if (!meta->is_object()) {
      return Fail(Invalid(where, "'metadata' must be an object"));
    } else {
      out["metadata"] = *meta;
    }
    if (type == "execute_result") {
      auto count = ExecutionCount(output, where);
      if (!count) return Fail(count.error());
      out["execution_count"] =
          count->has_value() ? json(**count) : json(nullptr);
    }
    return out;
  }

  if (type == "error") {
    for (const char* key : {"ename", "evalue"}) {
      auto it = output.find(key);
      if (it == output.end() || !it->is_string()) {
        return Fail(
            Invalid(where, std::string("'") + key + "' must be a string"));
      }
      out[key] = *it;
    }
    auto tb = output.find("traceback");
    json lines = json::array();
    if (tb != output.end()) {
      if (!tb->is_array()) {
        return Fail(Invalid(where, "'traceback' must be a list of strings"));
      }
      for (const auto& line : *tb) {
        if (!line.is_string()) {
          return Fail(Invalid(where,
                              "'traceback' must be a list of "
                              "strings"));
        }
        lines.push_back(line);
      }
    }
    out["traceback"] = std::move(lines);
    return out;
  }

  return Fail(Invalid(where,
                      "'output_type' must be stream, display_data, "
                      "execute_result or error"));
}

Result<NotebookImport> ParseIpynb(std::string_view text) {
  auto parsed = ParseJsonText(text, "notebook");
  if (!parsed) return Fail(parsed.error());
  const json& nb = *parsed;
  if (!nb.is_object()) {
    return Fail(Code::kInvalidArgument, "notebook: must be a JSON object");
  }

  auto major = nb.find("nbformat");
  if (major == nb.end() || !major->is_number_integer()) {
    return Fail(Code::kInvalidArgument,
                "notebook: 'nbformat' must be an integer");
  }
  if (major->get<int64_t>() != 4) {
    return Fail(Code::kNotSupported,
                "notebook: nbformat " + major->dump() +
                    " is not supported (convert it to 4 with "
                    "'jupyter nbconvert --to notebook')");
  }

  NotebookImport result;
  Notebook& out = result.notebook;
  auto meta_it = nb.find("metadata");
  json metadata = json::object();
  if (meta_it != nb.end()) {
    if (!meta_it->is_object()) {
      return Fail(Code::kInvalidArgument,
                  "notebook: 'metadata' must be an object");
    }
    metadata = *meta_it;
  }
  json kernelspec = metadata.value("kernelspec", json::object());
  out.kernel_name = StringField(kernelspec, "name");
  out.kernel_display_name = StringField(kernelspec, "display_name");
  out.language = KernelLanguage(metadata, out.kernel_name);
  if (out.language.empty()) {
    out.language = "python";
    result.warnings.push_back(
        "notebook names no kernel language; assuming python");
  }

  auto cells = nb.find("cells");
  if (cells == nb.end() || !cells->is_array()) {
    return Fail(Code::kInvalidArgument, "notebook: 'cells' must be an array");
  }
  if (cells->size() > kMaxCells) {
    return Fail(Code::kInvalidArgument, "notebook: too many cells");
  }
  for (size_t i = 0; i < cells->size(); ++i) {
    auto cell = DecodeCell((*cells)[i], i, out.language, /*ipynb=*/true);
    if (!cell) return Fail(cell.error());
    out.cells.push_back(std::move(*cell));
  }
  if (auto ids = AssignIds(out.cells); !ids) return Fail(ids.error());
  return result;
}

Result<NotebookImport> ImportIpynb(const std::string& path) {
  auto text = ReadFileToString(path, kMaxIpynbBytes);
  if (!text) return Fail(text.error().Wrap(path));
  auto nb = ParseIpynb(*text);
  if (!nb) return Fail(nb.error().Wrap(path));
  return nb;
}

json NotebookToJson(const Notebook& notebook) {
  json cells = json::array();
  for (const auto& cell : notebook.cells) {
    json c = cell.extra.is_object() ? cell.extra : json::object();
    c["id"] = cell.id;
    c["type"] = CellTypeName(cell.type);
    c["source"] = cell.source;
    if (cell.type == CellType::kCode) {
      c["language"] = cell.language;
      c["outputs"] = cell.outputs;
      if (cell.execution_count) c["execution_count"] = *cell.execution_count;
    }
    if (!cell.attachments.empty()) c["attachments"] = cell.attachments;
    cells.push_back(std::move(c));
  }
  return {{"language", notebook.language},
          {"kernel",
           {{"name", notebook.kernel_name},
            {"display_name", notebook.kernel_display_name}}},
          {"cells", std::move(cells)}};
}

Result<Notebook> NotebookFromJson(const json& value) {
  if (!value.is_object()) {
    return Fail(Code::kInvalidArgument,
                "notebook section: must be a JSON object");
  }
  Notebook out;
  out.language = LowerAscii(StringField(value, "language"));
  auto kernel = value.find("kernel");
  if (kernel != value.end()) {
    if (!kernel->is_object()) {
      return Fail(Code::kInvalidArgument,
                  "notebook section: 'kernel' must be an object");
    }
    out.kernel_name = StringField(*kernel, "name");
    out.kernel_display_name = StringField(*kernel, "display_name");
  }
  auto cells = value.find("cells");
  if (cells == value.end() || !cells->is_array()) {
    return Fail(Code::kInvalidArgument,
                "notebook section: 'cells' must be an array");
  }
  if (cells->size() > kMaxCells) {
    return Fail(Code::kInvalidArgument, "notebook section: too many cells");
  }
  for (size_t i = 0; i < cells->size(); ++i) {
    auto cell = DecodeCell((*cells)[i], i, out.language, /*ipynb=*/false);
    if (!cell) return Fail(cell.error().Wrap("notebook section"));
    out.cells.push_back(std::move(*cell));
  }
  if (auto ids = AssignIds(out.cells); !ids) {
    return Fail(ids.error().Wrap("notebook section"));
  }
  return out;
}

const CellRun* NotebookRun::Find(std::string_view id) const {
  for (const auto& cell : cells) {
    if (cell.id == id) return &cell;
  }
  return nullptr;
}

Result<NotebookRun> ParseRunResults(std::string_view text) {
  auto parsed = ParseJsonText(text, "results");
  if (!parsed) return Fail(parsed.error());
  const json& value = *parsed;
  if (!value.is_object() || !value.contains("cells") ||
      !value["cells"].is_array()) {
    return Fail(Code::kInvalidArgument, "results: 'cells' must be an array");
  }
  NotebookRun run;
  size_t index = 0;
  for (const auto& cell : value["cells"]) {
    std::string where = "results: cell " + std::to_string(++index);
    if (!cell.is_object()) return Fail(Invalid(where, "must be an object"));
    CellRun out;
    out.id = StringField(cell, "id");
    if (!IsValidCellId(out.id)) {
      return Fail(Invalid(where, "'id' must be a cell id"));
    }
    std::string status = StringField(cell, "status");
    std::string language = StringField(cell, "language");
    out.ran = !status.empty() && status != "skipped" && status != "not_run";
    if (auto it = cell.find("ran"); it != cell.end()) {
      if (!it->is_boolean()) {
        return Fail(Invalid(where, "'ran' must be true or false"));
      }
      out.ran = it->get<bool>();
    }
    out.failed = status == "failed" || status == "timeout" ||
                 status == "session_died" || status == "limit" ||
                 status == "agent_failed";
    out.failure = StringField(cell, "failure");
    if (out.failed && out.failure.empty()) {
      out.failure = status;
      std::string limit = StringField(cell, "limit");
      std::string note = StringField(cell, "note");
      if (!limit.empty()) out.failure += " (" + limit + " limit)";
      if (!note.empty()) out.failure += ": " + note;
    }
    // egg hatch: the cell's display records were refused.
    if (std::string refused = StringField(cell, "outputs_error");
        !refused.empty()) {
      out.failed = true;
      out.failure = refused;
    }
    if (auto it = cell.find("outputs"); it != cell.end()) {
      auto outputs = Outputs(*it, where);
      if (!outputs) return Fail(outputs.error());
      out.outputs = std::move(*outputs);
    } else {
      std::string err;
      for (const char* name : {"stdout", "stderr"}) {
        auto text = RawStream(cell, name, where);
        if (!text) return Fail(text.error());
        if (!text->empty()) {
          out.outputs.push_back(
              {{"output_type", "stream"}, {"name", name}, {"text", *text}});
        }
        if (std::string_view(name) == "stderr") err = *text;
      }
      if (status == "error" &&
          (language == "python" || language == "python3" || language == "py")) {
        auto error = notebook_internal::PythonErrorFromStderr(err);
        if (error) out.outputs.push_back(std::move(*error));
      }
    }
    auto count = ExecutionCount(cell, where);
    if (!count) return Fail(count.error());
    out.execution_count = *count;
    if (auto it = cell.find("seconds"); it != cell.end() && it->is_number()) {
      out.seconds = it->get<double>();
    }
    run.cells.push_back(std::move(out));
  }
  return run;
}

json RunResultsToJson(const NotebookRun& run) {
  json cells = json::array();
  for (const auto& cell : run.cells) {
    json c = {{"id", cell.id},
              {"ran", cell.ran},
              {"status", !cell.ran     ? "not_run"
                         : cell.failed ? "failed"
                                       : "ok"},
              {"outputs", cell.outputs},
              {"seconds", cell.seconds}};
    if (cell.failed) c["failure"] = cell.failure;
    if (cell.execution_count) c["execution_count"] = *cell.execution_count;
    cells.push_back(std::move(c));
  }
  return {{"cells", std::move(cells)}};
}

}  // namespace egg

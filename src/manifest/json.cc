// The manifest's two stored forms: the canonical manifest JSON and the
// notebook JSON section. Both come from nlohmann::json, whose objects keep
// keys sorted (std::map) and whose integer output ignores the locale; only
// strings and integers are written, never floating point.
#include <nlohmann/json.hpp>
#include <set>

#include "egg/manifest.h"

namespace egg {
namespace {

using json = nlohmann::json;

json PermissionsJson(const Permissions& p) {
  json host_paths = json::array();
  for (const HostPath& h : p.host_paths) {
    host_paths.push_back(
        {{"host", h.host}, {"sandbox", h.sandbox}, {"writable", h.writable}});
  }
  return {{"network", p.network},
          {"host_paths", std::move(host_paths)},
          {"devices", p.devices}};
}

json LimitsJson(const Limits& l) {
  json out = json::object();
  auto put = [&](const char* key, const std::optional<uint64_t>& v) {
    if (v) out[key] = *v;
  };
  put("wall_ms", l.wall_ms);
  put("cpu_ms", l.cpu_ms);
  put("memory_bytes", l.memory_bytes);
  put("processes", l.processes);
  put("scratch_bytes", l.scratch_bytes);
  put("output_bytes", l.output_bytes);
  return out;
}

json RuntimeJson(const RuntimeSpec& r) {
  json out = {{"kind", RuntimeKindName(r.kind)}};
  // An egg without a runtime has no tree; hatch needs --host-runtime.
  if (r.kind != RuntimeKind::kNone) out["tree"] = "runtime";
  switch (r.kind) {
    case RuntimeKind::kDigest:
      out["digest"] = r.digest;
      break;
    case RuntimeKind::kDebian:
      out["suite"] = r.suite;
      out["packages"] = r.packages;
      break;
    case RuntimeKind::kOci:
      out["reference"] = r.reference;
      out["digest"] = r.digest;
      break;
    default:
      // Folder and tarball paths belong to the author's machine; the
      // tree's digest in the layout table identifies the content.
      break;
  }
  return out;
}

Result<std::string> Dump(const json& value, const char* what) {
  try {
    return value.dump(-1, ' ', false, json::error_handler_t::strict);
  } catch (const json::exception& e) {
    return Fail(Code::kInvalidArgument,
                std::string(what) + ": not valid UTF-8 (" + e.what() + ")");
  }
}

std::string KernelName(const std::string& language) {
  if (language == "python") return "python3";
  if (language == "r") return "ir";
  return language;
}

std::string KernelDisplayName(const std::string& language) {
  if (language == "python") return "Python 3";
  if (language == "r") return "R";
  if (language == "bash") return "Bash";
  return language;
}

}  // namespace

Result<nlohmann::json> ManifestJsonValue(const Manifest& m) {
  json entries = json::array();
  for (const DataEntry& e : m.data) {
    entries.push_back(
        {{"path", e.to}, {"type", e.is_folder ? "folder" : "file"}});
  }
  std::set<std::string> languages;
  size_t code_cells = 0;
  for (const ManifestCell& c : m.cells) {
    if (c.type != ManifestCellType::kCode) continue;
    ++code_cells;
    languages.insert(c.language);
  }
  json langs = json::object();
  for (const ManifestLanguage& l : m.languages) {
    langs[l.name] = {{"command", l.command}, {"suffix", l.suffix}};
  }
  return json{
      {"egg_manifest", kManifestJsonVersion},
      {"languages", std::move(langs)},
      {"name", m.name},
      {"description", m.description},
      {"author", m.author},
      {"license", m.license},
      {"created", m.created},
      {"permissions", PermissionsJson(m.permissions)},
      {"limits", LimitsJson(m.limits)},
      {"runtime", RuntimeJson(m.runtime)},
      {"data",
       {{"tree", "data"},
        {"mount", "/data"},
        {"entries", std::move(entries)},
        {"files", m.data_summary.files},
        {"folders", m.data_summary.folders},
        {"bytes", m.data_summary.bytes}}},
      {"cells",
       {{"total", m.cells.size()},
        {"code", code_cells},
        {"languages",
         std::vector<std::string>(languages.begin(), languages.end())}}},
  };
}

Result<nlohmann::json> NotebookJsonValue(const Manifest& m) {
  json cells = json::array();
  std::string language;
  for (const ManifestCell& c : m.cells) {
    json cell = {{"id", c.id},
                 {"type", ManifestCellTypeName(c.type)},
                 {"source", c.source}};
    if (c.type == ManifestCellType::kCode) {
      if (language.empty()) language = c.language;
      cell["language"] = c.language;
      cell["outputs"] = json::array();
      if (c.permissions) cell["permissions"] = PermissionsJson(*c.permissions);
      json limits = LimitsJson(c.limits);
      if (!limits.empty()) cell["limits"] = std::move(limits);
    }
    cells.push_back(std::move(cell));
  }
  return json{{"language", language},
              {"kernel",
               {{"name", KernelName(language)},
                {"display_name", KernelDisplayName(language)}}},
              {"cells", std::move(cells)}};
}

Result<std::string> ManifestJson(const Manifest& manifest) {
  auto value = ManifestJsonValue(manifest);
  if (!value) return Fail(value.error());
  return Dump(*value, "manifest JSON");
}

Result<std::string> NotebookJson(const Manifest& manifest) {
  auto value = NotebookJsonValue(manifest);
  if (!value) return Fail(value.error());
  return Dump(*value, "notebook JSON");
}

}  // namespace egg

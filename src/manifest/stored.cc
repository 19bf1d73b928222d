// The stored manifest check: the manifest JSON and notebook JSON of an
// egg come from whoever made the egg, not necessarily from `egg build`, so
// hatch and info apply the same rules to them that the egg.yaml parser
// applies before anything is shown to a person or run.
#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/names.h"
#include "common/text.h"
#include "egg/hash.h"
#include "egg/manifest.h"
#include "manifest/rules.h"

namespace egg {
namespace {

using json = nlohmann::json;
using namespace manifest_rules;  // NOLINT: the shared rules of rules.h

// The egg's bytes as they are: the message is escaped once, where it is
// printed (escaping here too would show "\\x1b" for ESC).
std::string Quote(std::string_view s) {
  return "'" + std::string(s) + "'";
}

tl::unexpected<Error> Bad(const std::string& where, const std::string& what) {
  return Fail(Code::kInvalidArgument, where + " " + what);
}

// A whole number >= 0 (parsed JSON gives unsigned; a value built in
// memory may be a signed integer).
std::optional<uint64_t> WholeNumber(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(v.get<int64_t>());
  }
  return std::nullopt;
}

// A required or optional member of an object, typed.
const json* Member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

Result<std::string> StringAt(const json& object, const char* key,
                             const std::string& where, bool required) {
  const json* v = Member(object, key);
  if (v == nullptr) {
    if (required) return Bad(where, "is missing '" + std::string(key) + "'");
    return std::string();
  }
  if (!v->is_string()) {
    return Bad(where + "." + key, "must be a string");
  }
  return v->get<std::string>();
}

Result<bool> BoolAt(const json& object, const char* key,
                    const std::string& where) {
  const json* v = Member(object, key);
  if (v == nullptr) return false;
  if (!v->is_boolean()) return Bad(where + "." + key, "must be true or false");
  return v->get<bool>();
}

Result<const json*> ObjectAt(const json& object, const char* key,
                             const std::string& where, bool required) {
  const json* v = Member(object, key);
  if (v == nullptr) {
    if (required) return Bad(where, "is missing '" + std::string(key) + "'");
    return nullptr;
  }
  if (!v->is_object()) return Bad(where + "." + key, "must be an object");
  return v;
}

Result<Permissions> PermissionsFrom(const json& j, const std::string& where) {
  if (!j.is_object()) return Bad(where, "must be an object");
  Permissions out;
  auto network = BoolAt(j, "network", where);
  if (!network) return tl::unexpected(network.error());
  out.network = *network;

  if (const json* hp = Member(j, "host_paths")) {
    if (!hp->is_array()) return Bad(where + ".host_paths", "must be a list");
    std::set<std::string> seen;
    for (size_t i = 0; i < hp->size(); ++i) {
      const json& item = (*hp)[i];
      std::string w = where + ".host_paths[" + std::to_string(i) + "]";
      if (!item.is_object()) return Bad(w, "must be an object");
      HostPath h;
      auto host = StringAt(item, "host", w, true);
      if (!host) return tl::unexpected(host.error());
      auto sandbox = StringAt(item, "sandbox", w, true);
      if (!sandbox) return tl::unexpected(sandbox.error());
      if (!IsCanonicalAbsolute(*host) || *host == "/") {
        return Bad(w + ".host", Quote(*host) +
                                    " must be an absolute path without '.',"
                                    " '..' or '//' (and not '/')");
      }
      if (!IsCanonicalAbsolute(*sandbox)) {
        return Bad(w + ".sandbox", Quote(*sandbox) +
                                       " must be an absolute path without"
                                       " '.', '..' or '//'");
      }
      if (IsReservedSandboxPath(*sandbox)) {
        return Bad(w + ".sandbox", Quote(*sandbox) + " is reserved by egg");
      }
      if (!seen.insert(*sandbox).second) {
        return Bad(w + ".sandbox", Quote(*sandbox) + " is mapped twice");
      }
      auto writable = BoolAt(item, "writable", w);
      if (!writable) return tl::unexpected(writable.error());
      h.host = *host;
      h.sandbox = *sandbox;
      h.writable = *writable;
      out.host_paths.push_back(std::move(h));
    }
  }

  if (const json* devices = Member(j, "devices")) {
    if (!devices->is_array()) return Bad(where + ".devices", "must be a list");
    std::set<std::string> seen;
    for (size_t i = 0; i < devices->size(); ++i) {
      const json& d = (*devices)[i];
      std::string w = where + ".devices[" + std::to_string(i) + "]";
      if (!d.is_string()) return Bad(w, "must be a string");
      std::string path = d.get<std::string>();
      if (!IsCanonicalAbsolute(path) || !path.starts_with("/dev/")) {
        return Bad(w, Quote(path) + " must be a canonical path under /dev/");
      }
      if (!seen.insert(path).second) {
        return Bad(w, Quote(path) + " is listed twice");
      }
      out.devices.push_back(std::move(path));
    }
  }
  return out;
}

// `bound`: the most each limit may be (every field set).
Result<Limits> LimitsFrom(const json& j, const std::string& where,
                          const Limits& bound, const char* bound_name,
                          bool per_cell) {
  if (!j.is_object()) return Bad(where, "must be an object");
  if (per_cell && j.contains("scratch_bytes")) {
    return Bad(where + ".scratch_bytes",
               "is set for the whole egg, not per cell");
  }
  struct Field {
    const char* key;
    std::optional<uint64_t> Limits::*member;
  };
  static const Field kFields[] = {
      {"wall_ms", &Limits::wall_ms},
      {"cpu_ms", &Limits::cpu_ms},
      {"memory_bytes", &Limits::memory_bytes},
      {"processes", &Limits::processes},
      {"scratch_bytes", &Limits::scratch_bytes},
      {"output_bytes", &Limits::output_bytes},
  };
  const Limits min = MinimumLimits();
  Limits out;
  for (const Field& f : kFields) {
    const json* v = Member(j, f.key);
    if (v == nullptr) continue;
    std::string w = where + "." + f.key;
    std::optional<uint64_t> number = WholeNumber(*v);
    if (!number) return Bad(w, "must be a whole number");
    uint64_t value = *number;
    if (value < *(min.*f.member)) {
      return Bad(w, std::to_string(value) + " is less than the minimum " +
                        MinimumLimitText(f.key));
    }
    if (value > *(bound.*f.member)) {
      return Bad(w, std::to_string(value) + " is more than " + bound_name);
    }
    out.*f.member = value;
  }
  return out;
}

Status CheckRuntime(const json& m, const std::vector<std::string>& trees,
                    StoredManifest* out) {
  auto runtime = ObjectAt(m, "runtime", "manifest", true);
  if (!runtime) return tl::unexpected(runtime.error());
  const json& r = **runtime;
  auto kind = StringAt(r, "kind", "manifest.runtime", true);
  if (!kind) return tl::unexpected(kind.error());
  static const char* kKinds[] = {"folder", "tarball", "digest",
                                 "debian", "oci",     "none"};
  if (std::find(std::begin(kKinds), std::end(kKinds), *kind) ==
      std::end(kKinds)) {
    return Bad("manifest.runtime.kind", Quote(*kind) + " is not a known kind");
  }
  if (*kind == "digest" || *kind == "oci") {
    auto digest = StringAt(r, "digest", "manifest.runtime", true);
    if (!digest) return tl::unexpected(digest.error());
    if (!digest->starts_with("sha256:") || !ParseDigest(*digest)) {
      return Bad("manifest.runtime.digest",
                 Quote(*digest) + " is not sha256:<64 hex>");
    }
  }
  out->runtime_kind = *kind;
  if (*kind == "none") {
    // Built without a runtime: only `egg hatch --host-runtime` runs it.
    if (r.contains("tree")) {
      return Bad("manifest.runtime.tree", "is set for kind 'none'");
    }
    return {};
  }
  auto tree = StringAt(r, "tree", "manifest.runtime", true);
  if (!tree) return tl::unexpected(tree.error());
  // The layout fixes the name; a manifest pointing elsewhere would
  // describe a tree hatch does not run.
  if (*tree != "runtime") {
    return Bad("manifest.runtime.tree", Quote(*tree) + " must be 'runtime'");
  }
  if (std::find(trees.begin(), trees.end(), "runtime") == trees.end()) {
    return Bad("manifest.runtime.tree",
               "'runtime' is not a tree of this egg");
  }
  out->runtime_kind = *kind;
  return {};
}

Status CheckData(const json& m, const std::vector<std::string>& trees,
                 StoredManifest* out) {
  auto data = ObjectAt(m, "data", "manifest", false);
  if (!data) return tl::unexpected(data.error());
  if (*data == nullptr) return {};
  const json& d = **data;
  auto tree = StringAt(d, "tree", "manifest.data", true);
  if (!tree) return tl::unexpected(tree.error());
  if (*tree != "data") {
    return Bad("manifest.data.tree", Quote(*tree) + " must be 'data'");
  }
  auto mount = StringAt(d, "mount", "manifest.data", true);
  if (!mount) return tl::unexpected(mount.error());
  if (*mount != "/data") {
    return Bad("manifest.data.mount", Quote(*mount) + " must be '/data'");
  }
  const json* entries = Member(d, "entries");
  if (entries == nullptr || !entries->is_array()) {
    return Bad("manifest.data.entries", "must be a list");
  }
  for (size_t i = 0; i < entries->size(); ++i) {
    const json& e = (*entries)[i];
    std::string w = "manifest.data.entries[" + std::to_string(i) + "]";
    if (!e.is_object()) return Bad(w, "must be an object");
    auto path = StringAt(e, "path", w, true);
    if (!path) return tl::unexpected(path.error());
    auto norm = NormalizeRelativePath(*path);
    if (!norm || *norm != *path) {
      return Bad(w + ".path", Quote(*path) +
                                  " must be a normalised relative path"
                                  " without '..'");
    }
    auto type = StringAt(e, "type", w, true);
    if (!type) return tl::unexpected(type.error());
    if (*type != "file" && *type != "folder") {
      return Bad(w + ".type", Quote(*type) + " must be file or folder");
    }
  }
  for (const char* key : {"files", "folders", "bytes"}) {
    const json* v = Member(d, key);
    if (v == nullptr || !WholeNumber(*v)) {
      return Bad("manifest.data." + std::string(key),
                 "must be a whole number");
    }
  }
  out->has_data = !entries->empty();
  if (out->has_data &&
      std::find(trees.begin(), trees.end(), "data") == trees.end()) {
    return Bad("manifest.data.tree", "'data' is not a tree of this egg");
  }
  return {};
}

Status CheckLanguages(const json& m, StoredManifest* out) {
  auto langs = ObjectAt(m, "languages", "manifest", false);
  if (!langs) return tl::unexpected(langs.error());
  if (*langs == nullptr) return {};
  for (const auto& [name, value] : (*langs)->items()) {
    std::string w = "manifest.languages." + name;
    if (!IsLanguage(name) || IsBuiltinLanguage(name)) {
      return Bad(w, "is not a language name that may be declared");
    }
    if (!value.is_object()) return Bad(w, "must be an object");
    ManifestLanguage lang;
    lang.name = name;
    const json* command = Member(value, "command");
    if (command == nullptr || !command->is_array() || command->empty() ||
        command->size() > 64) {
      return Bad(w + ".command", "must be a list of 1 to 64 arguments");
    }
    bool has_file = false;
    for (const json& arg : *command) {
      if (!arg.is_string()) return Bad(w + ".command", "has a non-string");
      std::string a = arg.get<std::string>();
      if (a.empty() || a.size() > 4096 || !IsPrintableUtf8(a)) {
        return Bad(w + ".command",
                   "has an empty, long or unprintable argument");
      }
      has_file = has_file || a.find("{file}") != std::string::npos;
      lang.command.push_back(std::move(a));
    }
    if (!has_file) return Bad(w + ".command", "must contain {file}");
    auto suffix = StringAt(value, "suffix", w, false);
    if (!suffix) return tl::unexpected(suffix.error());
    if (!suffix->empty() && !IsLanguageSuffix(*suffix)) {
      return Bad(w + ".suffix", Quote(*suffix) + " is not '.' and 1-16 of"
                                                 " [A-Za-z0-9]");
    }
    lang.suffix = *suffix;
    out->languages.push_back(std::move(lang));
  }
  return {};
}

bool Within(const Permissions& cell, const Permissions& egg) {
  if (cell.network && !egg.network) return false;
  for (const HostPath& hp : cell.host_paths) {
    bool found = std::any_of(
        egg.host_paths.begin(), egg.host_paths.end(), [&](const HostPath& e) {
          return e.host == hp.host && e.sandbox == hp.sandbox &&
                 (e.writable || !hp.writable);
        });
    if (!found) return false;
  }
  for (const std::string& d : cell.devices) {
    if (std::find(egg.devices.begin(), egg.devices.end(), d) ==
        egg.devices.end()) {
      return false;
    }
  }
  return true;
}

Status CheckCells(const json& m, const json& notebook, StoredManifest* out) {
  if (!notebook.is_object()) return Bad("notebook", "must be an object");
  const json* cells = Member(notebook, "cells");
  if (cells == nullptr || !cells->is_array() || cells->empty()) {
    return Bad("notebook.cells", "must be a non-empty list");
  }
  const Limits bound = MergeLimits(out->limits, DefaultEggLimits());
  std::set<std::string> ids;
  size_t code = 0;
  for (size_t i = 0; i < cells->size(); ++i) {
    const json& c = (*cells)[i];
    std::string w = "notebook cell " + std::to_string(i + 1);
    if (!c.is_object()) return Bad(w, "must be an object");
    auto id = StringAt(c, "id", w, true);
    if (!id) return tl::unexpected(id.error());
    if (!IsCellId(*id)) {
      return Bad(w + " id", Quote(*id) + " must be 1-64 of [A-Za-z0-9_-]");
    }
    if (!ids.insert(*id).second) return Bad(w + " id", "is used twice");
    auto type = StringAt(c, "type", w, true);
    if (!type) return tl::unexpected(type.error());
    if (*type == "markdown" || *type == "raw") {
      for (const char* key : {"permissions", "limits"}) {
        if (c.contains(key)) {
          return Bad(w, "'" + std::string(key) + "' is only for code cells");
        }
      }
      continue;
    }
    if (*type != "code") {
      return Bad(w + " type", Quote(*type) + " is not code, markdown or raw");
    }
    ++code;
    StoredCell cell;
    cell.index = i;
    cell.id = *id;
    auto language = StringAt(c, "language", w, true);
    if (!language) return tl::unexpected(language.error());
    if (!IsLanguage(*language)) {
      return Bad(w + " language",
                 Quote(*language) + " must be 1-32 of [a-z0-9+._-]");
    }
    cell.language = *language;
    if (const json* p = Member(c, "permissions")) {
      auto perms = PermissionsFrom(*p, w + " permissions");
      if (!perms) return tl::unexpected(perms.error());
      if (!Within(*perms, out->permissions)) {
        return Bad(w + " permissions",
                   "ask for more than the egg's permissions");
      }
      cell.permissions = std::move(*perms);
    }
    if (const json* l = Member(c, "limits")) {
      auto limits =
          LimitsFrom(*l, w + " limits", bound, "the egg's limit", true);
      if (!limits) return tl::unexpected(limits.error());
      cell.limits = *limits;
    }
    out->code_cells.push_back(std::move(cell));
  }
  if (code == 0) return Bad("notebook.cells", "has no code cell");

  // The summary in the manifest must describe this notebook.
  auto summary = ObjectAt(m, "cells", "manifest", true);
  if (!summary) return tl::unexpected(summary.error());
  const json* total = Member(**summary, "total");
  const json* code_count = Member(**summary, "code");
  if (total == nullptr || WholeNumber(*total) != cells->size()) {
    return Bad("manifest.cells.total", "does not match the notebook");
  }
  if (code_count == nullptr || WholeNumber(*code_count) != code) {
    return Bad("manifest.cells.code", "does not match the notebook");
  }
  return {};
}

Status CheckMetadata(const json& m, StoredManifest* out) {
  const json* version = Member(m, "egg_manifest");
  if (version == nullptr) return Bad("manifest", "is missing 'egg_manifest'");
  if (WholeNumber(*version) != static_cast<uint64_t>(kManifestJsonVersion)) {
    return Bad("manifest.egg_manifest",
               version->dump() +
                   " is not a version this egg reads (" +
                   std::to_string(kManifestJsonVersion) + ")");
  }
  out->version = kManifestJsonVersion;

  auto name = StringAt(m, "name", "manifest", true);
  if (!name) return tl::unexpected(name.error());
  if (!IsSafeName(*name)) {
    return Bad("manifest.name",
               Quote(*name) + " must be 1-64 of [A-Za-z0-9._-]");
  }
  out->name = *name;
  struct Text {
    const char* key;
    std::string* out;
    bool multi_line;
  };
  for (const Text& t : {Text{"description", &out->description, true},
                        Text{"author", &out->author, false},
                        Text{"license", &out->license, false}}) {
    auto v = StringAt(m, t.key, "manifest", false);
    if (!v) return tl::unexpected(v.error());
    bool ok = t.multi_line ? IsTextUtf8(*v) : IsPrintableUtf8(*v);
    if (!ok || v->size() > 64 * 1024) {
      return Bad("manifest." + std::string(t.key),
                 "has a control character, invalid UTF-8 or is too long");
    }
    *t.out = *v;
  }
  if (!out->license.empty()) {
    if (Status s = CheckSpdxExpression(out->license); !s) {
      return Bad("manifest.license", s.error().message());
    }
  }
  auto created = StringAt(m, "created", "manifest", true);
  if (!created) return tl::unexpected(created.error());
  auto t = ParseRfc3339Utc(*created);
  if (!t || FormatRfc3339Utc(*t) != *created) {
    return Bad("manifest.created",
               Quote(*created) + " is not YYYY-MM-DDTHH:MM:SSZ");
  }
  out->created = *created;
  return {};
}

}  // namespace

Result<StoredManifest> ParseStoredManifest(
    const nlohmann::json& manifest, const nlohmann::json& notebook,
    const std::vector<std::string>& tree_names) {
  if (!manifest.is_object()) return Bad("manifest", "must be an object");
  StoredManifest out;
  if (Status s = CheckMetadata(manifest, &out); !s) {
    return tl::unexpected(s.error());
  }

  auto perms = ObjectAt(manifest, "permissions", "manifest", true);
  if (!perms) return tl::unexpected(perms.error());
  auto p = PermissionsFrom(**perms, "manifest.permissions");
  if (!p) return tl::unexpected(p.error());
  out.permissions = std::move(*p);

  auto limits = ObjectAt(manifest, "limits", "manifest", true);
  if (!limits) return tl::unexpected(limits.error());
  auto l = LimitsFrom(**limits, "manifest.limits", MaximumLimits(),
                      "the maximum", false);
  if (!l) return tl::unexpected(l.error());
  out.limits = *l;

  for (Status s : {CheckRuntime(manifest, tree_names, &out),
                   CheckData(manifest, tree_names, &out),
                   CheckLanguages(manifest, &out),
                   CheckCells(manifest, notebook, &out)}) {
    if (!s) return tl::unexpected(s.error());
  }
  return out;
}

}  // namespace egg

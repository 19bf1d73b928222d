// The egg.yaml decoder. yaml-cpp builds the node tree (it throws; every
// call into it is caught here); this file then walks that tree once,
// accepting only the documented keys and types, and checks every path the
// manifest names against the file system without following a symlink.
#include "egg/manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/names.h"
#include "common/text.h"
#include "egg/hash.h"
#include "manifest/rules.h"

namespace egg {
namespace {

// Folder nesting accepted inside a data folder (the format's path depth).
constexpr int kMaxDataDepth = 64;
constexpr uint64_t kMaxDataEntries = 1ull << 24;
constexpr size_t kMaxCells = 10000;
constexpr size_t kMaxTextBytes = 64 * 1024;  // name, author, description

using Node = YAML::Node;
using namespace manifest_rules;  // NOLINT: the shared rules of rules.h

// Edit distance, for "did you mean" on unknown keys.
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string Quote(std::string_view s) {
  return "'" + EscapeForTerminal(s) + "'";
}

// A YAML mapping whose keys have been checked against an allowed set.
struct Fields {
  Node node;
  std::map<std::string, Node> values;

  const Node* Get(const std::string& key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : &it->second;
  }
};

class Parser {
 public:
  Parser(std::string folder, std::string display,
         const ManifestOptions& options)
      : folder_(std::move(folder)),
        display_(std::move(display)),
        options_(options) {}

  Result<Manifest> Run(std::string_view yaml);

 private:
  // ---- messages -----------------------------------------------------------
  tl::unexpected<Error> At(const Node& node, const std::string& message,
                           Code code = Code::kInvalidArgument) const {
    return AtMark(node.Mark(), message, code);
  }
  tl::unexpected<Error> AtMark(const YAML::Mark& mark,
                               const std::string& message,
                               Code code = Code::kInvalidArgument) const {
    int line = mark.line >= 0 ? mark.line + 1 : 1;
    int column = mark.column >= 0 ? mark.column + 1 : 1;
    return Fail(code, display_ + ":" + std::to_string(line) + ":" +
                          std::to_string(column) + ": " + message);
  }
  static std::string In(const std::string& where) {
    return where.empty() ? "" : " in " + where;
  }

  // ---- typed access -------------------------------------------------------
  Result<Fields> Map(const Node& node, const std::string& where,
                     std::initializer_list<const char*> allowed) const;
  Result<std::string> String(const Node& node, const std::string& what) const;
  Result<bool> Bool(const Node& node, const std::string& what) const;
  Result<uint64_t> Count(const Node& node, const std::string& what) const;
  Result<std::vector<Node>> Sequence(const Node& node,
                                     const std::string& what) const;

  // ---- sections -----------------------------------------------------------
  Status Metadata(const Fields& top);
  Status Created(const Fields& top);
  Result<Limits> ParseLimits(const Node& node, const std::string& where,
                             const Limits& bound, const std::string& bound_name,
                             bool per_cell) const;
  Result<Permissions> ParsePermissions(const Node& node,
                                       const std::string& where) const;
  Status CheckCellPermissions(const Permissions& cell, const Node& node,
                              const std::string& where) const;
  Status Languages(const Node& node);
  Status Cells(const Node& node);
  Status Cell(const Node& node, size_t index);
  Status Data(const Node& node);
  Status Runtime(const Node& node);

  // ---- file system --------------------------------------------------------
  // Opens `relative` (already normalised) below the manifest folder one
  // component at a time with O_NOFOLLOW. Fails on a symlink anywhere.
  enum class Want { kFile, kFolder, kEither };
  Result<UniqueFd> OpenBelow(const std::string& relative, const Node& node,
                             Want want) const;
  Result<std::string> ReadBelow(const std::string& relative, const Node& node,
                                uint64_t max_bytes = kMaxCellSourceBytes) const;
  Status WalkDataFolder(int dir_fd, const std::string& shown, int depth,
                        const Node& node);
  Result<std::string> RelativePath(const Node& node,
                                   const std::string& what) const;

  std::string folder_;
  std::string display_;
  ManifestOptions options_;
  UniqueFd folder_fd_;
  Manifest m_;
  Limits egg_bound_;  // the egg's effective limits (cells must not exceed)
};

Result<Fields> Parser::Map(const Node& node, const std::string& where,
                           std::initializer_list<const char*> allowed) const {
  if (!node.IsMap()) return At(node, "expected a mapping" + In(where));
  Fields fields;
  fields.node = node;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // yaml-cpp's iterator hands out a temporary pair: copy the nodes (they
    // are handles) rather than keeping references into it.
    const Node key = it->first;
    const Node value = it->second;
    if (!key.IsScalar()) return At(key, "a key must be text" + In(where));
    const std::string& name = key.Scalar();
    bool known = false;
    for (const char* a : allowed) known = known || name == a;
    if (!known) {
      std::string hint;
      size_t best = 3;
      for (const char* a : allowed) {
        size_t d = Distance(name, a);
        if (d < best) best = d, hint = a;
      }
      std::string msg = "unknown key " + Quote(name) + In(where);
      if (!hint.empty()) msg += " (did you mean '" + hint + "'?)";
      return At(key, msg);
    }
    if (!fields.values.emplace(name, value).second) {
      return At(key, "duplicate key " + Quote(name) + In(where));
    }
  }
  return fields;
}

Result<std::string> Parser::String(const Node& node,
                                   const std::string& what) const {
  if (!node.IsScalar()) return At(node, what + ": expected text");
  return node.Scalar();
}

Result<bool> Parser::Bool(const Node& node, const std::string& what) const {
  // Only plain true/false: "yes", "on" and quoted "true" are too easy to
  // misread in a permission.
  if (node.IsScalar() && node.Tag() == "?") {
    if (node.Scalar() == "true") return true;
    if (node.Scalar() == "false") return false;
  }
  return At(node, what + ": expected true or false");
}

Result<uint64_t> Parser::Count(const Node& node,
                               const std::string& what) const {
  if (!node.IsScalar() || node.Tag() != "?") {
    return At(node, what + ": expected a whole number");
  }
  const std::string& s = node.Scalar();
  if (s.size() > 1 && s[0] == '0') {
    return At(node, what + ": leading zeros are not allowed in " + Quote(s));
  }
  if (s.empty() || s.size() > 19 ||
      !std::all_of(s.begin(), s.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return At(node, what + ": expected a whole number, got " + Quote(s));
  }
  return std::stoull(s);
}

Result<std::vector<Node>> Parser::Sequence(const Node& node,
                                           const std::string& what) const {
  if (!node.IsSequence()) return At(node, what + ": expected a list");
  std::vector<Node> out;
  for (const Node& item : node) out.push_back(item);
  return out;
}

Result<std::string> Parser::RelativePath(const Node& node,
                                         const std::string& what) const {
  auto text = String(node, what);
  if (!text) return tl::unexpected(text.error());
  auto path = NormalizeRelativePath(*text);
  if (!path) return At(node, what + ": " + path.error().message());
  return *path;
}

// ---- metadata -------------------------------------------------------------


Status Parser::Metadata(const Fields& top) {
  const Node* name = top.Get("name");
  if (name == nullptr) return At(top.node, "missing key 'name'");
  auto n = String(*name, "name");
  if (!n) return tl::unexpected(n.error());
  if (!IsSafeName(*n)) {
    return At(*name, "name " + Quote(*n) +
                         " must be 1-64 of [A-Za-z0-9._-], not starting "
                         "with '.' or '-'");
  }
  m_.name = *n;

  struct Text {
    const char* key;
    std::string* out;
    bool multi_line;
  };
  for (const Text& t : {Text{"description", &m_.description, true},
                        Text{"author", &m_.author, false},
                        Text{"license", &m_.license, false}}) {
    const Node* node = top.Get(t.key);
    if (node == nullptr) continue;
    auto v = String(*node, t.key);
    if (!v) return tl::unexpected(v.error());
    bool ok = t.multi_line ? IsTextUtf8(*v) : IsPrintableUtf8(*v);
    if (!ok) {
      return At(*node,
                std::string(t.key) + ": control character or invalid UTF-8");
    }
    if (v->size() > kMaxTextBytes) {
      return At(*node, std::string(t.key) + ": longer than 64 KiB");
    }
    *t.out = *v;
  }
  if (const Node* node = top.Get("license")) {
    if (Status s = CheckSpdxExpression(m_.license); !s) {
      return At(*node, s.error().message());
    }
  }
  return Created(top);
}

Status Parser::Created(const Fields& top) {
  if (const Node* node = top.Get("created")) {
    auto text = String(*node, "created");
    if (!text) return tl::unexpected(text.error());
    auto t = ParseRfc3339Utc(*text);
    if (!t) return At(*node, "created: " + t.error().message());
    m_.created_unix = *t;
    m_.created_from = Manifest::CreatedFrom::kManifest;
  } else {
    std::optional<std::string> epoch = options_.source_date_epoch;
    if (!epoch) {
      const char* env = std::getenv("SOURCE_DATE_EPOCH");
      if (env != nullptr) epoch = env;
    }
    if (epoch) {
      const std::string& e = *epoch;
      bool digits = !e.empty() && e.size() <= 12 &&
                    std::all_of(e.begin(), e.end(),
                                [](char c) { return c >= '0' && c <= '9'; });
      if (!digits) {
        return Fail(Code::kInvalidArgument,
                    "SOURCE_DATE_EPOCH " + Quote(e) +
                        " is not a whole number of seconds");
      }
      m_.created_unix = std::stoll(e);
      m_.created_from = Manifest::CreatedFrom::kSourceDateEpoch;
    } else {
      m_.created_unix = kDefaultCreatedUnix;
      m_.created_from = Manifest::CreatedFrom::kDefault;
    }
  }
  m_.created = FormatRfc3339Utc(m_.created_unix);
  return {};
}

// ---- limits and permissions -----------------------------------------------

Result<Limits> Parser::ParseLimits(const Node& node, const std::string& where,
                                   const Limits& bound,
                                   const std::string& bound_name,
                                   bool per_cell) const {
  auto fields = Map(
      node, where,
      {"wall_time", "cpu_time", "memory", "processes", "scratch", "output"});
  if (!fields) return tl::unexpected(fields.error());
  // Scratch is one tmpfs shared by every cell of the egg; a per-cell value
  // could not be enforced, so it is refused rather than ignored.
  if (const Node* v = fields->Get("scratch"); v != nullptr && per_cell) {
    return At(*v, "scratch" + In(where) +
                      ": scratch is set for the whole egg (top-level"
                      " limits), not per cell");
  }
  Limits out;
  struct Field {
    const char* key;
    std::optional<uint64_t> Limits::*member;
    enum { kTime, kSize, kCount } kind;
  };
  static const Field kFields[] = {
      {"wall_time", &Limits::wall_ms, Field::kTime},
      {"cpu_time", &Limits::cpu_ms, Field::kTime},
      {"memory", &Limits::memory_bytes, Field::kSize},
      {"processes", &Limits::processes, Field::kCount},
      {"scratch", &Limits::scratch_bytes, Field::kSize},
      {"output", &Limits::output_bytes, Field::kSize},
  };
  const Limits max = MaximumLimits();
  const Limits min = MinimumLimits();
  for (const Field& f : kFields) {
    const Node* v = fields->Get(f.key);
    if (v == nullptr) continue;
    std::string what = std::string(f.key) + In(where);
    Result<uint64_t> value = 0;
    if (f.kind == Field::kCount) {
      value = Count(*v, what);
      if (!value) return tl::unexpected(value.error());
    } else {
      if (!v->IsScalar()) return At(*v, what + ": expected a value");
      // A quoted "5s" is a duration like any other; a quoted bare number
      // is refused, as for every whole number in the manifest.
      const std::string& text = v->Scalar();
      if (v->Tag() != "?" && !text.empty() &&
          std::all_of(text.begin(), text.end(),
                      [](char c) { return c >= '0' && c <= '9'; })) {
        return At(*v, what + ": a number in quotes (" + Quote(text) +
                          ") is not accepted; write it without quotes");
      }
      value = f.kind == Field::kTime ? ParseDurationMs(v->Scalar())
                                     : ParseSizeBytes(v->Scalar());
      if (!value) return At(*v, what + ": " + value.error().message());
    }
    if (*value == 0) return At(*v, what + ": must be more than zero");
    if (*value < *(min.*f.member)) {
      return At(*v, what + ": " + Quote(v->Scalar()) +
                        " is less than the minimum " +
                        MinimumLimitText(f.key));
    }
    if (*value > *(max.*f.member)) {
      return At(*v, what + ": " + Quote(v->Scalar()) +
                        " is more than the maximum egg allows");
    }
    if ((bound.*f.member).has_value() && *value > *(bound.*f.member)) {
      return At(*v, what + ": " + Quote(v->Scalar()) + " is more than " +
                        bound_name + " (a cell may only lower a limit)");
    }
    out.*f.member = *value;
  }
  return out;
}



Result<Permissions> Parser::ParsePermissions(const Node& node,
                                             const std::string& where) const {
  auto fields = Map(node, where, {"network", "host_paths", "devices"});
  if (!fields) return tl::unexpected(fields.error());
  Permissions out;
  if (const Node* v = fields->Get("network")) {
    auto b = Bool(*v, "network" + In(where));
    if (!b) return tl::unexpected(b.error());
    out.network = *b;
  }
  if (const Node* v = fields->Get("host_paths")) {
    auto items = Sequence(*v, "host_paths" + In(where));
    if (!items) return tl::unexpected(items.error());
    std::set<std::string> seen;
    for (size_t i = 0; i < items->size(); ++i) {
      const Node& item = (*items)[i];
      std::string w = "host path " + std::to_string(i + 1) + In(where);
      auto f = Map(item, w, {"host", "sandbox", "writable"});
      if (!f) return tl::unexpected(f.error());
      HostPath hp;
      for (auto [key, out_field] :
           {std::pair{"host", &hp.host}, std::pair{"sandbox", &hp.sandbox}}) {
        const Node* pv = f->Get(key);
        if (pv == nullptr)
          return At(item, "missing key '" + std::string(key) + "'" + In(w));
        auto s = String(*pv, key);
        if (!s) return tl::unexpected(s.error());
        if (!IsCanonicalAbsolute(*s)) {
          return At(*pv, std::string(key) + " " + Quote(*s) +
                             " must be an absolute path without '.', '..'"
                             " or '//'" +
                             In(w));
        }
        *out_field = *s;
      }
      if (IsReservedSandboxPath(hp.sandbox)) {
        return At(*f->Get("sandbox"), "sandbox path " + Quote(hp.sandbox) +
                                          " is reserved by egg" + In(w));
      }
      if (!seen.insert(hp.sandbox).second) {
        return At(*f->Get("sandbox"), "sandbox path " + Quote(hp.sandbox) +
                                          " is mapped twice" + In(where));
      }
      if (const Node* wv = f->Get("writable")) {
        auto b = Bool(*wv, "writable" + In(w));
        if (!b) return tl::unexpected(b.error());
        hp.writable = *b;
      }
      out.host_paths.push_back(std::move(hp));
    }
  }
  if (const Node* v = fields->Get("devices")) {
    auto items = Sequence(*v, "devices" + In(where));
    if (!items) return tl::unexpected(items.error());
    std::set<std::string> seen;
    for (const Node& item : *items) {
      auto s = String(item, "device" + In(where));
      if (!s) return tl::unexpected(s.error());
      if (!IsCanonicalAbsolute(*s) || !s->starts_with("/dev/")) {
        return At(item, "device " + Quote(*s) +
                            " must be a canonical path under /dev/" +
                            In(where));
      }
      if (!seen.insert(*s).second) {
        return At(item, "device " + Quote(*s) + " is listed twice" + In(where));
      }
      out.devices.push_back(*s);
    }
  }
  return out;
}

Status Parser::CheckCellPermissions(const Permissions& cell, const Node& node,
                                    const std::string& where) const {
  const Permissions& egg = m_.permissions;
  if (cell.network && !egg.network) {
    return At(node, "network" + In(where) +
                        " is not requested by the egg's permissions");
  }
  for (const HostPath& hp : cell.host_paths) {
    auto it = std::find_if(
        egg.host_paths.begin(), egg.host_paths.end(), [&](const HostPath& e) {
          return e.host == hp.host && e.sandbox == hp.sandbox &&
                 (e.writable || !hp.writable);
        });
    if (it == egg.host_paths.end()) {
      return At(node, "host path " + Quote(hp.host) + In(where) +
                          " is not requested (with at least this access) by"
                          " the egg's permissions");
    }
  }
  for (const std::string& d : cell.devices) {
    if (std::find(egg.devices.begin(), egg.devices.end(), d) ==
        egg.devices.end()) {
      return At(node, "device " + Quote(d) + In(where) +
                          " is not requested by the egg's permissions");
    }
  }
  return {};
}

// ---- cells ----------------------------------------------------------------




Status Parser::Languages(const Node& node) {
  if (!node.IsMap()) return At(node, "languages: expected a mapping");
  std::set<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const Node key = it->first;
    const Node value = it->second;
    if (!key.IsScalar() || !IsLanguage(key.Scalar())) {
      return At(key, "languages: " + Quote(key.IsScalar() ? key.Scalar() : "") +
                         " must be 1-32 of [a-z0-9+._-]");
    }
    ManifestLanguage lang;
    lang.name = key.Scalar();
    std::string where = "language " + Quote(lang.name);
    if (!seen.insert(lang.name).second) {
      return At(key, "duplicate key " + Quote(lang.name) + " in languages");
    }
    if (IsBuiltinLanguage(lang.name)) {
      return At(key, where + " is built in and cannot be redefined");
    }
    auto fields = Map(value, where, {"command", "suffix"});
    if (!fields) return tl::unexpected(fields.error());
    const Node* command = fields->Get("command");
    if (command == nullptr) {
      return At(value, "missing key 'command' in " + where);
    }
    auto args = Sequence(*command, "command in " + where);
    if (!args) return tl::unexpected(args.error());
    if (args->empty() || args->size() > 64) {
      return At(*command, "command in " + where + ": 1 to 64 arguments");
    }
    bool has_file = false;
    for (const Node& arg : *args) {
      auto a = String(arg, "command in " + where);
      if (!a) return tl::unexpected(a.error());
      if (a->empty() || a->size() > 4096 || !IsPrintableUtf8(*a)) {
        return At(arg, "command in " + where +
                           ": an argument is empty, too long or has a"
                           " control character");
      }
      has_file = has_file || a->find("{file}") != std::string::npos;
      lang.command.push_back(*a);
    }
    if (!has_file) {
      return At(*command, "command in " + where +
                              " must contain {file} (the cell's file)");
    }
    if (const Node* suffix = fields->Get("suffix")) {
      auto sfx = String(*suffix, "suffix in " + where);
      if (!sfx) return tl::unexpected(sfx.error());
      bool ok = IsLanguageSuffix(*sfx);
      if (!ok) {
        return At(*suffix, "suffix " + Quote(*sfx) + " in " + where +
                               " must be '.' and 1-16 of [A-Za-z0-9]");
      }
      lang.suffix = *sfx;
    }
    m_.languages.push_back(std::move(lang));
  }
  std::sort(m_.languages.begin(), m_.languages.end(),
            [](const ManifestLanguage& a, const ManifestLanguage& b) {
              return a.name < b.name;
            });
  return {};
}

Status Parser::Cells(const Node& node) {
  auto items = Sequence(node, "cells");
  if (!items) return tl::unexpected(items.error());
  if (items->empty()) return At(node, "cells: the list is empty");
  if (items->size() > kMaxCells) {
    return At(node, "cells: more than " + std::to_string(kMaxCells));
  }
  for (size_t i = 0; i < items->size(); ++i) {
    if (Status s = Cell((*items)[i], i); !s) return s;
  }
  bool any_code = std::any_of(
      m_.cells.begin(), m_.cells.end(),
      [](const ManifestCell& c) { return c.type == ManifestCellType::kCode; });
  if (!any_code) return At(node, "cells: no code cell to run");

  // Ids: explicit ones first, so a generated id never takes a chosen one.
  std::set<std::string> taken;
  for (size_t i = 0; i < m_.cells.size(); ++i) {
    const ManifestCell& c = m_.cells[i];
    if (c.id.empty()) continue;
    if (!taken.insert(c.id).second) {
      return At((*items)[i]["id"], "duplicate cell id " + Quote(c.id) +
                                       " in cell " + std::to_string(i + 1));
    }
  }
  for (size_t i = 0; i < m_.cells.size(); ++i) {
    ManifestCell& c = m_.cells[i];
    if (!c.id.empty()) continue;
    std::string id = "cell-" + std::to_string(i + 1);
    for (int k = 2; taken.count(id); ++k) {
      id = "cell-" + std::to_string(i + 1) + "-" + std::to_string(k);
    }
    taken.insert(id);
    c.id = id;
  }
  return {};
}

Status Parser::Cell(const Node& node, size_t index) {
  std::string where = "cell " + std::to_string(index + 1);
  auto fields = Map(node, where,
                    {"id", "language", "code", "source", "markdown", "raw",
                     "permissions", "limits"});
  if (!fields) return tl::unexpected(fields.error());
  ManifestCell cell;
  cell.line = node.Mark().line + 1;

  if (const Node* v = fields->Get("id")) {
    auto id = String(*v, "id" + In(where));
    if (!id) return tl::unexpected(id.error());
    if (!IsCellId(*id)) {
      return At(*v, "id " + Quote(*id) + In(where) +
                        " must be 1-64 of [A-Za-z0-9_-]");
    }
    cell.id = *id;
  }

  const Node* markdown = fields->Get("markdown");
  const Node* raw = fields->Get("raw");
  const Node* code = fields->Get("code");
  const Node* source = fields->Get("source");
  int kinds = (markdown != nullptr) + (raw != nullptr) +
              (code != nullptr || source != nullptr);
  if (kinds != 1) {
    return At(node, where +
                        ": give exactly one of 'code'/'source' (a code"
                        " cell), 'markdown' or 'raw'");
  }
  if (markdown != nullptr || raw != nullptr) {
    cell.type = markdown ? ManifestCellType::kMarkdown : ManifestCellType::kRaw;
    const Node& text_node = markdown ? *markdown : *raw;
    for (const char* key : {"language", "permissions", "limits"}) {
      if (const Node* v = fields->Get(key)) {
        return At(*v, std::string("'") + key + "' is only for code cells" +
                          In(where));
      }
    }
    auto text = String(text_node, where);
    if (!text) return tl::unexpected(text.error());
    if (!IsTextUtf8(*text)) {
      return At(text_node, where + ": control character or invalid UTF-8");
    }
    cell.source = *text;
    m_.cells.push_back(std::move(cell));
    return {};
  }

  // A code cell.
  const Node* language = fields->Get("language");
  if (language == nullptr)
    return At(node, "missing key 'language'" + In(where));
  auto lang = String(*language, "language" + In(where));
  if (!lang) return tl::unexpected(lang.error());
  std::string lower = *lang;
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!IsLanguage(lower)) {
    return At(*language, "language " + Quote(*lang) + In(where) +
                             " must be 1-32 of [a-z0-9+._-]");
  }
  cell.language = lower;

  if (code != nullptr && source != nullptr) {
    return At(*source, where + ": give 'code' or 'source', not both");
  }
  if (code != nullptr) {
    auto text = String(*code, "code" + In(where));
    if (!text) return tl::unexpected(text.error());
    cell.source = *text;
    if (!IsTextUtf8(cell.source)) {
      return At(*code,
                "code" + In(where) + ": control character or invalid UTF-8");
    }
  } else {
    auto path = RelativePath(*source, "source" + In(where));
    if (!path) return tl::unexpected(path.error());
    auto text = ReadBelow(*path, *source);
    if (!text) return tl::unexpected(text.error());
    if (!IsTextUtf8(*text)) {
      return At(*source, "source " + Quote(*path) + In(where) +
                             ": control character or invalid UTF-8");
    }
    cell.source = std::move(*text);
  }

  if (const Node* v = fields->Get("permissions")) {
    auto p = ParsePermissions(*v, where + " permissions");
    if (!p) return tl::unexpected(p.error());
    if (Status s = CheckCellPermissions(*p, *v, where); !s) return s;
    cell.permissions = std::move(*p);
  }
  if (const Node* v = fields->Get("limits")) {
    auto l = ParseLimits(*v, where + " limits", egg_bound_, "the egg's limit",
                         /*per_cell=*/true);
    if (!l) return tl::unexpected(l.error());
    cell.limits = *l;
  }
  m_.cells.push_back(std::move(cell));
  return {};
}

// ---- files ----------------------------------------------------------------

Result<UniqueFd> Parser::OpenBelow(const std::string& relative,
                                   const Node& node, Want want) const {
  int dir = folder_fd_.get();
  UniqueFd current;
  size_t start = 0;
  while (true) {
    size_t slash = relative.find('/', start);
    bool last = slash == std::string::npos;
    std::string part =
        relative.substr(start, last ? std::string::npos : slash - start);
    std::string shown = relative.substr(0, last ? relative.size() : slash);
    struct stat st;
    if (::fstatat(dir, part.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      int err = errno;
      Code code = err == ENOENT ? Code::kNotFound : Code::kIo;
      return At(node, Quote(shown) + ": " + std::strerror(err), code);
    }
    if (S_ISLNK(st.st_mode)) {
      return At(node, Quote(shown) +
                          " is a symlink (not followed: it could leave the"
                          " manifest's folder)");
    }
    bool folder = !last || want == Want::kFolder ||
                  (want == Want::kEither && S_ISDIR(st.st_mode));
    if (folder && !S_ISDIR(st.st_mode)) {
      return At(node, Quote(shown) + " is not a folder");
    }
    if (!folder && !S_ISREG(st.st_mode)) {
      return At(node, Quote(shown) + " is not a regular file" +
                          (want == Want::kEither ? " or folder" : ""));
    }
    int flags =
        O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (folder ? O_DIRECTORY : O_NONBLOCK);
    int fd = RetryEintr([&] { return ::openat(dir, part.c_str(), flags); });
    if (fd < 0) {
      return At(node, Quote(shown) + ": " + std::strerror(errno), Code::kIo);
    }
    current.Reset(fd);
    dir = fd;
    if (last) return current;
    start = slash + 1;
  }
}

Result<std::string> Parser::ReadBelow(const std::string& relative,
                                      const Node& node,
                                      uint64_t max_bytes) const {
  auto fd = OpenBelow(relative, node, Want::kFile);
  if (!fd) return tl::unexpected(fd.error());
  // The open happened without following links; fstat re-checks the type
  // in case the name was swapped between fstatat and openat.
  struct stat st;
  if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return At(node, Quote(relative) + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return At(node, Quote(relative) + " is larger than " +
                        std::to_string(max_bytes >> 20) + " MiB");
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = RetryEintr([&] {
      return ::read(fd->get(), out.data() + done, out.size() - done);
    });
    if (n < 0) {
      return At(node, Quote(relative) + ": " + std::strerror(errno), Code::kIo);
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

Status Parser::WalkDataFolder(int dir_fd, const std::string& shown, int depth,
                              const Node& node) {
  if (depth > kMaxDataDepth) {
    return At(node, Quote(shown) + ": folders nested deeper than " +
                        std::to_string(kMaxDataDepth));
  }
  // Sorted so that the first problem reported is the same on every run.
  auto listed = ReadDirSorted(dir_fd, Quote(shown));
  if (!listed) return At(node, listed.error().message(), Code::kIo);
  std::vector<std::string> names = std::move(*listed);

  std::map<std::string, std::string> folded;
  for (const std::string& name : names) {
    std::string path = shown + "/" + name;
    if (Status s = CheckName(name); !s) {
      return At(node,
                "in data folder " + Quote(shown) + ": " + s.error().message());
    }
    auto key = FoldName(name);
    if (!key) return At(node, key.error().message());
    auto [it, fresh] = folded.emplace(*key, name);
    if (!fresh) {
      return At(node, Quote(path) + " and " + Quote(shown + "/" + it->second) +
                          " are the same name after Unicode normalisation"
                          " and case folding");
    }
    if (++m_.data_summary.files + m_.data_summary.folders > kMaxDataEntries) {
      return At(node, "data holds too many files");
    }
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return At(node, Quote(path) + ": " + std::strerror(errno), Code::kIo);
    }
    if (S_ISREG(st.st_mode)) {
      m_.data_summary.bytes += static_cast<uint64_t>(st.st_size);
      continue;
    }
    --m_.data_summary.files;
    if (S_ISLNK(st.st_mode)) {
      return At(node, Quote(path) +
                          " is a symlink; data may hold only files and"
                          " folders");
    }
    if (!S_ISDIR(st.st_mode)) {
      return At(node, Quote(path) + " is not a file or folder");
    }
    ++m_.data_summary.folders;
    int fd = RetryEintr([&] {
      return ::openat(dir_fd, name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    });
    if (fd < 0) {
      return At(node, Quote(path) + ": " + std::strerror(errno), Code::kIo);
    }
    UniqueFd child(fd);
    if (Status s = WalkDataFolder(child.get(), path, depth + 1, node); !s) {
      return s;
    }
  }
  return {};
}

Status Parser::Data(const Node& node) {
  auto items = Sequence(node, "data");
  if (!items) return tl::unexpected(items.error());
  // Folded in-egg path -> (entry index, spelling) for collision checks.
  std::map<std::string, std::pair<size_t, std::string>> targets;
  for (size_t i = 0; i < items->size(); ++i) {
    const Node& item = (*items)[i];
    std::string where = "data entry " + std::to_string(i + 1);
    DataEntry entry;
    Node from_node = item;
    Node to_node;
    bool has_to = false;
    if (!item.IsScalar()) {
      auto f = Map(item, where, {"from", "to"});
      if (!f) return tl::unexpected(f.error());
      const Node* from = f->Get("from");
      if (from == nullptr) return At(item, "missing key 'from'" + In(where));
      from_node = *from;
      if (const Node* to = f->Get("to")) to_node = *to, has_to = true;
    }
    auto from = RelativePath(from_node, "from" + In(where));
    if (!from) return tl::unexpected(from.error());
    entry.from = *from;
    if (has_to) {
      auto to = RelativePath(to_node, "to" + In(where));
      if (!to) return tl::unexpected(to.error());
      entry.to = *to;
    } else {
      entry.to = entry.from.substr(entry.from.rfind('/') + 1);
    }
    const Node& to_mark = has_to ? to_node : from_node;

    // Same name after NFC + case folding, or one entry inside another.
    auto key = FoldName(entry.to);
    if (!key) return At(to_mark, key.error().message());
    for (size_t slash = key->find('/'); slash != std::string::npos;
         slash = key->find('/', slash + 1)) {
      auto parent = targets.find(key->substr(0, slash));
      if (parent != targets.end()) {
        return At(to_mark, "/data/" + EscapeForTerminal(entry.to) + In(where) +
                               " lies inside /data/" +
                               EscapeForTerminal(parent->second.second) +
                               " of data entry " +
                               std::to_string(parent->second.first + 1));
      }
    }
    auto below = targets.lower_bound(*key + "/");
    if (below != targets.end() && below->first.starts_with(*key + "/")) {
      return At(to_mark, "/data/" + EscapeForTerminal(entry.to) + In(where) +
                             " contains /data/" +
                             EscapeForTerminal(below->second.second) +
                             " of data entry " +
                             std::to_string(below->second.first + 1));
    }
    auto [it, fresh] = targets.emplace(*key, std::pair{i, entry.to});
    if (!fresh) {
      return At(to_mark, "/data/" + EscapeForTerminal(entry.to) + In(where) +
                             " is the same path as /data/" +
                             EscapeForTerminal(it->second.second) +
                             " of data entry " +
                             std::to_string(it->second.first + 1) +
                             " (after normalisation and case folding)");
    }

    // The source must exist below the manifest's folder.
    struct stat st;
    auto probe = OpenBelow(entry.from, from_node, Want::kEither);
    if (!probe) return tl::unexpected(probe.error());
    if (::fstat(probe->get(), &st) != 0) {
      return At(from_node, Quote(entry.from) + ": " + std::strerror(errno),
                Code::kIo);
    }
    if (S_ISDIR(st.st_mode)) {
      entry.is_folder = true;
      ++m_.data_summary.folders;
      int depth = static_cast<int>(
          std::count(entry.to.begin(), entry.to.end(), '/') + 1);
      if (Status s = WalkDataFolder(probe->get(), entry.from, depth, from_node);
          !s) {
        return s;
      }
    } else {
      ++m_.data_summary.files;
      m_.data_summary.bytes += static_cast<uint64_t>(st.st_size);
    }
    m_.data.push_back(std::move(entry));
  }
  return {};
}

// ---- runtime --------------------------------------------------------------

bool IsOciRepositoryPath(std::string_view s) {
  // Components of [a-z0-9]+ joined by '.', '_', '__' or '-'+; '/' between.
  if (s.empty()) return false;
  size_t i = 0;
  while (true) {
    size_t start = i;
    while (i < s.size() && s[i] != '/') ++i;
    std::string_view part = s.substr(start, i - start);
    auto alnum = [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    };
    if (part.empty() || !alnum(part.front()) || !alnum(part.back())) {
      return false;
    }
    for (size_t k = 0; k < part.size(); ++k) {
      char c = part[k];
      if (alnum(c) || c == '-') continue;
      if (c == '.' && alnum(part[k + 1])) continue;
      if (c == '_' &&
          (alnum(part[k + 1]) || (part[k + 1] == '_' && alnum(part[k + 2])))) {
        if (part[k + 1] == '_') ++k;
        continue;
      }
      return false;
    }
    if (i == s.size()) return true;
    ++i;
  }
}

bool IsOciHost(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
           c == '[' || c == ']';
  });
}

Status Parser::Runtime(const Node& node) {
  auto fields =
      Map(node, "runtime", {"folder", "tarball", "digest", "debian", "oci"});
  if (!fields) return tl::unexpected(fields.error());
  if (fields->values.size() != 1) {
    return At(node,
              "runtime: give exactly one of folder, tarball, digest,"
              " debian, oci");
  }
  const auto& [key, value] = *fields->values.begin();
  RuntimeSpec& r = m_.runtime;
  if (key == "folder" || key == "tarball") {
    bool folder = key == "folder";
    r.kind = folder ? RuntimeKind::kFolder : RuntimeKind::kTarball;
    auto path = RelativePath(value, "runtime " + key);
    if (!path) return tl::unexpected(path.error());
    auto fd = OpenBelow(*path, value, folder ? Want::kFolder : Want::kFile);
    if (!fd) return tl::unexpected(fd.error());
    r.path = *path;
  } else if (key == "digest") {
    r.kind = RuntimeKind::kDigest;
    auto text = String(value, "runtime digest");
    if (!text) return tl::unexpected(text.error());
    if (!text->starts_with("sha256:") || !ParseDigest(*text)) {
      return At(value, "runtime digest " + Quote(*text) +
                           " must be sha256: and 64 lower-case hex digits");
    }
    r.digest = *text;
  } else if (key == "oci") {
    r.kind = RuntimeKind::kOci;
    auto text = String(value, "runtime oci");
    if (!text) return tl::unexpected(text.error());
    std::string_view ref = *text;
    size_t at = ref.rfind('@');
    bool ok = ref.starts_with("oci://") && at != std::string_view::npos;
    if (ok) {
      std::string_view name = ref.substr(6, at - 6);
      size_t slash = name.find('/');
      ok = slash != std::string_view::npos &&
           IsOciHost(name.substr(0, slash)) &&
           IsOciRepositoryPath(name.substr(slash + 1)) &&
           ref.substr(at + 1).starts_with("sha256:") &&
           ParseDigest(ref.substr(at + 1)).has_value();
    }
    if (!ok) {
      return At(value, "runtime oci " + Quote(*text) +
                           " must be oci://host/repository@sha256:<64 hex>"
                           " (a pinned digest, not a tag)");
    }
    r.reference = *text;
    r.digest = std::string(ref.substr(at + 1));
  } else {
    r.kind = RuntimeKind::kDebian;
    auto f = Map(value, "runtime debian", {"suite", "packages"});
    if (!f) return tl::unexpected(f.error());
    const Node* suite = f->Get("suite");
    if (suite == nullptr) {
      return At(value, "missing key 'suite' in runtime debian");
    }
    auto s = String(*suite, "suite");
    if (!s) return tl::unexpected(s.error());
    bool ok_suite = !s->empty() && s->size() <= 64 &&
                    std::all_of(s->begin(), s->end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                             c == '-' || c == '.';
                    });
    if (!ok_suite) {
      return At(*suite, "suite " + Quote(*s) + " is not a Debian suite name");
    }
    r.suite = *s;
    if (const Node* p = f->Get("packages")) {
      auto items = Sequence(*p, "packages in runtime debian");
      if (!items) return tl::unexpected(items.error());
      std::set<std::string> seen;
      for (const Node& item : *items) {
        auto name = String(item, "package");
        if (!name) return tl::unexpected(name.error());
        // Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+
        bool ok = name->size() >= 2 && name->size() <= 128 &&
                  (((*name)[0] >= 'a' && (*name)[0] <= 'z') ||
                   ((*name)[0] >= '0' && (*name)[0] <= '9')) &&
                  std::all_of(name->begin(), name->end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                           c == '+' || c == '.' || c == '-';
                  });
        if (!ok) {
          return At(item, "package " + Quote(*name) +
                              " is not a Debian package name");
        }
        if (!seen.insert(*name).second) {
          return At(item, "package " + Quote(*name) + " is listed twice");
        }
      }
      r.packages.assign(seen.begin(), seen.end());
    }
  }
  return {};
}

// ---- top level ------------------------------------------------------------

Result<Manifest> Parser::Run(std::string_view yaml) {
  int fd = RetryEintr([&] {
    return ::open(folder_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  });
  if (fd < 0) {
    return Fail(Code::kNotFound, "manifest folder " + Quote(folder_) + ": " +
                                     std::strerror(errno));
  }
  folder_fd_.Reset(fd);
  m_.folder = folder_;
  m_.file = display_;

  if (yaml.size() > kMaxManifestBytes) {
    return Fail(Code::kInvalidArgument, display_ + ": larger than 1 MiB");
  }
  if (yaml.find('\0') != std::string_view::npos) {
    return Fail(Code::kInvalidArgument, display_ + ": contains a NUL byte");
  }
  Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return AtMark(e.mark, "YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Fail(Code::kInvalidArgument, display_ + ": YAML: " + e.what());
  }

  // The walk below uses yaml-cpp accessors that may throw on odd input
  // (e.g. aliases to scalars where a map is expected); treat that as a
  // malformed manifest, never as a crash.
  try {
    if (!root.IsMap()) {
      return At(root, "expected a mapping with name, cells, ... at the top");
    }
    auto top =
        Map(root, "",
            {"name", "description", "author", "license", "created", "cells",
             "notebook", "data", "runtime", "permissions", "limits",
             "languages"});
    if (!top) return tl::unexpected(top.error());
    if (Status s = Metadata(*top); !s) return tl::unexpected(s.error());

    if (const Node* v = top->Get("permissions")) {
      auto p = ParsePermissions(*v, "permissions");
      if (!p) return tl::unexpected(p.error());
      m_.permissions = std::move(*p);
    }
    if (const Node* v = top->Get("limits")) {
      auto l = ParseLimits(*v, "limits", MaximumLimits(), "the maximum",
                           /*per_cell=*/false);
      if (!l) return tl::unexpected(l.error());
      m_.limits = *l;
    }
    egg_bound_ = MergeLimits(m_.limits, DefaultEggLimits());

    if (const Node* v = top->Get("languages")) {
      if (Status s = Languages(*v); !s) return tl::unexpected(s.error());
    }
    const Node* cells = top->Get("cells");
    const Node* notebook = top->Get("notebook");
    if (cells != nullptr && notebook != nullptr) {
      return At(*notebook, "give 'cells' or 'notebook', not both");
    }
    if (notebook != nullptr) {
      // Read here, below the manifest's folder without following a
      // symlink; `egg build` decodes it (egg/notebook.h).
      auto path = RelativePath(*notebook, "notebook");
      if (!path) return tl::unexpected(path.error());
      auto text = ReadBelow(*path, *notebook, kMaxManifestNotebookBytes);
      if (!text) return tl::unexpected(text.error());
      m_.notebook_path = *path;
      m_.notebook_text = std::move(*text);
    } else {
      if (cells == nullptr) {
        return At(root, "missing key 'cells' (or 'notebook')");
      }
      if (Status s = Cells(*cells); !s) return tl::unexpected(s.error());
    }
    if (const Node* v = top->Get("data")) {
      if (Status s = Data(*v); !s) return tl::unexpected(s.error());
    }
    const Node* runtime = top->Get("runtime");
    if (runtime == nullptr && options_.allow_no_runtime) {
      m_.runtime.kind = RuntimeKind::kNone;
    } else if (runtime == nullptr) {
      return At(root,
                "missing key 'runtime' (the root file system the"
                " cells run in)");
    } else if (Status s = Runtime(*runtime); !s) {
      return tl::unexpected(s.error());
    }
  } catch (const YAML::Exception& e) {
    return AtMark(e.mark, "YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Fail(Code::kInvalidArgument, display_ + ": " + e.what());
  }
  return std::move(m_);
}

}  // namespace

Result<Manifest> ParseManifest(std::string_view yaml, const std::string& folder,
                               const std::string& display_name,
                               const ManifestOptions& options) {
  return Parser(folder, display_name, options).Run(yaml);
}

Result<Manifest> LoadManifest(const std::string& path,
                              const ManifestOptions& options) {
  auto text = ReadFileToString(path, kMaxManifestBytes);
  // The error names the file already.
  if (!text) return Fail(text.error());
  size_t slash = path.rfind('/');
  std::string folder = slash == std::string::npos ? "."
                       : slash == 0               ? "/"
                                                  : path.substr(0, slash);
  return ParseManifest(*text, folder, path, options);
}

const char* ManifestCellTypeName(ManifestCellType type) {
  switch (type) {
    case ManifestCellType::kCode:
      return "code";
    case ManifestCellType::kMarkdown:
      return "markdown";
    case ManifestCellType::kRaw:
      return "raw";
  }
  return "code";
}

const char* RuntimeKindName(RuntimeKind kind) {
  switch (kind) {
    case RuntimeKind::kNone:
      return "none";
    case RuntimeKind::kFolder:
      return "folder";
    case RuntimeKind::kTarball:
      return "tarball";
    case RuntimeKind::kDigest:
      return "digest";
    case RuntimeKind::kDebian:
      return "debian";
    case RuntimeKind::kOci:
      return "oci";
  }
  return "none";
}

}  // namespace egg

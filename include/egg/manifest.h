// The egg manifest: an author's egg.yaml, checked and turned into the
// canonical JSON that `egg build` stores. docs/MANIFEST.md is the schema.
//
// Every rejection is kInvalidArgument (kNotFound for a missing file) with a
// one-line message that starts with "<file>:<line>:<column>: " pointing at
// the offending YAML node (1-based; column 0 is never used).
#ifndef EGG_MANIFEST_H_
#define EGG_MANIFEST_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "egg/policy.h"
#include "egg/status.h"

namespace egg {

// Version of the manifest JSON and notebook JSON written by this code.
inline constexpr int kManifestJsonVersion = 1;
inline constexpr int kNotebookJsonVersion = 1;

// The biggest egg.yaml read, and the biggest cell source file.
inline constexpr uint64_t kMaxManifestBytes = 1ull << 20;
inline constexpr uint64_t kMaxCellSourceBytes = 16ull << 20;
// The biggest notebook (.ipynb) a manifest's `notebook` may name.
inline constexpr uint64_t kMaxManifestNotebookBytes = 256ull << 20;

// Where the default `created` comes from when neither the manifest nor
// SOURCE_DATE_EPOCH gives one.
inline constexpr int64_t kDefaultCreatedUnix = 0;  // 1970-01-01T00:00:00Z

// Named apart from egg/notebook.h's CellType so both headers can be used
// together; the values and their JSON names are the same.
enum class ManifestCellType { kCode, kMarkdown, kRaw };

struct ManifestCell {
  std::string id;  // unique, [A-Za-z0-9_-]{1,64}; generated if absent
  ManifestCellType type = ManifestCellType::kCode;
  std::string language;  // code cells only; lower-case
  std::string source;    // the text, valid UTF-8
  // Requested permissions for this cell. Unset: the egg's permissions.
  std::optional<Permissions> permissions;
  Limits limits;  // requested; unset fields inherit
  int line = 0;   // where the cell starts in egg.yaml
};

// One `data` entry. `from` is checked (no symlink on the way, inside the
// manifest folder) when the manifest is loaded.
struct DataEntry {
  std::string from;  // normalised, relative to the manifest folder
  std::string to;    // normalised, relative to /data in the sandbox
  bool is_folder = false;
};

struct DataSummary {
  uint64_t files = 0;    // regular files, counting those inside folders
  uint64_t folders = 0;  // folders, counting the entries themselves
  uint64_t bytes = 0;    // sum of regular file sizes
};

enum class RuntimeKind { kNone, kFolder, kTarball, kDigest, kDebian, kOci };

struct RuntimeSpec {
  RuntimeKind kind = RuntimeKind::kNone;
  std::string path;                   // kFolder, kTarball: normalised
  std::string digest;                 // kDigest, kOci: "sha256:<hex>"
  std::string suite;                  // kDebian
  std::vector<std::string> packages;  // kDebian, sorted, unique
  std::string reference;              // kOci: "oci://host/repo@sha256:..."
};

// A language run as one process per cell (for hatch's CommandLanguage):
// `command` is argv with "{file}" standing for the cell's source file.
struct ManifestLanguage {
  std::string name;                  // lower case, not a built-in language
  std::vector<std::string> command;  // 1-64 arguments; one has "{file}"
  std::string suffix;                // "" or "." + 1-16 of [A-Za-z0-9]
};

struct Manifest {
  std::string name;         // [A-Za-z0-9._-]{1,64}, not starting with '.'
  std::string description;  // may be empty
  std::string author;       // may be empty
  std::string license;      // an SPDX expression, or empty
  int64_t created_unix = kDefaultCreatedUnix;
  std::string created;  // RFC 3339 UTC, "YYYY-MM-DDTHH:MM:SSZ"
  enum class CreatedFrom { kManifest, kSourceDateEpoch, kDefault };
  CreatedFrom created_from = CreatedFrom::kDefault;

  std::vector<ManifestLanguage> languages;  // sorted by name
  // In notebook order; at least one code cell. Empty when the manifest
  // names a `notebook` instead: `egg build` fills it from the import.
  std::vector<ManifestCell> cells;
  std::string notebook_path;  // `notebook`, normalised; "" when absent
  std::string notebook_text;  // its bytes, read without following links
  std::vector<DataEntry> data;
  DataSummary data_summary;
  RuntimeSpec runtime;
  Permissions permissions;  // requested for the whole egg
  Limits limits;            // requested for the whole egg; unset = default

  std::string folder;  // the manifest's folder, as given (host path)
  std::string file;    // the manifest's path, for messages
};

struct ManifestOptions {
  // Value of SOURCE_DATE_EPOCH; when unset, LoadManifest reads the
  // environment variable.
  std::optional<std::string> source_date_epoch;
  // Accept a manifest without `runtime` (RuntimeKind::kNone): for
  // `egg build notebook.ipynb`, which takes its runtime from --runtime.
  bool allow_no_runtime = false;
};

// Reads, parses and checks `path` (an egg.yaml). Files named by the
// manifest are resolved against its folder and checked to exist.
[[nodiscard]] Result<Manifest> LoadManifest(
    const std::string& path, const ManifestOptions& options = {});

// Parses and checks YAML text. `folder` is where relative paths resolve;
// `display_name` starts every error message.
[[nodiscard]] Result<Manifest> ParseManifest(
    std::string_view yaml, const std::string& folder,
    const std::string& display_name, const ManifestOptions& options = {});

// The manifest JSON stored in the egg (docs/MANIFEST.md, "What build
// stores"). The string forms are canonical: sorted keys, no insignificant
// whitespace, UTF-8, integers only; same input, same bytes, whatever the
// locale or time zone. kInvalidArgument only for text that is not UTF-8.
[[nodiscard]] Result<nlohmann::json> ManifestJsonValue(
    const Manifest& manifest);
[[nodiscard]] Result<std::string> ManifestJson(const Manifest& manifest);

// The notebook JSON section (the shape egg/notebook.h decodes): the cells
// in order with empty outputs; per-cell "permissions" and "limits" only
// where the manifest sets them.
[[nodiscard]] Result<nlohmann::json> NotebookJsonValue(
    const Manifest& manifest);
[[nodiscard]] Result<std::string> NotebookJson(const Manifest& manifest);

// Builds the data tree of `manifest` under `stage_dir` (an existing empty
// folder): each entry at its `to` path, files hard-linked where possible
// and copied otherwise, folders recreated. Sources are re-opened without
// following symlinks; one that changed type since parsing is
// kInvalidArgument; kIo on file system errors. The caller removes
// `stage_dir`.
[[nodiscard]] Status StageData(const Manifest& manifest,
                               const std::string& stage_dir);

// Human units. Durations: "500ms", "30s", "5m", "2h", "1d" (a unit is
// required). Sizes: plain bytes "4096", or "B", "KiB", "MiB", "GiB", "TiB",
// "kB", "MB", "GB", "TB". Overflow and junk are kInvalidArgument.
[[nodiscard]] Result<uint64_t> ParseDurationMs(std::string_view text);
[[nodiscard]] Result<uint64_t> ParseSizeBytes(std::string_view text);

// Checks the syntax of an SPDX license expression: identifiers and
// LicenseRef-/DocumentRef- references, "+", WITH, AND, OR, parentheses.
// Identifiers are not checked against the SPDX list.
[[nodiscard]] Status CheckSpdxExpression(std::string_view text);

// "YYYY-MM-DDTHH:MM:SSZ" for seconds since the epoch (UTC, no locale).
std::string FormatRfc3339Utc(int64_t unix_seconds);
// Parses RFC 3339 with "Z" or "+00:00"/"-00:00"; fractional seconds are
// rejected so that the stored value is exact.
[[nodiscard]] Result<int64_t> ParseRfc3339Utc(std::string_view text);

// The smallest limits a manifest may ask for (below them nothing useful
// runs): wall and CPU time 100 ms, memory 16 MiB, 4 processes, scratch
// 1 MiB, output 4 KiB. Every field is set.
Limits MinimumLimits();

// ---- Stored manifests -----------------------------------------------------

// One code cell's policy as the notebook JSON of an egg stores it.
struct StoredCell {
  size_t index = 0;  // 0-based position in the notebook
  std::string id;
  std::string language;
  std::optional<Permissions> permissions;  // unset: the egg's
  Limits limits;                           // never has scratch_bytes
};

// What hatch and info may rely on in an egg's manifest JSON once
// ParseStoredManifest has accepted it.
struct StoredManifest {
  int version = 0;
  std::string name, description, author, license, created;
  Permissions permissions;  // host paths and devices canonical, unique
  Limits limits;            // each set value within Minimum..Maximum
  std::string runtime_kind;  // "folder", "tarball", "digest", ...
  bool has_data = false;     // data.entries is not empty
  std::vector<ManifestLanguage> languages;  // sorted by name
  std::vector<StoredCell> code_cells;
};

// Applies the rules of docs/MANIFEST.md to the manifest JSON and notebook
// JSON read from an egg (which may have been written by anyone, not only
// by `egg build`): known version, required keys and their types, host
// paths absolute and canonical, devices canonical under /dev/, sandbox
// paths absolute and not reserved, limits within Minimum/MaximumLimits,
// no per-cell scratch, cell limits not above the egg's (or the egg
// default) and cell permissions within the egg's, language names and
// commands, runtime and data trees that are among `tree_names` (the
// egg's layout table). Unknown keys are ignored. Only the egg-policy parts
// of the notebook are checked here; NotebookFromJson (egg/notebook.h)
// decodes the rest. Fails with kInvalidArgument and one line naming the
// field ("manifest: permissions.host_paths[0].host '../x' must be ...").
// The egg's strings are in the message as they are: escape it when it is
// shown (egg's CLI prints every error through EscapeForTerminal).
[[nodiscard]] Result<StoredManifest> ParseStoredManifest(
    const nlohmann::json& manifest, const nlohmann::json& notebook,
    const std::vector<std::string>& tree_names);

// "code", "markdown", "raw"
const char* ManifestCellTypeName(ManifestCellType type);
// "none", "folder", "tarball", "digest", "debian", "oci"
const char* RuntimeKindName(RuntimeKind kind);

}  // namespace egg

#endif  // EGG_MANIFEST_H_

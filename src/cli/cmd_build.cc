// egg build: egg.yaml (or a Jupyter notebook) in, one egg out. Parses and
// checks the manifest, imports the notebook it names, stages the data
// tree, brings the runtime into the local store, writes the egg atomically
// and, with --sign, signs it before it is published.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/egg_run.h"
#include "cli/runtime_registry.h"
#include "common/atomic_file.h"
#include "common/fd.h"
#include "egg/crypto.h"
#include "egg/egg.h"
#include "egg/hatch.h"
#include "egg/manifest.h"
#include "egg/notebook.h"
#include "egg/runtime.h"
#include "egg/store.h"

namespace egg::cli {
namespace {

struct BuildArgs {
  std::string manifest;
  std::string out;
  std::string key;
  std::string runtime;  // --runtime, for a .ipynb
  bool force = false;
  bool refresh_runtime = false;
  // --precompute: run the cells in the sandbox and store their outputs.
  bool precompute = false;
  std::vector<std::string> grants;
  bool host_runtime = false;
  bool keep_going = false;
  std::string store;
  std::string trust;  // trust config for an oci:// runtime
  // With --precompute: "" the built-in drivers, else a Jupyter kernel
  // ("jupyter" = the notebook's, or a kernelspec name), as for hatch.
  std::string kernel;
};

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string FolderOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// The prefixes of the folders a build makes beside its output.
constexpr const char* kTempPrefixes[] = {".egg-build-", ".egg-precompute-",
                                         ".egg-sign-"};

// A folder beside the output, "<prefix><pid>-XXXXXX", held under an
// exclusive flock for the build's lifetime and removed (with everything
// in it) when this goes out of scope. A build that is SIGKILLed cannot
// remove it; SweepDeadBuildFolders does, in a later build.
class TempFolder {
 public:
  static Result<TempFolder> Create(const std::string& parent,
                                   const std::string& prefix) {
    std::string tmpl =
        parent + "/" + prefix + std::to_string(::getpid()) + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return Fail(Code::kIo, "creating a folder in " + Quote(parent) + ": " +
                                 std::strerror(errno));
    }
    TempFolder folder(tmpl);
    auto fd = OpenFile(tmpl, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd) return Fail(fd.error());
    if (RetryEintr([&] { return ::flock(fd->get(), LOCK_EX); }) != 0) {
      return Fail(ErrnoError("locking " + Quote(tmpl)));
    }
    folder.lock_ = std::move(*fd);
    return folder;
  }
  TempFolder(TempFolder&& other) noexcept
      : path_(std::move(other.path_)), lock_(std::move(other.lock_)) {
    other.path_.clear();
  }
  ~TempFolder() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  explicit TempFolder(std::string path) : path_(std::move(path)) {}
  std::string path_;
  UniqueFd lock_;
};

// The pid in "<prefix><pid>-XXXXXX" for one of kTempPrefixes, or 0.
pid_t TempFolderOwner(const std::string& name) {
  for (std::string_view prefix : kTempPrefixes) {
    if (!name.starts_with(prefix)) continue;
    size_t dash = name.find('-', prefix.size());
    if (dash == std::string::npos || dash == prefix.size() ||
        dash - prefix.size() > 9 || name.size() != dash + 7) {
      return 0;
    }
    pid_t pid = 0;
    for (size_t i = prefix.size(); i < dash; ++i) {
      if (name[i] < '0' || name[i] > '9') return 0;
      pid = pid * 10 + (name[i] - '0');
    }
    return pid;
  }
  return 0;
}

// Removes the temporary folders that builds which died (SIGKILL, a
// crash) left in `parent`: ours, real folders, whose pid is gone here and
// whose flock nobody holds (a live build on another machine sharing the
// folder, or in another pid namespace, still holds its lock).
void SweepDeadBuildFolders(const std::string& parent) {
  DIR* dir = ::opendir(parent.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> dead;
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    pid_t pid = TempFolderOwner(name);
    if (pid <= 0 || pid == ::getpid()) continue;
    std::string path = parent + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != ::geteuid()) {
      continue;
    }
    // EPERM means the pid is alive (another user's process): keep it.
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    auto fd = OpenFile(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!fd || ::flock(fd->get(), LOCK_EX | LOCK_NB) != 0) continue;
    dead.push_back(path);
  }
  ::closedir(dir);
  for (const std::string& path : dead) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
}

// The runtime as a tree in the store (imported or built if needed).
// An oci:// runtime is fetched through the trust config at `trust` and
// described in *fetched.
Result<Digest> RuntimeTree(const Manifest& m, Store& store, bool refresh,
                           const std::string& trust,
                           std::optional<RuntimeFetchResult>* fetched) {
  const RuntimeSpec& r = m.runtime;
  // --runtime gives paths as typed; a manifest's are below its folder.
  std::string path = r.path.starts_with("/") || m.file.ends_with(".ipynb")
                         ? r.path
                         : m.folder + "/" + r.path;
  switch (r.kind) {
    case RuntimeKind::kFolder: {
      auto info = ImportRuntimeFolder(store, path);
      if (!info)
        return Fail(info.error().Wrap("runtime folder " + Quote(path)));
      return info->digest;
    }
    case RuntimeKind::kTarball: {
      auto info = ImportRuntimeTar(store, path);
      if (!info) {
        return Fail(info.error().Wrap("runtime tarball " + Quote(path)));
      }
      return info->digest;
    }
    case RuntimeKind::kDigest: {
      auto d = ParseDigest(r.digest);
      if (!d) return Fail(d.error());
      return *d;
    }
    case RuntimeKind::kDebian: {
      DebianOptions options;
      options.suite = r.suite;
      options.packages = r.packages;
      if (!refresh) {
        // Reuse a runtime built earlier for the same request, so that a
        // rebuild gives the same egg rather than newer packages.
        auto list = ListRuntimes(store);
        if (list) {
          for (const RuntimeInfo& info : *list) {
            std::vector<std::string> requested = info.requested;
            std::sort(requested.begin(), requested.end());
            if (info.source == "debian" && info.suite == r.suite &&
                requested == r.packages) {
              std::fprintf(stderr,
                           "egg: using the stored Debian runtime %s "
                           "(--refresh-runtime builds a new one)\n",
                           DigestRef(info.digest).c_str());
              return info.digest;
            }
          }
        }
      }
      Progress progress("building the Debian runtime with mmdebstrap", 0);
      auto info = CreateDebianRuntime(store, options);
      if (!info) return Fail(info.error().Wrap("runtime debian"));
      return info->digest;
    }
    case RuntimeKind::kOci: {
      auto got = FetchPinnedRuntime(r.reference, trust, store);
      if (!got) return Fail(got.error().Wrap("runtime oci"));
      *fetched = *got;
      return got->runtime.tree;
    }
    case RuntimeKind::kNone:
      break;
  }
  return Fail(Code::kInvalidArgument, "the manifest names no runtime");
}

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// An egg name from a notebook's file name: characters outside
// [A-Za-z0-9._-] become '-', at most 64, never starting with '.' or '-'.
std::string NameFromFile(const std::string& path) {
  std::string base = path.substr(path.rfind('/') + 1);
  base = base.substr(0, base.size() - std::string_view(".ipynb").size());
  std::string name;
  for (char c : base) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    name += ok ? c : '-';
  }
  size_t start = name.find_first_not_of(".-");
  name = start == std::string::npos ? "" : name.substr(start, 64);
  return name.empty() ? "notebook" : name;
}

// The manifest of `egg build NOTEBOOK.ipynb`: name from the file name,
// the notebook itself, and the runtime of --runtime (none without it).
Result<Manifest> NotebookManifest(const std::string& ipynb,
                                  const std::string& runtime) {
  using nlohmann::json;
  std::string folder = FolderOf(ipynb);
  std::string yaml = "name: " + json(NameFromFile(ipynb)).dump() +
                     "\nnotebook: " +
                     json(ipynb.substr(ipynb.rfind('/') + 1)).dump() + "\n";
  // A digest or Debian runtime goes through the manifest's own checks; a
  // folder or tarball may be anywhere, so it is set after parsing.
  std::optional<RuntimeSpec> path_runtime;
  if (runtime.starts_with("sha256:")) {
    yaml += "runtime: {digest: " + json(runtime).dump() + "}\n";
  } else if (runtime.starts_with("debian:")) {
    json packages = json::array();
    std::string list = runtime.substr(7);
    for (size_t start = 0; start <= list.size();) {
      size_t comma = std::min(list.find(',', start), list.size());
      packages.push_back(list.substr(start, comma - start));
      start = comma + 1;
    }
    yaml += "runtime: {debian: {suite: bookworm, packages: " +
            packages.dump() + "}}\n";
  } else if (!runtime.empty()) {
    struct stat st;
    if (::stat(runtime.c_str(), &st) != 0) {
      return Fail(Code::kNotFound,
                  "--runtime " + Quote(runtime) + ": " + std::strerror(errno));
    }
    RuntimeSpec r;
    r.kind = S_ISDIR(st.st_mode) ? RuntimeKind::kFolder : RuntimeKind::kTarball;
    r.path = runtime;
    path_runtime = r;
  }
  ManifestOptions options;
  options.allow_no_runtime = true;
  auto m = ParseManifest(yaml, folder, ipynb, options);
  if (!m) return m;
  if (path_runtime) m->runtime = *path_runtime;
  return m;
}

// Decodes the notebook a manifest names and makes it the egg's cells;
// returns the notebook JSON section with the stored outputs kept.
Result<nlohmann::json> ImportNotebook(Manifest& m) {
  const std::string shown = m.file.ends_with(".ipynb")
                                ? m.file
                                : m.folder + "/" + m.notebook_path;
  auto imported = ParseIpynb(m.notebook_text);
  if (!imported) return Fail(imported.error().Wrap(Quote(shown)));
  for (const std::string& w : imported->warnings) {
    Warn(Quote(shown) + ": " + w);
  }
  const Notebook& nb = imported->notebook;
  m.cells.clear();
  for (size_t i = 0; i < nb.cells.size(); ++i) {
    const NotebookCell& c = nb.cells[i];
    ManifestCell cell;
    cell.id = c.id;
    cell.source = c.source;
    cell.type = c.type == CellType::kCode       ? ManifestCellType::kCode
                : c.type == CellType::kMarkdown ? ManifestCellType::kMarkdown
                                                : ManifestCellType::kRaw;
    if (cell.type == ManifestCellType::kCode) {
      cell.language = c.language;
      bool ok = !c.language.empty() && c.language.size() <= 32 &&
                std::all_of(c.language.begin(), c.language.end(), [](char ch) {
                  return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                         ch == '+' || ch == '.' || ch == '_' || ch == '-';
                });
      if (!ok) {
        return Fail(Code::kInvalidArgument,
                    Quote(shown) + ": cell " + std::to_string(i + 1) +
                        ": language " + Quote(c.language) +
                        " (from the kernel metadata) must be 1-32 of"
                        " [a-z0-9+._-]");
      }
    }
    m.cells.push_back(std::move(cell));
  }
  bool any_code = std::any_of(
      m.cells.begin(), m.cells.end(),
      [](const ManifestCell& c) { return c.type == ManifestCellType::kCode; });
  if (!any_code) {
    return Fail(Code::kInvalidArgument,
                Quote(shown) + ": the notebook has no code cell to run");
  }
  m.notebook_text.clear();
  return NotebookToJson(nb);
}

// Signs the unsigned egg at `unsigned_path` into `out`.
Status SignInto(const std::string& unsigned_path, const std::string& out,
                crypto::Signer& signer, bool overwrite) {
  auto egg = EggFile::Open(unsigned_path, EggFile::Depth::kSummary);
  if (!egg) return Fail(egg.error());
  auto chain = crypto::DecodeChain(egg->signatures());
  if (!chain) return Fail(chain.error());
  auto time = crypto::SigningTime();
  if (!time) return Fail(time.error());
  if (Status s = crypto::AppendSignature(*chain, egg->content_root(), signer,
                                         "builder", *time);
      !s) {
    return s;
  }
  return egg->WriteWithSignatures(crypto::EncodeChain(*chain), out, overwrite);
}

// A failed cell's outputs end with an nbformat error output naming how it
// ended, unless its driver already gave one (a Python exception).
void AddExitStatus(const CellResult& result, CellRun& run) {
  if (!run.failed) return;
  for (const auto& o : run.outputs) {
    if (o.value("output_type", "") == "error") return;
  }
  std::string how = CellStatusName(result.status);
  if (!result.limit.empty()) how += " (" + result.limit + " limit)";
  if (result.signal != 0) {
    how += ", signal " + std::to_string(result.signal);
  } else if (result.status == CellStatus::kError ||
             result.status == CellStatus::kSessionDied) {
    how += ", exit status " + std::to_string(result.exit_code);
  }
  run.outputs.push_back({{"output_type", "error"},
                         {"ename", "CellFailed"},
                         {"evalue", how},
                         {"traceback", nlohmann::json::array()}});
}

// True when the run ended because the last cell that ran met a limit
// that stops the whole sandbox (memory, CPU): that is the cell's failure,
// recorded in its outputs, not an unusable sandbox.
bool EndedByACellsLimit(const RunReport& report) {
  const CellResult* last = nullptr;
  for (const CellResult& c : report.cells) {
    if (c.status != CellStatus::kNotRun) last = &c;
  }
  return last != nullptr && last->status == CellStatus::kLimit &&
         (last->limit == "memory" || last->limit == "cpu");
}

// Runs the cells of the egg at `unrun` (written beside the output) as
// hatch does and replaces the stored outputs of every code cell in
// `notebook` with the fresh ones. `out_dir` is the /out to create.
// Returns an exit code other than kExitOk when the build must stop.
int Precompute(const std::string& unrun, const std::string& out_dir,
               const BuildArgs& a, const Consent& consent, Notebook& notebook) {
  auto egg = EggFile::Open(unrun, EggFile::Depth::kFull);
  if (!egg) return Report(egg.error().Wrap("the egg to precompute"));
  auto cells = CellsOf(notebook);
  if (!cells) return Report(cells.error());
  EggRunOptions options;
  options.host_runtime = a.host_runtime;
  options.store = a.store;
  options.output_dir = out_dir;
  options.stop_on_error = !a.keep_going;
  options.on_cell = PrintCellLine;
  options.kernel = a.kernel;
  options.kernel_name = notebook.kernel_name;
  std::fprintf(stderr, "egg: precomputing %zu code cells\n", cells->size());
  auto report = RunEggCells(*egg, *cells, consent, options);
  if (!report) {
    Report(report.error().Wrap("precompute"));
    return RunErrorExitCode(report.error());
  }
  if (report->interrupted) {
    Report(Error(Code::kIo, "precompute interrupted; nothing was written"));
    return kExitInterrupted;
  }
  if (!report->agent_error.empty() && !EndedByACellsLimit(*report)) {
    Report(Error(Code::kSandboxSetup, report->agent_error));
    return kExitCellFailed;
  }
  if (!report->AllSucceeded() && !a.keep_going) {
    Report(Error(Code::kInvalidArgument,
                 "a cell failed; nothing was written (--keep-going stores "
                 "the outputs of failing cells too)"));
    return kExitCellFailed;
  }

  // Fresh outputs replace the stored ones; a cell that did not run keeps
  // none, so no stale output is signed as if it were fresh.
  NotebookRun fresh = RunFromHatch(*report, "");
  for (size_t i = 0; i < fresh.cells.size() && i < report->cells.size(); ++i) {
    AddExitStatus(report->cells[i], fresh.cells[i]);
  }
  int64_t count = 0;
  for (NotebookCell& cell : notebook.cells) {
    if (cell.type != CellType::kCode) continue;
    const CellRun* run = fresh.Find(cell.id);
    bool ran = run != nullptr && run->ran;
    cell.outputs = ran ? run->outputs : nlohmann::json::array();
    cell.execution_count = ran ? std::optional<int64_t>(++count) : std::nullopt;
  }
  return kExitOk;
}

int RunBuild(const BuildArgs& a) {
  // 1. The manifest: every check happens before anything is written.
  const bool ipynb = EndsWith(a.manifest, ".ipynb");
  if (!ipynb && !a.runtime.empty()) {
    return Report(Error(Code::kInvalidArgument,
                        "--runtime is for a .ipynb; an egg.yaml names its "
                        "runtime itself"));
  }
  if (!a.precompute && (!a.grants.empty() || a.host_runtime || a.keep_going ||
                        !a.store.empty() || !a.kernel.empty())) {
    return Report(Error(Code::kInvalidArgument,
                        "--grant, --host-runtime, --keep-going, --store and "
                        "--kernel go with --precompute"));
  }
  for (const auto& g : a.grants) {
    if (Status s = CheckGrant(g); !s) return Report(s.error());
  }
  auto m = ipynb ? NotebookManifest(a.manifest, a.runtime)
                 : LoadManifest(a.manifest);
  if (!m) return Report(m.error());
  std::optional<nlohmann::json> imported;
  if (!m->notebook_path.empty()) {
    auto nb = ImportNotebook(*m);
    if (!nb) return Report(nb.error());
    imported = std::move(*nb);
  }
  if (m->runtime.kind == RuntimeKind::kNone) {
    Warn("no --runtime: the egg has no runtime; 'egg hatch --host-runtime'"
         " is the only way to run it");
  }
  if (m->created_from == Manifest::CreatedFrom::kDefault) {
    Warn(
        "no 'created' in the manifest and no SOURCE_DATE_EPOCH: the egg "
        "says it was created at " +
        m->created);
  }
  const std::string out =
      a.out.empty() ? FolderOf(a.manifest) + "/" + m->name + ".egg" : a.out;
  struct stat st;
  if (!a.force && ::lstat(out.c_str(), &st) == 0) {
    return Report(Error(Code::kInvalidArgument,
                        Quote(out) + " exists (use --force to replace it)"));
  }
  if (Status s = CheckWritableTarget(out); !s) return Report(s.error());
  std::unique_ptr<crypto::Signer> signer;
  if (!a.key.empty()) {
    auto s = crypto::LoadSigner(a.key);
    if (!s) return Report(s.error().Wrap("--sign " + Quote(a.key)));
    signer = std::move(*s);
  }

  // 2. The stored forms of the manifest and notebook.
  auto manifest_json = ManifestJsonValue(*m);
  if (!manifest_json) return Report(manifest_json.error());
  auto notebook_json =
      imported ? Result<nlohmann::json>(*imported) : NotebookJsonValue(*m);
  if (!notebook_json) return Report(notebook_json.error());
  std::optional<Consent> consent;
  std::optional<Notebook> notebook;
  if (a.precompute) {
    if (m->runtime.kind == RuntimeKind::kNone && !a.host_runtime) {
      return Report(Error(Code::kInvalidArgument,
                          "--precompute needs a runtime to run the cells "
                          "in (or --host-runtime)"));
    }
    auto nb = NotebookFromJson(*notebook_json);
    if (!nb) return Report(nb.error());
    notebook = std::move(*nb);
    // Consent before anything is written: refused means no file at all.
    auto agreed = AgreeToEgg(*manifest_json, a.grants);
    if (!agreed) {
      Report(agreed.error());
      return agreed.error().code() == Code::kPermissionDenied
                 ? kExitRefused
                 : ExitCodeFor(agreed.error().code());
    }
    consent = std::move(*agreed);
  }

  // 3. The data tree, staged beside the output (same file system, so
  // files are hard-linked rather than copied).
  const std::string out_folder = FolderOf(out);
  SweepDeadBuildFolders(out_folder);
  std::optional<TempFolder> stage;
  EggInput input;
  input.manifest = std::move(*manifest_json);
  input.notebook = std::move(*notebook_json);
  if (!m->data.empty()) {
    auto folder = TempFolder::Create(out_folder, ".egg-build-");
    if (!folder) return Report(folder.error());
    stage.emplace(std::move(*folder));
    if (Status s = StageData(*m, stage->path()); !s) return Report(s.error());
    TreeInput data;
    data.name = "data";
    data.directory = stage->path();
    input.trees.push_back(std::move(data));
  }

  // 4. The runtime, through the local store (none for a notebook built
  // without --runtime).
  std::optional<Store> store;
  std::optional<StoreChunkSource> source;
  std::optional<Digest> runtime;
  if (m->runtime.kind != RuntimeKind::kNone) {
    auto opened = Store::Open();
    if (!opened) return Report(opened.error().Wrap("local store"));
    store.emplace(std::move(*opened));
    std::optional<RuntimeFetchResult> fetched;
    auto digest =
        RuntimeTree(*m, *store, a.refresh_runtime, a.trust, &fetched);
    if (!digest) return Report(digest.error());
    runtime = *digest;
    if (fetched) {
      // What the pin resolved to, for readers of the egg (informative:
      // the layout table's tree digest is the identity).
      nlohmann::json& rt = input.manifest["runtime"];
      rt["name"] = fetched->runtime.name;
      rt["version"] = fetched->runtime.version;
      rt["runtime_tree"] = DigestRef(fetched->runtime.tree);
    }
    auto encoded = store->Get(ObjectKind::kTree, *runtime);
    if (!encoded) {
      return Report(encoded.error().Wrap("runtime " + DigestRef(*runtime) +
                                         " in the local store"));
    }
    auto tree = DecodeTree(*encoded);
    if (!tree) {
      return Report(tree.error().Wrap("runtime " + DigestRef(*runtime)));
    }
    source.emplace(*store);
    TreeInput rt;
    rt.name = "runtime";
    rt.tree = std::move(*tree);
    rt.source = &*source;
    input.trees.push_back(std::move(rt));
  }

  // 5. Write: straight to `out`, or unsigned beside it and then signed
  // into `out`, so that `out` appears whole or not at all.
  WriteOptions options;
  options.force = a.force;
  Progress progress("writing " + out, 0);
  options.progress = [&progress](uint64_t done, uint64_t total) {
    progress.Update(done);
  };
  std::optional<TempFolder> sign_folder;
  std::string target = out;
  if (signer) {
    auto folder = TempFolder::Create(out_folder, ".egg-sign-");
    if (!folder) return Report(folder.error());
    sign_folder.emplace(std::move(*folder));
    target = sign_folder->path() + "/unsigned.egg";
    options.force = false;
  }
  if (a.precompute) {
    // The cells run from an egg written as usual; the final egg is then
    // written again with the same trees and the fresh notebook.
    auto folder = TempFolder::Create(out_folder, ".egg-precompute-");
    if (!folder) return Report(folder.error());
    std::string unrun = folder->path() + "/unrun.egg";
    WriteOptions unrun_options;
    unrun_options.progress = options.progress;
    auto written = WriteEgg(input, unrun, unrun_options);
    progress.Done();
    if (!written) return Report(written.error());
    if (int code =
            Precompute(unrun, folder->path() + "/out", a, *consent, *notebook);
        code != kExitOk) {
      return code;
    }
    input.notebook = NotebookToJson(*notebook);
  }
  auto summary = WriteEgg(input, target, options);
  progress.Done();
  if (!summary) return Report(summary.error());
  if (signer) {
    if (Status s = SignInto(target, out, *signer, a.force); !s) {
      return Report(s.error().Wrap("signing " + Quote(out)));
    }
  }

  std::fprintf(stderr,
               "egg: built %s: %zu cells, %llu data files (%llu bytes), "
               "runtime %s, %llu bytes\n",
               Quote(out).c_str(), m->cells.size(),
               static_cast<unsigned long long>(m->data_summary.files),
               static_cast<unsigned long long>(m->data_summary.bytes),
               runtime ? DigestRef(*runtime).c_str() : "none",
               static_cast<unsigned long long>(summary->file_bytes));
  std::printf("%s  %s\n", DigestRef(summary->content_root).c_str(),
              out.c_str());
  return kExitOk;
}

Registration reg(10, "build", [](CLI::App& app) {
  auto a = std::make_shared<BuildArgs>();
  CLI::App* sub = app.add_subcommand(
      "build", "Build an egg from an egg.yaml manifest or a Jupyter notebook "
      "(docs/MANIFEST.md)");
  sub->add_option("manifest", a->manifest,
                  "The egg.yaml, or a Jupyter notebook (.ipynb)")
      ->required();
  sub->add_option("--runtime", a->runtime,
                  "For a .ipynb: a root file system folder or tarball, a "
                  "stored runtime sha256:..., or debian:PKG,PKG (bookworm); "
                  "without it the egg has no runtime");
  sub->add_option("-o,--output", a->out,
                  "Output file (default: <name>.egg beside the manifest)");
  sub->add_option("--sign", a->key,
                  "Sign with this OpenSSH Ed25519 key as the builder");
  sub->add_flag("--force", a->force, "Replace an existing output file");
  sub->add_flag("--refresh-runtime", a->refresh_runtime,
                "Build a Debian runtime again instead of reusing the one "
                "in the local store");
  sub->add_flag("--precompute", a->precompute,
                "Run the cells in the sandbox, as egg hatch does, and store "
                "their outputs in the egg (docs/HATCH.md)");
  sub->add_option("--grant", a->grants,
                  "With --precompute: grant a permission without asking: "
                  "network, host-path:PATH, device:PATH, limits");
  sub->add_flag("--host-runtime", a->host_runtime,
                "With --precompute: run on the host's /usr, /bin, /lib and "
                "/etc read-only instead of the egg's runtime (for testing)");
  sub->add_flag("--keep-going", a->keep_going,
                "With --precompute: store the outputs even when a cell "
                "fails (default: the build fails, exit 4)");
  sub->add_option("--store", a->store,
                  "With --precompute: store whose cache holds the "
                  "materialised runtime (default $XDG_CACHE_HOME/egg)");
  sub->add_option("--kernel", a->kernel,
                  "With --precompute: run the cells on a Jupyter kernel of "
                  "the runtime, as egg hatch --kernel does: 'jupyter' (the "
                  "notebook's kernel) or a kernelspec name");
  sub->add_option("--trust", a->trust,
                  "Trust config for an oci:// runtime (default "
                  "~/.config/egg/trust.yaml)");
  return std::pair<CLI::App*, Runner>(sub, [a] { return RunBuild(*a); });
});

}  // namespace
}  // namespace egg::cli

// The shared part of `egg hatch` and `egg build --precompute`: consent,
// cells and the sandboxed run (egg_run.h).
#include "cli/egg_run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/runtime_registry.h"
#include "common/fd.h"
#include "common/text.h"
#include "common/trace.h"
#include "egg/kernel.h"
#include "egg/runtime.h"
#include "egg/store.h"
#include "egg/tree.h"

namespace egg::cli {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) { g_interrupted.store(true); }

std::string Quote(const std::string& s) { return QuoteForTerminal(s); }

Result<Limits> LimitsFromJson(const nlohmann::json& j, const std::string& at) {
  Limits l;
  if (j.is_null()) return l;
  if (!j.is_object()) {
    return Fail(Code::kInvalidArgument, at + ": limits must be an object");
  }
  std::pair<const char*, std::optional<uint64_t> Limits::*> fields[] = {
      {"wall_ms", &Limits::wall_ms},
      {"cpu_ms", &Limits::cpu_ms},
      {"memory_bytes", &Limits::memory_bytes},
      {"processes", &Limits::processes},
      {"scratch_bytes", &Limits::scratch_bytes},
      {"output_bytes", &Limits::output_bytes}};
  Limits max = MaximumLimits();
  for (auto& [key, member] : fields) {
    if (!j.contains(key)) continue;
    const auto& v = j[key];
    if (!v.is_number_unsigned() || v.get<uint64_t>() == 0 ||
        v.get<uint64_t>() > *(max.*member)) {
      return Fail(Code::kInvalidArgument,
                  at + ": limit '" + key + "' is out of range");
    }
    l.*member = v.get<uint64_t>();
  }
  return l;
}

Result<Permissions> PermissionsFromJson(const nlohmann::json& j) {
  Permissions p;
  if (j.is_null()) return p;
  if (!j.is_object()) {
    return Fail(Code::kInvalidArgument, "manifest: bad permissions");
  }
  if (j.contains("network")) {
    if (!j["network"].is_boolean()) {
      return Fail(Code::kInvalidArgument, "manifest: bad permissions.network");
    }
    p.network = j["network"].get<bool>();
  }
  if (j.contains("host_paths")) {
    if (!j["host_paths"].is_array()) {
      return Fail(Code::kInvalidArgument, "manifest: bad host_paths");
    }
    for (const auto& h : j["host_paths"]) {
      if (!h.is_object() || !h.value("host", nlohmann::json()).is_string() ||
          !h.value("sandbox", nlohmann::json()).is_string()) {
        return Fail(Code::kInvalidArgument, "manifest: bad host_paths entry");
      }
      p.host_paths.push_back({h["host"].get<std::string>(),
                              h["sandbox"].get<std::string>(),
                              h.value("writable", false)});
    }
  }
  if (j.contains("devices")) {
    if (!j["devices"].is_array()) {
      return Fail(Code::kInvalidArgument, "manifest: bad devices");
    }
    for (const auto& d : j["devices"]) {
      if (!d.is_string()) {
        return Fail(Code::kInvalidArgument, "manifest: bad devices entry");
      }
      p.devices.push_back(d.get<std::string>());
    }
  }
  return p;
}

// One line per permission, as the person will read it and as --grant
// names it.
struct Ask {
  std::string grant;  // "network", "host-path:/x", "device:/dev/x"
  std::string text;
};

std::vector<Ask> PermissionAsks(const Permissions& p) {
  std::vector<Ask> asks;
  if (p.network) asks.push_back({"network", "use the network"});
  for (const auto& h : p.host_paths) {
    asks.push_back({"host-path:" + h.host,
                    std::string(h.writable ? "read and WRITE" : "read") +
                        " host path " + Quote(h.host) + " (seen at " +
                        Quote(h.sandbox) + ")"});
  }
  for (const auto& d : p.devices) {
    asks.push_back({"device:" + d, "use device " + Quote(d)});
  }
  return asks;
}

// A duration as the manifest writes it: "7d", "30m", "1500ms".
std::string DurationText(uint64_t ms) {
  const std::pair<uint64_t, const char*> units[] = {
      {86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
  for (const auto& [size, name] : units) {
    if (ms != 0 && ms % size == 0) return std::to_string(ms / size) + name;
  }
  return std::to_string(ms) + "ms";
}

// A size as the manifest writes it: "2GiB", "4KiB", "1000B".
std::string SizeText(uint64_t bytes) {
  const std::pair<uint64_t, const char*> units[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"},
      {1ull << 10, "KiB"}};
  for (const auto& [size, name] : units) {
    if (bytes != 0 && bytes % size == 0) {
      return std::to_string(bytes / size) + name;
    }
  }
  return std::to_string(bytes) + "B";
}

// The limits `asked` raises above `defaults`, with the manifest's names
// and units: "wall_time 7d (default 30m)".
std::vector<std::string> RaisedLimits(const Limits& asked,
                                      const Limits& defaults) {
  std::vector<std::string> out;
  auto check = [&](const char* name, const std::optional<uint64_t>& a,
                   const std::optional<uint64_t>& d,
                   std::string (*text)(uint64_t)) {
    if (a && d && *a > *d) {
      out.push_back(std::string(name) + " " + text(*a) + " (default " +
                    text(*d) + ")");
    }
  };
  auto count = [](uint64_t n) { return std::to_string(n); };
  check("wall_time", asked.wall_ms, defaults.wall_ms, DurationText);
  check("cpu_time", asked.cpu_ms, defaults.cpu_ms, DurationText);
  check("memory", asked.memory_bytes, defaults.memory_bytes, SizeText);
  check("processes", asked.processes, defaults.processes, +count);
  check("scratch", asked.scratch_bytes, defaults.scratch_bytes, SizeText);
  check("output", asked.output_bytes, defaults.output_bytes, SizeText);
  return out;
}

// Temporary folders removed on every way out.
struct Scratch {
  std::string path;
  ~Scratch() {
    if (!path.empty()) {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  }
};

// Hands out an egg's chunks, each verified by EggFile on read.
class EggChunkSource : public ChunkSource {
 public:
  explicit EggChunkSource(const EggFile& egg) : egg_(egg) {}
  Result<std::vector<uint8_t>> ReadChunk(const Digest& raw) override {
    return egg_.ReadChunk(raw);
  }

 private:
  const EggFile& egg_;
};

// The egg's runtime tree as a read-only folder in the store's cache
// (roots/<tree digest>), extracted only when no hatch has done so before.
// The store serialises concurrent extractions of one tree.
// `store` must stay open while the folder is used: its shared lock keeps
// a gc in another process from removing it.
// The digest of one of the egg's trees (nullopt if it has none).
std::optional<Digest> TreeDigestOf(const EggFile& egg, const char* name) {
  auto tree = egg.FindTree(name);
  if (!tree) return std::nullopt;
  auto encoded = EncodeTree(**tree);
  if (!encoded) return std::nullopt;
  return TreeDigest(*encoded);
}

Result<std::string> RuntimeFromStore(const EggFile& egg, Store& store) {
  auto tree = egg.FindTree("runtime");
  if (!tree) {
    return Fail(Code::kInvalidArgument, "the egg has no runtime tree");
  }
  auto encoded = EncodeTree(**tree);
  if (!encoded) return Fail(encoded.error());
  Digest digest = TreeDigest(*encoded);
  std::string path = store.MaterialisedPath(digest);
  bool cached = ::access((path + ".ok").c_str(), F_OK) == 0;
  std::fprintf(stderr, "egg: runtime %s: %s\n", DigestRef(digest).c_str(),
               cached ? "cached in the store" : "extracting into the store");
  EggChunkSource source(egg);
  auto root = MaterialiseTree(store, **tree, source);
  if (!root) return Fail(root.error().Wrap("runtime"));
  return root;
}

}  // namespace

std::string QuoteForTerminal(const std::string& s) {
  return "'" + EscapeForTerminal(s) + "'";
}

// Asks a y/N question on /dev/tty (never stdin, which a cell could never
// reach anyway). Returns nullopt when there is no terminal.
std::optional<bool> AskTerminal(const std::string& question) {
  int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return std::nullopt;
  std::string q = "egg: " + question + " [y/N] ";
  if (write(fd, q.data(), q.size()) < 0) {
    close(fd);
    return std::nullopt;
  }
  char buf[16];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  return n > 0 && (buf[0] == 'y' || buf[0] == 'Y');
}

// A --grant word is one of the words PermissionAsks and the limits ask
// print; anything else (a typo) is a usage error before anything runs.
Status CheckGrant(const std::string& grant) {
  if (grant == "network" || grant == "limits") return {};
  for (const char* prefix : {"host-path:", "device:"}) {
    std::string p = prefix;
    if (grant.compare(0, p.size(), p) != 0) continue;
    std::string path = grant.substr(p.size());
    if (!path.empty() && path[0] == '/') return {};
    return Fail(Code::kInvalidArgument,
                "--grant " + Quote(grant) + ": the path must be absolute");
  }
  return Fail(Code::kInvalidArgument,
              "unknown --grant " + Quote(grant) +
                  " (network, limits, host-path:/PATH or device:/PATH)");
}

void PrintCellLine(const CellResult& c) {
  std::string line = "cell " + std::to_string(c.index + 1) + " [" +
                     EscapeForTerminal(c.language) + "] " +
                     CellStatusName(c.status);
  if (!c.limit.empty()) line += " (" + c.limit + ")";
  if (c.status == CellStatus::kError || c.status == CellStatus::kSessionDied) {
    if (c.signal) {
      line += " signal " + std::to_string(c.signal);
    } else {
      line += " status " + std::to_string(c.exit_code);
    }
  }
  char secs[32];
  std::snprintf(secs, sizeof(secs), " %.2fs",
                static_cast<double>(c.duration_ms) / 1000.0);
  if (c.status != CellStatus::kNotRun) line += secs;
  if (!c.note.empty()) line += ": " + EscapeForTerminal(c.note);
  std::fprintf(stderr, "%s\n", line.c_str());
  if (c.status != CellStatus::kOk && c.status != CellStatus::kNotRun &&
      !c.stderr_data.bytes.empty()) {
    // The end of stderr, escaped so nothing from a cell drives the terminal.
    std::string tail = c.stderr_data.bytes;
    if (tail.size() > 400) tail = tail.substr(tail.size() - 400);
    std::fprintf(stderr, "  | %s\n", EscapeForTerminal(tail).c_str());
  }
}

Result<Consent> AgreeToEgg(const nlohmann::json& manifest,
                           const std::vector<std::string>& grants) {
  auto asked_perms =
      PermissionsFromJson(manifest.value("permissions", nlohmann::json()));
  if (!asked_perms) return Fail(asked_perms.error());
  auto asked_limits =
      LimitsFromJson(manifest.value("limits", nlohmann::json()), "manifest");
  if (!asked_limits) return Fail(asked_limits.error());

  Consent consent;
  consent.permissions = *asked_perms;
  consent.limits = MergeLimits(*asked_limits, DefaultEggLimits());
  std::vector<Ask> asks = PermissionAsks(*asked_perms);
  std::vector<std::string> raised =
      RaisedLimits(*asked_limits, DefaultEggLimits());
  if (asks.empty() && raised.empty()) return consent;

  std::fprintf(stderr, "egg: this egg asks to:\n");
  for (const auto& ask : asks) {
    std::fprintf(stderr, "  - %s   [--grant %s]\n", ask.text.c_str(),
                 EscapeForTerminal(ask.grant).c_str());
  }
  for (const auto& r : raised) {
    std::fprintf(stderr, "  - raise limit %s   [--grant limits]\n", r.c_str());
  }
  auto named = [&grants](const std::string& g) {
    return std::find(grants.begin(), grants.end(), g) != grants.end();
  };
  std::vector<std::string> missing;
  for (const auto& ask : asks) {
    if (!named(ask.grant)) missing.push_back(ask.grant);
  }
  if (!raised.empty() && !named("limits")) missing.push_back("limits");
  if (!missing.empty()) {
    auto yes = AskTerminal("grant all of the above?");
    if (!yes || !*yes) {
      std::string names;
      for (const auto& m : missing) {
        names += (names.empty() ? "" : ", ") + EscapeForTerminal(m);
      }
      return Fail(Code::kPermissionDenied,
                  "not granted: " + names + "; nothing was run");
    }
  }
  for (const auto& ask : asks) consent.granted.push_back(ask.grant);
  return consent;
}

Result<std::vector<CellInput>> CellsOf(const Notebook& notebook) {
  std::vector<CellInput> cells;
  for (size_t i = 0; i < notebook.cells.size(); ++i) {
    const NotebookCell& nc = notebook.cells[i];
    if (nc.type != CellType::kCode) continue;
    CellInput c;
    c.index = static_cast<uint32_t>(i);
    c.id = nc.id;
    c.language = nc.language;
    c.code = nc.source;
    auto l = LimitsFromJson(nc.extra.value("limits", nlohmann::json()),
                            "cell " + std::to_string(i + 1));
    if (!l) return Fail(l.error());
    c.limits = *l;
    if (nc.extra.contains("permissions") &&
        !nc.extra["permissions"].is_null()) {
      auto p = PermissionsFromJson(nc.extra["permissions"]);
      if (!p) return Fail(p.error().Wrap("cell " + std::to_string(i + 1)));
      c.permissions = *p;
    }
    cells.push_back(std::move(c));
  }
  return cells;
}

// The Jupyter kernel for `options.kernel`, its sockets' exchange folder
// (in the run's private temp folder) and the display folder.
Result<KernelRunSetup> KernelSetup(const std::vector<CellInput>& cells,
                                   const EggRunOptions& options,
                                   SandboxRunSetup& setup,
                                   const std::string& work) {
  if (!options.no_sandbox && setup.isolation != "namespaces") {
    return Fail(Code::kNotSupported,
                "--kernel needs --isolation namespaces (or --no-sandbox): "
                "the kernel's sockets cannot cross the '" +
                    setup.isolation + "' boundary yet");
  }
  std::string name = options.kernel;
  if (name == "jupyter") {
    name = options.kernel_name;
    if (name.empty()) {
      name = DefaultKernelName(cells.empty() ? "python" : cells[0].language);
    }
  }
  std::string root =
      options.host_runtime || options.no_sandbox ? "/" : setup.runtime_root;
  auto spec = FindKernelSpec(root, name);
  if (!spec) return Fail(spec.error());

  KernelRunSetup kernel;
  kernel.spec = *spec;
  kernel.exchange_host_dir = work + "/exchange";
  if (mkdir(kernel.exchange_host_dir.c_str(), 0700) != 0) {
    return Fail(ErrnoError("creating " + Quote(kernel.exchange_host_dir)));
  }
  // As root the sandbox runs as nobody; the folder's parent stays 0700.
  if (geteuid() == 0) chmod(kernel.exchange_host_dir.c_str(), 0777);
  if (options.no_sandbox) {
    kernel.exchange_sandbox_dir = kernel.exchange_host_dir;
  } else {
    setup.exchange_dir = kernel.exchange_host_dir;
    kernel.exchange_sandbox_dir = kSandboxExchangeDir;
  }
  // IRkernel answers its heartbeat from the loop that runs the cell.
  std::string language;
  for (char c : spec->language) language += static_cast<char>(tolower(c));
  if (language == "r") kernel.options.heartbeat_timeout_ms = 0;
  return kernel;
}

Result<RunReport> RunEggCells(const EggFile& egg,
                              const std::vector<CellInput>& cells,
                              const Consent& consent,
                              const EggRunOptions& options) {
  // One kernel runs every cell, so no cell can have a narrower sandbox.
  for (const CellInput& c : cells) {
    if (!options.kernel.empty() && c.permissions &&
        *c.permissions != consent.permissions) {
      return Fail(Code::kNotSupported,
                  "cell " + std::to_string(c.index + 1) +
                      " has permissions of its own, and a kernel runs "
                      "every cell in one sandbox: hatch it without --kernel");
    }
  }
  // Runtime and data. A temporary folder is made only for what needs one
  // (the egg's data, a kernel's exchange folder).
  Scratch work;
  if (egg.FindTree("data") || !options.kernel.empty()) {
    auto made = MakeHatchTempDir();
    if (!made) return Fail(made.error());
    work.path = *made;
  }
  TraceStep("run: temp folder made");
  SandboxRunSetup setup;
  setup.isolation = options.isolation;
  setup.no_sandbox = options.no_sandbox;
  setup.host_runtime = options.host_runtime;
  setup.egg_limits = consent.limits;
  setup.granted = consent.permissions;
  auto files = FindAgentFiles();
  if (!files) return Fail(files.error());
  setup.agent = *files;
  // Open for the whole run: its shared lock keeps a gc in another process
  // from removing the materialised runtime.
  std::optional<Store> store;
  if (!options.host_runtime) {
    StoreOptions store_options;
    store_options.root = options.store;
    auto opened = Store::Open(store_options);
    if (!opened) return Fail(opened.error().Wrap("opening the store"));
    store.emplace(std::move(*opened));
    auto root = RuntimeFromStore(egg, *store);
    if (!root) return Fail(root.error());
    setup.runtime_root = *root;
    setup.runtime_digest = TreeDigestOf(egg, "runtime");
    TraceStep("run: runtime ready in the store");
    WarnIfRuntimeSuperseded(egg.manifest());
  }
  if (egg.FindTree("data")) {
    setup.data_dir = work.path + "/data";
    if (auto s = egg.ExtractTree("data", setup.data_dir); !s) {
      return Fail(s.error());
    }
    setup.data_digest = TreeDigestOf(egg, "data");
  }
  if (mkdir(options.output_dir.c_str(), 0755) != 0) {
    return Fail(Code::kIo,
                "cannot create output folder " + Quote(options.output_dir) +
                    ": " + std::strerror(errno) +
                    " (--out-dir must name a folder that does not exist yet)");
  }
  setup.output_dir = fs::canonical(options.output_dir).string();
  TraceStep("run: data and /out ready");

  // The cells, stoppable by any signal whose default would end egg
  // (a closed terminal's SIGHUP too): the run stops as for Ctrl-C, so the
  // sandbox goes, /out is secured and the results are written. A write
  // to a closed pipe is an error egg reports, not a signal that kills.
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                  SIGALRM}) {
    sigaction(sig, &sa, nullptr);
  }
  signal(SIGPIPE, SIG_IGN);
  RunOptions run;
  run.stop_on_error = options.stop_on_error;
  run.setup.rich_display = options.rich_display;
  run.cancel = &g_interrupted;
  run.on_cell = options.on_cell;
  // Folders of runs that were SIGKILLed (their pid is gone) are swept
  // while the box is torn down (on_report), when egg mostly waits, or
  // after the run where no report comes before it returns.
  bool swept = false;
  run.on_report = [&options, &swept](const RunReport& report) {
    if (options.on_report) options.on_report(report);
    SweepStaleHatchDirs();
    swept = true;
  };
  if (!options.kernel.empty()) {
    auto kernel = KernelSetup(cells, options, setup, work.path);
    if (!kernel) return Fail(kernel.error());
    run.runner = [kernel = *kernel](const std::vector<CellInput>& c,
                                    AgentHost& host, const RunOptions& o) {
      return RunCellsWithKernel(c, host, o, kernel);
    };
  }
  auto report = RunCellsInSandbox(cells, setup, run);
  if (!swept) SweepStaleHatchDirs();
  return report;
}

std::function<bool(const ChunkEntry&)> MaterialisedRuntimeChunks(
    const EggFile& egg, const std::string& store_dir) {
  auto tree = egg.FindTree("runtime");
  if (!tree) return {};
  auto encoded = EncodeTree(**tree);
  if (!encoded) return {};
  StoreOptions store_options;
  store_options.root = store_dir;
  auto store = Store::Open(store_options);
  if (!store || !IsTreeMaterialised(*store, TreeDigest(*encoded))) return {};

  // A chunk another tree shares is still verified here.
  auto only_runtime = std::make_shared<std::set<Digest>>();
  for (const TreeEntry& e : (*tree)->entries) {
    only_runtime->insert(e.chunks.begin(), e.chunks.end());
  }
  for (const auto& [name, other] : egg.trees()) {
    if (name == "runtime") continue;
    for (const TreeEntry& e : other.entries) {
      for (const Digest& d : e.chunks) only_runtime->erase(d);
    }
  }
  return [only_runtime](const ChunkEntry& c) {
    return only_runtime->count(c.raw) != 0;
  };
}

int RunErrorExitCode(const Error& error) {
  return error.code() == Code::kNotSupported ||
                 error.code() == Code::kSandboxSetup
             ? kExitSandbox
             : ExitCodeFor(error.code());
}

}  // namespace egg::cli

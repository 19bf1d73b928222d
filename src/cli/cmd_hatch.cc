// egg hatch: verifies an egg, asks the person for what it needs beyond the
// defaults, and runs its cells in a sandbox, writing a results JSON.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "common/atomic_file.h"
#include "common/text.h"
#include "egg/crypto.h"
#include "egg/egg.h"
#include "egg/hatch.h"
#include "egg/manifest.h"
#include "egg/notebook.h"
#include "egg/runtime.h"
#include "egg/store.h"
#include "egg/tree.h"

namespace egg::cli {
namespace {

namespace fs = std::filesystem;

struct HatchArgs {
  std::string egg;
  std::string results;
  std::string out_dir;
  std::string isolation = "namespaces";
  std::string oci_runtime;
  bool no_sandbox = false;
  bool host_runtime = false;
  std::vector<std::string> grants;
  bool allow_unsigned = false;
  std::string trusted;
  std::string store;  // "" = the default store
  bool keep_going = false;
  bool stop_on_error = false;
  bool json = false;
};

std::atomic<bool> g_interrupted{false};

extern "C" void OnInterrupt(int) { g_interrupted.store(true); }

std::string Quote(const std::string& s) {
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

// ---- what the egg asks for ------------------------------------------------

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

std::vector<std::string> RaisedLimits(const Limits& asked,
                                      const Limits& defaults) {
  std::vector<std::string> out;
  auto check = [&](const char* name, const std::optional<uint64_t>& a,
                   const std::optional<uint64_t>& d) {
    if (a && d && *a > *d) {
      out.push_back(std::string(name) + " " + std::to_string(*a) +
                    " (default " + std::to_string(*d) + ")");
    }
  };
  check("wall_ms", asked.wall_ms, defaults.wall_ms);
  check("cpu_ms", asked.cpu_ms, defaults.cpu_ms);
  check("memory_bytes", asked.memory_bytes, defaults.memory_bytes);
  check("processes", asked.processes, defaults.processes);
  check("scratch_bytes", asked.scratch_bytes, defaults.scratch_bytes);
  check("output_bytes", asked.output_bytes, defaults.output_bytes);
  return out;
}

// ---- the command
// -------------------------------------------------------------

std::string DefaultResultsPath(const std::string& egg) {
  std::string base = egg;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".egg") == 0) {
    base.resize(base.size() - 4);
  }
  return base + ".results.json";
}

std::string DefaultOutDir(const std::string& egg) {
  std::string base = egg;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".egg") == 0) {
    base.resize(base.size() - 4);
  }
  return base + ".out";
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

int RunHatch(const HatchArgs& a) {
  // 1. Open once, verify from that same open file, and say who signed.
  auto trust = crypto::LoadTrust(a.trusted);
  if (!trust) return Report(trust.error());
  auto egg = EggFile::Open(a.egg, EggFile::Depth::kFull);
  if (!egg) {
    Report(egg.error());
    return egg.error().code() == Code::kCorruption ||
                   egg.error().code() == Code::kVerificationFailed
               ? kExitVerificationFailed
               : ExitCodeFor(egg.error().code());
  }
  if (auto s = egg->VerifyContent(); !s) {
    Report(s.error());
    return kExitVerificationFailed;
  }
  const crypto::AllowedSigners* trust_ptr = *trust ? &**trust : nullptr;
  crypto::ChainReport chain =
      crypto::VerifyChain(egg->content_root(), egg->signatures(), trust_ptr,
                          static_cast<int64_t>(std::time(nullptr)));
  std::string summary = crypto::ChainSummary(chain);
  std::fprintf(stderr, "egg: %s: content intact; signatures: %s\n",
               Quote(a.egg).c_str(), summary.c_str());
  if (chain.state == crypto::SignatureState::kInvalid) {
    Report(Error(Code::kVerificationFailed, summary));
    return kExitVerificationFailed;
  }
  // The manifest comes from whoever made the egg: apply the manifest
  // rules before anything from it is shown or asked.
  std::vector<std::string> tree_names;
  for (const TreeRef& t : egg->layout().trees) tree_names.push_back(t.name);
  if (auto stored = ParseStoredManifest(egg->manifest(), egg->notebook(),
                                        tree_names);
      !stored) {
    return Report(stored.error());
  }
  if (chain.state != crypto::SignatureState::kTrusted && !a.allow_unsigned) {
    auto yes = AskTerminal(
        "this egg is not signed by a key you trust. "
        "Run it anyway?");
    if (!yes) {
      Report(Error(Code::kPermissionDenied,
                   "the egg is not signed by a trusted key; pass "
                   "--allow-unsigned to run it without a terminal"));
      return kExitRefused;
    }
    if (!*yes) {
      Report(Error(Code::kPermissionDenied, "not confirmed"));
      return kExitRefused;
    }
  }

  // 2. What the egg asks for beyond the defaults, agreed before any cell.
  const auto& manifest = egg->manifest();
  auto asked_perms =
      PermissionsFromJson(manifest.value("permissions", nlohmann::json()));
  if (!asked_perms) return Report(asked_perms.error());
  auto asked_limits =
      LimitsFromJson(manifest.value("limits", nlohmann::json()), "manifest");
  if (!asked_limits) return Report(asked_limits.error());
  auto notebook = NotebookFromJson(egg->notebook());
  if (!notebook) return Report(notebook.error());

  std::vector<Ask> asks = PermissionAsks(*asked_perms);
  std::vector<std::string> raised =
      RaisedLimits(*asked_limits, DefaultEggLimits());
  std::vector<std::string> granted_names;
  if (!asks.empty() || !raised.empty()) {
    std::fprintf(stderr, "egg: this egg asks to:\n");
    for (const auto& ask : asks) {
      std::fprintf(stderr, "  - %s   [--grant %s]\n", ask.text.c_str(),
                   EscapeForTerminal(ask.grant).c_str());
    }
    for (const auto& r : raised) {
      std::fprintf(stderr, "  - raise limit %s   [--grant limits]\n",
                   r.c_str());
    }
    std::vector<std::string> missing;
    for (const auto& ask : asks) {
      if (std::find(a.grants.begin(), a.grants.end(), ask.grant) ==
          a.grants.end()) {
        missing.push_back(ask.grant);
      }
    }
    if (!raised.empty() && std::find(a.grants.begin(), a.grants.end(),
                                     "limits") == a.grants.end()) {
      missing.push_back("limits");
    }
    if (!missing.empty()) {
      auto yes = AskTerminal("grant all of the above?");
      if (!yes || !*yes) {
        std::string names;
        for (const auto& m : missing) {
          names += (names.empty() ? "" : ", ") + EscapeForTerminal(m);
        }
        Report(Error(Code::kPermissionDenied,
                     "not granted: " + names + "; nothing was run"));
        return kExitRefused;
      }
    }
    for (const auto& ask : asks) granted_names.push_back(ask.grant);
  }

  // 3. Runtime, data and output folders.
  Scratch work;
  {
    // Folders of hatches that were SIGKILLed (their pid is gone).
    SweepStaleHatchDirs();
    auto made = MakeHatchTempDir();
    if (!made) return Report(made.error());
    work.path = *made;
  }
  SandboxRunSetup setup;
  setup.isolation = a.isolation;
  setup.no_sandbox = a.no_sandbox;
  setup.host_runtime = a.host_runtime;
  setup.egg_limits = MergeLimits(*asked_limits, DefaultEggLimits());
  setup.granted = *asked_perms;
  auto files = FindAgentFiles();
  if (!files) return Report(files.error());
  setup.agent = *files;
  std::optional<Store> store;
  if (!a.host_runtime) {
    StoreOptions store_options;
    store_options.root = a.store;
    auto opened = Store::Open(store_options);
    if (!opened) return Report(opened.error().Wrap("opening the store"));
    store.emplace(std::move(*opened));
    auto root = RuntimeFromStore(*egg, *store);
    if (!root) return Report(root.error());
    setup.runtime_root = *root;
  }
  if (egg->FindTree("data")) {
    setup.data_dir = work.path + "/data";
    if (auto s = egg->ExtractTree("data", setup.data_dir); !s) {
      return Report(s.error());
    }
  }
  std::string out_dir = a.out_dir.empty() ? DefaultOutDir(a.egg) : a.out_dir;
  if (mkdir(out_dir.c_str(), 0755) != 0) {
    return Report(Error(Code::kIo, "cannot create output folder " +
                                       Quote(out_dir) + ": " +
                                       std::strerror(errno) +
                                       " (remove it or pass --out-dir)"));
  }
  setup.output_dir = fs::canonical(out_dir).string();

  // 4. The cells.
  std::vector<CellInput> cells;
  for (size_t i = 0; i < notebook->cells.size(); ++i) {
    const NotebookCell& nc = notebook->cells[i];
    if (nc.type != CellType::kCode) continue;
    CellInput c;
    c.index = static_cast<uint32_t>(i);
    c.id = nc.id;
    c.language = nc.language;
    c.code = nc.source;
    auto l = LimitsFromJson(nc.extra.value("limits", nlohmann::json()),
                            "cell " + std::to_string(i + 1));
    if (!l) return Report(l.error());
    c.limits = *l;
    cells.push_back(std::move(c));
  }

  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  RunOptions options;
  options.stop_on_error = a.stop_on_error;
  options.cancel = &g_interrupted;
  options.on_cell = PrintCellLine;
  auto report = RunCellsInSandbox(cells, setup, options);
  if (!report) {
    Report(report.error());
    return report.error().code() == Code::kNotSupported ||
                   report.error().code() == Code::kSandboxSetup
               ? kExitSandbox
               : ExitCodeFor(report.error().code());
  }

  // 5. Compare with stored outputs, write results, say how it went.
  NotebookRun fresh = RunFromHatch(*report, "");
  ReproReport repro = CompareNotebook(*notebook, fresh, CompareOptions{});
  ResultsMeta meta;
  meta.egg = fs::path(a.egg).filename().string();
  meta.egg_digest = DigestRef(egg->content_root());
  meta.isolation = a.no_sandbox ? "none" : a.isolation;
  meta.signers = crypto::ChainReportLines(chain);
  meta.granted = granted_names;
  std::string json = ResultsJson(*report, meta);
  auto doc = nlohmann::json::parse(json, nullptr, false);
  if (!doc.is_discarded()) {
    doc["reproducibility"] = ReportToJson(repro);
    doc["output_dir"] = setup.output_dir;
    json = doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
           "\n";
  }
  std::string results =
      a.results.empty() ? DefaultResultsPath(a.egg) : a.results;
  if (auto s = WriteFileAtomic(results, json, 0644, true); !s) {
    Report(s.error());
  }
  if (a.json) std::fwrite(json.data(), 1, json.size(), stdout);
  if (repro.code_cells > 0) {
    std::fprintf(stderr, "%s", FormatReport(repro).c_str());
  }
  std::fprintf(stderr, "egg: results in %s, files in %s\n",
               Quote(results).c_str(), Quote(setup.output_dir).c_str());

  if (report->interrupted) return kExitInterrupted;
  if (!report->agent_error.empty()) {
    Report(Error(Code::kSandboxSetup, report->agent_error));
  }
  return report->AllSucceeded() ? kExitOk : kExitCellFailed;
}

Registration reg(40, [](CLI::App& app) {
  auto a = std::make_shared<HatchArgs>();
  CLI::App* sub = app.add_subcommand("hatch",
                                     "Verify an egg and run its cells in a "
                                     "sandbox");
  sub->add_option("egg", a->egg, "The egg")->required();
  sub->add_option("-o,--results", a->results,
                  "Results JSON (default NAME.results.json beside the egg)");
  sub->add_option("--out-dir", a->out_dir,
                  "Fresh folder for the cells' /out (default NAME.out)");
  sub->add_option("--isolation", a->isolation,
                  "Sandbox backend: namespaces (default), gvisor, oci, vm, "
                  "auto (the strongest that works here) or none");
  sub->add_option("--oci-runtime", a->oci_runtime,
                  "With --isolation oci: runc (default) or crun");
  sub->add_flag("--no-sandbox", a->no_sandbox,
                "Run with no isolation at all (same as --isolation none)");
  sub->add_flag("--host-runtime", a->host_runtime,
                "Use the host's /usr, /bin, /lib and /etc read-only as the "
                "runtime (for testing)");
  sub->add_option("--grant", a->grants,
                  "Grant a permission without asking: network, "
                  "host-path:PATH, device:PATH, limits");
  sub->add_flag("--allow-unsigned", a->allow_unsigned,
                "Run an unsigned or untrusted egg without asking");
  sub->add_option("--trusted", a->trusted, "OpenSSH allowed_signers file");
  sub->add_option("--store", a->store,
                  "Store whose cache holds the materialised runtime "
                  "(default $XDG_CACHE_HOME/egg)");
  sub->add_flag("--keep-going", a->keep_going,
                "Run every cell even after one fails (default)");
  sub->add_flag("--stop-on-error", a->stop_on_error,
                "Stop at the first failing cell");
  sub->add_flag("--json", a->json, "Also print the results JSON on stdout");
  return std::pair<CLI::App*, Runner>(sub, [a] {
    HatchArgs args = *a;
    if (args.isolation == "none") {
      args.no_sandbox = true;
    } else if (args.isolation != "namespaces" && args.isolation != "gvisor" &&
               args.isolation != "oci" && args.isolation != "vm" &&
               args.isolation != "auto") {
      return Report(Error(Code::kInvalidArgument,
                          "unknown isolation " + Quote(args.isolation) +
                              " (namespaces, gvisor, oci, vm, auto, none)"));
    }
    if (!args.oci_runtime.empty()) {
      if (args.isolation != "oci" ||
          (args.oci_runtime != "runc" && args.oci_runtime != "crun")) {
        return Report(Error(Code::kInvalidArgument,
                            "--oci-runtime takes runc or crun, with "
                            "--isolation oci"));
      }
      args.isolation = "oci:" + args.oci_runtime;
    }
    for (const auto& g : args.grants) {
      if (auto s = CheckGrant(g); !s) return Report(s.error());
    }
    if (args.keep_going && args.stop_on_error) {
      return Report(Error(Code::kInvalidArgument,
                          "--keep-going and --stop-on-error conflict"));
    }
    return RunHatch(args);
  });
});

}  // namespace
}  // namespace egg::cli

// egg runtime: create, list, show, materialise and export runtimes in the
// local store (docs/RUNTIMES.md).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/runtime_registry.h"
#include "common/text.h"
#include "egg/runtime.h"
#include "egg/store.h"

namespace egg::cli {
namespace {

struct RuntimeArgs {
  std::string store;
  std::string path;
  std::string digest;
  std::string dir;
  bool strip_setuid = false;
  bool no_keep = false;
  bool json = false;
  DebianOptions debian;
  std::optional<int64_t> epoch;
};

void AddStoreOption(CLI::App* sub, RuntimeArgs* a) {
  sub->add_option("--store", a->store,
                  "Local store folder (default $XDG_CACHE_HOME/egg or "
                  "~/.cache/egg)");
}

nlohmann::json ToJson(const RuntimeInfo& info) {
  nlohmann::json j = {{"digest", DigestRef(info.digest)},
                      {"source", info.source},
                      {"origin", info.origin},
                      {"files", info.files},
                      {"bytes", info.bytes},
                      {"kept", info.kept}};
  if (info.source == "debian") {
    j["suite"] = info.suite;
    j["variant"] = info.variant;
    j["architecture"] = info.architecture;
    j["mirror"] = info.mirror;
    j["source_date_epoch"] = info.source_date_epoch;
    j["requested"] = info.requested;
    nlohmann::json packages = nlohmann::json::array();
    for (const auto& p : info.packages) {
      packages.push_back({{"name", p.name},
                          {"version", p.version},
                          {"architecture", p.architecture}});
    }
    j["packages"] = packages;
  }
  return j;
}

void PrintJson(const nlohmann::json& j) {
  std::string text = j.dump(2, ' ', true) + "\n";
  std::fputs(text.c_str(), stdout);
}

// Prints the digest on stdout and a summary on stderr.
int Created(const Result<RuntimeInfo>& info, bool json) {
  if (!info) return Report(info.error());
  if (json) {
    PrintJson(ToJson(*info));
  } else {
    std::printf("%s\n", DigestRef(info->digest).c_str());
  }
  std::fprintf(stderr, "egg: runtime stored: %llu files, %llu bytes\n",
               static_cast<unsigned long long>(info->files),
               static_cast<unsigned long long>(info->bytes));
  return kExitOk;
}

Result<Store> OpenStore(const RuntimeArgs& a) {
  auto store = Store::Open({.root = a.store});
  if (!store) return Fail(store.error().Wrap("local store"));
  return store;
}

Result<Digest> ParseArgDigest(const std::string& text) {
  auto d = ParseDigest(text);
  if (!d) {
    return Fail(Code::kInvalidArgument,
                "'" + text + "' is not a digest (sha256:<64 hex>)");
  }
  return d;
}

int RunImportFolder(const RuntimeArgs& a) {
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  return Created(ImportRuntimeFolder(*store, a.path,
                                     {.strip_setuid = a.strip_setuid,
                                      .keep = !a.no_keep}),
                 a.json);
}

int RunImportTar(const RuntimeArgs& a) {
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  return Created(ImportRuntimeTar(*store, a.path,
                                  {.strip_setuid = a.strip_setuid,
                                   .keep = !a.no_keep}),
                 a.json);
}

int RunDebian(RuntimeArgs a) {
  a.debian.source_date_epoch = a.epoch;
  if (auto s = ValidateDebianOptions(a.debian); !s) return Report(s.error());
  auto epoch = DebianSourceDateEpoch(a.debian);
  if (!epoch) return Report(epoch.error());
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  std::fprintf(stderr,
               "egg: building a %s runtime with mmdebstrap "
               "(SOURCE_DATE_EPOCH=%lld)\n",
               a.debian.suite.c_str(), static_cast<long long>(*epoch));
  Progress progress("mmdebstrap", 0);
  auto info = CreateDebianRuntime(*store, a.debian);
  progress.Done();
  return Created(info, a.json);
}

int RunList(const RuntimeArgs& a) {
  auto absent = StoreAbsent(a.store);
  if (!absent) return Report(absent.error().Wrap("local store"));
  if (*absent) {
    if (a.json) PrintJson(nlohmann::json::array());
    return kExitOk;
  }
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  auto list = ListRuntimes(*store);
  if (!list) return Report(list.error());
  if (a.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& info : *list) j.push_back(ToJson(info));
    PrintJson(j);
    return kExitOk;
  }
  for (const auto& info : *list) {
    std::string line = DigestRef(info.digest) + "  " + info.source + "  " +
                       EscapeForTerminal(info.origin) +
                       (info.kept ? "  kept" : "") + "\n";
    std::fputs(line.c_str(), stdout);
  }
  return kExitOk;
}

int RunShow(const RuntimeArgs& a) {
  auto digest = ParseArgDigest(a.digest);
  if (!digest) return Report(digest.error());
  auto absent = StoreAbsent(a.store);
  if (!absent) return Report(absent.error().Wrap("local store"));
  if (*absent) {
    return Report(Error(Code::kNotFound, "runtime " + DigestRef(*digest) +
                                             " is not in the store"));
  }
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  auto info = ShowRuntime(*store, *digest);
  if (!info) return Report(info.error());
  if (a.json) {
    PrintJson(ToJson(*info));
    return kExitOk;
  }
  std::string out = "digest:  " + DigestRef(info->digest) + "\n" +
                    "source:  " + info->source + "\n" +
                    "origin:  " + EscapeForTerminal(info->origin) + "\n" +
                    "files:   " + std::to_string(info->files) + " (" +
                    std::to_string(info->bytes) + " bytes)\n" +
                    "kept:    " + (info->kept ? "yes" : "no") + "\n";
  if (info->source == "debian") {
    out += "suite:   " + info->suite + " (" + info->variant + ", " +
           info->architecture + ")\n";
    out += "epoch:   " + std::to_string(info->source_date_epoch) + "\n";
    out += "mirror:  " +
           (info->mirror.empty() ? std::string("(mmdebstrap default)")
                                 : EscapeForTerminal(info->mirror)) +
           "\n";
    std::string requested;
    for (const auto& p : info->requested) requested += " " + p;
    out += "asked:  " + requested + "\n";
    out += "packages:\n";
    for (const auto& p : info->packages) {
      out += "  " + EscapeForTerminal(p.name) + " " +
             EscapeForTerminal(p.version) + " " +
             EscapeForTerminal(p.architecture) + "\n";
    }
  }
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

int RunMaterialise(const RuntimeArgs& a) {
  auto digest = ParseArgDigest(a.digest);
  if (!digest) return Report(digest.error());
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  auto path = MaterialiseRuntime(*store, *digest);
  if (!path) return Report(path.error());
  std::printf("%s\n", path->c_str());
  return kExitOk;
}

int RunExport(const RuntimeArgs& a) {
  auto digest = ParseArgDigest(a.digest);
  if (!digest) return Report(digest.error());
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  if (auto s = ExportTree(*store, *digest, a.dir); !s) {
    return Report(s.error());
  }
  return kExitOk;
}

int RunKeep(const RuntimeArgs& a, bool keep) {
  auto digest = ParseArgDigest(a.digest);
  if (!digest) return Report(digest.error());
  auto store = OpenStore(a);
  if (!store) return Report(store.error());
  if (auto s = KeepRuntime(*store, *digest, keep); !s) {
    return Report(s.error());
  }
  return kExitOk;
}

Registration reg(60, "runtime", [](CLI::App& app) {
  auto a = std::make_shared<RuntimeArgs>();
  auto* cmd = app.add_subcommand(
      "runtime", "Create and inspect runtimes in the local store");
  cmd->require_subcommand(1);

  auto* folder = cmd->add_subcommand("import-folder",
                                     "Store a folder as a runtime");
  folder->add_option("dir", a->path, "Root folder")->required();
  auto* tar = cmd->add_subcommand("import-tar",
                                  "Store a tarball as a runtime");
  tar->add_option("file", a->path, "Tarball (any libarchive format)")
      ->required();
  for (auto* sub : {folder, tar}) {
    sub->add_flag("--strip-setuid", a->strip_setuid,
                  "Clear setuid/setgid bits instead of refusing them");
    sub->add_flag("--no-keep", a->no_keep,
                  "Do not protect the runtime from 'egg store gc'");
  }

  auto* debian = cmd->add_subcommand(
      "debian", "Build a runtime from Debian packages with mmdebstrap");
  debian->add_option("packages", a->debian.packages, "Packages to install");
  debian->add_option("--suite", a->debian.suite, "Debian suite")
      ->capture_default_str();
  debian->add_option("--variant", a->debian.variant, "mmdebstrap variant")
      ->capture_default_str();
  debian->add_option("--arch", a->debian.architecture,
                     "Architecture (default: the host's)");
  debian->add_option("--mirror", a->debian.mirror,
                     "Mirror URI (default: mmdebstrap's)");
  debian
      ->add_option("--source-date-epoch", a->epoch,
                   "SOURCE_DATE_EPOCH (default: the suite's release "
                   "date)")
      ->check(WholeNumber(253402300799));  // 9999-12-31T23:59:59Z

  auto* ls = cmd->add_subcommand("ls", "List stored runtimes");
  auto* show = cmd->add_subcommand("show", "Show a runtime's metadata");
  auto* mat = cmd->add_subcommand(
      "materialise", "Extract a runtime read-only and print its folder");
  auto* exp = cmd->add_subcommand("export", "Write a runtime to a folder");
  auto* keep = cmd->add_subcommand("keep", "Protect a runtime from gc");
  auto* drop = cmd->add_subcommand("drop", "Let gc remove a runtime");
  for (auto* sub : {show, mat, exp, keep, drop}) {
    sub->add_option("digest", a->digest, "Runtime digest")->required();
  }
  exp->add_option("dir", a->dir, "Folder to create")->required();
  for (auto* sub : {folder, tar, debian, ls, show}) {
    sub->add_flag("--json", a->json, "Machine-readable output");
  }
  for (auto* sub : {folder, tar, debian, ls, show, mat, exp, keep, drop}) {
    AddStoreOption(sub, a.get());
  }

  Runner registry = AddRuntimeRegistryCommands(cmd);  // push, fetch

  return std::make_pair(cmd, Runner([=]() -> int {
    if (int code = registry(); code >= 0) return code;
    if (folder->parsed()) return RunImportFolder(*a);
    if (tar->parsed()) return RunImportTar(*a);
    if (debian->parsed()) return RunDebian(*a);
    if (ls->parsed()) return RunList(*a);
    if (show->parsed()) return RunShow(*a);
    if (mat->parsed()) return RunMaterialise(*a);
    if (exp->parsed()) return RunExport(*a);
    if (keep->parsed()) return RunKeep(*a, true);
    if (drop->parsed()) return RunKeep(*a, false);
    return kExitUsage;
  }));
});

}  // namespace
}  // namespace egg::cli

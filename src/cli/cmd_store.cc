// egg store: inspect, check and collect the local store
// (docs/RUNTIMES.md).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "cli/cli.h"
#include "egg/runtime.h"
#include "egg/sandbox.h"
#include "egg/store.h"

namespace egg::cli {
namespace {

struct StoreArgs {
  std::string store;
  bool json = false;
};

nlohmann::json StatsJson(const StoreStats& s) {
  return {{"objects", s.objects},
          {"bytes", s.bytes},
          {"removed", s.removed},
          {"removed_bytes", s.removed_bytes},
          {"problems", s.problems}};
}

int RunList(const StoreArgs& a) {
  auto absent = StoreAbsent(a.store);
  if (!absent) return Report(absent.error().Wrap("local store"));
  if (*absent) {
    if (a.json) std::fputs("[]\n", stdout);
    return kExitOk;
  }
  auto store = Store::Open({.root = a.store});
  if (!store) return Report(store.error().Wrap("local store"));
  auto list = store->List();
  if (!list) return Report(list.error());
  if (a.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& e : *list) {
      j.push_back({{"kind", ObjectKindName(e.kind)},
                   {"digest", DigestRef(e.digest)},
                   {"stored_bytes", e.stored_bytes}});
    }
    std::fputs((j.dump(2) + "\n").c_str(), stdout);
    return kExitOk;
  }
  for (const auto& e : *list) {
    std::printf("%-5s %s %llu\n", ObjectKindName(e.kind),
                DigestRef(e.digest).c_str(),
                static_cast<unsigned long long>(e.stored_bytes));
  }
  return kExitOk;
}

// The line verify and gc print for a store with nothing in it.
int EmptyStoreStats(const StoreArgs& a) {
  if (a.json) std::fputs((StatsJson({}).dump(2) + "\n").c_str(), stdout);
  std::fprintf(stderr, "egg: checked 0 objects\n");
  return kExitOk;
}

int RunVerify(const StoreArgs& a) {
  auto absent = StoreAbsent(a.store);
  if (!absent) return Report(absent.error().Wrap("local store"));
  if (*absent) return EmptyStoreStats(a);
  auto store = Store::Open({.root = a.store});
  if (!store) return Report(store.error().Wrap("local store"));
  auto stats = store->Verify();
  if (!stats) return Report(stats.error());
  if (a.json) {
    std::fputs((StatsJson(*stats).dump(2) + "\n").c_str(), stdout);
  }
  for (const auto& p : stats->problems) Warn(p);
  std::fprintf(stderr, "egg: checked %llu objects; %zu damaged (removed)\n",
               static_cast<unsigned long long>(stats->objects),
               stats->problems.size());
  return stats->problems.empty() ? kExitOk : kExitVerificationFailed;
}

int RunGc(const StoreArgs& a) {
  auto absent = StoreAbsent(a.store);
  if (!absent) return Report(absent.error().Wrap("local store"));
  // A missing store holds nothing (and is not made here); the vm image
  // cache is collected all the same.
  std::optional<Store> store;
  Result<StoreStats> stats = StoreStats{};
  if (!*absent) {
    auto opened = Store::Open({.root = a.store});
    if (!opened) return Report(opened.error().Wrap("local store"));
    store.emplace(std::move(*opened));
    stats = store->Gc(&RuntimeTreeReferences);
    if (!stats) return Report(stats.error());
  }
  // The vm backend's disk images: a runtime's root image stays while the
  // runtime is materialised in this store; the rest is made again on use.
  auto images = CollectVmImageCache([&store](const Digest& runtime) {
    return store.has_value() && IsTreeMaterialised(*store, runtime);
  });
  if (a.json) {
    nlohmann::json j = StatsJson(*stats);
    if (images) {
      j["vm_images"] = {{"removed", images->removed},
                        {"removed_bytes", images->removed_bytes},
                        {"in_use", images->busy}};
    }
    std::fputs((j.dump(2) + "\n").c_str(), stdout);
  }
  for (const auto& p : stats->problems) Warn(p);
  std::fprintf(stderr, "egg: removed %llu of %llu objects (%llu bytes)\n",
               static_cast<unsigned long long>(stats->removed),
               static_cast<unsigned long long>(stats->objects),
               static_cast<unsigned long long>(stats->removed_bytes));
  if (!images) {
    Warn("vm image cache: " + images.error().message());
  } else if (images->entries > 0) {
    std::fprintf(stderr,
                 "egg: removed %llu of %llu vm disk images (%llu bytes); "
                 "%llu in use\n",
                 static_cast<unsigned long long>(images->removed),
                 static_cast<unsigned long long>(images->entries),
                 static_cast<unsigned long long>(images->removed_bytes),
                 static_cast<unsigned long long>(images->busy));
  }
  return kExitOk;
}

Registration reg(61, "store", [](CLI::App& app) {
  auto a = std::make_shared<StoreArgs>();
  auto* cmd = app.add_subcommand("store", "Inspect and clean the local store");
  cmd->require_subcommand(1);
  auto* ls = cmd->add_subcommand("ls", "List stored objects");
  auto* verify = cmd->add_subcommand(
      "verify",
      "Check every object against its digest (removes damaged "
      "ones; exit 1 if any)");
  auto* gc = cmd->add_subcommand(
      "gc", "Remove what no kept runtime or pin list references");
  for (auto* sub : {ls, verify, gc}) {
    sub->add_option("--store", a->store,
                    "Local store folder (default $XDG_CACHE_HOME/egg or "
                    "~/.cache/egg)");
    sub->add_flag("--json", a->json, "Machine-readable output");
  }
  return std::make_pair(cmd, Runner([=]() -> int {
                          if (ls->parsed()) return RunList(*a);
                          if (verify->parsed()) return RunVerify(*a);
                          if (gc->parsed()) return RunGc(*a);
                          return kExitUsage;
                        }));
});

}  // namespace
}  // namespace egg::cli

// egg pull REF [-o FILE]: fetches an egg from an OCI registry, taking every
// chunk the local store already has from there, and writes it only once
// every byte checked out. The result is byte-identical to the pushed egg.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/cli.h"
#include "cli/registry_args.h"
#include "common/atomic_file.h"
#include "egg/registry.h"
#include "egg/store.h"

namespace egg::cli {
namespace {

struct PullArgs {
  std::string ref;
  std::string out;
  std::string trust;
  std::string store;
  std::string username;
  bool password_stdin = false;
  bool force = false;
  bool json = false;
};

int Run(const PullArgs& a) {
  auto ref = ParseReference(a.ref);
  if (!ref) return Report(ref.error());
  auto client = ClientOptionsFrom(a.trust, a.username, a.password_stdin);
  if (!client) return Report(client.error());
  std::string out = a.out;
  if (out.empty()) {
    out = ref->repository.substr(ref->repository.rfind('/') + 1) + ".egg";
  }
  if (auto s = CheckWritableTarget(out); !s) return Report(s.error());
  auto store = Store::Open({.root = a.store});
  if (!store) return Report(store.error().Wrap("local store"));

  EggTransferOptions options;
  options.client = *client;
  std::unique_ptr<Progress> bar;
  options.progress = [&](uint64_t done, uint64_t total) {
    if (!bar) bar = std::make_unique<Progress>("pulling", total);
    bar->Update(done);
  };
  auto pulled = PullEgg(*ref, out, a.force, *store, options);
  if (bar) bar->Done();
  if (!pulled) return Report(pulled.error());

  if (a.json) {
    std::printf(
        "{\"path\":\"%s\",\"manifest\":\"%s\",\"content_root\":\"%s\","
        "\"chunks\":%llu,\"chunks_from_store\":%llu,\"packs\":%llu,"
        "\"packs_fetched\":%llu,\"bytes_fetched\":%llu}\n",
        out.c_str(), DigestRef(pulled->manifest).c_str(),
        DigestRef(pulled->content_root).c_str(),
        static_cast<unsigned long long>(pulled->chunks),
        static_cast<unsigned long long>(pulled->chunks_from_store),
        static_cast<unsigned long long>(pulled->packs),
        static_cast<unsigned long long>(pulled->packs_fetched),
        static_cast<unsigned long long>(pulled->bytes_fetched));
  } else {
    std::fprintf(stderr,
                 "egg: pulled %s into \"%s\" (content root %s): %llu of "
                 "%llu packs fetched, %llu of %llu chunks from the store\n",
                 ref->ToString().c_str(), out.c_str(),
                 DigestRef(pulled->content_root).c_str(),
                 static_cast<unsigned long long>(pulled->packs_fetched),
                 static_cast<unsigned long long>(pulled->packs),
                 static_cast<unsigned long long>(pulled->chunks_from_store),
                 static_cast<unsigned long long>(pulled->chunks));
  }
  return kExitOk;
}

Registration reg(81, "pull", [](CLI::App& app) {
  auto a = std::make_shared<PullArgs>();
  auto* cmd = app.add_subcommand(
      "pull", "Fetch an egg from an OCI registry (checked before written)");
  cmd->add_option("ref", a->ref,
                  "host[:port]/repo:tag or host[:port]/repo@sha256:...")
      ->required();
  cmd->add_option("-o,--output", a->out,
                  "Egg file to write (default: <repo>.egg)");
  cmd->add_flag("--force", a->force, "Replace an existing output file");
  cmd->add_option("--trust", a->trust,
                  "Trust config (default ~/.config/egg/trust.yaml)");
  cmd->add_option("--store", a->store,
                  "Local store folder (default $XDG_CACHE_HOME/egg or "
                  "~/.cache/egg)");
  cmd->add_option("--username", a->username, "Registry user name");
  cmd->add_flag("--password-stdin", a->password_stdin,
                "Read the registry password from stdin");
  cmd->add_flag("--json", a->json, "Machine-readable output");
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli

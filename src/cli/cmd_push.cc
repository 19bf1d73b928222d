// egg push EGG REF: sends an egg to an OCI registry as an egg artifact
// (docs/REGISTRY.md). Only packs the registry lacks are sent. Prints the
// pinned reference (host/repo@sha256:...) on stdout.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/cli.h"
#include "cli/registry_args.h"
#include "egg/registry.h"

namespace egg::cli {
namespace {

struct PushArgs {
  std::string egg;
  std::string ref;
  std::string trust;
  std::string username;
  bool password_stdin = false;
  bool json = false;
};

int Run(const PushArgs& a) {
  auto ref = ParseReference(a.ref);
  if (!ref) return Report(ref.error());
  auto client = ClientOptionsFrom(a.trust, a.username, a.password_stdin);
  if (!client) return Report(client.error());

  EggTransferOptions options;
  options.client = *client;
  std::unique_ptr<Progress> bar;
  options.progress = [&](uint64_t done, uint64_t total) {
    if (!bar) bar = std::make_unique<Progress>("pushing", total);
    bar->Update(done);
  };
  auto pushed = PushEgg(a.egg, *ref, options);
  if (bar) bar->Done();
  if (!pushed) return Report(pushed.error());

  Reference pinned = *ref;
  pinned.digest = pushed->manifest;
  pinned.tag.clear();
  if (a.json) {
    std::printf(
        "{\"reference\":\"%s\",\"manifest\":\"%s\",\"content_root\":\"%s\","
        "\"packs\":%llu,\"packs_sent\":%llu,\"bytes_sent\":%llu}\n",
        pinned.ToString().c_str(), DigestRef(pushed->manifest).c_str(),
        DigestRef(pushed->content_root).c_str(),
        static_cast<unsigned long long>(pushed->packs),
        static_cast<unsigned long long>(pushed->packs_sent),
        static_cast<unsigned long long>(pushed->bytes_sent));
  } else {
    std::fprintf(stderr,
                 "egg: pushed %s (content root %s): %llu of %llu packs "
                 "sent, %.1f MiB\n",
                 ref->ToString().c_str(),
                 DigestRef(pushed->content_root).c_str(),
                 static_cast<unsigned long long>(pushed->packs_sent),
                 static_cast<unsigned long long>(pushed->packs),
                 static_cast<double>(pushed->bytes_sent) / (1 << 20));
    std::printf("%s\n", pinned.ToString().c_str());
  }
  return kExitOk;
}

Registration reg(80, "push", [](CLI::App& app) {
  auto a = std::make_shared<PushArgs>();
  auto* cmd = app.add_subcommand(
      "push", "Send an egg to an OCI registry; prints the pinned reference");
  cmd->add_option("egg", a->egg, "The egg file")->required();
  cmd->add_option("ref", a->ref, "host[:port]/repo:tag")->required();
  cmd->add_option("--trust", a->trust,
                  "Trust config (default ~/.config/egg/trust.yaml)");
  cmd->add_option("--username", a->username, "Registry user name");
  cmd->add_flag("--password-stdin", a->password_stdin,
                "Read the registry password from stdin");
  cmd->add_flag("--json", a->json, "Machine-readable output");
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli

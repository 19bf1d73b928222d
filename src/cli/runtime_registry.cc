// egg runtime push DIGEST REF / egg runtime fetch REF: runtimes as OCI
// artifacts of their own (docs/REGISTRY.md, "Runtimes").
#include "cli/runtime_registry.h"

#include <cstdio>
#include <memory>
#include <string>

#include "cli/registry_args.h"
#include "common/text.h"
#include "egg/crypto.h"
#include "egg/registry.h"
#include "egg/store.h"

namespace egg::cli {
namespace {

struct RuntimeRegistryArgs {
  std::string digest;
  std::string ref;
  std::string name;
  uint64_t version = 0;
  std::string key;
  std::string trust;
  std::string store;
  std::string username;
  bool password_stdin = false;
  bool json = false;
};

std::string Quote(const std::string& s) {
  return "\"" + EscapeForTerminal(s) + "\"";
}

int RunPush(const RuntimeRegistryArgs& a) {
  auto digest = ParseDigest(a.digest);
  if (!digest) {
    return Report(
        Error(Code::kInvalidArgument,
              Quote(a.digest) + " is not a digest (sha256:<64 hex>)"));
  }
  auto ref = ParseReference(a.ref);
  if (!ref) return Report(ref.error());
  std::string name = a.name;
  if (name.empty())
    name = ref->repository.substr(ref->repository.rfind('/') + 1);
  if (auto st = ValidateRuntimeName(name); !st) {
    return Report(st.error().Wrap("--name"));
  }
  auto client = ClientOptionsFrom(a.trust, a.username, a.password_stdin);
  if (!client) return Report(client.error());
  auto store = Store::Open({.root = a.store});
  if (!store) return Report(store.error().Wrap("local store"));

  RuntimePushOptions options;
  options.transfer.client = *client;
  options.name = name;
  options.version = a.version;
  std::unique_ptr<crypto::Signer> signer;
  if (!a.key.empty()) {
    auto loaded = crypto::LoadSigner(a.key);
    if (!loaded) return Report(loaded.error().Wrap("--sign " + Quote(a.key)));
    signer = std::move(*loaded);
    auto time = crypto::SigningTime();
    if (!time) return Report(time.error());
    options.signer = signer.get();
    options.sign_time = *time;
  }
  auto pushed = PushRuntime(*store, *digest, *ref, options);
  if (!pushed) return Report(pushed.error());

  Reference pinned = *ref;
  pinned.digest = pushed->manifest;
  pinned.tag.clear();
  std::string text = "oci://" + pinned.ToString();
  if (a.json) {
    nlohmann::json j = {{"reference", text},
                        {"manifest", DigestRef(pushed->manifest)},
                        {"tree", DigestRef(pushed->tree)},
                        {"name", name},
                        {"version", a.version},
                        {"signed", signer != nullptr},
                        {"packs", pushed->packs},
                        {"packs_sent", pushed->packs_sent},
                        {"bytes_sent", pushed->bytes_sent}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::fprintf(stderr,
                 "egg: pushed runtime %s version %llu (%s, %s) to %s: %llu "
                 "of %llu packs sent, %.1f MiB\n",
                 Quote(name).c_str(),
                 static_cast<unsigned long long>(a.version),
                 DigestRef(pushed->tree).c_str(),
                 signer ? "signed" : "unsigned", ref->ToString().c_str(),
                 static_cast<unsigned long long>(pushed->packs_sent),
                 static_cast<unsigned long long>(pushed->packs),
                 static_cast<double>(pushed->bytes_sent) / (1 << 20));
    std::printf("%s\n", text.c_str());
  }
  return kExitOk;
}

int RunFetch(const RuntimeRegistryArgs& a) {
  auto store = Store::Open({.root = a.store});
  if (!store) return Report(store.error().Wrap("local store"));
  auto fetched = FetchPinnedRuntime(a.ref, a.trust, *store);
  if (!fetched) return Report(fetched.error());
  if (a.json) {
    nlohmann::json j = {{"tree", DigestRef(fetched->runtime.tree)},
                        {"manifest", DigestRef(fetched->manifest)},
                        {"name", fetched->runtime.name},
                        {"version", fetched->runtime.version},
                        {"signatures", fetched->signatures},
                        {"signed_trusted", fetched->signed_trusted},
                        {"chunks", fetched->chunks},
                        {"chunks_fetched", fetched->chunks_fetched},
                        {"packs", fetched->packs},
                        {"packs_fetched", fetched->packs_fetched},
                        {"bytes_fetched", fetched->bytes_fetched}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s\n", DigestRef(fetched->runtime.tree).c_str());
  }
  return kExitOk;
}

}  // namespace

Result<RuntimeFetchResult> FetchPinnedRuntime(const std::string& reference,
                                              const std::string& trust_path,
                                              Store& store) {
  auto ref = ParsePinnedReference(reference);
  if (!ref) return Fail(ref.error().Wrap("runtime"));
  auto client = ClientOptionsFrom(trust_path, "", false);
  if (!client) return Fail(client.error());
  RuntimeFetchOptions options;
  options.transfer.client = *client;
  std::unique_ptr<Progress> bar;
  options.transfer.progress = [&](uint64_t done, uint64_t total) {
    if (!bar) bar = std::make_unique<Progress>("fetching runtime", total);
    bar->Update(done);
  };
  auto fetched = FetchRuntime(*ref, store, options);
  if (bar) bar->Done();
  if (!fetched) return fetched;
  std::fprintf(stderr,
               "egg: runtime %s version %llu (%s) from %s: %s; %llu of %llu "
               "chunks fetched\n",
               Quote(fetched->runtime.name).c_str(),
               static_cast<unsigned long long>(fetched->runtime.version),
               DigestRef(fetched->runtime.tree).c_str(),
               ref->ToString().c_str(),
               EscapeForTerminal(fetched->signatures).c_str(),
               static_cast<unsigned long long>(fetched->chunks_fetched),
               static_cast<unsigned long long>(fetched->chunks));
  return fetched;
}

void WarnIfRuntimeSuperseded(const nlohmann::json& manifest) {
  if (!manifest.is_object() || !manifest.contains("runtime")) return;
  const nlohmann::json& rt = manifest["runtime"];
  if (!rt.is_object() || rt.value("kind", "") != "oci" ||
      !rt.contains("name") || !rt["name"].is_string() ||
      !rt.contains("version") || !rt["version"].is_number_unsigned()) {
    return;
  }
  auto trust = LoadTrustConfig(DefaultTrustConfigPath(), false);
  if (!trust || trust->runtime_versions.empty()) return;
  auto records = ReadRuntimeVersions(trust->runtime_versions);
  if (!records) return;
  std::string name = rt["name"].get<std::string>();
  uint64_t version = rt["version"].get<uint64_t>();
  auto newer = NewerRuntimeVersion(*records, name, version);
  if (!newer) return;
  Warn("this egg's runtime " + Quote(name) + " is version " +
       std::to_string(version) + "; version " + std::to_string(newer->version) +
       " is trusted here ('egg update-runtime EGG --to oci://...' "
       "replaces it)");
}

Runner AddRuntimeRegistryCommands(CLI::App* runtime) {
  auto a = std::make_shared<RuntimeRegistryArgs>();
  auto* push = runtime->add_subcommand(
      "push",
      "Send a stored runtime to an OCI registry; prints the pinned "
      "oci:// reference");
  push->add_option("digest", a->digest, "Runtime digest (sha256:...)")
      ->required();
  push->add_option("ref", a->ref, "host[:port]/repo:tag")->required();
  push->add_option("--name", a->name,
                   "Runtime name the version belongs to (default: the "
                   "repository's last component)");
  push->add_option("--version", a->version,
                   "Version number; newer builds of a name get larger ones")
      ->required();
  push->add_option("--sign", a->key,
                   "Sign the name, version and tree with this OpenSSH "
                   "Ed25519 key");
  push->add_option("--username", a->username, "Registry user name");
  push->add_flag("--password-stdin", a->password_stdin,
                 "Read the registry password from stdin");
  auto* fetch = runtime->add_subcommand(
      "fetch",
      "Bring a pinned runtime (oci://host/repo@sha256:...) into the "
      "store, through the trust config; prints its digest");
  fetch->add_option("ref", a->ref, "oci://host[:port]/repo@sha256:...")
      ->required();
  for (auto* sub : {push, fetch}) {
    sub->add_option("--trust", a->trust,
                    "Trust config (default ~/.config/egg/trust.yaml)");
    sub->add_option("--store", a->store,
                    "Local store folder (default $XDG_CACHE_HOME/egg or "
                    "~/.cache/egg)");
    sub->add_flag("--json", a->json, "Machine-readable output");
  }
  return [a, push, fetch]() -> int {
    if (push->parsed()) return RunPush(*a);
    if (fetch->parsed()) return RunFetch(*a);
    return -1;
  };
}

}  // namespace egg::cli

// egg update-runtime EGG --to REF: the security-update path. Fetches a
// newer version of the egg's runtime (through the trust config, with
// signatures and rollback checked), writes the egg again with that runtime
// tree and a manifest that records the change, and optionally signs it in
// the role "runtime-update". The content root changes, so the old chain
// cannot stay valid in the new egg: its bytes are kept in the manifest's
// "runtime_updates" record, verifiable against the old content root
// (docs/SIGNATURES.md, "Runtime updates").
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <string>

#include "cli/cli.h"
#include "cli/runtime_registry.h"
#include "common/base64.h"
#include "common/fd.h"
#include "common/text.h"
#include "egg/crypto.h"
#include "egg/egg.h"
#include "egg/registry.h"
#include "egg/store.h"
#include "egg/tree.h"

namespace egg::cli {
namespace {

struct UpdateArgs {
  std::string egg;
  std::string to;
  std::string out;
  std::string key;
  std::string trust;
  std::string store;
  bool force = false;
};

std::string Quote(const std::string& s) {
  return "'" + EscapeForTerminal(s) + "'";
}

// Chunks of the egg's own trees, each verified as it is read.
class EggSource : public ChunkSource {
 public:
  explicit EggSource(const EggFile& egg) : egg_(egg) {}
  Result<std::vector<uint8_t>> ReadChunk(const Digest& raw) override {
    return egg_.ReadChunk(raw);
  }

 private:
  const EggFile& egg_;
};

int Run(const UpdateArgs& a) {
  const std::string out = a.out.empty() ? a.egg : a.out;
  const bool in_place = a.out.empty();
  struct stat st;
  if (!in_place && !a.force && ::lstat(out.c_str(), &st) == 0) {
    return Report(Error(Code::kInvalidArgument,
                        Quote(out) + " exists (use --force to replace it)"));
  }
  std::unique_ptr<crypto::Signer> signer;
  if (!a.key.empty()) {
    auto s = crypto::LoadSigner(a.key);
    if (!s) return Report(s.error().Wrap("--sign " + Quote(a.key)));
    signer = std::move(*s);
  }

  // 1. The egg as it is: content checked, chain intact.
  auto egg = EggFile::Open(a.egg, EggFile::Depth::kFull);
  if (!egg) return Report(egg.error());
  if (auto s = egg->VerifyContent(); !s) {
    return Report(s.error().Wrap(Quote(a.egg)));
  }
  crypto::ChainReport old_chain = crypto::VerifyChain(
      egg->content_root(), egg->signatures(), nullptr, std::time(nullptr));
  if (old_chain.state == crypto::SignatureState::kInvalid) {
    return Report(Error(Code::kVerificationFailed,
                        Quote(a.egg) +
                            ": its signature chain does not verify (" +
                            crypto::ChainSummary(old_chain) +
                            "); refusing to carry it forward"));
  }
  std::optional<Digest> old_runtime;
  if (auto t = egg->FindTree("runtime"); t) {
    auto encoded = EncodeTree(**t);
    if (!encoded) return Report(encoded.error());
    old_runtime = TreeDigest(*encoded);
  }
  const nlohmann::json& old_rt = egg->manifest().contains("runtime")
                                     ? egg->manifest()["runtime"]
                                     : nlohmann::json::object();

  // 2. The new runtime, with every check of a fetch.
  auto store = Store::Open({.root = a.store});
  if (!store) return Report(store.error().Wrap("local store"));
  auto fetched = FetchPinnedRuntime(a.to, a.trust, *store);
  if (!fetched) return Report(fetched.error().Wrap("--to"));
  const RuntimeVersion& now = fetched->runtime;
  if (old_runtime && *old_runtime == now.tree) {
    return Report(
        Error(Code::kInvalidArgument,
              Quote(a.egg) + " already runs runtime " + DigestRef(now.tree)));
  }
  if (old_rt.is_object() && old_rt.value("kind", "") == "oci" &&
      old_rt.contains("name") && old_rt["name"].is_string() &&
      old_rt.contains("version") && old_rt["version"].is_number_unsigned()) {
    std::string old_name = old_rt["name"].get<std::string>();
    uint64_t old_version = old_rt["version"].get<uint64_t>();
    if (old_name != now.name) {
      return Report(Error(Code::kInvalidArgument,
                          "--to names runtime \"" + now.name +
                              "\", the egg runs " + Quote(old_name)));
    }
    if (now.version <= old_version) {
      return Report(Error(Code::kVerificationFailed,
                          "--to offers version " + std::to_string(now.version) +
                              " of \"" + now.name +
                              "\"; the egg already runs version " +
                              std::to_string(old_version) + " (not newer)"));
    }
  }

  // 3. The manifest: new runtime, and the change on record.
  auto ref = ParsePinnedReference(a.to);
  if (!ref) return Report(ref.error());
  nlohmann::json manifest = egg->manifest();
  manifest["runtime"] = {{"kind", "oci"},
                         {"tree", "runtime"},
                         {"reference", "oci://" + ref->ToString()},
                         {"digest", DigestRef(fetched->manifest)},
                         {"name", now.name},
                         {"version", now.version},
                         {"runtime_tree", DigestRef(now.tree)}};
  nlohmann::json record = {
      {"previous_content_root", DigestRef(egg->content_root())},
      {"previous_runtime",
       old_runtime ? DigestRef(*old_runtime) : std::string()},
      {"runtime", DigestRef(now.tree)},
      {"reference", "oci://" + ref->ToString()},
      {"previous_signatures",
       Base64Encode(std::string_view(
           reinterpret_cast<const char*>(egg->signatures().data()),
           egg->signatures().size()))},
      {"previous_chain_head", DigestRef(old_chain.head)}};
  if (!manifest.contains("runtime_updates") ||
      !manifest["runtime_updates"].is_array()) {
    manifest["runtime_updates"] = nlohmann::json::array();
  }
  manifest["runtime_updates"].push_back(record);

  // 4. Trees: the egg's own, the runtime from the store.
  EggInput input;
  input.manifest = std::move(manifest);
  input.notebook = egg->notebook();
  EggSource egg_source(*egg);
  StoreChunkSource store_source(*store);
  for (const auto& [name, tree] : egg->trees()) {
    if (name == "runtime") continue;
    input.trees.push_back({name, "", tree, &egg_source});
  }
  auto encoded = store->Get(ObjectKind::kTree, now.tree);
  if (!encoded) return Report(encoded.error());
  auto tree = DecodeTree(*encoded);
  if (!tree) return Report(tree.error());
  input.trees.push_back({"runtime", "", std::move(*tree), &store_source});

  // 5. Write beside the output, sign, rename into place.
  std::string folder = out.substr(0, out.rfind('/') + 1);
  std::string tmpl = (folder.empty() ? "./" : folder) + ".egg-update-XXXXXX";
  int tmp_fd = ::mkstemp(tmpl.data());
  if (tmp_fd < 0)
    return Report(ErrnoError("temporary file beside " + Quote(out)));
  ::close(tmp_fd);
  struct Unlink {
    std::string path;
    ~Unlink() { ::unlink(path.c_str()); }
  } cleanup{tmpl};
  WriteOptions options;
  options.force = true;
  Progress progress("writing " + out, 0);
  options.progress = [&progress](uint64_t done, uint64_t) {
    progress.Update(done);
  };
  auto written = WriteEgg(input, tmpl, options);
  progress.Done();
  if (!written) return Report(written.error());
  auto fresh = EggFile::Open(tmpl, EggFile::Depth::kSummary);
  if (!fresh) return Report(fresh.error());
  crypto::SignatureChain chain;
  if (signer) {
    auto time = crypto::SigningTime();
    if (!time) return Report(time.error());
    if (auto s = crypto::AppendSignature(chain, fresh->content_root(), *signer,
                                         "runtime-update", *time);
        !s) {
      return Report(s.error().Wrap("signing"));
    }
  }
  if (auto s = fresh->WriteWithSignatures(crypto::EncodeChain(chain), out,
                                          in_place || a.force);
      !s) {
    return Report(s.error());
  }

  std::fprintf(stderr,
               "egg: %s: runtime %s replaced by \"%s\" version %llu (%s); "
               "content root %s -> %s; %s\n",
               Quote(out).c_str(),
               old_runtime ? DigestRef(*old_runtime).c_str() : "none",
               EscapeForTerminal(now.name).c_str(),
               static_cast<unsigned long long>(now.version),
               DigestRef(now.tree).c_str(),
               DigestRef(egg->content_root()).c_str(),
               DigestRef(fresh->content_root()).c_str(),
               signer ? "signed as runtime-update"
                      : "unsigned (the previous signatures are kept in the "
                        "manifest's runtime_updates record)");
  std::printf("%s  %s\n", DigestRef(fresh->content_root()).c_str(),
              out.c_str());
  return kExitOk;
}

Registration reg(85, "update-runtime", [](CLI::App& app) {
  auto a = std::make_shared<UpdateArgs>();
  auto* cmd = app.add_subcommand(
      "update-runtime",
      "Replace an egg's runtime by a newer version from a registry "
      "(oci://host/repo@sha256:...); prints the new content root");
  cmd->add_option("egg", a->egg, "The egg file")->required();
  cmd->add_option("--to", a->to, "The new runtime, oci://host/repo@sha256:...")
      ->required();
  cmd->add_option("-o,--output", a->out,
                  "Write the updated egg here (default: replace EGG)");
  cmd->add_option("--sign", a->key,
                  "Sign the updated egg with this key, role runtime-update");
  cmd->add_flag("--force", a->force, "Replace an existing output file");
  cmd->add_option("--trust", a->trust,
                  "Trust config (default ~/.config/egg/trust.yaml)");
  cmd->add_option("--store", a->store,
                  "Local store folder (default $XDG_CACHE_HOME/egg or "
                  "~/.cache/egg)");
  return std::make_pair(cmd, Runner([a] { return Run(*a); }));
});

}  // namespace
}  // namespace egg::cli

// Runtimes through an OCI registry on their own (docs/REGISTRY.md,
// "Runtimes"): one OCI image manifest whose config names the runtime, its
// version, its tree and its signature chain, whose first layer is the
// encoded tree and whose other layers are packs of the tree's chunks, cut
// as an egg's are so that a registry holding part of a runtime receives
// only the rest.
//
// A fetch checks everything that decides trust (the pin, the registry, the
// signatures, the version) before the first byte reaches the store, and
// removes what it added when anything later fails.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/base64.h"
#include "common/text.h"
#include "egg/crypto.h"
#include "egg/egg.h"
#include "egg/registry.h"
#include "egg/runtime.h"
#include "egg/store.h"
#include "egg/tree.h"
#include "registry/internal.h"

namespace egg {
namespace {

using nlohmann::json;
using registry_internal::DescriptorJson;
using registry_internal::ParseDescriptor;
using registry_internal::ParsePackLayers;

constexpr int kRuntimeConfigFormat = 1;
constexpr std::string_view kRuntimeRootDomain = "egg-runtime-root-v1\n";
constexpr std::string_view kNameAnnotation = "vnd.egg.runtime.name";
constexpr std::string_view kVersionAnnotation = "vnd.egg.runtime.version";
constexpr std::string_view kTreeAnnotation = "vnd.egg.runtime.tree";

std::string Quote(std::string_view s) {
  return "\"" + EscapeForTerminal(s.substr(0, 200)) + "\"";
}

// Every distinct chunk of a tree, in first-use order (entries by path,
// chunks in file order): the order packs are cut in.
std::vector<Digest> ChunksInOrder(const Tree& tree) {
  std::unordered_set<Digest, DigestHash> seen;
  std::vector<Digest> out;
  for (const auto& entry : tree.entries) {
    for (const Digest& raw : entry.chunks) {
      if (seen.insert(raw).second) out.push_back(raw);
    }
  }
  return out;
}

struct RuntimePack {
  std::vector<Digest> chunks;
  std::vector<uint64_t> lengths;  // frame lengths, same order
  Digest digest{};
  uint64_t size = 0;
};

// The pull side's view of a runtime manifest and config.
struct RuntimeRecipe {
  Descriptor config;
  Descriptor tree;
  std::vector<Descriptor> pack_layers;
  RuntimeVersion runtime;
  std::vector<RuntimePack> packs;
  std::vector<uint8_t> signatures;  // chain section, maybe empty
};

Status ParseRuntimeManifest(const std::string& bytes, RuntimeRecipe& r) {
  json m = json::parse(bytes, nullptr, false);
  if (m.is_discarded() || !m.is_object()) {
    return Fail(Code::kCorruption, "runtime manifest is not a JSON object");
  }
  if (m.contains("mediaType") &&
      (!m["mediaType"].is_string() ||
       m["mediaType"].get<std::string>() != kOciManifestType)) {
    return Fail(Code::kInvalidArgument,
                "not an OCI image manifest (an index or another format)");
  }
  if (!m.contains("config")) {
    return Fail(Code::kCorruption, "runtime manifest lacks a config");
  }
  auto config = ParseDescriptor(m["config"], kEggRuntimeConfigType, "config");
  if (!config) {
    return Fail(config.error().code(),
                config.error().message() + " (not an egg runtime?)");
  }
  r.config = *config;
  if (!m.contains("layers") || !m["layers"].is_array() || m["layers"].empty()) {
    return Fail(Code::kCorruption, "runtime manifest lacks layers");
  }
  const json& layers = m["layers"];
  if (layers.size() > kMaxPacks + 1) {
    return Fail(Code::kCorruption, "runtime manifest has too many layers");
  }
  auto tree = ParseDescriptor(layers[0], kEggTreeType, "layer 0");
  if (!tree) return Fail(tree.error());
  if (tree->size > kMaxTreeSectionBytes) {
    return Fail(Code::kCorruption, "runtime tree larger than the cap");
  }
  r.tree = *tree;
  auto packs = ParsePackLayers(layers, "runtime manifest");
  if (!packs) return Fail(packs.error());
  r.pack_layers = std::move(*packs);
  return {};
}

Status ParseRuntimeConfig(const std::string& bytes, RuntimeRecipe& r) {
  json c = json::parse(bytes, nullptr, false);
  auto bad = [](const std::string& why) {
    return Fail(Code::kCorruption, "runtime config: " + why);
  };
  if (c.is_discarded() || !c.is_object()) return bad("not a JSON object");
  if (!c.contains("format") || c["format"] != kRuntimeConfigFormat) {
    return Fail(Code::kNotSupported,
                "runtime config: unknown format (this egg reads 1)");
  }
  if (!c.contains("name") || !c["name"].is_string()) {
    return bad("\"name\" missing");
  }
  r.runtime.name = c["name"].get<std::string>();
  if (auto st = ValidateRuntimeName(r.runtime.name); !st) {
    return Fail(st.error().Wrap("runtime config"));
  }
  if (!c.contains("version") || !c["version"].is_number_unsigned()) {
    return bad("\"version\" missing or not a whole number");
  }
  r.runtime.version = c["version"].get<uint64_t>();
  if (!c.contains("tree") || !c["tree"].is_string() ||
      !c["tree"].get<std::string>().starts_with("sha256:")) {
    return bad("\"tree\" missing");
  }
  auto tree = ParseDigest(c["tree"].get<std::string>());
  if (!tree) return bad("\"tree\" malformed");
  r.runtime.tree = *tree;
  if (r.runtime.tree != r.tree.digest) {
    return Fail(Code::kVerificationFailed,
                "runtime config names tree " + DigestRef(r.runtime.tree) +
                    " but the tree layer is " + DigestRef(r.tree.digest));
  }
  if (!c.contains("signatures") || !c["signatures"].is_string()) {
    return bad("\"signatures\" missing");
  }
  std::string sig_text = c["signatures"].get<std::string>();
  if (!sig_text.empty()) {
    auto decoded = Base64Decode(sig_text);
    if (!decoded || decoded->size() > kMaxSignatureBytes) {
      return bad("\"signatures\" is not base64 of a signature section");
    }
    r.signatures.assign(decoded->begin(), decoded->end());
  }
  if (!c.contains("packs") || !c["packs"].is_array() ||
      c["packs"].size() != r.pack_layers.size()) {
    return bad("\"packs\" does not match the manifest's layers");
  }
  for (size_t p = 0; p < r.pack_layers.size(); ++p) {
    const json& j = c["packs"][p];
    if (!j.is_object() || !j.contains("chunks") || !j["chunks"].is_array() ||
        j["chunks"].empty() || !j.contains("lengths") ||
        !j["lengths"].is_array() || j["lengths"].size() != j["chunks"].size()) {
      return bad("pack " + std::to_string(p) +
                 " needs as many \"lengths\" as \"chunks\"");
    }
    RuntimePack pack;
    for (size_t k = 0; k < j["chunks"].size(); ++k) {
      const json& h = j["chunks"][k];
      const json& n = j["lengths"][k];
      if (!h.is_string()) return bad("chunk digest not a string");
      auto d = ParseDigest(h.get<std::string>());
      if (!d) return bad("chunk digest malformed");
      if (!n.is_number_unsigned() || n.get<uint64_t>() == 0 ||
          n.get<uint64_t>() > kPackMaxBytes) {
        return bad("frame length out of range");
      }
      pack.chunks.push_back(*d);
      pack.lengths.push_back(n.get<uint64_t>());
      pack.size += n.get<uint64_t>();
    }
    if (pack.size != r.pack_layers[p].size) {
      return bad("pack " + std::to_string(p) + " size differs from its frames");
    }
    pack.digest = r.pack_layers[p].digest;
    r.packs.push_back(std::move(pack));
  }
  return {};
}

// Undoes a fetch's writes unless told it succeeded.
class FetchCleanup {
 public:
  explicit FetchCleanup(Store& store) : store_(store) {}
  ~FetchCleanup() {
    if (committed_) return;
    for (const Digest& d : chunks_) {
      static_cast<void>(store_.Remove(ObjectKind::kChunk, d));
    }
    if (tree_) {
      static_cast<void>(store_.MarkKept(*tree_, false));
      static_cast<void>(store_.Remove(ObjectKind::kTree, *tree_));
      ::unlink(store_.MetadataPath(*tree_).c_str());
    }
  }
  void AddedChunk(const Digest& d) { chunks_.push_back(d); }
  void AddedTree(const Digest& d) { tree_ = d; }
  void Commit() { committed_ = true; }

 private:
  Store& store_;
  std::vector<Digest> chunks_;
  std::optional<Digest> tree_;
  bool committed_ = false;
};

}  // namespace

Status ValidateRuntimeName(std::string_view name) {
  auto ok_first = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  bool ok = !name.empty() && name.size() <= 64 && ok_first(name[0]) &&
            std::all_of(name.begin(), name.end(), [&](char c) {
              return ok_first(c) || c == '.' || c == '_' || c == '-';
            });
  if (!ok) {
    return Fail(Code::kInvalidArgument,
                "runtime name " + Quote(name) +
                    " must be 1-64 of [a-z0-9._-], starting with a letter "
                    "or digit");
  }
  return {};
}

Digest RuntimeRoot(const RuntimeVersion& runtime) {
  json j = {{"name", runtime.name},
            {"tree", DigestRef(runtime.tree)},
            {"version", runtime.version}};
  Sha256 hash;
  hash.Update(kRuntimeRootDomain);
  hash.Update(j.dump());
  return hash.Finish();
}

Result<RuntimePushResult> PushRuntime(Store& store, const Digest& tree_digest,
                                      const Reference& ref,
                                      const RuntimePushOptions& options) {
  if (auto st = ValidateRuntimeName(options.name); !st) return Fail(st.error());
  auto encoded =
      store.Get(ObjectKind::kTree, tree_digest, kMaxTreeSectionBytes);
  if (!encoded) {
    return Fail(encoded.error().Wrap("runtime " + DigestRef(tree_digest)));
  }
  auto tree = DecodeTree(*encoded);
  if (!tree)
    return Fail(tree.error().Wrap("runtime " + DigestRef(tree_digest)));
  RuntimeVersion runtime{options.name, options.version, tree_digest};

  // The signature chain over the runtime's name, version and tree.
  std::string signatures;
  if (options.signer != nullptr) {
    crypto::SignatureChain chain;
    if (auto st = crypto::AppendSignature(chain, RuntimeRoot(runtime),
                                          *options.signer, kRuntimeSignerRole,
                                          options.sign_time);
        !st) {
      return Fail(st.error().Wrap("signing the runtime"));
    }
    auto section = crypto::EncodeChain(chain);
    signatures = Base64Encode(std::string_view(
        reinterpret_cast<const char*>(section.data()), section.size()));
  }

  auto client = RegistryClient::Create(ref, options.transfer.client);
  if (!client) return Fail(client.error());
  RegistryClient& c = **client;
  const std::string& repo = ref.repository;
  RuntimePushResult result;
  result.tree = tree_digest;

  // Packs are cut and sent one at a time (at most kPackMaxBytes in
  // memory); each frame is read from the store and verified first.
  std::vector<Digest> order = ChunksInOrder(*tree);
  result.chunks = order.size();
  std::vector<RuntimePack> packs;
  RuntimePack current;
  std::string buffer;
  auto send = [&]() -> Status {
    if (current.chunks.empty()) return {};
    current.digest = Sha256Of(buffer);
    current.size = buffer.size();
    auto sent = c.PushBlob(repo, current.digest, buffer);
    if (!sent) return Fail(sent.error());
    if (*sent) {
      ++result.packs_sent;
      result.bytes_sent += current.size;
    }
    packs.push_back(std::move(current));
    current = RuntimePack{};
    buffer.clear();
    return {};
  };
  for (const Digest& raw : order) {
    auto frame = store.GetFrame(ObjectKind::kChunk, raw);
    if (!frame) return Fail(frame.error().Wrap("runtime chunk"));
    if (!current.chunks.empty() &&
        buffer.size() + frame->size() > kPackMaxBytes) {
      if (auto st = send(); !st) return Fail(st.error());
    }
    buffer.append(reinterpret_cast<const char*>(frame->data()), frame->size());
    current.chunks.push_back(raw);
    current.lengths.push_back(frame->size());
    if (buffer.size() >= kPackMinBytes && raw[0] == 0) {
      if (auto st = send(); !st) return Fail(st.error());
    }
  }
  if (auto st = send(); !st) return Fail(st.error());
  result.packs = packs.size();
  if (packs.size() > kMaxPacks) {
    return Fail(Code::kNotSupported, "runtime needs more packs than allowed");
  }

  // The tree, the config, then the manifest, so that no manifest is ever
  // visible before its blobs.
  std::string tree_bytes(reinterpret_cast<const char*>(encoded->data()),
                         encoded->size());
  auto tree_sent = c.PushBlob(repo, tree_digest, tree_bytes);
  if (!tree_sent) return Fail(tree_sent.error());
  json config_packs = json::array();
  for (const auto& p : packs) {
    json chunks = json::array();
    for (const Digest& d : p.chunks) chunks.push_back(DigestHex(d));
    config_packs.push_back({{"chunks", chunks}, {"lengths", p.lengths}});
  }
  json config = {
      {"format", kRuntimeConfigFormat}, {"name", runtime.name},
      {"version", runtime.version},     {"tree", DigestRef(tree_digest)},
      {"packs", config_packs},          {"signatures", signatures}};
  std::string config_bytes = config.dump();
  Digest config_digest = Sha256Of(config_bytes);
  auto config_sent = c.PushBlob(repo, config_digest, config_bytes);
  if (!config_sent) return Fail(config_sent.error());

  json layers = json::array();
  layers.push_back(DescriptorJson(kEggTreeType, tree_digest, encoded->size()));
  for (const auto& p : packs) {
    layers.push_back(DescriptorJson(kEggPackType, p.digest, p.size));
  }
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"artifactType", kEggRuntimeArtifactType},
      {"config", DescriptorJson(kEggRuntimeConfigType, config_digest,
                                config_bytes.size())},
      {"layers", layers},
      {"annotations",
       {{std::string(kNameAnnotation), runtime.name},
        {std::string(kVersionAnnotation), std::to_string(runtime.version)},
        {std::string(kTreeAnnotation), DigestRef(tree_digest)}}}};
  std::string manifest_bytes = manifest.dump();
  Digest manifest_digest = Sha256Of(manifest_bytes);
  if (ref.digest && *ref.digest != manifest_digest) {
    return Fail(Code::kVerificationFailed,
                "this runtime's manifest is " + DigestRef(manifest_digest) +
                    ", not the digest in the reference");
  }
  auto pushed =
      c.PushManifest(repo, ref.Target(), kOciManifestType, manifest_bytes);
  if (!pushed) return Fail(pushed.error());
  result.manifest = *pushed;
  return result;
}

Result<RuntimeFetchResult> FetchRuntime(const Reference& ref, Store& store,
                                        const RuntimeFetchOptions& options) {
  const TrustConfig& trust = options.transfer.client.trust;
  // 1. Who may serve what: a pin, from an allowed registry.
  if (!ref.digest) {
    return Fail(Code::kInvalidArgument,
                "runtime " + ref.ToString() +
                    ": a tag alone is refused; pin the runtime with "
                    "@sha256:<manifest digest>");
  }
  if (!trust.AllowsRuntimeFrom(ref)) {
    return Fail(Code::kPermissionDenied,
                "runtime " + ref.ToString() + ": registry \"" +
                    ref.Authority() + "/" + ref.repository +
                    "\" is not in runtime_registries of the trust config");
  }
  auto client = RegistryClient::Create(ref, options.transfer.client);
  if (!client) return Fail(client.error());
  RegistryClient& c = **client;
  const std::string& repo = ref.repository;

  // 2. Manifest (checked against the pin) and config.
  auto manifest = c.FetchManifest(repo, ref.Target());
  if (!manifest) return Fail(manifest.error());
  RuntimeRecipe recipe;
  if (auto st = ParseRuntimeManifest(manifest->bytes, recipe); !st) {
    return Fail(st.error().Wrap(ref.ToString()));
  }
  if (recipe.config.size > kMaxRuntimeConfigBytes) {
    return Fail(Code::kCorruption, "runtime config larger than the cap");
  }
  auto config = c.FetchBlobToString(repo, recipe.config);
  if (!config) return Fail(config.error());
  if (auto st = ParseRuntimeConfig(*config, recipe); !st) {
    return Fail(st.error().Wrap(ref.ToString()));
  }
  const RuntimeVersion& runtime = recipe.runtime;
  std::string what = "runtime " + Quote(runtime.name) + " version " +
                     std::to_string(runtime.version);

  // 3. Signatures: a chain that does not verify is always refused; one
  // without a trusted entry when runtime_signers is set.
  RuntimeFetchResult result;
  result.manifest = manifest->digest;
  result.runtime = runtime;
  std::optional<crypto::AllowedSigners> signers;
  if (!trust.runtime_signers.empty()) {
    auto loaded = crypto::AllowedSigners::Load(trust.runtime_signers);
    if (!loaded) return Fail(loaded.error().Wrap("runtime_signers"));
    signers = std::move(*loaded);
  }
  int64_t now = options.now != 0 ? options.now : std::time(nullptr);
  crypto::ChainReport report =
      crypto::VerifyChain(RuntimeRoot(runtime), recipe.signatures,
                          signers ? &*signers : nullptr, now);
  result.signatures = crypto::ChainSummary(report);
  if (report.state == crypto::SignatureState::kInvalid) {
    return Fail(Code::kVerificationFailed,
                what + ": signatures do not verify (" + result.signatures +
                    "); refused");
  }
  result.signed_trusted = report.state == crypto::SignatureState::kTrusted;
  for (const auto& e : report.entries) {
    if (!e.trusted) continue;
    for (const auto& p : e.principals) result.principals.push_back(p);
  }
  if (signers && !result.signed_trusted) {
    return Fail(Code::kVerificationFailed,
                what + " is signed by no key in runtime_signers (" +
                    result.signatures + "); refused");
  }

  // 4. Rollback: never older than the newest version trusted before.
  if (!trust.runtime_versions.empty()) {
    auto records = ReadRuntimeVersions(trust.runtime_versions);
    if (!records) return Fail(records.error());
    if (auto st = CheckRuntimeVersion(*records, runtime); !st) {
      return Fail(st.error().Wrap(ref.ToString()));
    }
  }

  // 5. The tree: from the store when it is there, else the tree layer.
  FetchCleanup cleanup(store);
  bool had_tree = store.Has(ObjectKind::kTree, runtime.tree);
  std::vector<uint8_t> tree_bytes;
  if (had_tree) {
    auto stored =
        store.Get(ObjectKind::kTree, runtime.tree, kMaxTreeSectionBytes);
    if (stored) tree_bytes = std::move(*stored);
    had_tree = stored.has_value();
  }
  if (!had_tree) {
    auto fetched = c.FetchBlobToString(repo, recipe.tree);
    if (!fetched) return Fail(fetched.error());
    tree_bytes.assign(fetched->begin(), fetched->end());
  }
  auto tree = DecodeTree(tree_bytes);
  if (!tree) return Fail(tree.error().Wrap(what + " tree"));

  // 6. Chunks: every one the tree uses must be in a pack; packs holding
  // one the store lacks are fetched and cut into frames, each checked
  // against its raw digest by the store before it is written.
  std::vector<Digest> needed = ChunksInOrder(*tree);
  std::unordered_map<Digest, bool, DigestHash> missing;  // digest -> added
  std::unordered_set<Digest, DigestHash> listed;
  for (const auto& p : recipe.packs) {
    for (const Digest& d : p.chunks) listed.insert(d);
  }
  for (const Digest& d : needed) {
    if (!listed.count(d)) {
      return Fail(Code::kCorruption,
                  what + ": chunk " + DigestHex(d) + " is in no pack");
    }
    if (!store.Has(ObjectKind::kChunk, d)) missing.emplace(d, false);
  }
  result.chunks = needed.size();
  result.packs = recipe.packs.size();
  for (size_t p = 0; p < recipe.packs.size(); ++p) {
    const RuntimePack& pack = recipe.packs[p];
    bool wanted = std::any_of(pack.chunks.begin(), pack.chunks.end(),
                              [&](const Digest& d) {
                                auto it = missing.find(d);
                                return it != missing.end() && !it->second;
                              });
    if (!wanted) continue;
    std::vector<uint8_t> buffer;
    size_t k = 0;
    auto sink = [&](std::span<const uint8_t> b) -> Status {
      buffer.insert(buffer.end(), b.begin(), b.end());
      size_t used = 0;
      while (k < pack.chunks.size() &&
             buffer.size() - used >= pack.lengths[k]) {
        std::span<const uint8_t> frame(buffer.data() + used, pack.lengths[k]);
        used += pack.lengths[k];
        const Digest& raw = pack.chunks[k++];
        auto it = missing.find(raw);
        if (it == missing.end() || it->second) continue;
        if (auto st = store.PutFrame(ObjectKind::kChunk, raw, frame); !st) {
          return Fail(st.error().Wrap(what));
        }
        it->second = true;
        cleanup.AddedChunk(raw);
        ++result.chunks_fetched;
      }
      buffer.erase(buffer.begin(), buffer.begin() + used);
      return {};
    };
    BlobProgressFn progress = [&](uint64_t n) {
      if (options.transfer.progress) options.transfer.progress(n, pack.size);
    };
    if (auto st = c.FetchBlob(repo, recipe.pack_layers[p], sink, progress);
        !st) {
      return Fail(st.error());
    }
    ++result.packs_fetched;
  }
  for (const auto& [d, added] : missing) {
    if (!added) {
      return Fail(Code::kCorruption,
                  what + ": chunk " + DigestHex(d) + " was never received");
    }
  }

  // 7. Publish: the tree, its metadata, and the version now trusted.
  if (!had_tree) {
    if (auto st =
            store.PutExpecting(ObjectKind::kTree, runtime.tree, tree_bytes);
        !st) {
      return Fail(st.error());
    }
    cleanup.AddedTree(runtime.tree);
  }
  RuntimeInfo info;
  info.digest = runtime.tree;
  info.source = "oci";
  info.origin = ref.ToString();
  for (const auto& e : tree->entries) {
    if (e.kind != EntryKind::kFile) continue;
    ++info.files;
    info.bytes += e.size;
  }
  info.kept = true;
  // A runtime the store described already (imported, built) keeps its
  // metadata; it is only marked kept.
  bool described = had_tree && ShowRuntime(store, runtime.tree).has_value();
  if (auto st = described ? KeepRuntime(store, runtime.tree, true)
                          : RecordRuntime(store, info);
      !st) {
    return Fail(st.error());
  }
  if (result.signed_trusted && !trust.runtime_versions.empty()) {
    if (auto st = RecordRuntimeVersion(trust.runtime_versions, runtime); !st) {
      return Fail(st.error().Wrap(ref.ToString()));
    }
  }
  cleanup.Commit();
  result.bytes_fetched = c.stats().bytes_fetched;
  return result;
}

}  // namespace egg

// Eggs and runtimes through any OCI registry (the OCI distribution API over
// HTTPS, libcurl underneath). docs/REGISTRY.md describes the media types,
// how an egg is laid out as an OCI artifact, and the trust config.
//
// Every byte a registry sends is hostile: blobs are checked against their
// pinned digest and size before anything is published, bodies are capped,
// each request has an overall deadline and a minimum rate, redirects are
// followed by hand and only to hosts and schemes the trust config allows.
#ifndef EGG_REGISTRY_H_
#define EGG_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "egg/hash.h"
#include "egg/status.h"

namespace egg {

// ---------------------------------------------------------------- names

// Media types of egg's own artifacts. See docs/REGISTRY.md.
inline constexpr std::string_view kOciManifestType =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndexType =
    "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kEggArtifactType =
    "application/vnd.egg.egg.v1";
inline constexpr std::string_view kEggConfigType =
    "application/vnd.egg.egg.config.v1+json";
inline constexpr std::string_view kEggHeadType = "application/vnd.egg.head.v1";
inline constexpr std::string_view kEggPackType = "application/vnd.egg.pack.v1";
inline constexpr std::string_view kEggRuntimeArtifactType =
    "application/vnd.egg.runtime.v1";
inline constexpr std::string_view kEggRuntimeConfigType =
    "application/vnd.egg.runtime.config.v1+json";
inline constexpr std::string_view kEggTreeType = "application/vnd.egg.tree.v1";

// "host[:port]/repo/path:tag", "host[:port]/repo/path@sha256:<hex>" or both
// (the digest wins). An optional "oci://" prefix is accepted. The host is
// always explicit: egg has no default registry.
struct Reference {
  std::string host;              // "registry.example.org" or "127.0.0.1"
  std::optional<uint16_t> port;  // absent: the scheme's default
  std::string repository;        // "lab/eggs"
  std::string tag;               // may be empty when digest is set
  std::optional<Digest> digest;  // a pin

  // "host[:port]"
  std::string Authority() const;
  // The tag, or "sha256:<hex>" when pinned.
  std::string Target() const;
  // Canonical text, "host[:port]/repo@sha256:..." when pinned.
  std::string ToString() const;
};

// Fails with kInvalidArgument naming the part that is malformed.
[[nodiscard]] Result<Reference> ParseReference(std::string_view text);

// Like ParseReference, but a reference without a digest is refused: a
// runtime named in a manifest must be pinned ("oci://host/repo@sha256:...").
[[nodiscard]] Result<Reference> ParsePinnedReference(std::string_view text);

// ---------------------------------------------------------------- trust

// Who may serve what, read from a YAML file (docs/REGISTRY.md, "Trust
// config"). Hosts are "host" or "host:port", compared case-insensitively.
struct TrustConfig {
  // Hosts that may be reached over plain HTTP. Everything else is HTTPS.
  std::vector<std::string> plain_http = {"127.0.0.1", "localhost"};
  // Hosts a registry may redirect a download to (besides itself). A
  // redirect never downgrades to plain HTTP unless the target is in
  // plain_http.
  std::vector<std::string> redirect_hosts;
  // "host[:port]" or "host[:port]/repo-prefix" entries that may serve
  // runtimes. Empty: no registry may.
  std::vector<std::string> runtime_registries;
  // allowed_signers file (OpenSSH format) whose keys may sign runtimes;
  // a relative path is taken from the config file's folder.
  std::string runtime_signers;
  // Where the newest trusted version of each runtime is recorded, to
  // refuse rollbacks. Relative paths as above.
  std::string runtime_versions = "runtime-versions";

  bool AllowsPlainHttp(std::string_view authority) const;
  bool AllowsRedirectTo(std::string_view authority) const;
  bool AllowsRuntimeFrom(const Reference& ref) const;
};

// "$XDG_CONFIG_HOME/egg/trust.yaml" or "~/.config/egg/trust.yaml".
std::string DefaultTrustConfigPath();

// Reads a trust config. A missing file at the default path yields the
// defaults; a missing file named explicitly is kNotFound; a malformed one is
// kInvalidArgument naming the key.
[[nodiscard]] Result<TrustConfig> LoadTrustConfig(const std::string& path,
                                                  bool must_exist);
[[nodiscard]] Result<TrustConfig> ParseTrustConfig(std::string_view yaml,
                                                   const std::string& dir);

// ---------------------------------------------------------------- client

struct Credentials {
  std::string username;
  std::string password;
};

// Credentials for `authority` from the usual files, first hit wins:
// $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
// ~/.config/containers/auth.json, $DOCKER_CONFIG/config.json or
// ~/.docker/config.json ("auths" -> "auth": base64 of "user:pass").
// Returns nullopt when none names the host; a malformed entry is an error.
[[nodiscard]] Result<std::optional<Credentials>> FindCredentials(
    std::string_view authority);

// Reads credentials from one auth file (same format).
[[nodiscard]] Result<std::optional<Credentials>> CredentialsFromFile(
    const std::string& path, std::string_view authority);

struct Descriptor {
  std::string media_type;
  Digest digest{};
  uint64_t size = 0;
};

struct ClientOptions {
  TrustConfig trust;
  std::optional<Credentials> credentials;  // nullopt: FindCredentials
  // Every request must finish within deadline_ms plus one second for each
  // min_rate bytes it is expected to move; a body that never ends or a
  // server that drips bytes is cut off there.
  uint64_t deadline_ms = 60'000;
  uint64_t min_rate = 1 << 20;  // bytes per second
  uint64_t connect_ms = 15'000;
  // Transfers slower than stall_rate bytes/s for stall_seconds are cut.
  uint64_t stall_rate = 1024;
  uint64_t stall_seconds = 30;
  uint64_t max_manifest_bytes = 4 << 20;  // distribution's own cap
  uint64_t max_small_body = 1 << 20;      // errors, tokens, tag lists
  // Uploads larger than this go in PATCH chunks of this size.
  uint64_t upload_chunk = 256ull << 20;
  int max_redirects = 5;
};

// What a client moved; tests and the benchmark read it.
struct TransferStats {
  uint64_t requests = 0;
  uint64_t blobs_fetched = 0;
  uint64_t blobs_pushed = 0;
  uint64_t bytes_fetched = 0;  // blob and manifest bodies
  uint64_t bytes_pushed = 0;
};

// Receives a blob's bytes as they arrive. The bytes are unverified until
// FetchBlob returns success: a sink must not publish them before.
using BlobSink = std::function<Status(std::span<const uint8_t>)>;
// Called with the bytes moved so far in the current transfer.
using BlobProgressFn = std::function<void(uint64_t)>;

// A byte range of a file.
struct FileExtent {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// One registry (host[:port]). Not thread-safe; keeps connections open
// between calls.
class RegistryClient {
 public:
  // Picks https, or http when trust.plain_http names the host.
  [[nodiscard]] static Result<std::unique_ptr<RegistryClient>> Create(
      const Reference& ref, ClientOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  const std::string& base_url() const;
  const TransferStats& stats() const;

  // True if the repository holds the blob (HEAD). When it does and size is
  // not null, *size is the size the registry reports.
  [[nodiscard]] Result<bool> HasBlob(const std::string& repo,
                                     const Digest& digest,
                                     uint64_t* size = nullptr);

  // Streams the blob into sink and checks its size and digest against
  // `want`. A body longer than want.size is cut off; a mismatch is
  // kVerificationFailed.
  [[nodiscard]] Status FetchBlob(const std::string& repo,
                                 const Descriptor& want, const BlobSink& sink,
                                 const BlobProgressFn& progress = nullptr);
  [[nodiscard]] Result<std::string> FetchBlobToString(const std::string& repo,
                                                      const Descriptor& want);
  // Writes the blob to path through a temporary file that is renamed into
  // place only once the digest matched.
  [[nodiscard]] Status FetchBlobToFile(
      const std::string& repo, const Descriptor& want, const std::string& path,
      const BlobProgressFn& progress = nullptr);

  // Uploads a blob unless the repository has it. Tries a cross-repository
  // mount from mount_from first when given. The upload is POST then PUT
  // (PATCH chunks first when larger than upload_chunk). Returns true if
  // bytes were sent.
  [[nodiscard]] Result<bool> PushBlob(const std::string& repo,
                                      const Digest& digest,
                                      std::string_view data,
                                      const std::string& mount_from = "");
  // The same from byte ranges of an open file, concatenated in order.
  [[nodiscard]] Result<bool> PushBlobFromFile(
      const std::string& repo, const Digest& digest, int fd,
      const std::vector<FileExtent>& extents,
      const BlobProgressFn& progress = nullptr);

  struct Manifest {
    std::string media_type;
    Digest digest{};
    std::string bytes;
  };
  // GETs a manifest by tag or "sha256:..." target. When the target is a
  // digest the bytes are checked against it. Bodies over
  // max_manifest_bytes are refused.
  [[nodiscard]] Result<Manifest> FetchManifest(const std::string& repo,
                                               const std::string& target);
  // PUTs a manifest under a tag or its digest; returns its digest.
  [[nodiscard]] Result<Digest> PushManifest(const std::string& repo,
                                            const std::string& target,
                                            std::string_view media_type,
                                            std::string_view bytes);

 private:
  struct Impl;
  explicit RegistryClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- eggs

class Store;  // egg/store.h

// Pack boundaries (docs/REGISTRY.md, "Packs"): a pack is cut after a chunk
// whose raw digest starts with a zero byte once it holds kPackMinBytes of
// frames, and always at kPackMaxBytes.
inline constexpr uint64_t kPackMinBytes = 4ull << 20;
inline constexpr uint64_t kPackMaxBytes = 64ull << 20;
// Caps on what a puller accepts.
inline constexpr uint64_t kMaxEggConfigBytes = 64ull << 20;
inline constexpr uint64_t kMaxEggHeadBytes = 1ull << 30;
inline constexpr size_t kMaxPacks = 1 << 16;

struct EggTransferOptions {
  ClientOptions client;
  // (pack bytes moved, pack bytes to move); called often, from this thread.
  std::function<void(uint64_t, uint64_t)> progress;
};

struct EggPushResult {
  Digest manifest{};  // the OCI manifest's digest (pin it)
  Digest content_root{};
  uint64_t packs = 0;
  uint64_t packs_sent = 0;  // the rest the registry had already
  uint64_t bytes_sent = 0;
};

// Pushes the egg at egg_path as an OCI artifact (docs/REGISTRY.md) to
// ref's repository under ref's tag, or under its digest when pinned (then
// the manifest must hash to it). The egg is opened and checked
// structurally first; packs the registry has are not sent again.
[[nodiscard]] Result<EggPushResult> PushEgg(const std::string& egg_path,
                                            const Reference& ref,
                                            const EggTransferOptions& options);

struct EggPullResult {
  Digest manifest{};
  Digest content_root{};
  uint64_t chunks = 0;
  uint64_t chunks_from_store = 0;
  uint64_t packs = 0;
  uint64_t packs_fetched = 0;
  uint64_t bytes_fetched = 0;  // all blob and manifest bytes
};

// Pulls the egg named by ref into out_path (atomically: nothing appears
// unless every byte checked out; refuses an existing file unless
// overwrite). Chunks the store holds are not fetched; fetched chunks and
// the egg's trees are added to the store, each checked against its digest
// first. The result is byte-identical to the pushed egg.
[[nodiscard]] Result<EggPullResult> PullEgg(const Reference& ref,
                                            const std::string& out_path,
                                            bool overwrite, Store& store,
                                            const EggTransferOptions& options);

// ---------------------------------------------------------------- runtimes
//
// A runtime travels on its own as an OCI artifact (docs/REGISTRY.md,
// "Runtimes"): a config naming the runtime, its version and its tree, the
// encoded tree as the first layer, and packs of the tree's chunks. The
// name, version and tree are what the runtime's signature chain signs
// (the same SSHSIG chain as eggs, docs/SIGNATURES.md).

}  // namespace egg
namespace egg::crypto {
class Signer;  // egg/crypto.h
}  // namespace egg::crypto
namespace egg {

inline constexpr uint64_t kMaxRuntimeConfigBytes = 64ull << 20;
// The role of a runtime's signature entries.
inline constexpr std::string_view kRuntimeSignerRole = "runtime";

// What a runtime's signatures sign: which runtime, which version, which
// tree. Versions only grow: a newer build of the same runtime name gets a
// larger number.
struct RuntimeVersion {
  std::string name;  // [a-z0-9][a-z0-9._-]{0,63}
  uint64_t version = 0;
  Digest tree{};
};

// kInvalidArgument unless the name follows the rule above.
[[nodiscard]] Status ValidateRuntimeName(std::string_view name);

// The 32 bytes a runtime's signature chain signs in place of an egg's
// content root: SHA-256 of "egg-runtime-root-v1\n" followed by the
// canonical JSON {"name":...,"tree":"sha256:...","version":N}. The domain
// string differs from an egg's, so no runtime signature verifies as an
// egg signature or the other way round.
Digest RuntimeRoot(const RuntimeVersion& runtime);

struct RuntimePushOptions {
  EggTransferOptions transfer;
  std::string name;  // the runtime's name (ValidateRuntimeName)
  uint64_t version = 0;
  // When set, the pushed runtime carries one signature by this key (role
  // "runtime") at `sign_time` seconds.
  crypto::Signer* signer = nullptr;
  uint64_t sign_time = 0;
};

struct RuntimePushResult {
  Digest manifest{};
  Digest tree{};
  uint64_t chunks = 0;
  uint64_t packs = 0;
  uint64_t packs_sent = 0;  // the rest the registry had already
  uint64_t bytes_sent = 0;
};

// Pushes the runtime tree `tree` of the local store (every chunk read and
// verified) to ref's repository, under ref's tag or digest. Packs the
// registry has are not sent again.
[[nodiscard]] Result<RuntimePushResult> PushRuntime(
    Store& store, const Digest& tree, const Reference& ref,
    const RuntimePushOptions& options);

struct RuntimeFetchOptions {
  EggTransferOptions transfer;  // transfer.client.trust decides
  // Verification time for allowed_signers windows; 0: now.
  int64_t now = 0;
};

struct RuntimeFetchResult {
  Digest manifest{};
  RuntimeVersion runtime;
  // The chain's summary (crypto::ChainSummary), "unsigned" when none.
  std::string signatures;
  std::vector<std::string> principals;  // of the trusted signers
  bool signed_trusted = false;
  uint64_t chunks = 0;
  uint64_t chunks_fetched = 0;
  uint64_t packs = 0;
  uint64_t packs_fetched = 0;
  uint64_t bytes_fetched = 0;
};

// Brings the runtime that `ref` pins into the store. In order, before
// anything is written to the store:
//   * ref must carry a digest (a tag alone is kInvalidArgument);
//   * trust.runtime_registries must allow ref (kPermissionDenied);
//   * the manifest must hash to the pin, the config and tree to their
//     descriptors (kVerificationFailed);
//   * when trust.runtime_signers is set, the signature chain must verify
//     over RuntimeRoot and hold an entry by a key of that allowed_signers
//     file (kVerificationFailed); a chain that does not verify is refused
//     whether or not signers are required;
//   * the version must not be older than the one trust.runtime_versions
//     records for the name, nor the same version with another tree
//     (kVerificationFailed, "rollback").
// Then the chunks the store lacks are fetched (each checked against its
// digest), the tree stored and kept, and for a runtime signed by a trusted
// key its version recorded. On any failure the chunks this call added are
// removed again: nothing is left in the store.
[[nodiscard]] Result<RuntimeFetchResult> FetchRuntime(
    const Reference& ref, Store& store, const RuntimeFetchOptions& options);

// The runtime_versions state file: "egg-runtime-versions 1" and then one
// "<name> <version> sha256:<tree>" line per runtime, sorted by name.
struct RuntimeVersionRecord {
  std::string name;
  uint64_t version = 0;
  Digest tree{};
};
// A missing file is an empty list; a malformed one is kCorruption naming
// the line.
[[nodiscard]] Result<std::vector<RuntimeVersionRecord>> ReadRuntimeVersions(
    const std::string& path);
// kVerificationFailed when `records` hold a newer version of the name, or
// the same version with another tree.
[[nodiscard]] Status CheckRuntimeVersion(
    const std::vector<RuntimeVersionRecord>& records,
    const RuntimeVersion& offered);
// The record of `name` when it holds a version newer than `version`
// (the runtime an egg names has been superseded here), else nullopt.
std::optional<RuntimeVersionRecord> NewerRuntimeVersion(
    const std::vector<RuntimeVersionRecord>& records, std::string_view name,
    uint64_t version);
// Under a lock on "<path>.lock": reads the file, checks `runtime` against
// it and, when newer, records it (temporary file and rename).
[[nodiscard]] Status RecordRuntimeVersion(const std::string& path,
                                          const RuntimeVersion& runtime);

}  // namespace egg

#endif  // EGG_REGISTRY_H_

// Runtimes through a real registry (Debian's docker-registry on
// 127.0.0.1): push and fetch, packs sent once, and every refusal of a
// fetch (tag only, registry not trusted, wrong digest, tampered pack,
// unsigned or untrusted signer, rollback) leaving nothing in the store.
// The CLI part builds an egg from an oci:// runtime and updates it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "egg/crypto.h"
#include "egg/egg.h"
#include "egg/registry.h"
#include "egg/runtime.h"
#include "egg/store.h"
#include "registry_servers.h"

namespace egg {
namespace {

using testing::ChildServer;
using testing::TempDir;
namespace fs = std::filesystem;

void WriteRandomFile(const std::string& path, size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string data(size, '\0');
  for (size_t i = 0; i + 8 <= size; i += 8) {
    uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << data;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

Store OpenStore(const std::string& root) {
  auto store = Store::Open({.root = root});
  EXPECT_TRUE(store) << store.error().message();
  return std::move(*store);
}

// Objects in a store (chunks and trees).
size_t ObjectCount(Store& store) {
  auto list = store.List();
  EXPECT_TRUE(list) << list.error().message();
  return list ? list->size() : 0;
}

// A runtime folder: a library and a small tool; `extra` adds one more file
// (last in path order) so that two versions share every pack but the last.
// With `big` the library spans several packs (for the seeds used here).
std::string MakeRuntimeFolder(const std::string& dir, uint64_t seed, bool extra,
                              bool big = false) {
  std::string root = dir + "/rt-" + std::to_string(seed) + (extra ? "x" : "");
  WriteRandomFile(root + "/usr/lib/libbig.so", big ? 24 << 20 : 1 << 20, seed);
  WriteRandomFile(root + "/usr/bin/tool", 100 << 10, seed + 1);
  if (extra) WriteRandomFile(root + "/zz/patch.bin", 200 << 10, seed + 2);
  return root;
}

class RuntimeRegistryTest : public testing::DockerRegistrySuite {
 protected:
  void SetUp() override {
    DockerRegistrySuite::SetUp();
    if (!Ready()) return;
    auto key = crypto::SecretKey::Generate();
    ASSERT_TRUE(key);
    auto other = crypto::SecretKey::Generate();
    ASSERT_TRUE(other);
    trusted_key_ = crypto::PublicKeyLine(key->public_key(), "");
    signer_ = crypto::MakeKeySigner(std::move(*key));
    stranger_ = crypto::MakeKeySigner(std::move(*other));
    signers_path_ = work_.path() + "/allowed_signers";
    std::ofstream(signers_path_)
        << "builder@example.org " << trusted_key_ << "\n";
  }

  std::string Host() const {
    return "127.0.0.1:" + std::to_string(registry_port());
  }

  Reference Ref(const std::string& repo_tag) {
    auto ref = ParseReference(Host() + "/" + repo_tag);
    EXPECT_TRUE(ref) << ref.error().message();
    return *ref;
  }

  // Trust that lets this registry's "runtimes/" serve runtimes signed by
  // the trusted key, with versions recorded in the work folder.
  RuntimeFetchOptions Fetching(bool require_signers = true) {
    RuntimeFetchOptions options;
    TrustConfig& t = options.transfer.client.trust;
    t.runtime_registries = {Host() + "/runtimes"};
    if (require_signers) t.runtime_signers = signers_path_;
    t.runtime_versions = work_.path() + "/runtime-versions";
    return options;
  }

  // Imports `folder` into `store` and pushes it; returns the pinned ref.
  Reference Push(Store& store, const std::string& folder,
                 const std::string& repo_tag, uint64_t version,
                 crypto::Signer* signer, RuntimePushResult* out = nullptr) {
    auto info = ImportRuntimeFolder(store, folder);
    EXPECT_TRUE(info) << info.error().message();
    RuntimePushOptions options;
    options.name = "python";
    options.version = version;
    options.signer = signer;
    options.sign_time = 1700000000;
    Reference ref = Ref(repo_tag);
    auto pushed = PushRuntime(store, info->digest, ref, options);
    EXPECT_TRUE(pushed) << pushed.error().message();
    if (out) *out = *pushed;
    ref.digest = pushed->manifest;
    ref.tag.clear();
    return ref;
  }

  static std::string BlobPath(const Digest& d) {
    return DockerRegistrySuite::BlobPath(DigestHex(d));
  }

  TempDir work_;
  std::string trusted_key_;
  std::string signers_path_;
  std::unique_ptr<crypto::Signer> signer_;
  std::unique_ptr<crypto::Signer> stranger_;
};

TEST_F(RuntimeRegistryTest, SignedRuntimeFetchesIntoAnEmptyStoreIntact) {
  Store a = OpenStore(work_.path() + "/a");
  RuntimePushResult pushed;
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 5, false, true),
                       "runtimes/python:1", 1, signer_.get(), &pushed);
  EXPECT_GE(pushed.packs, 2u);
  EXPECT_EQ(pushed.packs_sent, pushed.packs);

  Store b = OpenStore(work_.path() + "/b");
  auto fetched = FetchRuntime(ref, b, Fetching());
  ASSERT_TRUE(fetched) << fetched.error().message();
  EXPECT_EQ(fetched->runtime.tree, pushed.tree);
  EXPECT_EQ(fetched->runtime.name, "python");
  EXPECT_EQ(fetched->runtime.version, 1u);
  EXPECT_TRUE(fetched->signed_trusted);
  EXPECT_EQ(fetched->principals,
            std::vector<std::string>{"builder@example.org"});
  EXPECT_EQ(fetched->packs_fetched, pushed.packs);
  EXPECT_TRUE(b.IsKept(pushed.tree));
  auto info = ShowRuntime(b, pushed.tree);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->source, "oci");

  // The files come back byte for byte.
  std::string out = work_.path() + "/exported";
  ASSERT_TRUE(ExportTree(b, pushed.tree, out));
  EXPECT_EQ(ReadAll(out + "/usr/lib/libbig.so"),
            ReadAll(work_.path() + "/rt-5/usr/lib/libbig.so"));

  // The version is now recorded; fetching again moves no pack.
  auto versions = ReadRuntimeVersions(work_.path() + "/runtime-versions");
  ASSERT_TRUE(versions);
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ((*versions)[0].version, 1u);
  auto again = FetchRuntime(ref, b, Fetching());
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->packs_fetched, 0u);
  EXPECT_EQ(again->chunks_fetched, 0u);
}

TEST_F(RuntimeRegistryTest, NewerVersionSendsAndFetchesOnlyChangedPacks) {
  Store a = OpenStore(work_.path() + "/a");
  RuntimePushResult v1;
  Reference ref1 = Push(a, MakeRuntimeFolder(work_.path(), 5, false, true),
                        "runtimes/shared:1", 1, signer_.get(), &v1);
  RuntimePushResult v2;
  Reference ref2 = Push(a, MakeRuntimeFolder(work_.path(), 5, true, true),
                        "runtimes/shared:2", 2, signer_.get(), &v2);
  ASSERT_NE(v1.tree, v2.tree);
  EXPECT_GE(v2.packs, 2u);
  EXPECT_LT(v2.packs_sent, v2.packs);
  EXPECT_GE(v2.packs_sent, 1u);

  Store b = OpenStore(work_.path() + "/b");
  ASSERT_TRUE(FetchRuntime(ref1, b, Fetching()));
  auto fetched = FetchRuntime(ref2, b, Fetching());
  ASSERT_TRUE(fetched) << fetched.error().message();
  EXPECT_LT(fetched->packs_fetched, fetched->packs);
}

TEST_F(RuntimeRegistryTest, TagOnlyReferenceIsRefused) {
  Store a = OpenStore(work_.path() + "/a");
  Push(a, MakeRuntimeFolder(work_.path(), 7, false), "runtimes/tagged:1", 1,
       signer_.get());
  Store b = OpenStore(work_.path() + "/b");
  auto fetched = FetchRuntime(Ref("runtimes/tagged:1"), b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(ObjectCount(b), 0u);
  EXPECT_FALSE(ParsePinnedReference("oci://" + Host() + "/runtimes/x:1"));
}

TEST_F(RuntimeRegistryTest, RegistryNotInRuntimeRegistriesIsRefused) {
  Store a = OpenStore(work_.path() + "/a");
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 8, false),
                       "elsewhere/python:1", 1, signer_.get());
  Store b = OpenStore(work_.path() + "/b");
  auto fetched = FetchRuntime(ref, b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code(), Code::kPermissionDenied);
  // Nothing is allowed by default either.
  RuntimeFetchOptions defaults;
  auto refused = FetchRuntime(ref, b, defaults);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kPermissionDenied);
  EXPECT_EQ(ObjectCount(b), 0u);
}

TEST_F(RuntimeRegistryTest, PinOfAnotherManifestIsRefused) {
  Store a = OpenStore(work_.path() + "/a");
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 9, false),
                       "runtimes/pinned:1", 1, signer_.get());
  Store b = OpenStore(work_.path() + "/b");
  (*ref.digest)[5] ^= 1;
  auto fetched = FetchRuntime(ref, b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(ObjectCount(b), 0u);
}

TEST_F(RuntimeRegistryTest, TamperedPackIsRefusedAndLeavesNothing) {
  Store a = OpenStore(work_.path() + "/a");
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 5, true, true),
                       "runtimes/tampered:1", 1, signer_.get());
  // Flip a byte in the middle of the manifest's last pack on the
  // registry's disk: the first packs fetch and store fine, the last fails
  // its digest check, and everything the fetch stored is removed.
  auto client = RegistryClient::Create(ref, {});
  ASSERT_TRUE(client);
  auto manifest = (*client)->FetchManifest(ref.repository, ref.Target());
  ASSERT_TRUE(manifest);
  auto m = nlohmann::json::parse(manifest->bytes);
  ASSERT_GE(m["layers"].size(), 3u) << "the tree and at least two packs";
  auto last = ParseDigest(m["layers"].back()["digest"].get<std::string>());
  ASSERT_TRUE(last);
  {
    std::fstream f(BlobPath(*last),
                   std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f) << BlobPath(*last);
    f.seekp(1000);
    f.put('\x5a');
  }
  Store b = OpenStore(work_.path() + "/b");
  auto fetched = FetchRuntime(ref, b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(ObjectCount(b), 0u) << fetched.error().message();
  auto runtimes = ListRuntimes(b);
  ASSERT_TRUE(runtimes);
  EXPECT_TRUE(runtimes->empty());
}

TEST_F(RuntimeRegistryTest, UnsignedRuntimeIsRefusedWhenSignersAreRequired) {
  Store a = OpenStore(work_.path() + "/a");
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 11, false),
                       "runtimes/unsigned:1", 1, nullptr);
  Store b = OpenStore(work_.path() + "/b");
  auto fetched = FetchRuntime(ref, b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code(), Code::kVerificationFailed);
  EXPECT_EQ(ObjectCount(b), 0u);

  // Without runtime_signers it is accepted, but its unsigned version is
  // not recorded as trusted.
  auto accepted = FetchRuntime(ref, b, Fetching(false));
  ASSERT_TRUE(accepted) << accepted.error().message();
  EXPECT_FALSE(accepted->signed_trusted);
  auto versions = ReadRuntimeVersions(work_.path() + "/runtime-versions");
  ASSERT_TRUE(versions);
  EXPECT_TRUE(versions->empty());
}

TEST_F(RuntimeRegistryTest, RuntimeSignedByAnUntrustedKeyIsRefused) {
  Store a = OpenStore(work_.path() + "/a");
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 12, false),
                       "runtimes/stranger:1", 1, stranger_.get());
  Store b = OpenStore(work_.path() + "/b");
  auto fetched = FetchRuntime(ref, b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code(), Code::kVerificationFailed);
  EXPECT_EQ(ObjectCount(b), 0u);
}

TEST_F(RuntimeRegistryTest, OlderVersionIsRefusedAsRollback) {
  Store a = OpenStore(work_.path() + "/a");
  Reference old_ref = Push(a, MakeRuntimeFolder(work_.path(), 13, false),
                           "runtimes/rollback:1", 1, signer_.get());
  Reference new_ref = Push(a, MakeRuntimeFolder(work_.path(), 14, false),
                           "runtimes/rollback:2", 2, signer_.get());
  Store b = OpenStore(work_.path() + "/b");
  ASSERT_TRUE(FetchRuntime(new_ref, b, Fetching()));
  size_t before = ObjectCount(b);

  auto fetched = FetchRuntime(old_ref, b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code(), Code::kVerificationFailed);
  EXPECT_NE(fetched.error().message().find("rollback"), std::string::npos)
      << fetched.error().message();
  EXPECT_EQ(ObjectCount(b), before);
  auto versions = ReadRuntimeVersions(work_.path() + "/runtime-versions");
  ASSERT_TRUE(versions);
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ((*versions)[0].version, 2u);
}

TEST_F(RuntimeRegistryTest, SameVersionWithAnotherTreeIsRefused) {
  Store a = OpenStore(work_.path() + "/a");
  Reference first = Push(a, MakeRuntimeFolder(work_.path(), 15, false),
                         "runtimes/twin:a", 3, signer_.get());
  Reference twin = Push(a, MakeRuntimeFolder(work_.path(), 16, false),
                        "runtimes/twin:b", 3, signer_.get());
  Store b = OpenStore(work_.path() + "/b");
  ASSERT_TRUE(FetchRuntime(first, b, Fetching()));
  auto fetched = FetchRuntime(twin, b, Fetching());
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code(), Code::kVerificationFailed);
}

// Re-publishes a pushed runtime with its config changed by `edit`, under
// a new manifest; returns the pin of that manifest.
Reference Republish(const Reference& ref,
                    const std::function<void(nlohmann::json&)>& edit) {
  auto client = RegistryClient::Create(ref, {});
  EXPECT_TRUE(client);
  auto manifest = (*client)->FetchManifest(ref.repository, ref.Target());
  EXPECT_TRUE(manifest);
  auto m = nlohmann::json::parse(manifest->bytes);
  auto config_digest = ParseDigest(m["config"]["digest"].get<std::string>());
  EXPECT_TRUE(config_digest);
  auto config = (*client)->FetchBlobToString(
      ref.repository, {std::string(kEggRuntimeConfigType), *config_digest,
                       m["config"]["size"].get<uint64_t>()});
  EXPECT_TRUE(config);
  auto c = nlohmann::json::parse(*config);
  edit(c);
  std::string bytes = c.dump();
  Digest digest = Sha256Of(bytes);
  EXPECT_TRUE((*client)->PushBlob(ref.repository, digest, bytes));
  m["config"]["digest"] = DigestRef(digest);
  m["config"]["size"] = bytes.size();
  std::string manifest_bytes = m.dump();
  auto pushed = (*client)->PushManifest(ref.repository, "edited",
                                        kOciManifestType, manifest_bytes);
  EXPECT_TRUE(pushed) << pushed.error().message();
  Reference out = ref;
  out.digest = *pushed;
  return out;
}

TEST_F(RuntimeRegistryTest, VersionChangedAfterSigningIsRefused) {
  Store a = OpenStore(work_.path() + "/a");
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 17, false),
                       "runtimes/bumped:1", 1, signer_.get());
  Reference bumped =
      Republish(ref, [](nlohmann::json& c) { c["version"] = 99; });
  Store b = OpenStore(work_.path() + "/b");
  for (bool require : {true, false}) {
    auto fetched = FetchRuntime(bumped, b, Fetching(require));
    ASSERT_FALSE(fetched);
    EXPECT_EQ(fetched.error().code(), Code::kVerificationFailed);
  }
  EXPECT_EQ(ObjectCount(b), 0u);
  // The signature itself was fine: the original fetches.
  EXPECT_TRUE(FetchRuntime(ref, b, Fetching()));
}

TEST_F(RuntimeRegistryTest, ConfigNamingAnotherTreeIsRefused) {
  Store a = OpenStore(work_.path() + "/a");
  Reference ref = Push(a, MakeRuntimeFolder(work_.path(), 18, false),
                       "runtimes/other-tree:1", 1, nullptr);
  Reference lying = Republish(ref, [](nlohmann::json& c) {
    c["tree"] = "sha256:" + std::string(64, 'b');
  });
  Reference short_pack = Republish(ref, [](nlohmann::json& c) {
    c["packs"][0]["lengths"][0] = c["packs"][0]["lengths"][0].get<int>() - 1;
  });
  Store b = OpenStore(work_.path() + "/b");
  auto fetched = FetchRuntime(lying, b, Fetching(false));
  ASSERT_FALSE(fetched);
  EXPECT_EQ(fetched.error().code(), Code::kVerificationFailed);
  auto cut = FetchRuntime(short_pack, b, Fetching(false));
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().code(), Code::kCorruption);
  EXPECT_EQ(ObjectCount(b), 0u);
}

TEST(RuntimeVersionsFile, RejectsMalformedLines) {
  TempDir dir;
  std::string path = dir.path() + "/runtime-versions";
  std::string tree = "sha256:" + std::string(64, 'a');
  for (std::string text :
       {std::string("egg-runtime-versions 2\n"),
        "egg-runtime-versions 1\npython 01 " + tree + "\n",
        "egg-runtime-versions 1\npython 1 " + tree,
        "egg-runtime-versions 1\nPython 1 " + tree + "\n",
        "egg-runtime-versions 1\npython 1  " + tree + "\n",
        "egg-runtime-versions 1\nr 1 " + tree + "\npython 1 " + tree + "\n",
        "egg-runtime-versions 1\npython 99999999999999999999 " + tree + "\n",
        std::string()}) {
    std::ofstream(path, std::ios::trunc) << text;
    auto read = ReadRuntimeVersions(path);
    EXPECT_FALSE(read) << text;
    if (!read) {
      EXPECT_EQ(read.error().code(), Code::kCorruption);
      // A damaged state file is never replaced by a record.
      RuntimeVersion v{"python", 5, {}};
      EXPECT_FALSE(RecordRuntimeVersion(path, v));
      EXPECT_EQ(ReadAll(path), text);
    }
  }
}

TEST(RuntimeVersionsFile, RecordsOnlyNewerVersions) {
  TempDir dir;
  std::string path = dir.path() + "/state/runtime-versions";
  RuntimeVersion v2{"python", 2, {}};
  v2.tree[0] = 2;
  RuntimeVersion v1{"python", 1, {}};
  v1.tree[0] = 1;
  RuntimeVersion r{"r-base", 7, {}};
  ASSERT_TRUE(RecordRuntimeVersion(path, v2));
  ASSERT_TRUE(RecordRuntimeVersion(path, r));
  EXPECT_FALSE(RecordRuntimeVersion(path, v1));
  auto read = ReadRuntimeVersions(path);
  ASSERT_TRUE(read);
  EXPECT_FALSE(NewerRuntimeVersion(*read, "python", 2));
  ASSERT_TRUE(NewerRuntimeVersion(*read, "python", 1));
  EXPECT_EQ(NewerRuntimeVersion(*read, "python", 1)->version, 2u);
  EXPECT_FALSE(NewerRuntimeVersion(*read, "ruby", 1));
  ASSERT_EQ(read->size(), 2u);
  EXPECT_EQ((*read)[0].name, "python");
  EXPECT_EQ((*read)[0].version, 2u);
  EXPECT_EQ((*read)[1].name, "r-base");
}

TEST(RuntimeRoot, CommitsToNameVersionAndTree) {
  RuntimeVersion a{"python", 1, {}};
  RuntimeVersion b = a;
  b.version = 2;
  RuntimeVersion c = a;
  c.name = "pythoN";
  RuntimeVersion d = a;
  d.tree[31] = 1;
  EXPECT_NE(RuntimeRoot(a), RuntimeRoot(b));
  EXPECT_NE(RuntimeRoot(a), RuntimeRoot(c));
  EXPECT_NE(RuntimeRoot(a), RuntimeRoot(d));
  EXPECT_FALSE(ValidateRuntimeName("Python"));
  EXPECT_FALSE(ValidateRuntimeName(""));
  EXPECT_FALSE(ValidateRuntimeName("-x"));
  EXPECT_TRUE(ValidateRuntimeName("python3.11"));
}

// ---------------------------------------------------------------- CLI

int RunEgg(const std::string& args, std::string* out = nullptr) {
  const char* bin = std::getenv("EGG_BIN");
  std::string cmd = std::string(bin ? bin : "egg") + " " + args;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  char buf[4096];
  std::string text;
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) text.append(buf, n);
  int status = ::pclose(pipe);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

TEST_F(RuntimeRegistryTest, CliBuildsFromAPinnedRuntimeAndUpdatesIt) {
  if (std::getenv("EGG_BIN") == nullptr) {
    GTEST_SKIP() << "EGG_BIN is not set (run through ctest)";
  }
  const std::string w = work_.path();
  // Everything the commands read and write lives in the work folder.
  struct Env {
    Env(const std::string& w) {
      ::setenv("XDG_CACHE_HOME", (w + "/cache").c_str(), 1);
      ::setenv("XDG_CONFIG_HOME", (w + "/config").c_str(), 1);
      ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    }
    ~Env() {
      for (const char* v :
           {"XDG_CACHE_HOME", "XDG_CONFIG_HOME", "SOURCE_DATE_EPOCH"}) {
        ::unsetenv(v);
      }
    }
  } scoped_env(w);
  const std::string env;
  ASSERT_EQ(RunEgg(env + "keygen -o '" + w + "/key' 2>/dev/null"), 0);
  std::string pub = Trim(ReadAll(w + "/key.pub"));
  std::ofstream(w + "/signers") << "builder@example.org " << pub << "\n";
  std::ofstream(w + "/trust.yaml")
      << "runtime_registries: [\"" << Host() << "/runtimes\"]\n"
      << "runtime_signers: signers\n"
      << "runtime_versions: runtime-versions\n";
  std::string trust = " --trust '" + w + "/trust.yaml'";
  std::string store = " --store '" + w + "/cache/egg'";

  // Two signed versions of a runtime, pushed from the store.
  std::string pins[2];
  for (int v = 1; v <= 2; ++v) {
    std::string digest;
    std::string folder = w + "/rt" + std::to_string(v);
    WriteRandomFile(folder + "/bin/tool", 300 << 10, 40 + v);
    ASSERT_EQ(
        RunEgg(env + "runtime import-folder '" + folder + "'" + store, &digest),
        0);
    ASSERT_EQ(
        RunEgg(env + "runtime push " + Trim(digest) + " " + Host() +
                   "/runtimes/tool:" + std::to_string(v) +
                   " --name tool --version " + std::to_string(v) + " --sign '" +
                   w + "/key'" + store + trust + " 2>/dev/null",
               &pins[v - 1]),
        0);
    pins[v - 1] = Trim(pins[v - 1]);
    EXPECT_TRUE(
        pins[v - 1].starts_with("oci://" + Host() + "/runtimes/tool@sha256:"))
        << pins[v - 1];
  }

  // The builder's store is emptied: build fetches version 1 again.
  fs::remove_all(w + "/cache/egg");
  fs::create_directories(w + "/proj");
  std::ofstream(w + "/proj/egg.yaml")
      << "name: upd\ncreated: 2024-05-01T09:00:00Z\n"
      << "runtime:\n  oci: \"" << pins[0] << "\"\n"
      << "cells:\n  - id: a\n    language: bash\n    code: echo hi\n";
  std::string built;
  ASSERT_EQ(
      RunEgg(env + "build '" + w + "/proj/egg.yaml' -o '" + w +
                 "/v1.egg' --sign '" + w + "/key'" + trust + " 2>/dev/null",
             &built),
      0);
  std::string old_root = built.substr(0, built.find(' '));

  // A tag-only runtime is refused by the manifest, before any fetch.
  std::ofstream(w + "/proj/tag.yaml")
      << "name: tag\nruntime:\n  oci: \"oci://" << Host()
      << "/runtimes/tool:1\"\n"
      << "cells:\n  - id: a\n    language: bash\n    code: echo hi\n";
  EXPECT_EQ(RunEgg(env + "build '" + w + "/proj/tag.yaml' -o '" + w +
                   "/tag.egg'" + trust + " 2>/dev/null"),
            kExitUsage);
  EXPECT_FALSE(fs::exists(w + "/tag.egg"));

  // Update to version 2, signed as runtime-update.
  std::string updated;
  ASSERT_EQ(RunEgg(env + "update-runtime '" + w + "/v1.egg' --to " + pins[1] +
                       " -o '" + w + "/v2.egg' --sign '" + w + "/key'" + trust +
                       store + " 2>/dev/null",
                   &updated),
            0);
  std::string json;
  ASSERT_EQ(RunEgg("verify '" + w + "/v2.egg' --trusted '" + w +
                       "/signers' --json 2>/dev/null",
                   &json),
            0);
  auto report = nlohmann::json::parse(json);
  EXPECT_EQ(report["signatures"]["state"], "trusted");
  EXPECT_EQ(report["signatures"]["entries"][0]["role"], "runtime-update");
  // The old egg still verifies for its own content root.
  ASSERT_EQ(RunEgg("verify '" + w + "/v1.egg' --trusted '" + w +
                   "/signers' --require-signature 2>/dev/null"),
            0);
  auto egg = EggFile::Open(w + "/v2.egg");
  ASSERT_TRUE(egg);
  const auto& record = egg->manifest()["runtime_updates"][0];
  EXPECT_EQ(record["previous_content_root"], old_root);
  EXPECT_EQ(egg->manifest()["runtime"]["version"], 2);

  // Back to version 1: refused (not newer), and no file is written.
  EXPECT_EQ(RunEgg(env + "update-runtime '" + w + "/v2.egg' --to " + pins[0] +
                   " -o '" + w + "/back.egg'" + trust + store + " 2>/dev/null"),
            kExitVerificationFailed);
  EXPECT_FALSE(fs::exists(w + "/back.egg"));
}

}  // namespace
}  // namespace egg

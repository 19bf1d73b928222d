// Eggs through a real registry (Debian's docker-registry on 127.0.0.1):
// byte-identical round trips, pulls that fetch only what the store lacks,
// and refusals that leave nothing behind.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "egg/egg.h"
#include "egg/registry.h"
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

// An egg with a "runtime" tree (seeded by runtime_seed) and a "data" tree.
std::string MakeEgg(const std::string& dir, const std::string& name,
                    uint64_t runtime_seed, uint64_t data_seed) {
  std::string rt = dir + "/" + name + "-rt";
  std::string data = dir + "/" + name + "-data";
  WriteRandomFile(rt + "/usr/lib/libbig.so", 6 << 20, runtime_seed);
  WriteRandomFile(rt + "/usr/bin/tool", 300 << 10, runtime_seed + 1);
  WriteRandomFile(data + "/input.bin", 1 << 20, data_seed);
  EggInput input;
  input.manifest = {{"name", name}};
  input.notebook = {{"cells", nlohmann::json::array()}};
  input.trees.push_back({"runtime", rt, {}, nullptr});
  input.trees.push_back({"data", data, {}, nullptr});
  std::string out = dir + "/" + name + ".egg";
  auto written = WriteEgg(input, out);
  EXPECT_TRUE(written) << written.error().message();
  return out;
}

class EggRegistryTest : public testing::DockerRegistrySuite {
 protected:

  Reference Ref(const std::string& repo_tag) {
    auto ref = ParseReference("127.0.0.1:" + std::to_string(registry_port()) +
                              "/" + repo_tag);
    EXPECT_TRUE(ref) << ref.error().message();
    return *ref;
  }

  Store OpenStore(const std::string& root) {
    StoreOptions options;
    options.root = root;
    auto store = Store::Open(options);
    EXPECT_TRUE(store) << store.error().message();
    return std::move(*store);
  }

  static std::string BlobPath(const Digest& d) {
    return DockerRegistrySuite::BlobPath(DigestHex(d));
  }

};

TEST_F(EggRegistryTest, PulledEggIsByteIdenticalAndVerifies) {
  TempDir work;
  std::string egg_path = MakeEgg(work.path(), "one", 1, 2);
  auto pushed = PushEgg(egg_path, Ref("lab/one:v1"), {});
  ASSERT_TRUE(pushed) << pushed.error().message();
  EXPECT_GE(pushed->packs, 2u);
  EXPECT_EQ(pushed->packs_sent, pushed->packs);

  Store store = OpenStore(work.path() + "/store");
  std::string out = work.path() + "/pulled.egg";
  auto pulled = PullEgg(Ref("lab/one:v1"), out, false, store, {});
  ASSERT_TRUE(pulled) << pulled.error().message();
  EXPECT_EQ(pulled->manifest, pushed->manifest);
  EXPECT_EQ(pulled->content_root, pushed->content_root);
  EXPECT_EQ(pulled->packs_fetched, pulled->packs);
  EXPECT_EQ(ReadAll(out), ReadAll(egg_path));
  auto egg = EggFile::Open(out);
  ASSERT_TRUE(egg) << egg.error().message();
  EXPECT_TRUE(egg->VerifyContent());

  // Pinned by the manifest digest, too.
  std::string pinned = work.path() + "/pinned.egg";
  auto by_digest = PullEgg(Ref("lab/one@" + DigestRef(pushed->manifest)),
                           pinned, false, store, {});
  ASSERT_TRUE(by_digest) << by_digest.error().message();
  EXPECT_EQ(ReadAll(pinned), ReadAll(egg_path));
}

TEST_F(EggRegistryTest, SecondPullFetchesNoPack) {
  TempDir work;
  std::string egg_path = MakeEgg(work.path(), "two", 3, 4);
  ASSERT_TRUE(PushEgg(egg_path, Ref("lab/two:v1"), {}));
  Store store = OpenStore(work.path() + "/store");
  auto first =
      PullEgg(Ref("lab/two:v1"), work.path() + "/a.egg", false, store, {});
  ASSERT_TRUE(first) << first.error().message();
  auto second =
      PullEgg(Ref("lab/two:v1"), work.path() + "/b.egg", false, store, {});
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->packs_fetched, 0u);
  EXPECT_EQ(second->chunks_from_store, second->chunks);
  EXPECT_LT(second->bytes_fetched, 64u << 10);
  EXPECT_EQ(ReadAll(work.path() + "/b.egg"), ReadAll(egg_path));
}

TEST_F(EggRegistryTest, DamagedStoreChunksAreFetchedNotCopied) {
  TempDir work;
  std::string egg_path = MakeEgg(work.path(), "damaged", 11, 12);
  ASSERT_TRUE(PushEgg(egg_path, Ref("lab/damaged:v1"), {}));
  Store store = OpenStore(work.path() + "/store");
  ASSERT_TRUE(
      PullEgg(Ref("lab/damaged:v1"), work.path() + "/a.egg", false, store, {}));

  // Flip a byte in every stored chunk: no frame matches the egg's index.
  auto entries = store.List();
  ASSERT_TRUE(entries) << entries.error().message();
  size_t damaged = 0;
  for (const auto& e : *entries) {
    if (e.kind != ObjectKind::kChunk) continue;
    std::string path = store.ObjectPath(e.kind, e.digest);
    ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    auto at = static_cast<std::streamoff>(e.stored_bytes / 2);
    f.seekg(at);
    char c = 0;
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x5a));
    ++damaged;
  }
  ASSERT_GT(damaged, 0u);

  auto again =
      PullEgg(Ref("lab/damaged:v1"), work.path() + "/b.egg", false, store, {});
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->chunks_from_store, 0u);
  EXPECT_EQ(again->packs_fetched, again->packs);
  EXPECT_EQ(ReadAll(work.path() + "/b.egg"), ReadAll(egg_path));
}

TEST_F(EggRegistryTest, SharedRuntimeIsNeitherPushedNorPulledTwice) {
  TempDir work;
  std::string first = MakeEgg(work.path(), "first", 5, 6);
  std::string second = MakeEgg(work.path(), "second", 5, 7);
  auto p1 = PushEgg(first, Ref("lab/shared:first"), {});
  ASSERT_TRUE(p1) << p1.error().message();
  auto p2 = PushEgg(second, Ref("lab/shared:second"), {});
  ASSERT_TRUE(p2) << p2.error().message();
  EXPECT_LT(p2->packs_sent, p2->packs) << "runtime packs were sent again";
  EXPECT_LT(p2->bytes_sent, 2u << 20);

  Store store = OpenStore(work.path() + "/store");
  ASSERT_TRUE(PullEgg(Ref("lab/shared:first"), work.path() + "/1.egg", false,
                      store, {}));
  auto pulled = PullEgg(Ref("lab/shared:second"), work.path() + "/2.egg", false,
                        store, {});
  ASSERT_TRUE(pulled) << pulled.error().message();
  EXPECT_LT(pulled->packs_fetched, pulled->packs);
  EXPECT_GT(pulled->chunks_from_store, 0u);
  EXPECT_LT(pulled->bytes_fetched, 3u << 20);
  EXPECT_EQ(ReadAll(work.path() + "/2.egg"), ReadAll(second));
}

TEST_F(EggRegistryTest, TamperedPackIsRefusedAndLeavesNoEgg) {
  TempDir work;
  std::string egg_path = MakeEgg(work.path(), "bad", 8, 9);
  auto pushed = PushEgg(egg_path, Ref("lab/bad:v1"), {});
  ASSERT_TRUE(pushed) << pushed.error().message();

  // Flip one byte of every pack in the registry's own storage.
  TempDir scratch;
  Store probe = OpenStore(scratch.path() + "/s");
  auto client = RegistryClient::Create(Ref("lab/bad:v1"), {});
  ASSERT_TRUE(client);
  auto manifest = (*client)->FetchManifest("lab/bad", "v1");
  ASSERT_TRUE(manifest);
  auto doc = nlohmann::json::parse(manifest->bytes);
  int flipped = 0;
  for (const auto& layer : doc["layers"]) {
    if (layer["mediaType"] != kEggPackType) continue;
    auto d = ParseDigest(layer["digest"].get<std::string>());
    std::fstream f(BlobPath(*d),
                   std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f) << BlobPath(*d);
    f.seekp(100);
    f.put('\x5a');
    ++flipped;
  }
  ASSERT_GT(flipped, 0);

  Store store = OpenStore(work.path() + "/store");
  std::string out = work.path() + "/pulled.egg";
  auto pulled = PullEgg(Ref("lab/bad:v1"), out, false, store, {});
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kVerificationFailed)
      << pulled.error().message();
  EXPECT_FALSE(fs::exists(out));
  for (const auto& entry : fs::directory_iterator(work.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".pulled.egg.tmp"),
              std::string::npos)
        << "temporary file left: " << entry.path();
  }
  auto verified = store.Verify();
  ASSERT_TRUE(verified);
  EXPECT_TRUE(verified->problems.empty());
  // Nothing of the refused egg stays in the store.
  auto listed = store.List();
  ASSERT_TRUE(listed) << listed.error().message();
  EXPECT_TRUE(listed->empty()) << listed->size() << " objects left";
}

// A pack damaged at its end: the frames before the damage check out and
// were added to the store as they arrived; the refused pull removes them
// again (a store that had them before keeps them: see the test above).
TEST_F(EggRegistryTest, RefusedPullLeavesNoChunkInTheStore) {
  TempDir work;
  std::string egg_path = MakeEgg(work.path(), "tail", 40, 42);
  auto pushed = PushEgg(egg_path, Ref("lab/tail:v1"), {});
  ASSERT_TRUE(pushed) << pushed.error().message();
  auto client = RegistryClient::Create(Ref("lab/tail:v1"), {});
  ASSERT_TRUE(client);
  auto manifest = (*client)->FetchManifest("lab/tail", "v1");
  ASSERT_TRUE(manifest);
  auto doc = nlohmann::json::parse(manifest->bytes);
  int damaged = 0;
  for (const auto& layer : doc["layers"]) {
    if (layer["mediaType"] != kEggPackType) continue;
    auto d = ParseDigest(layer["digest"].get<std::string>());
    std::fstream f(BlobPath(*d),
                   std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f) << BlobPath(*d);
    f.seekp(layer["size"].get<int64_t>() - 3);
    f.put('\x5a');
    ++damaged;
  }
  ASSERT_GT(damaged, 0);

  Store store = OpenStore(work.path() + "/store");
  std::string out = work.path() + "/pulled.egg";
  auto pulled = PullEgg(Ref("lab/tail:v1"), out, false, store, {});
  ASSERT_FALSE(pulled);
  EXPECT_FALSE(fs::exists(out));
  auto listed = store.List();
  ASSERT_TRUE(listed) << listed.error().message();
  EXPECT_TRUE(listed->empty()) << listed->size() << " objects left";
}

TEST_F(EggRegistryTest, RefusesArtifactThatIsNotAnEgg) {
  TempDir work;
  auto client = RegistryClient::Create(Ref("lab/img:v1"), {});
  ASSERT_TRUE(client);
  std::string config = "{}";
  ASSERT_TRUE((*client)->PushBlob("lab/img", Sha256Of(config), config));
  std::string manifest =
      "{\"schemaVersion\":2,\"mediaType\":\"" + std::string(kOciManifestType) +
      "\",\"config\":{\"mediaType\":"
      "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" +
      DigestRef(Sha256Of(config)) + "\",\"size\":2},\"layers\":[]}";
  ASSERT_TRUE(
      (*client)->PushManifest("lab/img", "v1", kOciManifestType, manifest));
  Store store = OpenStore(work.path() + "/store");
  auto pulled =
      PullEgg(Ref("lab/img:v1"), work.path() + "/x.egg", false, store, {});
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kInvalidArgument);
  EXPECT_FALSE(fs::exists(work.path() + "/x.egg"));
}

TEST_F(EggRegistryTest, PullRefusesToReplaceAFileWithoutOverwrite) {
  TempDir work;
  std::string egg_path = MakeEgg(work.path(), "keep", 10, 11);
  ASSERT_TRUE(PushEgg(egg_path, Ref("lab/keep:v1"), {}));
  std::string out = work.path() + "/exists.egg";
  std::ofstream(out) << "mine";
  Store store = OpenStore(work.path() + "/store");
  auto pulled = PullEgg(Ref("lab/keep:v1"), out, false, store, {});
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(ReadAll(out), "mine");
}

// Runs the egg binary with a shell command line; returns its exit status.
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

TEST_F(EggRegistryTest, CliPushPrintsPinAndPullRoundTrips) {
  if (std::getenv("EGG_BIN") == nullptr) {
    GTEST_SKIP() << "EGG_BIN is not set (run through ctest)";
  }
  TempDir work;
  std::string egg_path = MakeEgg(work.path(), "cli", 12, 13);
  std::string host = "127.0.0.1:" + std::to_string(registry_port());
  std::string pin;
  ASSERT_EQ(RunEgg("push '" + egg_path + "' " + host + "/lab/cli:v1", &pin), 0);
  while (!pin.empty() && pin.back() == '\n') pin.pop_back();
  EXPECT_TRUE(pin.starts_with(host + "/lab/cli@sha256:")) << pin;
  std::string out = work.path() + "/pulled.egg";
  std::string store = work.path() + "/store";
  ASSERT_EQ(RunEgg("pull " + pin + " -o '" + out + "' --store '" + store +
                   "' 2>/dev/null"),
            0);
  EXPECT_EQ(ReadAll(out), ReadAll(egg_path));
  // Refuses to replace the file, then does with --force.
  EXPECT_EQ(RunEgg("pull " + pin + " -o '" + out + "' --store '" + store +
                   "' 2>/dev/null"),
            kExitUsage);
  EXPECT_EQ(RunEgg("pull " + pin + " -o '" + out + "' --store '" + store +
                   "' --force 2>/dev/null"),
            0);
  // A tag that was never pushed, and a password on the command line.
  EXPECT_EQ(RunEgg("pull " + host + "/lab/cli:nope -o '" + work.path() +
                   "/x.egg' --store '" + store + "' 2>/dev/null"),
            kExitUsage);
  EXPECT_FALSE(fs::exists(work.path() + "/x.egg"));
  EXPECT_EQ(RunEgg("pull " + pin + " --username u -o '" + work.path() +
                   "/y.egg' 2>/dev/null"),
            kExitUsage);
}

}  // namespace
}  // namespace egg

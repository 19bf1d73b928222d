// The OCI distribution client: reference parsing, trust config, auth files,
// and hostile-server cases (every refusal leaves nothing behind).
#include <dirent.h>
#include <gtest/gtest.h>

#include <fstream>

#include "egg/registry.h"
#include "registry/internal.h"
#include "registry_servers.h"

namespace egg {
namespace {

using testing::ChildServer;
using testing::TempDir;

// ------------------------------------------------------------ references

TEST(ReferenceTest, ParsesHostPortRepoAndTag) {
  auto ref = ParseReference("127.0.0.1:5000/lab/eggs:v1.2");
  ASSERT_TRUE(ref) << ref.error().message();
  EXPECT_EQ(ref->host, "127.0.0.1");
  EXPECT_EQ(*ref->port, 5000);
  EXPECT_EQ(ref->repository, "lab/eggs");
  EXPECT_EQ(ref->tag, "v1.2");
  EXPECT_FALSE(ref->digest);
  EXPECT_EQ(ref->ToString(), "127.0.0.1:5000/lab/eggs:v1.2");
}

TEST(ReferenceTest, ParsesDigestPinAndOciPrefix) {
  std::string hex(64, 'a');
  auto ref = ParseReference("oci://Registry.example.org/rt@sha256:" + hex);
  ASSERT_TRUE(ref) << ref.error().message();
  EXPECT_EQ(ref->host, "registry.example.org");
  EXPECT_FALSE(ref->port);
  ASSERT_TRUE(ref->digest);
  EXPECT_EQ(ref->Target(), "sha256:" + hex);
}

TEST(ReferenceTest, RejectsMalformedReferences) {
  std::string hex(64, 'a');
  for (const char* bad :
       {"", "noslash", "host/", "host/Repo:tag", "host/repo", "host:0/r:t",
        "host:99999/r:t", "host:/r:t", "ho st/r:t", "host/r:-tag",
        "host/r@sha512:00", "host/r@sha256:abc", "host/a//b:t", "host/a..b:t",
        "..host/r:t", "host/r:t\n"}) {
    auto ref = ParseReference(bad);
    EXPECT_FALSE(ref) << bad;
    if (!ref) {
      EXPECT_EQ(ref.error().code(), Code::kInvalidArgument);
    }
  }
  EXPECT_FALSE(ParseReference("h/" + std::string(300, 'a') + ":t"));
}

TEST(ReferenceTest, PinnedReferenceRefusesTagAlone) {
  auto ref = ParsePinnedReference("oci://host/runtime:latest");
  ASSERT_FALSE(ref);
  EXPECT_EQ(ref.error().code(), Code::kInvalidArgument);
  std::string hex(64, 'b');
  EXPECT_TRUE(ParsePinnedReference("oci://host/runtime:1@sha256:" + hex));
}

// ------------------------------------------------------------ trust

TEST(TrustConfigTest, DefaultsAllowPlainHttpOnlyOnLoopback) {
  auto config = ParseTrustConfig("", "/cfg");
  ASSERT_TRUE(config);
  EXPECT_TRUE(config->AllowsPlainHttp("127.0.0.1:5000"));
  EXPECT_TRUE(config->AllowsPlainHttp("localhost"));
  EXPECT_FALSE(config->AllowsPlainHttp("127.0.0.2:5000"));
  EXPECT_FALSE(config->AllowsPlainHttp("registry.example.org"));
  EXPECT_FALSE(config->AllowsPlainHttp("127.0.0.1.example.org"));
  EXPECT_FALSE(config->AllowsRedirectTo("cdn.example.org"));
  auto ref = ParseReference("host/rt:1");
  EXPECT_FALSE(config->AllowsRuntimeFrom(*ref));
}

TEST(TrustConfigTest, ParsesEveryKeyAndResolvesPaths) {
  auto config = ParseTrustConfig(
      "plain_http: [\"10.0.0.1:5000\"]\n"
      "redirect_hosts: [cdn.example.org]\n"
      "runtime_registries: [\"reg.example.org/runtimes\"]\n"
      "runtime_signers: signers\n",
      "/cfg");
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_FALSE(config->AllowsPlainHttp("127.0.0.1"));
  EXPECT_TRUE(config->AllowsPlainHttp("10.0.0.1:5000"));
  EXPECT_FALSE(config->AllowsPlainHttp("10.0.0.1:5001"));
  EXPECT_TRUE(config->AllowsRedirectTo("CDN.example.org:443"));
  EXPECT_EQ(config->runtime_signers, "/cfg/signers");
  EXPECT_EQ(config->runtime_versions, "/cfg/runtime-versions");
  EXPECT_TRUE(config->AllowsRuntimeFrom(
      *ParseReference("reg.example.org/runtimes/py:3")));
  EXPECT_FALSE(config->AllowsRuntimeFrom(
      *ParseReference("reg.example.org/runtimesx/py:3")));
  EXPECT_FALSE(config->AllowsRuntimeFrom(
      *ParseReference("other.example.org/runtimes/py:3")));
}

TEST(TrustConfigTest, RejectsUnknownKeysAndWrongTypes) {
  for (const char* bad : {"plain_htp: []", "plain_http: yes",
                          "plain_http: [[1]]", "runtime_signers: [a]", "[1, 2]",
                          "redirect_hosts: [\"\"]", "a: [unclosed"}) {
    auto config = ParseTrustConfig(bad, "/cfg");
    EXPECT_FALSE(config) << bad;
    if (!config) {
      EXPECT_EQ(config.error().code(), Code::kInvalidArgument);
    }
  }
}

TEST(TrustConfigTest, MissingExplicitFileIsNotFound) {
  TempDir dir;
  auto config = LoadTrustConfig(dir.path() + "/none.yaml", true);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().code(), Code::kNotFound);
  EXPECT_TRUE(LoadTrustConfig(dir.path() + "/none.yaml", false));
}

// ------------------------------------------------------------ auth pieces

TEST(AuthTest, ParsesBearerChallenge) {
  auto c = registry_internal::ParseChallenge(
      "Bearer realm=\"https://auth.example.org/token\",service=\"reg\","
      "scope=\"repository:a/b:pull,push\"");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example.org/token");
  EXPECT_EQ(c->params["scope"], "repository:a/b:pull,push");
  EXPECT_FALSE(registry_internal::ParseChallenge("Bearer realm=\"open"));
  EXPECT_FALSE(registry_internal::ParseChallenge(""));
}

TEST(AuthTest, ResolvesLocationsAndRefusesUserinfo) {
  using registry_internal::ResolveLocation;
  EXPECT_EQ(*ResolveLocation("http://h:1/v2/a/blobs/x", "/v2/up?x=1"),
            "http://h:1/v2/up?x=1");
  EXPECT_EQ(*ResolveLocation("http://h:1/v2/a/b", "c"), "http://h:1/v2/a/c");
  EXPECT_EQ(*ResolveLocation("https://h/x", "//o.example/y"),
            "https://o.example/y");
  EXPECT_FALSE(ResolveLocation("http://h/x", "http://u:p@evil/y"));
  EXPECT_FALSE(ResolveLocation("http://h/x", "ftp://evil/y"));
  EXPECT_FALSE(ResolveLocation("http://h/x", "/a b"));
}

TEST(AuthTest, ReadsDockerConfigAuths) {
  TempDir dir;
  std::string path = dir.path() + "/config.json";
  std::ofstream(path) << R"({"auths": {
      "https://reg.example.org/v1/": {"auth": "dXNlcjpwOnc="},
      "other:5000": {"auth": "!!!"},
      "helper.example.org": {}}})";
  auto creds = CredentialsFromFile(path, "reg.example.org");
  ASSERT_TRUE(creds) << creds.error().message();
  ASSERT_TRUE(*creds);
  EXPECT_EQ((*creds)->username, "user");
  EXPECT_EQ((*creds)->password, "p:w");
  auto none = CredentialsFromFile(path, "nobody.example.org");
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto bad = CredentialsFromFile(path, "other:5000");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Code::kInvalidArgument);
  auto helper = CredentialsFromFile(path, "helper.example.org");
  ASSERT_FALSE(helper);
  EXPECT_EQ(helper.error().code(), Code::kNotSupported);
}

// ------------------------------------------------------------ hostile

const std::string kGood = "hello from an honest blob\n";

class HostileServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    server_ = new ChildServer();
    if (!testing::StartHostileServer(*server_, dir_->path())) {
      delete server_;
      server_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "hostile server did not start";
  }

  std::unique_ptr<RegistryClient> Client(ClientOptions options = {}) {
    Reference ref;
    ref.host = "127.0.0.1";
    ref.port = static_cast<uint16_t>(server_->port());
    ref.repository = "good";
    ref.tag = "t";
    if (options.deadline_ms == ClientOptions().deadline_ms) {
      options.deadline_ms = 3000;
    }
    if (!options.credentials) options.credentials = Credentials{"", ""};
    auto client = RegistryClient::Create(ref, options);
    EXPECT_TRUE(client);
    return std::move(*client);
  }

  Descriptor GoodBlob() {
    Descriptor d;
    d.digest = Sha256Of(kGood);
    d.size = kGood.size();
    return d;
  }

  // Fetches into a fresh folder and returns the error code; checks the
  // folder is empty afterwards on failure.
  Result<std::string> FetchTo(RegistryClient& client, const std::string& repo) {
    TempDir out;
    std::string path = out.path() + "/blob";
    auto st = client.FetchBlobToFile(repo, GoodBlob(), path);
    if (!st) {
      DIR* d = ::opendir(out.path().c_str());
      int entries = 0;
      while (dirent* e = ::readdir(d)) {
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
          ++entries;
      }
      ::closedir(d);
      EXPECT_EQ(entries, 0) << "a refused blob left a file behind";
      return Fail(st.error());
    }
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  static TempDir* dir_;
  static ChildServer* server_;
};

TempDir* HostileServerTest::dir_ = nullptr;
ChildServer* HostileServerTest::server_ = nullptr;

TEST_F(HostileServerTest, FetchesAnHonestBlob) {
  auto client = Client();
  auto got = FetchTo(*client, "good");
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, kGood);
}

TEST_F(HostileServerTest, RefusesBlobWhoseDigestDiffers) {
  auto client = Client();
  auto got = FetchTo(*client, "wrongdigest");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kVerificationFailed);
}

TEST_F(HostileServerTest, CutsOffBodyLargerThanDeclared) {
  auto client = Client();
  auto got = FetchTo(*client, "oversize");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kIo);
}

TEST_F(HostileServerTest, CutsOffBodyThatNeverEnds) {
  auto client = Client();
  auto got = FetchTo(*client, "endless");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kIo);
  EXPECT_NE(got.error().message().find("cut off"), std::string::npos)
      << got.error().message();
}

TEST_F(HostileServerTest, DrippingServerHitsOverallDeadline) {
  ClientOptions options;
  options.deadline_ms = 2000;  // the drip needs ~26 s for the whole blob
  options.stall_rate = 0;      // no per-rate limit: only the deadline
  auto client = Client(options);
  auto got = FetchTo(*client, "drip");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kIo);
  EXPECT_NE(got.error().message().find("deadline"), std::string::npos)
      << got.error().message();
}

TEST_F(HostileServerTest, SilentServerIsCutOff) {
  ClientOptions options;
  options.deadline_ms = 2000;
  auto client = Client(options);
  auto got = FetchTo(*client, "stall");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kIo);
}

TEST_F(HostileServerTest, RefusesRedirectToAnotherHost) {
  auto client = Client();
  auto got = FetchTo(*client, "redirecthost");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kPermissionDenied);
  EXPECT_NE(got.error().message().find("another host"), std::string::npos);
}

TEST_F(HostileServerTest, FollowsRedirectToAllowedHost) {
  ClientOptions options;
  options.trust.redirect_hosts = {"localhost"};
  auto client = Client(options);
  auto got = FetchTo(*client, "redirecthost");
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, kGood);
}

TEST_F(HostileServerTest, RefusesRedirectToPlainHttp) {
  ClientOptions options;
  options.trust.plain_http = {"127.0.0.1"};
  options.trust.redirect_hosts = {"localhost"};
  auto client = Client(options);
  auto got = FetchTo(*client, "redirecthttp");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kPermissionDenied);
  EXPECT_NE(got.error().message().find("plain HTTP"), std::string::npos);
}

TEST_F(HostileServerTest, StopsRedirectLoops) {
  auto client = Client();
  auto got = FetchTo(*client, "redirectloop");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kIo);
}

TEST_F(HostileServerTest, RefusesUploadLocationOnAnotherHost) {
  auto client = Client();
  auto pushed = client->PushBlob("uploadevil", Sha256Of("x"), "x");
  ASSERT_FALSE(pushed);
  EXPECT_EQ(pushed.error().code(), Code::kPermissionDenied);
}

TEST_F(HostileServerTest, FollowsBearerChallengeWithCredentials) {
  ClientOptions options;
  options.credentials = Credentials{"user", "pass"};
  auto client = Client(options);
  auto got = FetchTo(*client, "bearer");
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, kGood);
}

TEST_F(HostileServerTest, BearerWithWrongCredentialsIsDenied) {
  ClientOptions options;
  options.credentials = Credentials{"user", "wrong"};
  auto client = Client(options);
  auto got = FetchTo(*client, "bearer");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), Code::kPermissionDenied);
}

TEST_F(HostileServerTest, SendsBasicCredentials) {
  ClientOptions options;
  options.credentials = Credentials{"user", "pass"};
  auto client = Client(options);
  auto got = FetchTo(*client, "basic");
  ASSERT_TRUE(got) << got.error().message();
}

TEST_F(HostileServerTest, RefusesManifestOverCap) {
  auto client = Client();
  auto m = client->FetchManifest("bigmanifest", "v1");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Code::kIo);
}

TEST_F(HostileServerTest, RefusesManifestNotMatchingPinnedDigest) {
  auto client = Client();
  auto honest = client->FetchManifest("good", "v1");
  ASSERT_TRUE(honest) << honest.error().message();
  auto m = client->FetchManifest("wrongmanifest", DigestRef(honest->digest));
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Code::kVerificationFailed);
}

TEST_F(HostileServerTest, RefusesHttpsRegistryWithoutTls) {
  ClientOptions options;
  options.trust.plain_http = {};
  auto client = Client(options);
  EXPECT_EQ(client->base_url().rfind("https://", 0), 0u);
  auto got = FetchTo(*client, "good");
  ASSERT_FALSE(got);
}

// ------------------------------------------------------------ real registry

class DockerRegistryTest : public testing::DockerRegistrySuite {
 protected:
  std::unique_ptr<RegistryClient> Client(ClientOptions options = {}) {
    Reference ref;
    ref.host = "127.0.0.1";
    ref.port = static_cast<uint16_t>(registry_port());
    ref.repository = "x";
    ref.tag = "t";
    auto client = RegistryClient::Create(ref, options);
    EXPECT_TRUE(client);
    return std::move(*client);
  }
};

TEST_F(DockerRegistryTest, PushesAndFetchesBlobMonolithic) {
  auto client = Client();
  std::string data = "a small blob";
  Digest d = Sha256Of(data);
  auto pushed = client->PushBlob("lab/a", d, data);
  ASSERT_TRUE(pushed) << pushed.error().message();
  EXPECT_TRUE(*pushed);
  auto again = client->PushBlob("lab/a", d, data);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_FALSE(*again) << "a blob the registry has was sent again";
  uint64_t size = 0;
  auto has = client->HasBlob("lab/a", d, &size);
  ASSERT_TRUE(has);
  EXPECT_TRUE(*has);
  EXPECT_EQ(size, data.size());
  auto back = client->FetchBlobToString("lab/a", {"", d, data.size()});
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, data);
}

TEST_F(DockerRegistryTest, PushesBlobInChunks) {
  ClientOptions options;
  options.upload_chunk = 1000;
  auto client = Client(options);
  std::string data(4500, 'q');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i);
  Digest d = Sha256Of(data);
  auto pushed = client->PushBlob("lab/chunks", d, data);
  ASSERT_TRUE(pushed) << pushed.error().message();
  auto back = client->FetchBlobToString("lab/chunks", {"", d, data.size()});
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, data);
}

TEST_F(DockerRegistryTest, RefusesUploadWhoseDigestIsWrong) {
  auto client = Client();
  auto pushed = client->PushBlob("lab/a", Sha256Of("other"), "data");
  ASSERT_FALSE(pushed);
  auto has = client->HasBlob("lab/a", Sha256Of("other"));
  ASSERT_TRUE(has);
  EXPECT_FALSE(*has);
}

TEST_F(DockerRegistryTest, MountsBlobFromAnotherRepository) {
  auto client = Client();
  std::string data = "shared between repositories";
  Digest d = Sha256Of(data);
  ASSERT_TRUE(client->PushBlob("lab/src", d, data));
  uint64_t before = client->stats().bytes_pushed;
  auto mounted = client->PushBlob("lab/dst", d, data, "lab/src");
  ASSERT_TRUE(mounted) << mounted.error().message();
  EXPECT_FALSE(*mounted);
  EXPECT_EQ(client->stats().bytes_pushed, before);
  auto has = client->HasBlob("lab/dst", d);
  ASSERT_TRUE(has);
  EXPECT_TRUE(*has);
}

TEST_F(DockerRegistryTest, PushesManifestByTagAndFetchesByDigest) {
  auto client = Client();
  std::string config = "{}";
  Digest cd = Sha256Of(config);
  ASSERT_TRUE(client->PushBlob("lab/m", cd, config));
  std::string manifest =
      "{\"schemaVersion\":2,\"mediaType\":\"" + std::string(kOciManifestType) +
      "\",\"artifactType\":\"" + std::string(kEggArtifactType) +
      "\",\"config\":{\"mediaType\":\"" + std::string(kEggConfigType) +
      "\",\"digest\":\"" + DigestRef(cd) + "\",\"size\":2},\"layers\":[]}";
  auto digest = client->PushManifest("lab/m", "v1", kOciManifestType, manifest);
  ASSERT_TRUE(digest) << digest.error().message();
  auto by_tag = client->FetchManifest("lab/m", "v1");
  ASSERT_TRUE(by_tag) << by_tag.error().message();
  EXPECT_EQ(by_tag->bytes, manifest);
  EXPECT_EQ(by_tag->digest, *digest);
  EXPECT_EQ(by_tag->media_type, kOciManifestType);
  auto by_digest = client->FetchManifest("lab/m", DigestRef(*digest));
  ASSERT_TRUE(by_digest) << by_digest.error().message();
  auto missing = client->FetchManifest("lab/m", "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace egg

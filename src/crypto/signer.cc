// Signers: a secret key in memory, or a key held by ssh-agent.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdlib>
#include <cstring>

#include "common/fd.h"
#include "crypto/wire.h"
#include "egg/crypto.h"

namespace egg::crypto {
namespace {

// ssh-agent message numbers (the agent protocol draft).
constexpr uint8_t kAgentFailure = 5;
constexpr uint8_t kAgentRequestIdentities = 11;
constexpr uint8_t kAgentIdentitiesAnswer = 12;
constexpr uint8_t kAgentSignRequest = 13;
constexpr uint8_t kAgentSignResponse = 14;
constexpr uint32_t kMaxAgentReply = 256 * 1024;

std::vector<uint8_t> SignatureBlob(std::span<const uint8_t, 64> sig) {
  ByteWriter w;
  PutSshString(w, kKeyType);
  PutSshString(w, sig);
  return std::move(w.buffer());
}

class KeySigner : public Signer {
 public:
  explicit KeySigner(SecretKey key) : key_(std::move(key)) {}
  const PublicKey& public_key() const override { return key_.public_key(); }
  Result<std::vector<uint8_t>> SignSshBlob(
      std::span<const uint8_t> data) override {
    auto sig = key_.Sign(data);
    if (!sig) return Fail(sig.error());
    return SignatureBlob(*sig);
  }

 private:
  SecretKey key_;
};

Result<UniqueFd> ConnectAgent(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Fail(Code::kInvalidArgument,
                "agent socket path '" + path + "' is empty or too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Fail(ErrnoError("socket"));
  int r = RetryEintr([&] {
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr),
                     sizeof(addr));
  });
  if (r != 0) return Fail(ErrnoError("cannot reach ssh-agent at '" + path +
                                     "'"));
  return fd;
}

Status ReadExact(int fd, uint8_t* p, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = RetryEintr([&] { return ::read(fd, p + done, n - done); });
    if (got < 0) return Fail(ErrnoError("reading from ssh-agent"));
    if (got == 0) return Fail(Code::kIo, "ssh-agent closed the connection");
    done += static_cast<size_t>(got);
  }
  return {};
}

// Sends one framed request and returns the framed reply's body.
Result<std::vector<uint8_t>> AgentCall(int fd,
                                       std::span<const uint8_t> request) {
  ByteWriter frame;
  frame.Be32(static_cast<uint32_t>(request.size()));
  frame.Bytes(request);
  if (auto s = WriteAll(fd, std::span<const uint8_t>(frame.buffer()));
      !s) {
    return Fail(s.error().Wrap("writing to ssh-agent"));
  }
  uint8_t len_bytes[4];
  if (auto s = ReadExact(fd, len_bytes, 4); !s) return Fail(s.error());
  uint32_t len = LoadBe32(len_bytes);
  if (len == 0 || len > kMaxAgentReply) {
    return Fail(Code::kIo, "ssh-agent sent a reply of bad length");
  }
  std::vector<uint8_t> reply(len);
  if (auto s = ReadExact(fd, reply.data(), len); !s) return Fail(s.error());
  return reply;
}

class AgentSigner : public Signer {
 public:
  AgentSigner(UniqueFd fd, PublicKey key)
      : fd_(std::move(fd)), key_(key) {}
  const PublicKey& public_key() const override { return key_; }

  Result<std::vector<uint8_t>> SignSshBlob(
      std::span<const uint8_t> data) override {
    ByteWriter req;
    req.U8(kAgentSignRequest);
    PutSshString(req, PublicKeyBlob(key_));
    PutSshString(req, data);
    req.Be32(0);  // flags: none apply to Ed25519
    auto reply = AgentCall(fd_.get(), req.buffer());
    if (!reply) return Fail(reply.error());
    ByteReader r(*reply);
    uint8_t type = r.U8();
    if (type == kAgentFailure) {
      return Fail(Code::kPermissionDenied, "ssh-agent refused to sign");
    }
    auto blob = GetSshString(r);
    if (type != kAgentSignResponse || !r.AtEnd()) {
      return Fail(Code::kIo, "ssh-agent sent a malformed sign reply");
    }
    return std::vector<uint8_t>(blob.begin(), blob.end());
  }

 private:
  UniqueFd fd_;
  PublicKey key_;
};

}  // namespace

std::unique_ptr<Signer> MakeKeySigner(SecretKey key) {
  return std::make_unique<KeySigner>(std::move(key));
}

Result<std::unique_ptr<Signer>> MakeAgentSigner(
    const std::string& socket_path, const PublicKey& key) {
  auto fd = ConnectAgent(socket_path);
  if (!fd) return Fail(fd.error());

  // Ask for the agent's keys first, so that "not held" is a clear error
  // rather than a refused signature.
  uint8_t req[1] = {kAgentRequestIdentities};
  auto reply = AgentCall(fd->get(), req);
  if (!reply) return Fail(reply.error());
  ByteReader r(*reply);
  uint8_t type = r.U8();
  uint32_t count = r.Be32();
  if (!r.ok() || type != kAgentIdentitiesAnswer) {
    return Fail(Code::kIo, "ssh-agent sent a malformed identities reply");
  }
  const std::vector<uint8_t> wanted = PublicKeyBlob(key);
  bool held = false;
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    auto blob = GetSshString(r);
    GetSshString(r);  // comment
    if (r.ok() && blob.size() == wanted.size() &&
        std::memcmp(blob.data(), wanted.data(), wanted.size()) == 0) {
      held = true;
    }
  }
  if (!r.AtEnd()) {
    return Fail(Code::kIo, "ssh-agent sent a malformed identities reply");
  }
  if (!held) {
    return Fail(Code::kNotFound,
                "ssh-agent does not hold key " + Fingerprint(key));
  }
  return std::unique_ptr<Signer>(
      std::make_unique<AgentSigner>(std::move(*fd), key));
}

Result<std::unique_ptr<Signer>> LoadSigner(const std::string& path) {
  auto file = ReadOpenSshPrivateKey(path);
  if (!file) return Fail(file.error());
  if (!file->encrypted) return MakeKeySigner(std::move(*file->secret));

  const std::string hint =
      "'" + path + "': key is encrypted; add it to ssh-agent (ssh-add)";
  const char* sock = std::getenv("SSH_AUTH_SOCK");
  if (sock == nullptr || *sock == '\0') {
    return Fail(Code::kInvalidArgument, hint + " (SSH_AUTH_SOCK is not set)");
  }
  auto signer = MakeAgentSigner(sock, file->public_key);
  if (!signer) {
    return Fail(Code::kInvalidArgument,
                hint + " (" + signer.error().message() + ")");
  }
  return signer;
}

}  // namespace egg::crypto

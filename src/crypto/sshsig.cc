// SSH signatures as `ssh-keygen -Y sign` makes them (PROTOCOL.sshsig).
#include <openssl/evp.h>

#include <cstring>

#include "crypto/wire.h"
#include "egg/crypto.h"

namespace egg::crypto {
namespace {

constexpr std::string_view kMagic = "SSHSIG";
constexpr uint32_t kVersion = 1;
constexpr std::string_view kArmorLabel = "SSH SIGNATURE";

Result<std::array<uint8_t, 64>> Sha512(std::span<const uint8_t> data) {
  std::array<uint8_t, 64> out;
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha512(),
                 nullptr) != 1 ||
      len != 64) {
    return Fail(Code::kInternal, "SHA-512 failed");
  }
  return out;
}

// The bytes the key actually signs: magic, namespace, reserved, hash
// algorithm and the message's hash.
Result<std::vector<uint8_t>> SignedData(std::string_view ns,
                                        std::string_view hash_algorithm,
                                        std::span<const uint8_t> message) {
  auto h = Sha512(message);
  if (!h) return Fail(h.error());
  ByteWriter w;
  w.Bytes(kMagic);
  PutSshString(w, ns);
  PutSshString(w, "");
  PutSshString(w, hash_algorithm);
  PutSshString(w, *h);
  return std::move(w.buffer());
}

Error Bad(const std::string& what) {
  return Error(Code::kInvalidArgument, "malformed SSH signature: " + what);
}

// Decodes an SSH signature blob: string "ssh-ed25519", string sig(64).
Result<std::array<uint8_t, 64>> ParseSignatureBlob(
    std::span<const uint8_t> blob) {
  ByteReader r(blob);
  std::string_view type = AsText(GetSshString(r));
  auto sig = GetSshString(r);
  if (!r.ok()) return Fail(Bad("signature blob is truncated"));
  if (type != kKeyType) return Fail(Bad("signature type is not ssh-ed25519"));
  if (sig.size() != 64) return Fail(Bad("Ed25519 signature is not 64 bytes"));
  if (!r.AtEnd()) return Fail(Bad("trailing bytes after the signature"));
  std::array<uint8_t, 64> out;
  std::memcpy(out.data(), sig.data(), 64);
  return out;
}

}  // namespace

Result<std::vector<uint8_t>> SshSigSign(Signer& signer, std::string_view ns,
                                        std::span<const uint8_t> message) {
  if (ns.empty()) return Fail(Code::kInvalidArgument, "empty namespace");
  auto data = SignedData(ns, kHashAlgorithm, message);
  if (!data) return Fail(data.error());
  auto sig_blob = signer.SignSshBlob(*data);
  if (!sig_blob) return Fail(sig_blob.error());

  ByteWriter w;
  w.Bytes(kMagic);
  w.Be32(kVersion);
  PutSshString(w, PublicKeyBlob(signer.public_key()));
  PutSshString(w, ns);
  PutSshString(w, "");
  PutSshString(w, kHashAlgorithm);
  PutSshString(w, *sig_blob);

  // Never hand out a signature that does not verify (a faulty agent or a
  // hardware fault would otherwise go unnoticed until someone checks).
  auto parsed = ParseSshSig(w.buffer());
  if (!parsed) return Fail(parsed.error().Wrap("the signer's output"));
  if (parsed->key != signer.public_key()) {
    return Fail(Code::kVerificationFailed, "the signer used another key");
  }
  if (auto s = SshSigVerify(*parsed, ns, message); !s) {
    return Fail(Code::kVerificationFailed,
                "the new signature does not verify; nothing was written");
  }
  return std::move(w.buffer());
}

Result<SshSignature> ParseSshSig(std::span<const uint8_t> blob) {
  ByteReader r(blob);
  if (r.String(kMagic.size()) != kMagic) return Fail(Bad("no SSHSIG magic"));
  uint32_t version = r.Be32();
  auto key_blob = GetSshString(r);
  std::string_view ns = AsText(GetSshString(r));
  auto reserved = GetSshString(r);
  std::string_view hash = AsText(GetSshString(r));
  auto sig_blob = GetSshString(r);
  if (!r.ok()) return Fail(Bad("truncated"));
  if (version != kVersion) {
    return Fail(Bad("unsupported version " + std::to_string(version)));
  }
  if (!r.AtEnd()) return Fail(Bad("trailing bytes"));
  if (ns.empty()) return Fail(Bad("empty namespace"));
  if (!reserved.empty()) return Fail(Bad("reserved field is not empty"));
  if (hash != "sha512" && hash != "sha256") {
    return Fail(Bad("unknown hash algorithm"));
  }
  auto key = ParsePublicKeyBlob(key_blob);
  if (!key) return Fail(Bad(key.error().message()));
  auto sig = ParseSignatureBlob(sig_blob);
  if (!sig) return Fail(sig.error());

  SshSignature out;
  out.key = *key;
  out.ns = std::string(ns);
  out.hash_algorithm = std::string(hash);
  out.signature = *sig;
  return out;
}

Status SshSigVerify(const SshSignature& sig, std::string_view ns,
                    std::span<const uint8_t> message) {
  if (sig.ns != ns) {
    return Fail(Code::kVerificationFailed,
                "signature namespace is not '" + std::string(ns) + "'");
  }
  if (sig.hash_algorithm != kHashAlgorithm) {
    return Fail(Code::kVerificationFailed,
                "signature hash is not " + std::string(kHashAlgorithm));
  }
  auto data = SignedData(ns, sig.hash_algorithm, message);
  if (!data) return Fail(data.error());
  if (!VerifyEd25519(sig.key, *data, sig.signature)) {
    return Fail(Code::kVerificationFailed, "signature does not verify");
  }
  return {};
}

std::string ArmorSshSig(std::span<const uint8_t> blob) {
  return Armor(kArmorLabel, blob);
}

Result<std::vector<uint8_t>> DearmorSshSig(std::string_view text) {
  auto blob = Dearmor(kArmorLabel, text);
  if (!blob) return Fail(Bad(blob.error().message()));
  return blob;
}

}  // namespace egg::crypto

// Keys, signatures and trust for eggs: Ed25519 keys in OpenSSH's formats,
// SSH signatures (SSHSIG), OpenSSH allowed_signers files, and the egg's
// append-only signature chain. docs/SIGNATURES.md defines every byte.
//
// Nothing here throws. Secret key bytes live only in SecretKey (and in
// buffers wiped before they are freed).
#ifndef EGG_CRYPTO_H_
#define EGG_CRYPTO_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "egg/hash.h"
#include "egg/status.h"

namespace egg::crypto {

// The SSHSIG namespace of every egg chain signature.
inline constexpr std::string_view kSignatureNamespace =
    "egg-signature-v1@egg";
// The only key type egg signs with.
inline constexpr std::string_view kKeyType = "ssh-ed25519";
// The only SSHSIG hash egg accepts.
inline constexpr std::string_view kHashAlgorithm = "sha512";

// ---------------------------------------------------------------------------
// Keys

struct PublicKey {
  std::array<uint8_t, 32> bytes{};
  bool operator==(const PublicKey&) const = default;
};

// The SSH wire blob: string "ssh-ed25519", string key (32 bytes).
std::vector<uint8_t> PublicKeyBlob(const PublicKey& key);
// Decodes a wire blob; anything but an exact Ed25519 blob is
// kInvalidArgument.
[[nodiscard]] Result<PublicKey> ParsePublicKeyBlob(
    std::span<const uint8_t> blob);
// SHA-256 of the wire blob: the key id the chain commits to.
Digest KeyId(const PublicKey& key);
// "SHA256:<unpadded base64 of KeyId>", as `ssh-keygen -l` prints it.
std::string Fingerprint(const PublicKey& key);
// "ssh-ed25519 AAAA... comment" (no newline; comment omitted when empty).
std::string PublicKeyLine(const PublicKey& key, std::string_view comment);
// Parses one "ssh-ed25519 BASE64 [comment]" line (a .pub file).
[[nodiscard]] Result<PublicKey> ParsePublicKeyLine(std::string_view line);

// An Ed25519 secret key. Move-only; the seed is wiped on destruction.
class SecretKey {
 public:
  [[nodiscard]] static Result<SecretKey> Generate();
  // Derives the public key from a 32-byte seed.
  [[nodiscard]] static Result<SecretKey> FromSeed(
      std::span<const uint8_t, 32> seed);

  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  ~SecretKey();

  const PublicKey& public_key() const { return public_; }
  // The seed; callers must not copy it into memory they do not wipe.
  std::span<const uint8_t, 32> seed() const { return seed_; }
  // A raw 64-byte Ed25519 signature of `message`.
  [[nodiscard]] Result<std::array<uint8_t, 64>> Sign(
      std::span<const uint8_t> message) const;

 private:
  SecretKey() = default;
  std::array<uint8_t, 32> seed_{};
  PublicKey public_;
};

// True if `signature` is a valid Ed25519 signature of `message`.
bool VerifyEd25519(const PublicKey& key, std::span<const uint8_t> message,
                   std::span<const uint8_t> signature);

// An OpenSSH private key file ("openssh-key-v1"), decoded. `secret` is
// set only for unencrypted files; an encrypted file still yields its
// public key (stored in the clear) so that an agent can be asked.
struct OpenSshPrivateKey {
  PublicKey public_key;
  bool encrypted = false;
  std::string comment;  // empty for encrypted files
  std::optional<SecretKey> secret;
};

// Decodes the armoured file text. Every length, the check ints, the
// padding and the trailing bytes are checked; a non-Ed25519 key, more
// than one key, or a mismatch between the public key and the secret is
// kInvalidArgument.
[[nodiscard]] Result<OpenSshPrivateKey> ParseOpenSshPrivateKey(
    std::string_view text);
// Encodes an unencrypted openssh-key-v1 file (armoured, 70-column lines).
// The returned text holds the secret: wipe it (WipeString) after use.
std::string EncodeOpenSshPrivateKey(const SecretKey& key,
                                    std::string_view comment);
// Reads and decodes a private key file; the read buffer is wiped.
[[nodiscard]] Result<OpenSshPrivateKey> ReadOpenSshPrivateKey(
    const std::string& path);
// Writes `path` (0600) and `path`.pub atomically. Without `force` an
// existing file at either path is kInvalidArgument and nothing is written.
[[nodiscard]] Status WriteKeyPair(const std::string& path,
                                  const SecretKey& key,
                                  std::string_view comment, bool force);

// Overwrites a string's bytes with zeros (OPENSSL_cleanse).
void WipeString(std::string& s);

// ---------------------------------------------------------------------------
// Signers: a secret key in memory, or a key held by ssh-agent.

class Signer {
 public:
  virtual ~Signer() = default;
  virtual const PublicKey& public_key() const = 0;
  // Returns an SSH signature blob (string "ssh-ed25519", string sig).
  [[nodiscard]] virtual Result<std::vector<uint8_t>> SignSshBlob(
      std::span<const uint8_t> data) = 0;
};

std::unique_ptr<Signer> MakeKeySigner(SecretKey key);
// Signs through the agent listening on `socket_path`
// (SSH2_AGENTC_SIGN_REQUEST). Fails with kNotFound if the agent does not
// hold `key`.
[[nodiscard]] Result<std::unique_ptr<Signer>> MakeAgentSigner(
    const std::string& socket_path, const PublicKey& key);
// Loads the key file at `path`. An unencrypted key is used directly; an
// encrypted one through the agent at $SSH_AUTH_SOCK if it holds the key,
// else kInvalidArgument "key is encrypted; add it to ssh-agent".
[[nodiscard]] Result<std::unique_ptr<Signer>> LoadSigner(
    const std::string& path);

// ---------------------------------------------------------------------------
// SSH signatures (PROTOCOL.sshsig)

struct SshSignature {
  PublicKey key;
  std::string ns;              // namespace
  std::string hash_algorithm;  // "sha512" for egg
  std::array<uint8_t, 64> signature{};
};

// Signs `message` in namespace `ns` with hash sha512, verifies the result,
// and returns the binary SSHSIG blob.
[[nodiscard]] Result<std::vector<uint8_t>> SshSigSign(
    Signer& signer, std::string_view ns, std::span<const uint8_t> message);
// Decodes a binary SSHSIG blob: magic, version 1, Ed25519 key, empty
// reserved field, hash sha256/sha512, Ed25519 signature, nothing after.
[[nodiscard]] Result<SshSignature> ParseSshSig(
    std::span<const uint8_t> blob);
// kVerificationFailed unless the namespace is `ns`, the hash is sha512
// and the signature verifies over `message`.
[[nodiscard]] Status SshSigVerify(const SshSignature& sig,
                                  std::string_view ns,
                                  std::span<const uint8_t> message);
// "-----BEGIN SSH SIGNATURE-----" armour, 70-column lines, final newline.
std::string ArmorSshSig(std::span<const uint8_t> blob);
[[nodiscard]] Result<std::vector<uint8_t>> DearmorSshSig(
    std::string_view text);

// ---------------------------------------------------------------------------
// Trust: OpenSSH allowed_signers files

struct AllowedSigner {
  std::vector<std::string> principals;
  PublicKey key;
  std::vector<std::string> namespaces;  // empty: any namespace
  std::optional<int64_t> valid_after;   // seconds since the epoch
  std::optional<int64_t> valid_before;
  int line = 0;
};

// Why a key is or is not trusted at a moment, for one namespace.
struct TrustDecision {
  bool trusted = false;
  std::vector<std::string> principals;  // of the matching line
  std::string reason;                   // set when !trusted
};

class AllowedSigners {
 public:
  // Parses file text; `origin` names the file in errors. Malformed lines
  // and cert-authority lines are kInvalidArgument naming the line.
  [[nodiscard]] static Result<AllowedSigners> Parse(std::string_view text,
                                                    std::string origin);
  [[nodiscard]] static Result<AllowedSigners> Load(const std::string& path);

  const std::vector<AllowedSigner>& signers() const { return signers_; }
  const std::string& origin() const { return origin_; }
  // Trusted if a line names `key`, allows `ns`, and both `now` and
  // `signed_time` fall inside its valid-after/valid-before window.
  TrustDecision Decide(const PublicKey& key, std::string_view ns,
                       int64_t now, int64_t signed_time) const;

 private:
  std::vector<AllowedSigner> signers_;
  std::string origin_;
};

// $XDG_CONFIG_HOME/egg/allowed_signers (or ~/.config/egg/allowed_signers)
// if that file exists, else nullopt.
std::optional<std::string> DefaultAllowedSignersPath();

// ---------------------------------------------------------------------------
// The signature chain (the egg's signature section)

inline constexpr size_t kMaxRoleLength = 32;
inline constexpr uint32_t kMaxChainEntries = 1024;

// Lower-case [a-z0-9-], 1..kMaxRoleLength, starting with a letter.
[[nodiscard]] Status ValidateRole(std::string_view role);

// What entry `index` signs (see docs/SIGNATURES.md, "Statement").
struct Statement {
  Digest content_root{};
  Digest previous{};  // EntryHash of entry index-1; zeros for entry 0
  uint32_t index = 0;
  Digest key_id{};
  std::string role;
  uint64_t time = 0;
};
std::vector<uint8_t> EncodeStatement(const Statement& s);
[[nodiscard]] Result<Statement> DecodeStatement(
    std::span<const uint8_t> bytes);

struct ChainEntry {
  uint32_t index = 0;
  uint64_t time = 0;
  std::string role;
  std::vector<uint8_t> sshsig;  // binary SSHSIG blob
};

struct SignatureChain {
  std::vector<ChainEntry> entries;
};

// The section bytes. An empty chain encodes to the header alone.
std::vector<uint8_t> EncodeChain(const SignatureChain& chain);
// An empty span is an empty chain (an unsigned egg). Anything malformed
// (magic, version, reserved bytes, lengths, role, trailing bytes) is
// kCorruption. Signatures are not checked here.
[[nodiscard]] Result<SignatureChain> DecodeChain(
    std::span<const uint8_t> section);
// SHA-256 of the entry's encoded record; the next entry commits to it.
Digest EntryHash(const ChainEntry& entry);
// The statement the next entry of `chain` would sign.
Statement NextStatement(const SignatureChain& chain, const Digest& root,
                        const PublicKey& key, std::string_view role,
                        uint64_t time);
// The statement entry `index` of `chain` signs (its key id taken from its
// SSHSIG blob).
[[nodiscard]] Result<Statement> EntryStatement(const SignatureChain& chain,
                                               const Digest& root,
                                               uint32_t index);

// Signs the next statement with `signer`, verifies it, and appends.
[[nodiscard]] Status AppendSignature(SignatureChain& chain,
                                     const Digest& root, Signer& signer,
                                     std::string_view role, uint64_t time);
// Appends a signature made elsewhere (`ssh-keygen -Y sign -n
// egg-signature-v1@egg` over `statement_bytes`) after checking that the
// statement is exactly the chain's next one and the signature verifies.
[[nodiscard]] Status AppendImported(SignatureChain& chain,
                                    const Digest& root,
                                    std::span<const uint8_t> statement_bytes,
                                    std::span<const uint8_t> sshsig);

// The signing time: $SOURCE_DATE_EPOCH when set (decimal digits only,
// else kInvalidArgument), otherwise the current time.
[[nodiscard]] Result<uint64_t> SigningTime();

// ---------------------------------------------------------------------------
// Verification report, shared by `egg verify`, `egg hatch` and `egg info`.

struct EntryReport {
  uint32_t index = 0;
  std::string fingerprint;  // empty if the SSHSIG blob did not decode
  Digest key_id{};
  std::string role;
  uint64_t time = 0;
  bool valid = false;    // signature and chain links verify
  std::string problem;   // why !valid
  bool trusted = false;  // valid and the key is trusted now
  std::vector<std::string> principals;
  std::string trust_note;  // why not trusted ("untrusted key", "expired")
};

enum class SignatureState {
  kUnsigned,        // no entries
  kInvalid,         // the section is malformed or some entry fails
  kUntrustedOnly,   // every entry verifies, none by a trusted key
  kTrusted,         // every entry verifies, at least one trusted
};
const char* SignatureStateName(SignatureState state);

struct ChainReport {
  Digest content_root{};
  SignatureState state = SignatureState::kUnsigned;
  std::string problem;  // section-level problem (kInvalid)
  std::vector<EntryReport> entries;
  Digest head{};  // EntryHash of the last entry; zeros if unsigned
  size_t trusted_count = 0;
};

// Checks every entry of `section` against `root`. `trust` may be null (no
// allowed_signers: nothing is trusted). `now` is the verification time
// for validity windows. Never fails: problems are in the report.
ChainReport VerifyChain(const Digest& root, std::span<const uint8_t> section,
                        const AllowedSigners* trust, int64_t now);

// The trust root every command uses: `explicit_path` when non-empty (it
// must load), else DefaultAllowedSignersPath() if that file exists, else
// none (nullopt: nothing is trusted). Malformed files are
// kInvalidArgument; there is no built-in key and no environment override.
[[nodiscard]] Result<std::optional<AllowedSigners>> LoadTrust(
    const std::string& explicit_path);

// Machine form of a report (the "signatures" object of `egg verify
// --json`); readers must ignore unknown fields.
nlohmann::json ChainReportJson(const ChainReport& report);
// Human lines, one per entry ("#0 builder 2024-...Z SHA256:... alice
// (trusted)"); every string is escaped for the terminal.
std::vector<std::string> ChainReportLines(const ChainReport& report);
// One line saying what the signatures prove, e.g. "signed by trusted key
// (alice@example.org)", "unsigned", "signed only by untrusted keys",
// "INVALID: ...". Never says verified unless state is kTrusted.
std::string ChainSummary(const ChainReport& report);
// "YYYY-MM-DDTHH:MM:SSZ"
std::string FormatUtc(uint64_t seconds);

}  // namespace egg::crypto

#endif  // EGG_CRYPTO_H_

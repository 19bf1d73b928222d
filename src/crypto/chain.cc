// The egg's signature chain: statements, the section's encoding, and the
// verification report. docs/SIGNATURES.md is the specification.
#include <cstdlib>
#include <ctime>
#include <limits>

#include "crypto/wire.h"
#include "egg/crypto.h"

namespace egg::crypto {
namespace {

constexpr std::string_view kStatementContext = "egg signed statement v1\n";
constexpr std::string_view kAlgorithm = "sshsig-ed25519-sha512";
constexpr std::string_view kSectionMagic("EGGSIGS\0", 8);
constexpr uint16_t kSectionVersion = 1;
constexpr size_t kSectionHeaderSize = 16;
constexpr uint32_t kMaxSshSigBytes = 4096;
constexpr uint32_t kMaxRecordBytes = 8192;

void EncodeRecord(ByteWriter& w, const ChainEntry& e) {
  uint32_t body = 4 + 8 + 1 + static_cast<uint32_t>(e.role.size()) + 4 +
                  static_cast<uint32_t>(e.sshsig.size());
  w.Le32(body);
  w.Le32(e.index);
  w.Le64(e.time);
  w.U8(static_cast<uint8_t>(e.role.size()));
  w.Bytes(e.role);
  w.Le32(static_cast<uint32_t>(e.sshsig.size()));
  w.Bytes(e.sshsig);
}

int64_t ClampTime(uint64_t t) {
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(t > kMax ? kMax : t);
}

}  // namespace

Status ValidateRole(std::string_view role) {
  if (role.empty() || role.size() > kMaxRoleLength) {
    return Fail(Code::kInvalidArgument,
                "role must be 1 to " + std::to_string(kMaxRoleLength) +
                    " characters");
  }
  if (role[0] < 'a' || role[0] > 'z') {
    return Fail(Code::kInvalidArgument,
                "role must start with a lower-case letter");
  }
  for (char c : role) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) {
      return Fail(Code::kInvalidArgument,
                  "role may hold only a-z, 0-9 and '-'");
    }
  }
  return {};
}

std::vector<uint8_t> EncodeStatement(const Statement& s) {
  ByteWriter w;
  w.Bytes(kStatementContext);
  w.U8(static_cast<uint8_t>(kAlgorithm.size()));
  w.Bytes(kAlgorithm);
  w.Bytes(s.content_root);
  w.Bytes(s.previous);
  w.Le32(s.index);
  w.Bytes(s.key_id);
  w.U8(static_cast<uint8_t>(s.role.size()));
  w.Bytes(s.role);
  w.Le64(s.time);
  return std::move(w.buffer());
}

Result<Statement> DecodeStatement(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  std::string_view context = r.String(kStatementContext.size());
  uint8_t alg_len = r.U8();
  std::string_view alg = r.String(alg_len);
  Statement s;
  auto copy = [&](Digest& d) {
    auto b = r.Bytes(32);
    if (r.ok()) std::copy(b.begin(), b.end(), d.begin());
  };
  copy(s.content_root);
  copy(s.previous);
  s.index = r.Le32();
  copy(s.key_id);
  uint8_t role_len = r.U8();
  s.role = std::string(r.String(role_len));
  s.time = r.Le64();
  if (!r.ok()) return Fail(Code::kInvalidArgument, "statement is truncated");
  if (context != kStatementContext) {
    return Fail(Code::kInvalidArgument, "not an egg signed statement");
  }
  if (alg != kAlgorithm) {
    return Fail(Code::kInvalidArgument, "statement names another algorithm");
  }
  if (!r.AtEnd()) {
    return Fail(Code::kInvalidArgument, "trailing bytes after the statement");
  }
  if (auto v = ValidateRole(s.role); !v) return Fail(v.error());
  return s;
}

std::vector<uint8_t> EncodeChain(const SignatureChain& chain) {
  ByteWriter w;
  w.Bytes(kSectionMagic);
  w.Le16(kSectionVersion);
  w.Le16(0);
  w.Le32(static_cast<uint32_t>(chain.entries.size()));
  for (const auto& e : chain.entries) EncodeRecord(w, e);
  return std::move(w.buffer());
}

Result<SignatureChain> DecodeChain(std::span<const uint8_t> section) {
  SignatureChain chain;
  if (section.empty()) return chain;
  auto bad = [](const std::string& what) {
    return Fail(Code::kCorruption, "signature section: " + what);
  };

  ByteReader r(section);
  std::string_view magic = r.String(kSectionMagic.size());
  uint16_t version = r.Le16();
  uint16_t reserved = r.Le16();
  uint32_t count = r.Le32();
  if (!r.ok()) return bad("header is truncated");
  if (magic != kSectionMagic) return bad("bad magic");
  if (version != kSectionVersion) {
    return bad("unsupported version " + std::to_string(version));
  }
  if (reserved != 0) return bad("reserved bytes are not zero");
  if (count > kMaxChainEntries) return bad("too many entries");

  for (uint32_t i = 0; i < count; ++i) {
    std::string at = "entry " + std::to_string(i) + ": ";
    uint32_t length = r.Le32();
    if (!r.ok()) return bad(at + "truncated");
    if (length > kMaxRecordBytes) return bad(at + "record too long");
    auto record = r.Bytes(length);
    if (!r.ok()) return bad(at + "record runs past the section");

    ByteReader e(record);
    ChainEntry entry;
    entry.index = e.Le32();
    entry.time = e.Le64();
    uint8_t role_len = e.U8();
    entry.role = std::string(e.String(role_len));
    uint32_t sig_len = e.Le32();
    if (!e.ok()) return bad(at + "record is truncated");
    if (sig_len > kMaxSshSigBytes) return bad(at + "signature too long");
    auto sig = e.Bytes(sig_len);
    if (!e.ok()) return bad(at + "signature runs past the record");
    if (!e.AtEnd()) return bad(at + "trailing bytes in the record");
    if (auto v = ValidateRole(entry.role); !v) {
      return bad(at + v.error().message());
    }
    entry.sshsig.assign(sig.begin(), sig.end());
    chain.entries.push_back(std::move(entry));
  }
  if (!r.AtEnd()) return bad("trailing bytes after the last entry");
  return chain;
}

Digest EntryHash(const ChainEntry& entry) {
  ByteWriter w;
  EncodeRecord(w, entry);
  return Sha256Of(w.buffer());
}

Statement NextStatement(const SignatureChain& chain, const Digest& root,
                        const PublicKey& key, std::string_view role,
                        uint64_t time) {
  Statement s;
  s.content_root = root;
  if (!chain.entries.empty()) s.previous = EntryHash(chain.entries.back());
  s.index = static_cast<uint32_t>(chain.entries.size());
  s.key_id = KeyId(key);
  s.role = std::string(role);
  s.time = time;
  return s;
}

Result<Statement> EntryStatement(const SignatureChain& chain,
                                 const Digest& root, uint32_t index) {
  if (index >= chain.entries.size()) {
    return Fail(Code::kNotFound, "no chain entry " + std::to_string(index));
  }
  const ChainEntry& e = chain.entries[index];
  auto sig = ParseSshSig(e.sshsig);
  if (!sig) return Fail(sig.error());
  Statement s;
  s.content_root = root;
  if (index > 0) s.previous = EntryHash(chain.entries[index - 1]);
  s.index = index;
  s.key_id = KeyId(sig->key);
  s.role = e.role;
  s.time = e.time;
  return s;
}

namespace {

// Refuses to extend a chain that does not verify: a new signature would
// otherwise endorse whatever came before it.
Status CheckExtendable(const SignatureChain& chain, const Digest& root) {
  if (chain.entries.size() >= kMaxChainEntries) {
    return Fail(Code::kInvalidArgument, "the signature chain is full");
  }
  ChainReport report = VerifyChain(root, EncodeChain(chain), nullptr, 0);
  if (report.state == SignatureState::kInvalid) {
    std::string why = report.problem;
    for (const auto& e : report.entries) {
      if (!e.valid && why.empty()) {
        why = "entry " + std::to_string(e.index) + ": " + e.problem;
      }
    }
    return Fail(Code::kVerificationFailed,
                "the existing signature chain does not verify (" + why +
                    "); refusing to extend it");
  }
  return {};
}

}  // namespace

Status AppendSignature(SignatureChain& chain, const Digest& root,
                       Signer& signer, std::string_view role,
                       uint64_t time) {
  if (auto s = ValidateRole(role); !s) return s;
  if (auto s = CheckExtendable(chain, root); !s) return s;
  Statement st = NextStatement(chain, root, signer.public_key(), role, time);
  auto sig = SshSigSign(signer, kSignatureNamespace, EncodeStatement(st));
  if (!sig) return Fail(sig.error());

  ChainEntry e;
  e.index = st.index;
  e.time = time;
  e.role = std::string(role);
  e.sshsig = std::move(*sig);
  chain.entries.push_back(std::move(e));
  return {};
}

Status AppendImported(SignatureChain& chain, const Digest& root,
                      std::span<const uint8_t> statement_bytes,
                      std::span<const uint8_t> sshsig) {
  auto st = DecodeStatement(statement_bytes);
  if (!st) return Fail(st.error());
  auto sig = ParseSshSig(sshsig);
  if (!sig) return Fail(sig.error());
  if (auto s = CheckExtendable(chain, root); !s) return s;

  Statement want = NextStatement(chain, root, sig->key, st->role, st->time);
  if (EncodeStatement(want) != EncodeStatement(*st)) {
    std::string why = "it was prepared for another egg or chain state";
    if (st->key_id != want.key_id) why = "it names another key";
    else if (st->index != want.index) why = "the chain has changed since";
    return Fail(Code::kVerificationFailed,
                "the statement is not this egg's next one: " + why);
  }
  if (auto s = SshSigVerify(*sig, kSignatureNamespace, statement_bytes);
      !s) {
    return s;
  }

  ChainEntry e;
  e.index = st->index;
  e.time = st->time;
  e.role = st->role;
  e.sshsig.assign(sshsig.begin(), sshsig.end());
  chain.entries.push_back(std::move(e));
  return {};
}

Result<uint64_t> SigningTime() {
  const char* env = std::getenv("SOURCE_DATE_EPOCH");
  if (env == nullptr) return static_cast<uint64_t>(std::time(nullptr));
  std::string_view s(env);
  if (s.empty() || s.size() > 19) {
    return Fail(Code::kInvalidArgument,
                "SOURCE_DATE_EPOCH must be decimal seconds");
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return Fail(Code::kInvalidArgument,
                  "SOURCE_DATE_EPOCH must be decimal seconds");
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

const char* SignatureStateName(SignatureState state) {
  switch (state) {
    case SignatureState::kUnsigned: return "unsigned";
    case SignatureState::kInvalid: return "invalid";
    case SignatureState::kUntrustedOnly: return "untrusted";
    case SignatureState::kTrusted: return "trusted";
  }
  return "invalid";
}

ChainReport VerifyChain(const Digest& root, std::span<const uint8_t> section,
                        const AllowedSigners* trust, int64_t now) {
  ChainReport report;
  report.content_root = root;
  auto chain = DecodeChain(section);
  if (!chain) {
    report.state = SignatureState::kInvalid;
    report.problem = chain.error().message();
    return report;
  }

  bool all_valid = true;
  Digest previous{};
  for (uint32_t i = 0; i < chain->entries.size(); ++i) {
    const ChainEntry& e = chain->entries[i];
    EntryReport er;
    er.index = i;
    er.role = e.role;
    er.time = e.time;
    auto sig = ParseSshSig(e.sshsig);
    if (!sig) {
      er.problem = sig.error().message();
    } else {
      er.fingerprint = Fingerprint(sig->key);
      er.key_id = KeyId(sig->key);
      if (e.index != i) {
        er.problem = "entry claims index " + std::to_string(e.index) +
                     " but is stored at " + std::to_string(i) +
                     " (entries were removed or reordered)";
      } else {
        Statement st{root, previous, i, er.key_id, e.role, e.time};
        auto v = SshSigVerify(*sig, kSignatureNamespace,
                              EncodeStatement(st));
        if (v) {
          er.valid = true;
        } else {
          er.problem = v.error().message() +
                       " (content, role, time or an earlier entry changed)";
        }
      }
    }
    if (er.valid && trust != nullptr) {
      TrustDecision d = trust->Decide(sig->key, kSignatureNamespace, now,
                                      ClampTime(e.time));
      er.trusted = d.trusted;
      er.principals = d.principals;
      er.trust_note = d.reason;
    } else if (er.valid) {
      er.trust_note = "untrusted key (no allowed_signers file)";
    }
    if (!er.valid) all_valid = false;
    if (er.trusted) ++report.trusted_count;
    previous = EntryHash(e);
    report.entries.push_back(std::move(er));
  }
  report.head = previous;
  if (!all_valid) {
    report.state = SignatureState::kInvalid;
  } else if (report.entries.empty()) {
    report.state = SignatureState::kUnsigned;
  } else if (report.trusted_count > 0) {
    report.state = SignatureState::kTrusted;
  } else {
    report.state = SignatureState::kUntrustedOnly;
  }
  return report;
}

}  // namespace egg::crypto

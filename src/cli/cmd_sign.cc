// egg sign: appends an entry to an egg's signature chain.
#include <cstdio>
#include <ctime>
#include <memory>

#include "cli/cli.h"
#include "common/atomic_file.h"
#include "common/fd.h"
#include "egg/crypto.h"
#include "egg/egg.h"

namespace egg::cli {
namespace {

struct SignArgs {
  std::string egg;
  std::string key;
  std::string role;
  std::string out;
  bool force = false;
  bool skip_content_check = false;
  std::string prepare;     // write the next statement here
  std::string pubkey;      // ... for this public key
  std::string import_sig;  // armoured SSHSIG made elsewhere
  std::string signed_bytes;
  std::string trusted;  // allowed_signers for the closing report
};

std::span<const uint8_t> AsBytes(const std::string& s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()),
                                  s.size());
}

// Writes the chain into a new egg and re-reads it: the content root must
// be unchanged and the chain must verify before we call it done.
Status Publish(const EggFile& egg, const crypto::SignatureChain& chain,
               const std::string& out, bool overwrite) {
  auto section = crypto::EncodeChain(chain);
  if (auto s = egg.WriteWithSignatures(section, out, overwrite); !s) {
    return s;
  }
  auto check = EggFile::Open(out, EggFile::Depth::kSummary);
  if (!check) return Fail(check.error().Wrap("re-reading '" + out + "'"));
  if (check->content_root() != egg.content_root()) {
    return Fail(Code::kInternal, "content root changed while signing");
  }
  auto report = crypto::VerifyChain(check->content_root(),
                                    check->signatures(), nullptr, 0);
  if (report.state == crypto::SignatureState::kInvalid) {
    return Fail(Code::kInternal, "written chain does not verify: " +
                                     crypto::ChainSummary(report));
  }
  return {};
}

int RunSign(const SignArgs& a) {
  int modes = !a.key.empty() + !a.prepare.empty() + !a.import_sig.empty();
  if (modes != 1) {
    return Report(Error(Code::kInvalidArgument,
                        "give exactly one of --key, --prepare or "
                        "--import-signature"));
  }
  if (!a.prepare.empty() && a.pubkey.empty()) {
    return Report(Error(Code::kInvalidArgument, "--prepare needs --pubkey"));
  }
  if (!a.import_sig.empty() && a.signed_bytes.empty()) {
    return Report(Error(Code::kInvalidArgument,
                        "--import-signature needs --signed-bytes"));
  }

  const std::string out = a.out.empty() ? a.egg : a.out;
  if (auto s = CheckWritableTarget(a.prepare.empty() ? out : a.prepare);
      !s) {
    return Report(s.error());
  }

  // The same trust root as `egg verify`, loaded before anything is
  // written so that a broken file stops the command early.
  auto trust = crypto::LoadTrust(a.trusted);
  if (!trust) return Report(trust.error());

  // Open once; the content is checked before anyone endorses it.
  auto egg = EggFile::Open(a.egg, a.skip_content_check
                                      ? EggFile::Depth::kSummary
                                      : EggFile::Depth::kFull);
  if (!egg) return Report(egg.error());
  if (!a.skip_content_check) {
    Progress progress("checking", egg->layout().blocks.length);
    VerifyOptions vo;
    vo.progress = [&](uint64_t done, uint64_t) { progress.Update(done); };
    if (auto s = egg->VerifyContent(vo); !s) {
      return Report(s.error().Wrap("refusing to sign '" + a.egg + "'"));
    }
  }
  auto chain = crypto::DecodeChain(egg->signatures());
  if (!chain) return Report(chain.error());
  const Digest root = egg->content_root();
  std::string role = a.role;
  if (role.empty()) role = chain->entries.empty() ? "builder" : "reviewer";
  if (auto s = crypto::ValidateRole(role); !s) return Report(s.error());

  if (!a.prepare.empty()) {
    auto line = ReadFileToString(a.pubkey, 64 * 1024);
    if (!line) return Report(line.error());
    auto pub = crypto::ParsePublicKeyLine(*line);
    if (!pub) return Report(pub.error().Wrap("'" + a.pubkey + "'"));
    auto time = crypto::SigningTime();
    if (!time) return Report(time.error());
    auto bytes = crypto::EncodeStatement(
        crypto::NextStatement(*chain, root, *pub, role, *time));
    std::string text(bytes.begin(), bytes.end());
    if (auto s = WriteFileAtomic(a.prepare, text, 0644, a.force); !s) {
      return Report(s.error());
    }
    std::fprintf(stderr,
                 "egg: wrote the statement for entry %zu; sign it with\n"
                 "  ssh-keygen -Y sign -n %s -f KEY '%s'\n"
                 "then run egg sign '%s' --import-signature '%s.sig' "
                 "--signed-bytes '%s'\n",
                 chain->entries.size(),
                 std::string(crypto::kSignatureNamespace).c_str(),
                 a.prepare.c_str(), a.egg.c_str(), a.prepare.c_str(),
                 a.prepare.c_str());
    return kExitOk;
  }

  if (!a.import_sig.empty()) {
    auto armored = ReadFileToString(a.import_sig, 1 << 20);
    if (!armored) return Report(armored.error());
    auto blob = crypto::DearmorSshSig(*armored);
    if (!blob) return Report(blob.error().Wrap("'" + a.import_sig + "'"));
    auto statement = ReadFileToString(a.signed_bytes, 1 << 20);
    if (!statement) return Report(statement.error());
    if (auto s = crypto::AppendImported(*chain, root, AsBytes(*statement),
                                        *blob);
        !s) {
      return Report(s.error());
    }
  } else {
    auto signer = crypto::LoadSigner(a.key);
    if (!signer) return Report(signer.error());
    auto time = crypto::SigningTime();
    if (!time) return Report(time.error());
    if (auto s = crypto::AppendSignature(*chain, root, **signer, role, *time);
        !s) {
      return Report(s.error());
    }
  }

  const bool overwrite = a.out.empty() || a.force;
  if (auto s = Publish(*egg, *chain, out, overwrite); !s) {
    return Report(s.error());
  }
  const crypto::AllowedSigners* trust_ptr = *trust ? &**trust : nullptr;
  auto report =
      crypto::VerifyChain(root, crypto::EncodeChain(*chain), trust_ptr,
                          static_cast<int64_t>(std::time(nullptr)));
  const auto& lines = crypto::ChainReportLines(report);
  std::fprintf(stderr, "egg: signed '%s' (content root %s)\n", out.c_str(),
               DigestRef(root).c_str());
  if (!lines.empty()) std::printf("%s\n", lines.back().c_str());
  return kExitOk;
}

Registration reg(31, "sign", [](CLI::App& app) {
  auto a = std::make_shared<SignArgs>();
  CLI::App* sub = app.add_subcommand(
      "sign", "Add a signature to an egg's signature chain");
  sub->add_option("egg", a->egg, "The egg")->required();
  sub->add_option("--key", a->key,
                  "OpenSSH Ed25519 private key (encrypted keys are used "
                  "through ssh-agent)");
  sub->add_option("--role", a->role,
                  "Role of this signature: [a-z0-9-] (default builder for "
                  "the first entry, reviewer after)");
  sub->add_option("-o,--output", a->out,
                  "Write the signed egg here (default: replace the egg)");
  sub->add_flag("--force", a->force, "Replace an existing output file");
  sub->add_flag("--skip-content-check", a->skip_content_check,
                "Do not re-hash the content before signing");
  sub->add_option("--prepare", a->prepare,
                  "Write the bytes to sign for the next entry to this file "
                  "(for ssh-keygen -Y sign); needs --pubkey");
  sub->add_option("--pubkey", a->pubkey, "Public key (.pub) for --prepare");
  sub->add_option("--import-signature", a->import_sig,
                  "Append an armoured SSH signature made over "
                  "--signed-bytes");
  sub->add_option("--signed-bytes", a->signed_bytes,
                  "The statement file the imported signature covers");
  sub->add_option("--trusted", a->trusted,
                  "OpenSSH allowed_signers file for the report (default "
                  "$XDG_CONFIG_HOME/egg/allowed_signers if it exists)");
  return std::pair<CLI::App*, Runner>(sub, [a] { return RunSign(*a); });
});

}  // namespace
}  // namespace egg::cli

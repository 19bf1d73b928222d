// egg verify: checks an egg's whole content and its signature chain, and
// says who signed it according to an explicit allowed_signers file.
#include <cstdio>
#include <ctime>
#include <memory>

#include "cli/cli.h"
#include "common/atomic_file.h"
#include "common/text.h"
#include "egg/crypto.h"
#include "egg/egg.h"

namespace egg::cli {
namespace {

struct VerifyArgs {
  std::string egg;
  std::string trusted;
  bool require_signature = false;
  bool json = false;
  int export_entry = -1;
  std::string signed_bytes;
  std::string signature;
};

// Content damage and signature failures are exit 1, and so is a file that
// claims a format version this egg does not know (it cannot be verified);
// unreadable files and bad arguments stay 2.
int ExitFor(const Error& e) {
  if (e.code() == Code::kCorruption ||
      e.code() == Code::kVerificationFailed ||
      e.code() == Code::kNotSupported) {
    return kExitVerificationFailed;
  }
  return ExitCodeFor(e.code());
}

int Failed(const VerifyArgs& a, const Error& e, const Digest* root) {
  if (a.json) {
    nlohmann::json j = {{"egg", a.egg},
                        {"content_intact", false},
                        {"verified", false},
                        {"error", e.message()}};
    if (root) j["content_root"] = DigestRef(*root);
    std::printf("%s\n", j.dump(2).c_str());
  }
  Report(e);
  return ExitFor(e);
}

Status ExportEntry(const VerifyArgs& a, const EggFile& egg) {
  auto chain = crypto::DecodeChain(egg.signatures());
  if (!chain) return Fail(chain.error());
  auto st = crypto::EntryStatement(*chain, egg.content_root(),
                                   static_cast<uint32_t>(a.export_entry));
  if (!st) return Fail(st.error());
  auto bytes = crypto::EncodeStatement(*st);
  if (!a.signed_bytes.empty()) {
    std::string text(bytes.begin(), bytes.end());
    if (auto s = WriteFileAtomic(a.signed_bytes, text, 0644, true); !s) {
      return s;
    }
  }
  if (!a.signature.empty()) {
    std::string armored = crypto::ArmorSshSig(
        chain->entries[static_cast<size_t>(a.export_entry)].sshsig);
    if (auto s = WriteFileAtomic(a.signature, armored, 0644, true); !s) {
      return s;
    }
  }
  return {};
}

int RunVerify(const VerifyArgs& a) {
  if (a.export_entry >= 0 && a.signed_bytes.empty() && a.signature.empty()) {
    return Report(Error(Code::kInvalidArgument,
                        "--export-entry needs --signed-bytes and/or "
                        "--signature"));
  }
  auto trust = crypto::LoadTrust(a.trusted);
  if (!trust) return Report(trust.error());

  // One open file for the content check and the signatures.
  auto egg = EggFile::Open(a.egg, EggFile::Depth::kFull);
  if (!egg) return Failed(a, egg.error(), nullptr);
  const Digest root = egg->content_root();
  {
    Progress progress("verifying", egg->layout().blocks.length);
    VerifyOptions vo;
    vo.progress = [&](uint64_t done, uint64_t) { progress.Update(done); };
    if (auto s = egg->VerifyContent(vo); !s) return Failed(a, s.error(), &root);
  }

  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  const crypto::AllowedSigners* trust_ptr = *trust ? &**trust : nullptr;
  crypto::ChainReport report =
      crypto::VerifyChain(root, egg->signatures(), trust_ptr, now);

  if (a.export_entry >= 0) {
    if (auto s = ExportEntry(a, *egg); !s) return Report(s.error());
  }

  const bool chain_ok = report.state != crypto::SignatureState::kInvalid;
  const bool trusted = report.state == crypto::SignatureState::kTrusted;
  // "verified" means a trusted key vouches for this content; an unsigned
  // or untrusted-only egg is never called verified, even when it exits 0.
  const bool verified = chain_ok && trusted;
  std::string trust_desc =
      trust_ptr ? trust_ptr->origin() : std::string("none");

  if (a.json) {
    nlohmann::json j = {
        {"egg", a.egg},
        {"content_root", DigestRef(root)},
        {"content_intact", true},
        {"trust_file", trust_ptr ? nlohmann::json(trust_ptr->origin())
                                 : nlohmann::json(nullptr)},
        {"signatures", crypto::ChainReportJson(report)},
        {"require_signature", a.require_signature},
        {"verified", verified},
    };
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("egg:        %s\n", EscapeForTerminal(a.egg).c_str());
    std::printf("content:    intact, root %s\n", DigestRef(root).c_str());
    std::printf("trust:      %s\n",
                trust_ptr ? EscapeForTerminal(trust_desc).c_str()
                          : "none (no allowed_signers file; nothing is "
                            "trusted)");
    std::printf("signatures: %s\n", crypto::ChainSummary(report).c_str());
    for (const auto& line : crypto::ChainReportLines(report)) {
      std::printf("  %s\n", line.c_str());
    }
    if (!report.entries.empty()) {
      std::printf("chain head: %s\n", DigestRef(report.head).c_str());
    }
  }

  if (!chain_ok) {
    Report(Error(Code::kVerificationFailed, crypto::ChainSummary(report)));
    return kExitVerificationFailed;
  }
  if (a.require_signature && !trusted) {
    Report(Error(Code::kVerificationFailed,
                 std::string("--require-signature: no valid signature by a "
                             "trusted key (") +
                     crypto::ChainSummary(report) + ")"));
    return kExitVerificationFailed;
  }
  return kExitOk;
}

Registration reg(30, "verify", [](CLI::App& app) {
  auto a = std::make_shared<VerifyArgs>();
  CLI::App* sub = app.add_subcommand(
      "verify", "Check an egg's content and who signed it");
  sub->add_option("egg", a->egg, "The egg")->required();
  sub->add_option("--trusted", a->trusted,
                  "OpenSSH allowed_signers file (default "
                  "$XDG_CONFIG_HOME/egg/allowed_signers if it exists)");
  sub->add_flag("--require-signature", a->require_signature,
                "Fail unless a trusted key signed the egg");
  sub->add_flag("--json", a->json, "Machine-readable output");
  sub->add_option("--export-entry", a->export_entry,
                  "Export chain entry N for ssh-keygen -Y verify")
      ->check(WholeNumber(INT32_MAX));
  sub->add_option("--signed-bytes", a->signed_bytes,
                  "With --export-entry: write the signed statement here");
  sub->add_option("--signature", a->signature,
                  "With --export-entry: write the armoured SSH signature "
                  "here");
  return std::pair<CLI::App*, Runner>(sub, [a] { return RunVerify(*a); });
});

}  // namespace
}  // namespace egg::cli

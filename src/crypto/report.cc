// Rendering verification reports, and the trust root every command uses.
#include <ctime>

#include "common/text.h"
#include "egg/crypto.h"

namespace egg::crypto {

Result<std::optional<AllowedSigners>> LoadTrust(
    const std::string& explicit_path) {
  std::string path = explicit_path;
  if (path.empty()) {
    auto fallback = DefaultAllowedSignersPath();
    if (!fallback) return std::optional<AllowedSigners>();
    path = *fallback;
  }
  auto trust = AllowedSigners::Load(path);
  if (!trust) {
    Error e = trust.error().Wrap("allowed signers");
    return Fail(Code::kInvalidArgument, e.message());
  }
  return std::optional<AllowedSigners>(std::move(*trust));
}

std::string FormatUtc(uint64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(seconds);
  char buf[48];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json ChainReportJson(const ChainReport& report) {
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& e : report.entries) {
    nlohmann::json j = {
        {"index", e.index},
        {"role", e.role},
        {"time", e.time},
        {"valid", e.valid},
        {"trusted", e.trusted},
        {"principals", e.principals},
    };
    if (!e.fingerprint.empty()) {
      j["fingerprint"] = e.fingerprint;
      j["key_id"] = DigestRef(e.key_id);
    }
    if (!e.problem.empty()) j["problem"] = e.problem;
    if (!e.trust_note.empty()) j["trust_note"] = e.trust_note;
    entries.push_back(std::move(j));
  }
  nlohmann::json out = {
      {"state", SignatureStateName(report.state)},
      {"content_root", DigestRef(report.content_root)},
      {"entries", std::move(entries)},
      {"trusted_count", report.trusted_count},
      {"summary", ChainSummary(report)},
  };
  if (!report.entries.empty()) out["head"] = DigestRef(report.head);
  if (!report.problem.empty()) out["problem"] = report.problem;
  return out;
}

std::vector<std::string> ChainReportLines(const ChainReport& report) {
  std::vector<std::string> lines;
  for (const auto& e : report.entries) {
    std::string line = "#" + std::to_string(e.index) + " " + e.role + " " +
                       FormatUtc(e.time) + " " +
                       (e.fingerprint.empty() ? "(no key)" : e.fingerprint);
    if (!e.valid) {
      line += " INVALID: " + e.problem;
    } else if (e.trusted) {
      std::string who;
      for (const auto& p : e.principals) who += (who.empty() ? "" : ",") + p;
      line += " " + who + " (trusted)";
    } else {
      line += " " + e.trust_note;
    }
    lines.push_back(EscapeForTerminal(line));
  }
  return lines;
}

std::string ChainSummary(const ChainReport& report) {
  switch (report.state) {
    case SignatureState::kUnsigned:
      return "unsigned";
    case SignatureState::kInvalid: {
      std::string why = report.problem;
      for (const auto& e : report.entries) {
        if (why.empty() && !e.valid) {
          why = "entry " + std::to_string(e.index) + ": " + e.problem;
        }
      }
      return EscapeForTerminal("INVALID signature chain: " + why);
    }
    case SignatureState::kUntrustedOnly:
      return "signed only by untrusted keys (not verified)";
    case SignatureState::kTrusted: {
      std::string who;
      for (const auto& e : report.entries) {
        if (!e.trusted) continue;
        for (const auto& p : e.principals) {
          who += (who.empty() ? "" : ", ") + p + " as " + e.role;
        }
      }
      return EscapeForTerminal("signed by trusted key(s): " + who);
    }
  }
  return "INVALID";
}

}  // namespace egg::crypto

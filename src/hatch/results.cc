// The results JSON of a run, and the JSON-safe form of raw output bytes.
#include <nlohmann/json.hpp>
#include <string>

#include "egg/hatch.h"

namespace egg {
namespace {

constexpr char kB64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string Base64(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    for (int k = 3; k >= 0; --k) out += kB64[(v >> (6 * k)) & 63];
  }
  size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = p[i] << 16;
    if (rest == 2) v |= p[i + 1] << 8;
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

int B64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

Result<std::string> Unbase64(const std::string& in) {
  if (in.size() % 4 != 0) {
    return Fail(Code::kInvalidArgument, "base64 length is not a multiple of 4");
  }
  std::string out;
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else if (pad > 0 || (v[k] = B64Value(c)) < 0) {
        return Fail(Code::kInvalidArgument, "invalid base64");
      }
    }
    uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>(w >> 16);
    if (pad < 2) out += static_cast<char>((w >> 8) & 0xFF);
    if (pad < 1) out += static_cast<char>(w & 0xFF);
  }
  return out;
}

nlohmann::json StreamJson(const CapturedStream& s) {
  EncodedBytes e = EncodeBytes(s.bytes);
  return {{"encoding", e.encoding},
          {"data", e.data},
          {"bytes", s.bytes.size()},
          {"dropped", s.dropped},
          {"truncated", s.truncated()}};
}

}  // namespace

EncodedBytes EncodeBytes(const std::string& bytes) {
  if (IsValidUtf8(bytes)) return {"utf-8", bytes};
  return {"base64", Base64(bytes)};
}

Result<std::string> DecodeBytes(const EncodedBytes& encoded) {
  if (encoded.encoding == "utf-8") {
    if (!IsValidUtf8(encoded.data)) {
      return Fail(Code::kInvalidArgument, "text is not valid UTF-8");
    }
    return encoded.data;
  }
  if (encoded.encoding == "base64") return Unbase64(encoded.data);
  return Fail(Code::kInvalidArgument,
              "unknown encoding '" + encoded.encoding + "'");
}

std::string ResultsJson(const RunReport& report, const ResultsMeta& meta) {
  nlohmann::json cells = nlohmann::json::array();
  size_t ok = 0, failed = 0, not_run = 0;
  for (const auto& c : report.cells) {
    if (c.status == CellStatus::kOk) {
      ++ok;
    } else if (c.status == CellStatus::kNotRun) {
      ++not_run;
    } else {
      ++failed;
    }
    nlohmann::json files = nlohmann::json::array();
    for (const auto& f : c.files) {
      files.push_back(
          {{"path", f.path}, {"size", f.size}, {"sha256", f.sha256}});
    }
    cells.push_back({
        {"index", c.index},
        {"id", c.id},
        {"language", c.language},
        {"status", CellStatusName(c.status)},
        {"limit",
         c.limit.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.limit)},
        {"exit_code", c.exit_code},
        {"signal", c.signal},
        {"duration_ms", c.duration_ms},
        {"fresh_session", c.fresh_session},
        {"note", c.note},
        {"stdout", StreamJson(c.stdout_data)},
        {"stderr", StreamJson(c.stderr_data)},
        {"files", files},
    });
  }
  nlohmann::json doc = {
      {"egg_results", 1},
      {"egg", meta.egg},
      {"egg_digest", meta.egg_digest},
      {"isolation", meta.isolation},
      {"signers", meta.signers},
      {"granted", meta.granted},
      {"interrupted", report.interrupted},
      {"agent_error", report.agent_error},
      {"summary",
       {{"cells", report.cells.size()},
        {"ok", ok},
        {"failed", failed},
        {"not_run", not_run}}},
      {"cells", cells},
  };
  // Notes and names may hold bytes from the egg; invalid UTF-8 in them is
  // replaced rather than failing the whole document.
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

}  // namespace egg

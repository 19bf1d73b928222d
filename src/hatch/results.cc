// The results JSON of a run, and the JSON-safe form of raw output bytes.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "common/base64.h"
#include "egg/hatch.h"

namespace egg {
namespace {

// From this size on, a stream is text only while its JSON escapes stay
// below base64's size.
constexpr size_t kEscapeCheckBytes = 64 << 10;

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
  // Text as text, unless its JSON escapes (six bytes for most control
  // characters: a stream of NULs) would make it more than twice its size,
  // or, from 64 KiB on, larger than base64's four bytes per three.
  uint64_t escaped = 0;
  for (unsigned char c : bytes) {
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' ||
        c == '\r' || c == '\t') {
      escaped += 2;
    } else if (c < 0x20) {
      escaped += 6;
    } else {
      escaped += 1;
    }
  }
  uint64_t limit = bytes.size() < kEscapeCheckBytes
                       ? 2 * static_cast<uint64_t>(bytes.size())
                       : (bytes.size() + 2) / 3 * 4;
  if (escaped <= std::max<uint64_t>(limit, 4) && IsValidUtf8(bytes)) {
    return {"utf-8", bytes};
  }
  return {"base64", Base64Encode(bytes)};
}

Result<std::string> DecodeBytes(const EncodedBytes& encoded) {
  if (encoded.encoding == "utf-8") {
    if (!IsValidUtf8(encoded.data)) {
      return Fail(Code::kInvalidArgument, "text is not valid UTF-8");
    }
    return encoded.data;
  }
  if (encoded.encoding == "base64") {
    auto bytes = Base64Decode(encoded.data, Base64Mode::kStrict);
    if (!bytes) return Fail(Code::kInvalidArgument, "invalid base64");
    return std::move(*bytes);
  }
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

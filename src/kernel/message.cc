#include "kernel/message.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <time.h>

#include <algorithm>
#include <cstdio>

#include "common/text.h"

namespace egg::kernel {
namespace {

Result<nlohmann::json> ParseFrame(std::string_view text, const char* what) {
  // Refused before the recursive parser sees it.
  if (!JsonNestingWithin(text, kMaxDepth)) {
    return Fail(Code::kCorruption, std::string("kernel message ") + what +
                                       " is nested too deeply");
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Fail(Code::kCorruption, std::string("kernel message ") + what +
                                       " is not a JSON object");
  }
  return j;
}

std::string IsoNow() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
                t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
                t.tm_sec, ts.tv_nsec / 1000);
  return buf;
}

}  // namespace

std::string Sign(std::string_view key, const std::vector<std::string>& parts) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MAC* alg = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = alg ? EVP_MAC_CTX_new(alg) : nullptr;
  std::string hex;
  if (ctx != nullptr) {
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", digest, 0),
        OSSL_PARAM_construct_end()};
    size_t out = 0;
    bool ok =
        EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()),
                     key.size(), params) == 1;
    for (const auto& p : parts) {
      ok = ok &&
           EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(p.data()),
                          p.size()) == 1;
    }
    ok = ok && EVP_MAC_final(ctx, mac, &out, sizeof(mac)) == 1;
    len = ok ? static_cast<unsigned int>(out) : 0;
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(alg);
  static const char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[mac[i] >> 4];
    hex += kHex[mac[i] & 15];
  }
  return hex;
}

nlohmann::json MakeHeader(const std::string& msg_type,
                          const std::string& msg_id,
                          const std::string& session) {
  return {{"msg_id", msg_id},     {"session", session},
          {"username", "egg"},    {"date", IsoNow()},
          {"msg_type", msg_type}, {"version", kProtocolVersion}};
}

std::vector<std::string> Encode(std::string_view key,
                                const nlohmann::json& header,
                                const nlohmann::json& parent,
                                const nlohmann::json& content) {
  std::vector<std::string> parts = {header.dump(), parent.dump(), "{}",
                                    content.dump()};
  std::vector<std::string> frames = {kDelimiter, Sign(key, parts)};
  frames.insert(frames.end(), parts.begin(), parts.end());
  return frames;
}

Result<Message> Decode(std::string_view key,
                       const std::vector<std::string>& frames) {
  auto at = std::find(frames.begin(), frames.end(), kDelimiter);
  if (at == frames.end()) {
    return Fail(Code::kCorruption, "kernel message has no <IDS|MSG> delimiter");
  }
  size_t first = static_cast<size_t>(at - frames.begin()) + 1;
  if (frames.size() - first < 5) {
    return Fail(Code::kCorruption, "kernel message has too few frames");
  }

  // Check the signature before anything is interpreted.
  std::vector<std::string> parts(frames.begin() + first + 1,
                                 frames.begin() + first + 5);
  std::string expected = Sign(key, parts);
  const std::string& got = frames[first];
  if (expected.empty() || got.size() != expected.size() ||
      CRYPTO_memcmp(got.data(), expected.data(), got.size()) != 0) {
    return Fail(Code::kVerificationFailed,
                got.empty() ? "kernel message is not signed"
                            : "kernel message has a bad signature");
  }

  Message m;
  auto header = ParseFrame(parts[0], "header");
  if (!header) return Fail(header.error());
  auto parent = ParseFrame(parts[1], "parent header");
  if (!parent) return Fail(parent.error());
  auto content = ParseFrame(parts[3], "content");
  if (!content) return Fail(content.error());
  const auto& h = *header;
  if (!h.contains("msg_type") || !h["msg_type"].is_string() ||
      !h.contains("msg_id") || !h["msg_id"].is_string()) {
    return Fail(Code::kCorruption,
                "kernel message header lacks msg_type or msg_id");
  }
  m.msg_type = h["msg_type"].get<std::string>();
  m.msg_id = h["msg_id"].get<std::string>();
  if (parent->contains("msg_id") && (*parent)["msg_id"].is_string()) {
    m.parent_msg_id = (*parent)["msg_id"].get<std::string>();
  }
  m.header = std::move(*header);
  m.content = std::move(*content);
  return m;
}

}  // namespace egg::kernel

// The one encoder and decoder of Jupyter wire messages (messaging protocol
// 5.3): [identities..., "<IDS|MSG>", hmac, header, parent_header,
// metadata, content, buffers...]. Internal to egg_kernel.
//
// Decoding order: frame count and sizes are capped by the reader, the
// delimiter is found, the HMAC-SHA256 of the four JSON frames is checked
// in constant time, and only then is any JSON parsed (depth-checked, no
// exceptions).
#ifndef EGG_KERNEL_MESSAGE_H_
#define EGG_KERNEL_MESSAGE_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "egg/status.h"

namespace egg::kernel {

inline constexpr char kDelimiter[] = "<IDS|MSG>";
inline constexpr char kProtocolVersion[] = "5.3";
// Frames in one message (identities and buffers included).
inline constexpr size_t kMaxFrames = 64;
// Bytes in one message, all frames together.
inline constexpr size_t kMaxMessageBytes = 64u << 20;
inline constexpr int kMaxDepth = 64;

struct Message {
  std::string msg_type;
  std::string msg_id;
  std::string parent_msg_id;  // "" when the parent header is empty
  nlohmann::json header;
  nlohmann::json content;
};

// Lower-case hex HMAC-SHA256 of `parts` under `key` (the key string's
// bytes, as in the connection file).
std::string Sign(std::string_view key, const std::vector<std::string>& parts);

// The frames of a message to send (no identities). `parent` may be empty.
std::vector<std::string> Encode(std::string_view key,
                                const nlohmann::json& header,
                                const nlohmann::json& parent,
                                const nlohmann::json& content);

// A header for `msg_type` in `session`.
nlohmann::json MakeHeader(const std::string& msg_type,
                          const std::string& msg_id,
                          const std::string& session);

// Decodes received frames. kVerificationFailed for a missing or wrong
// signature; kCorruption for a missing delimiter, too few frames, JSON
// that does not parse, is too deep, or a header without string msg_type
// and msg_id.
[[nodiscard]] Result<Message> Decode(std::string_view key,
                                     const std::vector<std::string>& frames);

}  // namespace egg::kernel

#endif  // EGG_KERNEL_MESSAGE_H_

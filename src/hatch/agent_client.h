// The hatcher's end of the agent protocol: sends requests and reads frames
// from an agent it does not trust. Internal to the hatch library.
#ifndef EGG_HATCH_AGENT_CLIENT_H_
#define EGG_HATCH_AGENT_CLIENT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "egg/status.h"
#include "hatch/wire.h"

namespace egg::hatch {

struct AgentFrame {
  wire::Type type;
  std::vector<uint8_t> payload;
};

class AgentClient {
 public:
  // Borrows `fd` (a byte stream) and makes it non-blocking.
  explicit AgentClient(int fd);

  // Writes a whole frame, reading incoming frames meanwhile so that neither
  // side can block the other. kIo if the agent is gone.
  [[nodiscard]] Status Send(const std::vector<uint8_t>& frame);

  // The next complete frame, or nothing after `timeout_ms` (-1: wait).
  // kCorruption for an oversized, unknown or malformed frame header; kIo
  // when the agent closed the stream.
  [[nodiscard]] Result<std::optional<AgentFrame>> Next(int timeout_ms);

  // Reads the agent's Hello and checks the protocol version.
  [[nodiscard]] Status Handshake(int timeout_ms);

 private:
  // Parses one frame out of the buffer if complete; checks the header as
  // soon as it is in.
  Result<std::optional<AgentFrame>> TakeFrame();
  Status ReadSome();

  int fd_;
  std::vector<uint8_t> in_;
  bool eof_ = false;
};

}  // namespace egg::hatch

#endif  // EGG_HATCH_AGENT_CLIENT_H_

#include "hatch/agent_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/fd.h"

namespace egg::hatch {
namespace {
// Frames read while a large request is being sent; more means the agent
// floods instead of reading.
constexpr size_t kMaxBufferedWhileSending = 16u << 20;
}  // namespace

AgentClient::AgentClient(int fd) : fd_(fd) {
  int flags = fcntl(fd_, F_GETFL);
  if (flags >= 0) fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
}

Status AgentClient::ReadSome() {
  uint8_t buf[64 << 10];
  ssize_t n = RetryEintr([&] { return read(fd_, buf, sizeof(buf)); });
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
    return Fail(ErrnoError("reading from the agent"));
  }
  if (n == 0) {
    eof_ = true;
    return {};
  }
  in_.insert(in_.end(), buf, buf + n);
  return {};
}

Status AgentClient::Send(const std::vector<uint8_t>& frame) {
  size_t off = 0;
  while (off < frame.size()) {
    pollfd p{fd_, POLLOUT | POLLIN, 0};
    if (RetryEintr([&] { return poll(&p, 1, -1); }) < 0) {
      return Fail(ErrnoError("waiting for the agent"));
    }
    if (p.revents & POLLIN) {
      if (in_.size() > kMaxBufferedWhileSending) {
        return Fail(Code::kCorruption,
                    "agent sent too much while a request was being sent");
      }
      auto s = ReadSome();
      if (!s) return s;
    }
    if (p.revents & (POLLOUT | POLLERR | POLLHUP)) {
      // MSG_NOSIGNAL: an agent that is gone (its sandbox stopped at a
      // limit) is an error here, not a SIGPIPE that kills egg before it
      // writes the results.
      ssize_t w = RetryEintr([&] {
        return send(fd_, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
      });
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (w < 0) return Fail(ErrnoError("writing to the agent"));
      off += static_cast<size_t>(w);
    }
  }
  return {};
}

Result<std::optional<AgentFrame>> AgentClient::TakeFrame() {
  if (in_.size() < wire::kHeaderSize) return std::nullopt;
  wire::Header h;
  if (auto err = wire::DecodeHeader(in_, wire::kMaxAgentPayload,
                                    /*from_agent=*/true, &h)) {
    return Fail(Code::kCorruption, "agent sent a bad frame: " + *err);
  }
  if (in_.size() - wire::kHeaderSize < h.length) return std::nullopt;
  AgentFrame f{
      h.type, std::vector<uint8_t>(in_.begin() + wire::kHeaderSize,
                                   in_.begin() + wire::kHeaderSize + h.length)};
  in_.erase(in_.begin(), in_.begin() + wire::kHeaderSize + h.length);
  return f;
}

Result<std::optional<AgentFrame>> AgentClient::Next(int timeout_ms) {
  while (true) {
    auto frame = TakeFrame();
    if (!frame || *frame) return frame;
    if (eof_) {
      return Fail(Code::kIo, in_.empty()
                                 ? "the agent closed its control channel"
                                 : "the agent's control channel ended "
                                   "inside a frame");
    }
    pollfd p{fd_, POLLIN, 0};
    int r = RetryEintr([&] { return poll(&p, 1, timeout_ms); });
    if (r < 0) return Fail(ErrnoError("waiting for the agent"));
    if (r == 0) return std::nullopt;
    auto s = ReadSome();
    if (!s) return Fail(s.error());
  }
}

Status AgentClient::Handshake(int timeout_ms) {
  auto frame = Next(timeout_ms);
  if (!frame) return Fail(frame.error());
  if (!*frame) return Fail(Code::kIo, "the agent did not say hello in time");
  wire::Hello hello;
  if ((*frame)->type != wire::Type::kHello ||
      !wire::Decode((*frame)->payload, &hello)) {
    return Fail(Code::kCorruption, "the agent's first frame is not a hello");
  }
  if (hello.protocol != wire::kVersion) {
    return Fail(Code::kNotSupported,
                "agent speaks protocol " + std::to_string(hello.protocol) +
                    ", this egg speaks " + std::to_string(wire::kVersion));
  }
  return {};
}

}  // namespace egg::hatch

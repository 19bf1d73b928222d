// The hatcher <-> agent protocol: framing and the one encoder and decoder
// of every message. Header-only and free of libegg dependencies beyond
// common/bytes.h, so the static egg-agent and the hatch library share it.
// docs/HATCH.md describes every byte.
//
// Frame: u8 version | u8 type | u16 reserved (0) | u32 payload length (LE)
//        | payload. Each side rejects frames longer than its limit, unknown
// types, non-zero reserved bytes, short payloads and trailing bytes.
#ifndef EGG_HATCH_WIRE_H_
#define EGG_HATCH_WIRE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"

namespace egg::wire {

inline constexpr uint8_t kVersion = 1;
inline constexpr size_t kHeaderSize = 8;
// Frames the agent sends are at most this long (output is chunked).
inline constexpr uint32_t kMaxAgentPayload = 1u << 20;
// Frames the hatcher sends carry whole cells.
inline constexpr uint32_t kMaxHatcherPayload = 64u << 20;
// Output chunks the agent puts in one frame.
inline constexpr size_t kOutputChunk = 64u << 10;
// Display frames carry a driver's display records: JSON lines written on
// the driver's fd 5, forwarded in chunks like stdout (docs/HATCH.md).
inline constexpr char kDisplayRecordsMime[] =
    "application/vnd.egg.display-records+jsonl";
inline constexpr int kDriverDisplayFd = 5;
inline constexpr uint32_t kMaxArgs = 256;
inline constexpr uint32_t kMaxEnv = 1024;
inline constexpr uint32_t kMaxString = 64u << 10;

enum class Type : uint8_t {
  // hatcher -> agent
  kStartSession = 0x01,
  kRunCell = 0x02,
  kStopSession = 0x03,
  kShutdown = 0x04,
  // agent -> hatcher
  kHello = 0x81,
  kSessionStarted = 0x82,
  kStdout = 0x83,
  kStderr = 0x84,
  kDisplay = 0x85,
  kCellDone = 0x86,
  kSessionEnded = 0x87,
  kError = 0x88,
};

inline bool IsHatcherType(uint8_t t) { return t >= 0x01 && t <= 0x04; }
inline bool IsAgentType(uint8_t t) { return t >= 0x81 && t <= 0x88; }

enum class SessionMode : uint8_t {
  kDriver = 0,          // one live interpreter fed cells over its fd 3
  kPerCellCommand = 1,  // one process per cell; "{file}" in argv
};

// How a cell ended (CellDone.outcome).
enum class Outcome : uint8_t {
  kCompleted = 0,    // the code finished; status says success or error
  kSessionDied = 1,  // the interpreter exited or was killed by a signal
  kLimit = 2,        // the agent killed the session for a limit
  kNotStarted = 3,   // the cell could not be started
};

enum class Limit : uint8_t { kNone = 0, kWallTime = 1, kOutput = 2 };

// Why a session ended (SessionEnded.reason).
enum class EndReason : uint8_t {
  kExited = 0,   // the interpreter ended by itself
  kStopped = 1,  // StopSession or Shutdown
  kLimit = 2,    // killed for a limit
  kStartFailed = 3,
  kProtocol = 4,  // the driver broke its private protocol
};

struct StartSession {
  uint32_t session = 0;
  SessionMode mode = SessionMode::kDriver;
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "NAME=value"
  std::string cwd;
  std::string cell_dir;     // kPerCellCommand: where cell files go
  std::string cell_suffix;  // kPerCellCommand: e.g. ".js"
};

struct RunCell {
  uint32_t session = 0;
  uint32_t cell = 0;
  uint64_t wall_ms = 0;       // 0 = no limit
  uint64_t output_bytes = 0;  // stdout + stderr cap; 0 = no limit
  std::string code;
};

struct Hello {
  uint32_t protocol = 0;
  std::string agent_version;
};

struct SessionStarted {
  uint32_t session = 0;
  uint32_t pid = 0;
};

struct Output {  // kStdout / kStderr
  uint32_t session = 0;
  uint32_t cell = 0;
  std::string data;
};

struct Display {
  uint32_t session = 0;
  uint32_t cell = 0;
  std::string mime;
  std::string data;
};

struct CellDone {
  uint32_t session = 0;
  uint32_t cell = 0;
  Outcome outcome = Outcome::kCompleted;
  Limit limit = Limit::kNone;
  int32_t status = 0;  // driver status or exit code; 0 = success
  int32_t signal = 0;  // signal that ended the process, 0 if none
  uint64_t duration_ns = 0;
  uint64_t dropped_bytes = 0;  // output read past the cap and not sent
};

struct SessionEnded {
  uint32_t session = 0;
  EndReason reason = EndReason::kExited;
  int32_t exit_code = 0;
  int32_t signal = 0;
};

struct ErrorMsg {
  uint32_t session = 0;
  std::string message;
};

// ---- encoding -------------------------------------------------------------

inline void PutString(ByteWriter& w, std::string_view s) {
  w.Le32(static_cast<uint32_t>(s.size()));
  w.Bytes(s);
}

inline std::vector<uint8_t> Frame(Type type, ByteWriter& payload) {
  ByteWriter w;
  w.U8(kVersion);
  w.U8(static_cast<uint8_t>(type));
  w.Le16(0);
  w.Le32(static_cast<uint32_t>(payload.size()));
  w.Bytes(payload.buffer());
  return std::move(w.buffer());
}

inline std::vector<uint8_t> Encode(const StartSession& m) {
  ByteWriter w;
  w.Le32(m.session);
  w.U8(static_cast<uint8_t>(m.mode));
  w.Le32(static_cast<uint32_t>(m.argv.size()));
  for (const auto& a : m.argv) PutString(w, a);
  w.Le32(static_cast<uint32_t>(m.env.size()));
  for (const auto& e : m.env) PutString(w, e);
  PutString(w, m.cwd);
  PutString(w, m.cell_dir);
  PutString(w, m.cell_suffix);
  return Frame(Type::kStartSession, w);
}

inline std::vector<uint8_t> Encode(const RunCell& m) {
  ByteWriter w;
  w.Le32(m.session);
  w.Le32(m.cell);
  w.Le64(m.wall_ms);
  w.Le64(m.output_bytes);
  w.Le32(static_cast<uint32_t>(m.code.size()));
  w.Bytes(m.code);
  return Frame(Type::kRunCell, w);
}

inline std::vector<uint8_t> EncodeStopSession(uint32_t session) {
  ByteWriter w;
  w.Le32(session);
  return Frame(Type::kStopSession, w);
}

inline std::vector<uint8_t> EncodeShutdown() {
  ByteWriter w;
  return Frame(Type::kShutdown, w);
}

inline std::vector<uint8_t> Encode(const Hello& m) {
  ByteWriter w;
  w.Le32(m.protocol);
  PutString(w, m.agent_version);
  return Frame(Type::kHello, w);
}

inline std::vector<uint8_t> Encode(const SessionStarted& m) {
  ByteWriter w;
  w.Le32(m.session);
  w.Le32(m.pid);
  return Frame(Type::kSessionStarted, w);
}

inline std::vector<uint8_t> EncodeOutput(Type type, uint32_t session,
                                         uint32_t cell,
                                         std::span<const uint8_t> data) {
  ByteWriter w;
  w.Le32(session);
  w.Le32(cell);
  w.Bytes(data);
  return Frame(type, w);
}

inline std::vector<uint8_t> Encode(const Display& m) {
  ByteWriter w;
  w.Le32(m.session);
  w.Le32(m.cell);
  PutString(w, m.mime);
  w.Bytes(m.data);
  return Frame(Type::kDisplay, w);
}

inline std::vector<uint8_t> Encode(const CellDone& m) {
  ByteWriter w;
  w.Le32(m.session);
  w.Le32(m.cell);
  w.U8(static_cast<uint8_t>(m.outcome));
  w.U8(static_cast<uint8_t>(m.limit));
  w.Le16(0);
  w.Le32(static_cast<uint32_t>(m.status));
  w.Le32(static_cast<uint32_t>(m.signal));
  w.Le64(m.duration_ns);
  w.Le64(m.dropped_bytes);
  return Frame(Type::kCellDone, w);
}

inline std::vector<uint8_t> Encode(const SessionEnded& m) {
  ByteWriter w;
  w.Le32(m.session);
  w.U8(static_cast<uint8_t>(m.reason));
  w.Zeros(3);
  w.Le32(static_cast<uint32_t>(m.exit_code));
  w.Le32(static_cast<uint32_t>(m.signal));
  return Frame(Type::kSessionEnded, w);
}

inline std::vector<uint8_t> Encode(const ErrorMsg& m) {
  ByteWriter w;
  w.Le32(m.session);
  PutString(w, m.message);
  return Frame(Type::kError, w);
}

// ---- decoding -------------------------------------------------------------

struct Header {
  Type type;
  uint32_t length;
};

// Checks a frame header. `max_payload` is the receiver's limit; `from_agent`
// says which direction's types are allowed. Returns an error text, or
// nothing and fills *out.
inline std::optional<std::string> DecodeHeader(std::span<const uint8_t> bytes,
                                               uint32_t max_payload,
                                               bool from_agent, Header* out) {
  if (bytes.size() < kHeaderSize) return "short frame header";
  if (bytes[0] != kVersion) {
    return "unsupported protocol version " + std::to_string(bytes[0]);
  }
  uint8_t t = bytes[1];
  if (from_agent ? !IsAgentType(t) : !IsHatcherType(t)) {
    return "unknown frame type " + std::to_string(t);
  }
  if (bytes[2] != 0 || bytes[3] != 0) return "non-zero reserved bytes";
  uint32_t length = LoadLe32(bytes.data() + 4);
  if (length > max_payload) {
    return "frame of " + std::to_string(length) + " bytes exceeds limit " +
           std::to_string(max_payload);
  }
  out->type = static_cast<Type>(t);
  out->length = length;
  return std::nullopt;
}

inline bool GetString(ByteReader& r, uint32_t max, std::string* out) {
  uint32_t n = r.Le32();
  if (!r.ok() || n > max || n > r.remaining()) return false;
  *out = std::string(r.String(n));
  return r.ok();
}

// Every Decode returns false on a short, oversized or trailing payload, or
// a field out of range.
inline bool Decode(std::span<const uint8_t> p, StartSession* m) {
  ByteReader r(p);
  m->session = r.Le32();
  uint8_t mode = r.U8();
  if (!r.ok() || mode > 1) return false;
  m->mode = static_cast<SessionMode>(mode);
  uint32_t argc = r.Le32();
  if (!r.ok() || argc == 0 || argc > kMaxArgs) return false;
  m->argv.resize(argc);
  for (auto& a : m->argv) {
    if (!GetString(r, kMaxString, &a)) return false;
  }
  uint32_t envc = r.Le32();
  if (!r.ok() || envc > kMaxEnv) return false;
  m->env.resize(envc);
  for (auto& e : m->env) {
    if (!GetString(r, kMaxString, &e)) return false;
  }
  if (!GetString(r, kMaxString, &m->cwd)) return false;
  if (!GetString(r, kMaxString, &m->cell_dir)) return false;
  if (!GetString(r, kMaxString, &m->cell_suffix)) return false;
  return r.AtEnd();
}

inline bool Decode(std::span<const uint8_t> p, RunCell* m) {
  ByteReader r(p);
  m->session = r.Le32();
  m->cell = r.Le32();
  m->wall_ms = r.Le64();
  m->output_bytes = r.Le64();
  if (!GetString(r, kMaxHatcherPayload, &m->code)) return false;
  return r.AtEnd();
}

inline bool DecodeSessionId(std::span<const uint8_t> p, uint32_t* session) {
  ByteReader r(p);
  *session = r.Le32();
  return r.AtEnd();
}

inline bool Decode(std::span<const uint8_t> p, Hello* m) {
  ByteReader r(p);
  m->protocol = r.Le32();
  if (!GetString(r, 256, &m->agent_version)) return false;
  return r.AtEnd();
}

inline bool Decode(std::span<const uint8_t> p, SessionStarted* m) {
  ByteReader r(p);
  m->session = r.Le32();
  m->pid = r.Le32();
  return r.AtEnd();
}

inline bool Decode(std::span<const uint8_t> p, Output* m) {
  ByteReader r(p);
  m->session = r.Le32();
  m->cell = r.Le32();
  if (!r.ok()) return false;
  m->data = std::string(r.String(r.remaining()));
  return r.AtEnd();
}

inline bool Decode(std::span<const uint8_t> p, Display* m) {
  ByteReader r(p);
  m->session = r.Le32();
  m->cell = r.Le32();
  if (!GetString(r, 256, &m->mime)) return false;
  m->data = std::string(r.String(r.remaining()));
  return r.AtEnd();
}

inline bool Decode(std::span<const uint8_t> p, CellDone* m) {
  ByteReader r(p);
  m->session = r.Le32();
  m->cell = r.Le32();
  uint8_t outcome = r.U8();
  uint8_t limit = r.U8();
  uint16_t reserved = r.Le16();
  m->status = static_cast<int32_t>(r.Le32());
  m->signal = static_cast<int32_t>(r.Le32());
  m->duration_ns = r.Le64();
  m->dropped_bytes = r.Le64();
  if (!r.AtEnd() || outcome > 3 || limit > 2 || reserved != 0) return false;
  if (m->signal < 0 || m->signal > 64) return false;
  m->outcome = static_cast<Outcome>(outcome);
  m->limit = static_cast<Limit>(limit);
  return true;
}

inline bool Decode(std::span<const uint8_t> p, SessionEnded* m) {
  ByteReader r(p);
  m->session = r.Le32();
  uint8_t reason = r.U8();
  uint8_t z0 = r.U8(), z1 = r.U8(), z2 = r.U8();
  m->exit_code = static_cast<int32_t>(r.Le32());
  m->signal = static_cast<int32_t>(r.Le32());
  if (!r.AtEnd() || reason > 4 || (z0 | z1 | z2) != 0) return false;
  if (m->signal < 0 || m->signal > 64) return false;
  m->reason = static_cast<EndReason>(reason);
  return true;
}

inline bool Decode(std::span<const uint8_t> p, ErrorMsg* m) {
  ByteReader r(p);
  m->session = r.Le32();
  if (!GetString(r, kMaxString, &m->message)) return false;
  return r.AtEnd();
}

}  // namespace egg::wire

#endif  // EGG_HATCH_WIRE_H_

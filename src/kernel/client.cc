// KernelClient: the Jupyter messaging protocol over ZeroMQ (C API; no
// exceptions), one cell at a time, every message hostile.
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "common/fd.h"
#include "egg/kernel.h"
#include "egg/notebook.h"
#include "egg/policy.h"
#include "kernel/message.h"

namespace egg {
namespace {

using kernel::Message;

constexpr int kPollMs = 50;
// How often the files a cell writes are measured against their cap.
constexpr uint64_t kFilesCheckMs = 100;
// Messages handled per poll round, so that a flood cannot starve the
// deadline checks.
constexpr int kMaxMessagesPerRound = 256;
constexpr size_t kMarkerBytes = 256;

uint64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 +
         static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

std::string RandomHex(size_t bytes) {
  auto c = NewIpcConnection("");
  std::string hex = c ? c->key : std::to_string(NowMs());
  return hex.substr(0, bytes * 2);
}

class Socket {
 public:
  Socket() = default;
  explicit Socket(void* s) : s_(s) {}
  ~Socket() {
    if (s_ != nullptr) zmq_close(s_);
  }
  Socket(Socket&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  Socket& operator=(Socket&& o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  void* get() const { return s_; }

 private:
  void* s_ = nullptr;
};

// Receives one whole multipart message without blocking. Nothing when none
// is queued; kCorruption past kMaxFrames or kMaxMessageBytes (the rest of
// that message is read and dropped).
Result<std::optional<std::vector<std::string>>> RecvFrames(void* sock) {
  std::vector<std::string> frames;
  size_t total = 0;
  bool over = false;
  while (true) {
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int n =
        zmq_msg_recv(&msg, sock, frames.empty() && !over ? ZMQ_DONTWAIT : 0);
    if (n < 0) {
      int err = errno;
      zmq_msg_close(&msg);
      if (frames.empty() && !over && err == EAGAIN) {
        return std::optional<std::vector<std::string>>();
      }
      if (err == EINTR) continue;
      return Fail(Code::kIo,
                  std::string("kernel socket: ") + zmq_strerror(err));
    }
    size_t size = zmq_msg_size(&msg);
    total += size;
    if (frames.size() >= kernel::kMaxFrames ||
        total > kernel::kMaxMessageBytes) {
      over = true;
    }
    if (!over) {
      frames.emplace_back(static_cast<const char*>(zmq_msg_data(&msg)), size);
    }
    bool more = zmq_msg_more(&msg) != 0;
    zmq_msg_close(&msg);
    if (!more) break;
  }
  if (over) {
    return Fail(Code::kCorruption,
                "kernel sent a message with too many frames or bytes");
  }
  return std::optional<std::vector<std::string>>(std::move(frames));
}

Status SendFrames(void* sock, const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    int flags = i + 1 < frames.size() ? ZMQ_SNDMORE : 0;
    if (zmq_send(sock, frames[i].data(), frames[i].size(), flags) < 0) {
      return Fail(Code::kIo,
                  std::string("sending to the kernel: ") + zmq_strerror(errno));
    }
  }
  return {};
}

// The size an output costs against the cell's output cap.
uint64_t Cost(const nlohmann::json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>().size();
  if (v.is_object() || v.is_array()) {
    uint64_t sum = 0;
    for (const auto& x : v) sum += Cost(x);
    return sum;
  }
  return 8;
}

class Client final : public KernelClient {
 public:
  Client(const KernelConnection& c, KernelProcess& p, const KernelOptions& o)
      : conn_(c), process_(p), options_(o), session_(RandomHex(16)) {}
  ~Client() override {
    shell_ = Socket();
    iopub_ = Socket();
    control_ = Socket();
    hb_ = Socket();
    if (ctx_ != nullptr) zmq_ctx_term(ctx_);
  }

  Status Open(const std::string& host_prefix);
  Status WaitReady();
  KernelCellOutcome Execute(const CellInput& cell) override;
  void Shutdown() override;

 private:
  struct Cell {
    std::string msg_id;
    bool idle = false;
    bool replied = false;
    std::string reply_status;
    uint64_t cap = 0;
    uint64_t kept = 0;
    uint64_t dropped = 0;
    bool clear_on_next = false;
    std::string bad;  // why the cell failed on a hostile message
    KernelCellOutcome* out = nullptr;
  };

  Result<UniqueFd> WaitForSocket(const std::string& path, uint64_t deadline);
  // While the kernel starts: kIo once its files pass the egg's output
  // limit (options_.files_over_limit), measured every kFilesCheckMs.
  Status StartingFilesWithinLimit();
  Result<Socket> Connect(int type, int fd);
  Status Send(void* sock, const std::string& type,
              const nlohmann::json& content, std::string* msg_id);
  // Polls once (up to timeout_ms) and hands every decoded message to
  // `on`, with the channel it came from. kVerificationFailed on a bad
  // signature, kCorruption on a malformed message.
  Status PollOnce(int timeout_ms,
                  const std::function<void(char, const Message&)>& on);
  void PingHeartbeat();
  bool HeartbeatLate() const;
  void OnIopub(Cell& cell, const Message& m);
  void Keep(Cell& cell, nlohmann::json output);
  void Stream(Cell& cell, const std::string& name, const std::string& text);
  // clear_output: earlier outputs go, and with them the raw stream text,
  // so that the raw streams stay the text of the stream outputs.
  void Clear(Cell& cell) {
    cell.out->outputs = nlohmann::json::array();
    cell.out->result.stdout_data.bytes.clear();
    cell.out->result.stderr_data.bytes.clear();
    cell.clear_on_next = false;
  }

  KernelConnection conn_;
  KernelProcess& process_;
  KernelOptions options_;
  std::string session_;
  uint64_t counter_ = 0;
  void* ctx_ = nullptr;
  Socket shell_, iopub_, control_, hb_;
  std::vector<UniqueFd> socket_fds_;
  uint64_t last_ping_ = 0;
  uint64_t last_pong_ = 0;
  uint64_t next_files_check_ = 0;
};

Status Client::StartingFilesWithinLimit() {
  if (!options_.files_over_limit || NowMs() < next_files_check_) return {};
  next_files_check_ = NowMs() + kFilesCheckMs;
  if (!options_.files_over_limit()) return {};
  return Fail(Code::kIo,
              "its files passed the egg's output limit while it started");
}

Result<UniqueFd> Client::WaitForSocket(const std::string& path,
                                       uint64_t deadline) {
  while (true) {
    // O_PATH | O_NOFOLLOW pins the inode the kernel bound: a symlink put
    // in the shared folder cannot send egg to some other host socket.
    int fd = open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      UniqueFd owned(fd);
      struct stat st;
      if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        return Fail(Code::kVerificationFailed,
                    "kernel socket '" + path + "' is not a socket");
      }
      return owned;
    }
    if (errno == ELOOP) {
      return Fail(Code::kVerificationFailed,
                  "kernel socket '" + path + "' is a symlink");
    }
    if (errno != ENOENT) return Fail(ErrnoError("opening '" + path + "'"));
    if (auto s = StartingFilesWithinLimit(); !s) return Fail(s.error());
    if (auto end = process_.Ended()) {
      return Fail(Code::kIo, "the kernel ended before it was ready: " + *end);
    }
    if (NowMs() >= deadline) {
      return Fail(Code::kIo, "the kernel did not create its sockets in time");
    }
    usleep(kPollMs * 1000);
  }
}

Result<Socket> Client::Connect(int type, int fd) {
  Socket s(zmq_socket(ctx_, type));
  if (s.get() == nullptr) {
    return Fail(Code::kIo, std::string("zmq_socket: ") + zmq_strerror(errno));
  }
  int zero = 0;
  int64_t max = static_cast<int64_t>(kernel::kMaxMessageBytes);
  int timeout = 1000;
  zmq_setsockopt(s.get(), ZMQ_LINGER, &zero, sizeof(zero));
  zmq_setsockopt(s.get(), ZMQ_MAXMSGSIZE, &max, sizeof(max));
  zmq_setsockopt(s.get(), ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
  if (type == ZMQ_SUB) zmq_setsockopt(s.get(), ZMQ_SUBSCRIBE, "", 0);
  std::string endpoint = "ipc:///proc/self/fd/" + std::to_string(fd);
  if (zmq_connect(s.get(), endpoint.c_str()) != 0) {
    return Fail(Code::kIo, "connecting to the kernel: " +
                               std::string(zmq_strerror(errno)));
  }
  return s;
}

Status Client::Open(const std::string& host_prefix) {
  ctx_ = zmq_ctx_new();
  if (ctx_ == nullptr) return Fail(Code::kIo, "zmq_ctx_new failed");
  uint64_t deadline = NowMs() + options_.startup_ms;
  struct Channel {
    int port;
    int type;
    Socket* socket;
  };
  for (Channel ch : {Channel{conn_.shell_port, ZMQ_DEALER, &shell_},
                     Channel{conn_.iopub_port, ZMQ_SUB, &iopub_},
                     Channel{conn_.control_port, ZMQ_DEALER, &control_},
                     Channel{conn_.hb_port, ZMQ_DEALER, &hb_}}) {
    auto fd =
        WaitForSocket(host_prefix + "-" + std::to_string(ch.port), deadline);
    if (!fd) return Fail(fd.error());
    auto s = Connect(ch.type, fd->get());
    if (!s) return Fail(s.error());
    *ch.socket = std::move(*s);
    socket_fds_.push_back(std::move(*fd));
  }
  return {};
}

Status Client::Send(void* sock, const std::string& type,
                    const nlohmann::json& content, std::string* msg_id) {
  std::string id = session_ + "_" + std::to_string(++counter_);
  if (msg_id != nullptr) *msg_id = id;
  return SendFrames(
      sock, kernel::Encode(conn_.key, kernel::MakeHeader(type, id, session_),
                           nlohmann::json::object(), content));
}

void Client::PingHeartbeat() {
  uint64_t now = NowMs();
  if (now - last_ping_ < options_.heartbeat_interval_ms) return;
  last_ping_ = now;
  // An empty first frame makes the ping look like a REQ to a REP kernel;
  // a ROUTER echo sends the same frames back.
  (void)zmq_send(hb_.get(), "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
  (void)zmq_send(hb_.get(), "ping", 4, ZMQ_DONTWAIT);
}

bool Client::HeartbeatLate() const {
  return options_.heartbeat_timeout_ms != 0 &&
         NowMs() - last_pong_ > options_.heartbeat_timeout_ms;
}

Status Client::PollOnce(int timeout_ms,
                        const std::function<void(char, const Message&)>& on) {
  PingHeartbeat();
  zmq_pollitem_t items[] = {{shell_.get(), 0, ZMQ_POLLIN, 0},
                            {iopub_.get(), 0, ZMQ_POLLIN, 0},
                            {control_.get(), 0, ZMQ_POLLIN, 0},
                            {hb_.get(), 0, ZMQ_POLLIN, 0}};
  int n = zmq_poll(items, 4, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return {};
    return Fail(Code::kIo, std::string("zmq_poll: ") + zmq_strerror(errno));
  }
  static const char kChannel[] = {'s', 'i', 'c', 'h'};
  for (int i = 0; i < 4; ++i) {
    if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
    for (int k = 0; k < kMaxMessagesPerRound; ++k) {
      auto frames = RecvFrames(items[i].socket);
      if (!frames) return Fail(frames.error());
      if (!*frames) break;
      if (kChannel[i] == 'h') {
        last_pong_ = NowMs();
        continue;
      }
      auto m = kernel::Decode(conn_.key, **frames);
      if (!m) return Fail(m.error());
      on(kChannel[i], *m);
    }
  }
  return {};
}

Status Client::WaitReady() {
  uint64_t deadline = NowMs() + options_.startup_ms;
  last_pong_ = NowMs();
  std::vector<std::string> asked;
  bool replied = false;
  bool iopub_live = false;
  uint64_t next_ask = 0;
  // kernel_info is asked again until both its reply and an iopub status
  // for one of the requests arrive: the SUB socket joins late.
  while (!(replied && iopub_live)) {
    if (auto end = process_.Ended()) {
      return Fail(Code::kIo, "the kernel ended before it was ready: " + *end);
    }
    if (auto s = StartingFilesWithinLimit(); !s) return s;
    if (NowMs() >= deadline) {
      return Fail(Code::kIo, "the kernel did not answer kernel_info in time");
    }
    if (NowMs() >= next_ask) {
      std::string id;
      if (auto s = Send(shell_.get(), "kernel_info_request",
                        nlohmann::json::object(), &id);
          !s) {
        return s;
      }
      asked.push_back(id);
      next_ask = NowMs() + 500;
    }
    auto s = PollOnce(kPollMs, [&](char ch, const Message& m) {
      bool ours =
          std::find(asked.begin(), asked.end(), m.parent_msg_id) != asked.end();
      if (!ours) return;
      if (ch == 's' && m.msg_type == "kernel_info_reply") replied = true;
      if (ch == 'i' && m.msg_type == "status") iopub_live = true;
    });
    if (!s) return s;
  }
  last_pong_ = NowMs();
  return {};
}

void Client::Keep(Cell& cell, nlohmann::json output) {
  auto checked = NormalizeOutput(output, "kernel output");
  if (!checked) {
    if (cell.bad.empty()) {
      cell.bad =
          "the kernel sent a malformed output: " + checked.error().message();
    }
    return;
  }
  uint64_t cost = Cost(*checked);
  if (cell.clear_on_next) Clear(cell);
  if (cell.dropped > 0 || cell.kept + cost > cell.cap) {
    cell.dropped += cost;
    return;
  }
  cell.kept += cost;
  cell.out->outputs.push_back(std::move(*checked));
}

void Client::Stream(Cell& cell, const std::string& name,
                    const std::string& text) {
  if (cell.clear_on_next) Clear(cell);
  CapturedStream& raw = name == "stderr" ? cell.out->result.stderr_data
                                         : cell.out->result.stdout_data;
  if (cell.dropped > 0 || cell.kept + text.size() > cell.cap) {
    // Keep what fits, then nothing more from this cell.
    uint64_t room =
        cell.dropped > 0 || cell.kept >= cell.cap ? 0 : cell.cap - cell.kept;
    std::string part = text.substr(0, static_cast<size_t>(room));
    cell.dropped += text.size() - part.size();
    raw.dropped += text.size() - part.size();
    if (part.empty()) return;
    cell.kept += part.size();
    raw.bytes += part;
    cell.out->outputs.push_back(
        {{"output_type", "stream"}, {"name", name}, {"text", part}});
    return;
  }
  cell.kept += text.size();
  raw.bytes += text;
  auto& outs = cell.out->outputs;
  if (!outs.empty() && outs.back()["output_type"] == "stream" &&
      outs.back()["name"] == name) {
    outs.back()["text"] = outs.back()["text"].get<std::string>() + text;
  } else {
    outs.push_back({{"output_type", "stream"}, {"name", name}, {"text", text}});
  }
}

void Client::OnIopub(Cell& cell, const Message& m) {
  if (m.parent_msg_id != cell.msg_id) return;
  const auto& c = m.content;
  auto str = [&](const char* key) -> std::optional<std::string> {
    auto it = c.find(key);
    if (it == c.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  const std::string& t = m.msg_type;
  if (t == "status") {
    if (str("execution_state") == "idle") cell.idle = true;
  } else if (t == "stream") {
    auto name = str("name");
    auto text = str("text");
    if (!name || !text || (*name != "stdout" && *name != "stderr")) {
      if (cell.bad.empty()) cell.bad = "the kernel sent a malformed stream";
      return;
    }
    Stream(cell, *name, *text);
  } else if (t == "display_data" || t == "execute_result") {
    nlohmann::json o = {
        {"output_type", t},
        {"data", c.value("data", nlohmann::json::object())},
        {"metadata", c.value("metadata", nlohmann::json::object())}};
    if (t == "execute_result") {
      auto n = c.find("execution_count");
      o["execution_count"] =
          n != c.end() && n->is_number_integer() ? *n : nlohmann::json();
    }
    Keep(cell, std::move(o));
  } else if (t == "update_display_data") {
    // Replace the data of every earlier output with the same display_id.
    auto tr = c.find("transient");
    if (tr == c.end() || !tr->is_object() || !tr->contains("display_id")) {
      return;
    }
    const auto& id = (*tr)["display_id"];
    auto& outs = cell.out->outputs;
    for (size_t i = 0; i < outs.size(); ++i) {
      auto& o = outs[i];
      if (o.contains("egg_display_id") && o["egg_display_id"] == id) {
        nlohmann::json fresh = {
            {"output_type", o["output_type"]},
            {"data", c.value("data", nlohmann::json::object())},
            {"metadata", c.value("metadata", nlohmann::json::object())}};
        auto checked = NormalizeOutput(fresh, "kernel output");
        if (checked) {
          fresh = *checked;
          fresh["egg_display_id"] = id;
          o = fresh;
        }
      }
    }
  } else if (t == "clear_output") {
    auto wait = c.find("wait");
    if (wait != c.end() && wait->is_boolean() && wait->get<bool>()) {
      cell.clear_on_next = true;
    } else {
      Clear(cell);
    }
  } else if (t == "error") {
    nlohmann::json o = {{"output_type", "error"},
                        {"ename", c.value("ename", nlohmann::json())},
                        {"evalue", c.value("evalue", nlohmann::json())},
                        {"traceback", c.value("traceback", nlohmann::json())}};
    Keep(cell, std::move(o));
  }
  // execute_input, comm_* and unknown types carry nothing to keep.
  if ((t == "display_data" || t == "execute_result") &&
      !cell.out->outputs.empty()) {
    auto tr = c.find("transient");
    if (tr != c.end() && tr->is_object() && tr->contains("display_id")) {
      cell.out->outputs.back()["egg_display_id"] = (*tr)["display_id"];
    }
  }
}

KernelCellOutcome Client::Execute(const CellInput& input) {
  KernelCellOutcome out;
  CellResult& r = out.result;
  r.index = input.index;
  r.id = input.id;
  r.language = input.language;
  Limits limits = MergeLimits(input.limits, DefaultCellLimits());
  uint64_t started = NowMs();
  uint64_t deadline = started + *limits.wall_ms;

  Cell cell;
  cell.out = &out;
  cell.cap = *limits.output_bytes;
  // stop_on_error is false: egg sends one cell at a time and decides itself
  // whether to go on. With true, ipykernel aborts any request that arrives
  // shortly after an error or interrupt, which failed the next cell.
  nlohmann::json content = {
      {"code", input.code},    {"silent", false},
      {"store_history", true}, {"user_expressions", nlohmann::json::object()},
      {"allow_stdin", false},  {"stop_on_error", false}};
  if (auto s = Send(shell_.get(), "execute_request", content, &cell.msg_id);
      !s) {
    r.status = CellStatus::kSessionDied;
    r.note = "the kernel did not take the cell: " + s.error().message();
    out.kernel_dead = true;
    process_.Kill();
    return out;
  }

  // Why the cell is being stopped ("wall_time", "output"), and when the
  // kernel is killed if the interrupt does not end it.
  std::string stopping;
  uint64_t kill_at = 0;
  uint64_t next_interrupt = 0;
  // An interrupt that lands before the kernel starts the cell is lost
  // (ipykernel ignores SIGINT while idle), so it is repeated every second
  // of the grace.
  auto interrupt = [&] {
    (void)Send(control_.get(), "interrupt_request", nlohmann::json::object(),
               nullptr);
    process_.Interrupt();
    next_interrupt = NowMs() + 1000;
  };
  auto stop = [&](const std::string& limit) {
    if (!stopping.empty()) return;
    stopping = limit;
    interrupt();
    kill_at = NowMs() + options_.interrupt_grace_ms;
  };
  std::string dead;
  uint64_t next_files_check = NowMs() + kFilesCheckMs;
  while (!(cell.idle && cell.replied)) {
    if (auto end = process_.Ended()) {
      dead = "the kernel died: " + *end;
      break;
    }
    if (options_.cancel != nullptr && options_.cancel->load()) {
      dead = "interrupted while running";
      break;
    }
    if (stopping.empty() && NowMs() >= deadline) stop("wall_time");
    if (stopping.empty() && cell.dropped > 0) stop("output");
    if (options_.files_over_limit && NowMs() >= next_files_check) {
      next_files_check = NowMs() + kFilesCheckMs;
      if (options_.files_over_limit()) {
        stopping = "output";
        dead = "the kernel was killed: the cell's files passed their cap";
        break;
      }
    }
    if (!cell.bad.empty()) break;
    if (!stopping.empty() && NowMs() >= next_interrupt) interrupt();
    if (kill_at != 0 && NowMs() >= kill_at) {
      dead = "the kernel did not stop after an interrupt and was killed";
      break;
    }
    if (HeartbeatLate()) {
      dead = "the kernel stopped answering its heartbeat for " +
             std::to_string(options_.heartbeat_timeout_ms / 1000) + " s";
      break;
    }
    auto s = PollOnce(kPollMs, [&](char ch, const Message& m) {
      if (ch == 'i') {
        OnIopub(cell, m);
      } else if (ch == 's' && m.msg_type == "execute_reply" &&
                 m.parent_msg_id == cell.msg_id) {
        cell.replied = true;
        auto st = m.content.find("status");
        if (st != m.content.end() && st->is_string()) {
          cell.reply_status = st->get<std::string>();
        }
        auto n = m.content.find("execution_count");
        if (n != m.content.end() && n->is_number_integer()) {
          out.execution_count = n->get<int64_t>();
        }
      }
    });
    if (!s) {
      cell.bad = s.error().code() == Code::kVerificationFailed
                     ? "rejected a kernel message: " + s.error().message()
                     : "the kernel broke the protocol: " + s.error().message();
      break;
    }
  }
  r.duration_ms = NowMs() - started;
  // A cell that finished in the round its outputs passed the cap was not
  // interrupted, but its outputs were still cut.
  if (stopping.empty() && cell.dropped > 0) stopping = "output";

  // A marker says what was cut; it is not counted against the cap.
  if (cell.dropped > 0) {
    std::string marker = "\n[egg: output limit of " + std::to_string(cell.cap) +
                         " bytes reached; " + std::to_string(cell.dropped) +
                         " bytes dropped]\n";
    out.outputs.push_back({{"output_type", "stream"},
                           {"name", "stderr"},
                           {"text", marker.substr(0, kMarkerBytes)}});
    uint64_t counted = r.stdout_data.dropped + r.stderr_data.dropped;
    if (cell.dropped > counted) r.stdout_data.dropped += cell.dropped - counted;
  }
  for (auto& o : out.outputs) o.erase("egg_display_id");

  if (!dead.empty() || !cell.bad.empty()) {
    // A kernel that lies cannot be trusted with the next cell either.
    process_.Kill();
    out.kernel_dead = true;
    r.note = dead.empty() ? cell.bad : dead;
    if (!stopping.empty()) {
      r.status = CellStatus::kLimit;
      r.limit = stopping;
      r.note = (stopping == "wall_time" ? "past the wall time limit; "
                                        : "past the output limit; ") +
               r.note;
    } else {
      r.status = dead.empty() ? CellStatus::kError : CellStatus::kSessionDied;
    }
    return out;
  }
  if (!stopping.empty()) {
    r.status = CellStatus::kLimit;
    r.limit = stopping;
    r.note = stopping == "wall_time" ? "interrupted at the wall time limit"
                                     : "outputs cut at the output limit";
    return out;
  }
  if (cell.reply_status == "ok") {
    r.status = CellStatus::kOk;
  } else {
    r.status = CellStatus::kError;
    r.exit_code = 1;
    for (const auto& o : out.outputs) {
      if (o["output_type"] == "error") {
        r.note = o["ename"].get<std::string>() + ": " +
                 o["evalue"].get<std::string>();
      }
    }
    if (r.note.empty())
      r.note = "execute_reply status '" + cell.reply_status.substr(0, 32) + "'";
  }
  return out;
}

void Client::Shutdown() {
  if (!process_.Ended()) {
    std::string id;
    if (Send(control_.get(), "shutdown_request", {{"restart", false}}, &id)) {
      uint64_t deadline = NowMs() + 2000;
      while (NowMs() < deadline && !process_.Ended()) {
        if (!PollOnce(kPollMs, [](char, const Message&) {})) break;
      }
    }
  }
  process_.Kill();
}

}  // namespace

Result<std::unique_ptr<KernelClient>> KernelClient::Connect(
    const std::string& host_prefix, const KernelConnection& connection,
    KernelProcess& process, const KernelOptions& options) {
  auto client = std::make_unique<Client>(connection, process, options);
  if (auto s = client->Open(host_prefix); !s) return Fail(s.error());
  if (auto s = client->WaitReady(); !s) return Fail(s.error());
  return std::unique_ptr<KernelClient>(std::move(client));
}

}  // namespace egg

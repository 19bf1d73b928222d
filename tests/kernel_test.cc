// The Jupyter kernel path: the message codec, kernelspecs, and the client
// against Debian's real ipykernel started on the host with an IPC
// connection file, then through egg-agent.
#include "egg/kernel.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "cli_test_util.h"
#include "egg/notebook.h"
#include "egg/sandbox.h"
#include "gtest/gtest.h"
#include "kernel/message.h"

namespace egg {
namespace {

using egg_test::EggBin;
using egg_test::ReadFile;
using egg_test::RunEgg;

namespace fs = std::filesystem;

std::string MakeTempDir() {
  char templ[] = "/tmp/egg-kernel-test-XXXXXX";
  char* made = mkdtemp(templ);
  return made == nullptr ? "" : made;
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string AgentPath() { return std::string(EGG_BINARY_DIR) + "/egg-agent"; }

bool HostHasIpykernel() {
  return FindKernelSpec("/", "python3").has_value() &&
         system("/usr/bin/python3 -c 'import ipykernel' >/dev/null 2>&1") == 0;
}

std::string AllText(const nlohmann::json& outputs, const char* type) {
  std::string text;
  for (const auto& o : outputs) {
    if (o["output_type"] != type) continue;
    if (o.contains("text")) text += o["text"].get<std::string>();
    if (o.contains("data") && o["data"].contains("text/plain")) {
      text += o["data"]["text/plain"].get<std::string>();
    }
  }
  return text;
}

// ---- message codec ---------------------------------------------------------

TEST(KernelMessage, SignMatchesHmacSha256TestVector) {
  // RFC 4231, test case 2.
  EXPECT_EQ(kernel::Sign("Jefe", {"what do ya ", "want for nothing?"}),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(KernelMessage, DecodesWhatItEncodes) {
  auto frames =
      kernel::Encode("k", kernel::MakeHeader("status", "m1", "s"),
                     {{"msg_id", "p1"}}, {{"execution_state", "idle"}});
  frames.insert(frames.begin(), "topic");
  auto m = kernel::Decode("k", frames);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->msg_type, "status");
  EXPECT_EQ(m->parent_msg_id, "p1");
  EXPECT_EQ(m->content["execution_state"], "idle");
}

TEST(KernelMessage, RejectsWrongKey) {
  auto frames =
      kernel::Encode("other", kernel::MakeHeader("status", "m", "s"),
                     nlohmann::json::object(), nlohmann::json::object());
  auto m = kernel::Decode("k", frames);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Code::kVerificationFailed);
}

TEST(KernelMessage, RejectsUnsignedMessage) {
  auto frames =
      kernel::Encode("k", kernel::MakeHeader("status", "m", "s"),
                     nlohmann::json::object(), nlohmann::json::object());
  frames[1] = "";
  auto m = kernel::Decode("k", frames);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Code::kVerificationFailed);
}

TEST(KernelMessage, RejectsTamperedContent) {
  auto frames = kernel::Encode("k", kernel::MakeHeader("stream", "m", "s"),
                               nlohmann::json::object(), {{"text", "a"}});
  frames.back() = R"({"text":"b"})";
  EXPECT_EQ(kernel::Decode("k", frames).error().code(),
            Code::kVerificationFailed);
}

TEST(KernelMessage, RejectsMissingDelimiter) {
  auto frames =
      kernel::Encode("k", kernel::MakeHeader("status", "m", "s"),
                     nlohmann::json::object(), nlohmann::json::object());
  frames[0] = "<IDS|MSX>";
  EXPECT_EQ(kernel::Decode("k", frames).error().code(), Code::kCorruption);
}

TEST(KernelMessage, RejectsTooFewFrames) {
  std::vector<std::string> frames = {"<IDS|MSG>", "sig", "{}", "{}"};
  EXPECT_EQ(kernel::Decode("k", frames).error().code(), Code::kCorruption);
}

TEST(KernelMessage, RejectsDeepJsonEvenWhenSigned) {
  std::string deep(1000, '[');
  std::vector<std::string> parts = {
      kernel::MakeHeader("status", "m", "s").dump(), "{}", "{}",
      "{\"a\":" + deep};
  std::vector<std::string> frames = {"<IDS|MSG>", kernel::Sign("k", parts)};
  frames.insert(frames.end(), parts.begin(), parts.end());
  EXPECT_EQ(kernel::Decode("k", frames).error().code(), Code::kCorruption);
}

TEST(KernelMessage, RejectsHeaderWithoutType) {
  std::vector<std::string> parts = {R"({"msg_id":"m"})", "{}", "{}", "{}"};
  std::vector<std::string> frames = {"<IDS|MSG>", kernel::Sign("k", parts)};
  frames.insert(frames.end(), parts.begin(), parts.end());
  EXPECT_EQ(kernel::Decode("k", frames).error().code(), Code::kCorruption);
}

// ---- kernelspecs and connection files ---------------------------------------

TEST(KernelSpecs, ParsesIpykernelSpec) {
  auto spec = ParseKernelSpec(
      R"({"argv": ["python3", "-m", "ipykernel_launcher", "-f",
          "{connection_file}"], "display_name": "Python 3",
          "language": "python", "interrupt_mode": "message"})",
      "python3");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->argv.size(), 5u);
  EXPECT_EQ(spec->language, "python");
  EXPECT_TRUE(spec->interrupt_by_message);
}

TEST(KernelSpecs, RejectsEmptyArgv) {
  EXPECT_EQ(ParseKernelSpec(R"({"argv": []})", "x").error().code(),
            Code::kInvalidArgument);
}

TEST(KernelSpecs, RejectsNonStringArgv) {
  EXPECT_EQ(ParseKernelSpec(R"({"argv": ["a", 1]})", "x").error().code(),
            Code::kInvalidArgument);
}

TEST(KernelSpecs, RejectsUnknownInterruptMode) {
  EXPECT_EQ(ParseKernelSpec(R"({"argv": ["a"], "interrupt_mode": "x"})", "x")
                .error()
                .code(),
            Code::kInvalidArgument);
}

TEST(KernelSpecs, RejectsNameThatLeavesTheKernelsFolder) {
  EXPECT_EQ(FindKernelSpec("/", "../x").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(FindKernelSpec("/", ".hidden").error().code(),
            Code::kInvalidArgument);
}

TEST(KernelSpecs, SymlinkInRuntimeCannotReachHostFiles) {
  std::string root = MakeTempDir();
  fs::create_directories(root + "/usr/share/jupyter/kernels/evil");
  // A host file with a valid kernelspec that the runtime points at.
  std::string host_spec = MakeTempDir() + "/kernel.json";
  WriteText(host_spec, R"({"argv": ["host-only"]})");
  fs::create_symlink(host_spec,
                     root + "/usr/share/jupyter/kernels/evil/kernel.json");
  auto spec = FindKernelSpec(root, "evil");
  EXPECT_FALSE(spec) << "read the host's file through a runtime symlink";
  fs::remove_all(root);
  fs::remove_all(fs::path(host_spec).parent_path());
}

TEST(KernelSpecs, FindsSpecInRuntimeFolder) {
  std::string root = MakeTempDir();
  fs::create_directories(root + "/usr/share/jupyter/kernels/k1");
  WriteText(root + "/usr/share/jupyter/kernels/k1/kernel.json",
            R"({"argv": ["run", "{connection_file}"], "language": "x"})");
  auto spec = FindKernelSpec(root, "k1");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->argv[0], "run");
  EXPECT_EQ(FindKernelSpec(root, "k2").error().code(), Code::kNotFound);
  fs::remove_all(root);
}

TEST(KernelSpecs, DefaultNamesForNotebookLanguages) {
  EXPECT_EQ(DefaultKernelName("Python"), "python3");
  EXPECT_EQ(DefaultKernelName("R"), "ir");
  EXPECT_EQ(DefaultKernelName("julia"), "julia");
}

TEST(KernelConnections, EachConnectionHasAFreshKey) {
  auto a = NewIpcConnection("/x/k");
  auto b = NewIpcConnection("/x/k");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->key.size(), 64u);
  EXPECT_NE(a->key, b->key);
  auto j = nlohmann::json::parse(ConnectionFileJson(*a));
  EXPECT_EQ(j["transport"], "ipc");
  EXPECT_EQ(j["signature_scheme"], "hmac-sha256");
  EXPECT_EQ(j["key"], a->key);
}

// A process that never ends, for connecting to sockets nobody serves.
class NeverEnds : public KernelProcess {
 public:
  std::optional<std::string> Ended() override { return std::nullopt; }
  void Kill() override {}
};

TEST(KernelConnections, SymlinkedSocketIsRefused) {
  std::string dir = MakeTempDir();
  // The sandbox could point the socket name at any host socket.
  fs::create_symlink("/run/some-host.sock", dir + "/k-1");
  auto conn = NewIpcConnection(dir + "/k");
  NeverEnds process;
  KernelOptions options;
  options.startup_ms = 2000;
  auto client = KernelClient::Connect(dir + "/k", *conn, process, options);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code(), Code::kVerificationFailed);
  fs::remove_all(dir);
}

TEST(KernelConnections, RegularFileInPlaceOfSocketIsRefused) {
  std::string dir = MakeTempDir();
  WriteText(dir + "/k-1", "");
  auto conn = NewIpcConnection(dir + "/k");
  NeverEnds process;
  auto client = KernelClient::Connect(dir + "/k", *conn, process, {});
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code(), Code::kVerificationFailed);
  fs::remove_all(dir);
}

TEST(KernelConnections, MissingKernelTimesOut) {
  std::string dir = MakeTempDir();
  auto conn = NewIpcConnection(dir + "/k");
  NeverEnds process;
  KernelOptions options;
  options.startup_ms = 300;
  auto client = KernelClient::Connect(dir + "/k", *conn, process, options);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code(), Code::kIo);
  fs::remove_all(dir);
}

// ---- the real ipykernel ----------------------------------------------------

class IpykernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HostHasIpykernel()) GTEST_SKIP() << "python3-ipykernel is missing";
    // A loaded host can take seconds to deliver an interrupt; tests that
    // prove the kill after the grace set a short one themselves.
    KernelOptions options;
    options.interrupt_grace_ms = 20000;
    Start(options);
  }
  void TearDown() override {
    if (client_) client_->Shutdown();
    client_.reset();
    process_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void Start(const KernelOptions& options) {
    if (client_) client_->Shutdown();
    client_.reset();
    process_.reset();
    if (dir_.empty()) dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    std::string prefix = dir_ + "/k" + std::to_string(++generation_);
    auto conn = NewIpcConnection(prefix);
    ASSERT_TRUE(conn);
    WriteText(dir_ + "/conn.json", ConnectionFileJson(*conn));
    auto spec = FindKernelSpec("/", "python3");
    ASSERT_TRUE(spec);
    std::vector<std::string> env = {"PATH=/usr/bin:/bin", "HOME=" + dir_,
                                    "LANG=C.UTF-8"};
    auto process = StartLocalKernel(*spec, dir_ + "/conn.json", env);
    ASSERT_TRUE(process) << process.error().message();
    process_ = std::move(*process);
    auto client = KernelClient::Connect(prefix, *conn, *process_, options);
    ASSERT_TRUE(client) << client.error().message();
    client_ = std::move(*client);
  }

  KernelCellOutcome Run(const std::string& code, Limits limits = {}) {
    CellInput cell;
    cell.index = static_cast<uint32_t>(cells_++);
    cell.id = "c" + std::to_string(cell.index);
    cell.language = "python";
    cell.code = code;
    cell.limits = limits;
    return client_->Execute(cell);
  }

  std::string dir_;
  int generation_ = 0;
  int cells_ = 0;
  std::unique_ptr<KernelProcess> process_;
  std::unique_ptr<KernelClient> client_;
};

TEST_F(IpykernelTest, LastExpressionIsExecuteResult) {
  auto out = Run("6 * 7");
  ASSERT_EQ(out.result.status, CellStatus::kOk) << out.result.note;
  ASSERT_EQ(out.outputs.size(), 1u) << out.outputs.dump();
  EXPECT_EQ(out.outputs[0]["output_type"], "execute_result");
  EXPECT_EQ(out.outputs[0]["data"]["text/plain"], "42");
  EXPECT_EQ(out.outputs[0]["execution_count"], 1);
  EXPECT_EQ(out.execution_count, 1);
}

TEST_F(IpykernelTest, StateLivesFromCellToCell) {
  ASSERT_EQ(Run("x = 41").result.status, CellStatus::kOk);
  auto out = Run("x + 1");
  EXPECT_EQ(AllText(out.outputs, "execute_result"), "42");
}

TEST_F(IpykernelTest, DisplayDataKeepsEveryMimeType) {
  auto out =
      Run("from IPython.display import display, HTML, Markdown\n"
          "display(HTML('<b>bold</b>'))\n"
          "display(Markdown('*md*'))\n");
  ASSERT_EQ(out.result.status, CellStatus::kOk) << out.result.note;
  ASSERT_EQ(out.outputs.size(), 2u) << out.outputs.dump();
  EXPECT_EQ(out.outputs[0]["output_type"], "display_data");
  EXPECT_EQ(out.outputs[0]["data"]["text/html"], "<b>bold</b>");
  EXPECT_EQ(out.outputs[1]["data"]["text/markdown"], "*md*");
}

TEST_F(IpykernelTest, UpdateDisplayReplacesEarlierOutput) {
  auto out =
      Run("from IPython.display import display\n"
          "h = display('first', display_id=True)\n"
          "h.update('second')\n");
  ASSERT_EQ(out.result.status, CellStatus::kOk) << out.result.note;
  ASSERT_EQ(out.outputs.size(), 1u) << out.outputs.dump();
  EXPECT_EQ(out.outputs[0]["data"]["text/plain"], "'second'");
}

TEST_F(IpykernelTest, ClearOutputRemovesEarlierOutput) {
  auto out =
      Run("from IPython.display import clear_output\n"
          "print('gone')\n"
          "clear_output()\n"
          "print('kept')\n");
  ASSERT_EQ(out.result.status, CellStatus::kOk) << out.result.note;
  EXPECT_EQ(AllText(out.outputs, "stream"), "kept\n");
}

TEST_F(IpykernelTest, ErrorCarriesNameValueAndTraceback) {
  auto out = Run("1 / 0");
  EXPECT_EQ(out.result.status, CellStatus::kError);
  ASSERT_EQ(out.outputs.size(), 1u) << out.outputs.dump();
  const auto& e = out.outputs[0];
  EXPECT_EQ(e["output_type"], "error");
  EXPECT_EQ(e["ename"], "ZeroDivisionError");
  EXPECT_EQ(e["evalue"], "division by zero");
  EXPECT_FALSE(e["traceback"].empty());
  EXPECT_NE(out.result.note.find("ZeroDivisionError"), std::string::npos);
  EXPECT_FALSE(out.kernel_dead);
}

TEST_F(IpykernelTest, StreamsKeepTheirNames) {
  auto out =
      Run("import sys\nprint('to out')\nprint('to err', file=sys.stderr)");
  ASSERT_EQ(out.result.status, CellStatus::kOk);
  EXPECT_EQ(out.result.stdout_data.bytes, "to out\n");
  EXPECT_EQ(out.result.stderr_data.bytes, "to err\n");
  bool saw_err = false;
  for (const auto& o : out.outputs) {
    if (o["output_type"] == "stream" && o["name"] == "stderr") saw_err = true;
  }
  EXPECT_TRUE(saw_err) << out.outputs.dump();
}

TEST_F(IpykernelTest, MagicsRunAsInJupyter) {
  auto timed = Run("%time y = sum(range(10))");
  ASSERT_EQ(timed.result.status, CellStatus::kOk) << timed.result.note;
  EXPECT_NE(AllText(timed.outputs, "stream").find("Wall time"),
            std::string::npos)
      << timed.outputs.dump();
  auto shell = Run("!echo egg-shell-line");
  ASSERT_EQ(shell.result.status, CellStatus::kOk) << shell.result.note;
  EXPECT_NE(AllText(shell.outputs, "stream").find("egg-shell-line"),
            std::string::npos)
      << shell.outputs.dump();
}

TEST_F(IpykernelTest, KernelThatDiesMidCellFailsTheCellWithReason) {
  auto out = Run("print('before')\nimport os\nos._exit(3)");
  EXPECT_EQ(out.result.status, CellStatus::kSessionDied);
  EXPECT_TRUE(out.kernel_dead);
  EXPECT_NE(out.result.note.find("exited with status 3"), std::string::npos)
      << out.result.note;
}

TEST_F(IpykernelTest, KernelKilledBySignalSaysWhichSignal) {
  auto out = Run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)");
  EXPECT_EQ(out.result.status, CellStatus::kSessionDied);
  EXPECT_NE(out.result.note.find("signal 9"), std::string::npos)
      << out.result.note;
}

TEST_F(IpykernelTest, CellPastWallTimeIsInterruptedAndKernelSurvives) {
  Limits limits;
  limits.wall_ms = 1500;
  auto out = Run("import time\ntime.sleep(120)", limits);
  EXPECT_EQ(out.result.status, CellStatus::kLimit);
  EXPECT_EQ(out.result.limit, "wall_time");
  EXPECT_FALSE(out.kernel_dead) << out.result.note;
  EXPECT_LT(out.result.duration_ms, 60000u);
  auto next = Run("'alive'");
  EXPECT_EQ(next.result.status, CellStatus::kOk) << next.result.note;
}

TEST_F(IpykernelTest, CellIgnoringInterruptIsKilled) {
  KernelOptions options;
  options.interrupt_grace_ms = 1000;
  Start(options);
  Limits limits;
  limits.wall_ms = 1500;
  auto out =
      Run("import signal, time\n"
          "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
          "while True:\n"
          "    time.sleep(0.05)\n",
          limits);
  EXPECT_EQ(out.result.status, CellStatus::kLimit);
  EXPECT_EQ(out.result.limit, "wall_time");
  EXPECT_TRUE(out.kernel_dead);
  EXPECT_TRUE(process_->Ended().has_value());
}

TEST_F(IpykernelTest, OutputFloodIsCutMarkedAndCounted) {
  Limits limits;
  limits.output_bytes = 10000;
  auto out =
      Run("import sys\n"
          "for i in range(200000):\n"
          "    sys.stdout.write('x' * 100 + '\\n')\n",
          limits);
  EXPECT_EQ(out.result.status, CellStatus::kLimit);
  EXPECT_EQ(out.result.limit, "output");
  EXPECT_LE(out.result.stdout_data.bytes.size(), 10000u);
  EXPECT_GT(out.result.stdout_data.dropped, 0u);
  std::string text = AllText(out.outputs, "stream");
  EXPECT_NE(text.find("[egg: output limit of 10000 bytes reached"),
            std::string::npos);
  EXPECT_LE(text.size(), 10000u + 256u);
}

TEST_F(IpykernelTest, ForgedIopubMessageIsRejected) {
  auto out =
      Run("from jupyter_client.session import Session\n"
          "k = get_ipython().kernel\n"
          "bad = Session(key=b'not-the-key', session=k.session.session)\n"
          "bad.send(k.iopub_socket, 'stream',\n"
          "         {'name': 'stdout', 'text': 'FOR' + 'GED'},\n"
          "         parent=k.get_parent('shell'), ident=b'stream')\n"
          "import time; time.sleep(0.5)\n");
  EXPECT_EQ(out.result.status, CellStatus::kError);
  EXPECT_NE(out.result.note.find("signature"), std::string::npos)
      << out.result.note;
  EXPECT_EQ(out.outputs.dump().find("FORGED"), std::string::npos);
  EXPECT_TRUE(out.kernel_dead);
}

TEST_F(IpykernelTest, UnsignedIopubMessageIsRejected) {
  auto out = Run(
      "import json\n"
      "k = get_ipython().kernel\n"
      "p = k.get_parent('shell')['header']\n"
      "h = dict(p, msg_id='x', msg_type='stream')\n"
      "k.iopub_socket.send_multipart([b'stream', b'<IDS|MSG>', b'',\n"
      "    json.dumps(h, default=str).encode(),\n"
      "    json.dumps(p, default=str).encode(), b'{}',\n"
      "    json.dumps({'name': 'stdout', 'text': 'UNSI' + 'GNED'}).encode()])\n"
      "import time; time.sleep(0.5)\n");
  EXPECT_EQ(out.result.status, CellStatus::kError);
  EXPECT_NE(out.result.note.find("not signed"), std::string::npos)
      << out.result.note << out.outputs.dump();
  EXPECT_EQ(out.outputs.dump().find("UNSIGNED"), std::string::npos);
}

TEST_F(IpykernelTest, MessageWithTooManyFramesIsRejected) {
  auto out =
      Run("k = get_ipython().kernel\n"
          "k.iopub_socket.send_multipart([b'x'] * 100)\n"
          "import time; time.sleep(0.5)\n");
  EXPECT_EQ(out.result.status, CellStatus::kError);
  EXPECT_NE(out.result.note.find("too many frames"), std::string::npos)
      << out.result.note;
  EXPECT_TRUE(out.kernel_dead);
}

TEST_F(IpykernelTest, MalformedOutputFailsTheCell) {
  auto out =
      Run("k = get_ipython().kernel\n"
          "k.session.send(k.iopub_socket, 'display_data',\n"
          "               {'data': 'not-a-bundle', 'metadata': {}},\n"
          "               parent=k.get_parent('shell'), ident=b'display')\n"
          "import time; time.sleep(0.5)\n");
  EXPECT_EQ(out.result.status, CellStatus::kError);
  EXPECT_NE(out.result.note.find("malformed output"), std::string::npos)
      << out.result.note;
}

// ---- through egg-agent (no sandbox) -----------------------------------------

TEST(KernelThroughAgent, RunsCellsAndRestartsADeadKernel) {
  if (!HostHasIpykernel()) GTEST_SKIP() << "python3-ipykernel is missing";
  std::string dir = MakeTempDir();
  fs::create_directories(dir + "/exchange");
  auto host = StartLocalAgent(AgentPath());
  ASSERT_TRUE(host) << host.error().message();
  KernelRunSetup setup;
  setup.spec = *FindKernelSpec("/", "python3");
  setup.exchange_host_dir = dir + "/exchange";
  setup.exchange_sandbox_dir = dir + "/exchange";
  RunOptions options;
  options.setup.cwd = dir;
  options.setup.cell_dir = dir;
  options.setup.env = {"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8"};
  std::vector<CellInput> cells(4);
  const char* code[] = {"v = 5\nv * 2", "import os\nos._exit(7)",
                        "'v' in dir()", "print('done')"};
  for (uint32_t i = 0; i < 4; ++i) {
    cells[i].index = i;
    cells[i].id = "c" + std::to_string(i);
    cells[i].language = "python";
    cells[i].code = code[i];
  }
  auto report = RunCellsWithKernel(cells, **host, options, setup);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->cells.size(), 4u);
  EXPECT_EQ(report->cells[0].status, CellStatus::kOk) << report->cells[0].note;
  EXPECT_EQ(report->cells[1].status, CellStatus::kSessionDied);
  EXPECT_NE(report->cells[1].note.find("exited with status 7"),
            std::string::npos)
      << report->cells[1].note;
  EXPECT_TRUE(report->cells[2].fresh_session);
  EXPECT_EQ(report->cells[3].status, CellStatus::kOk);
  EXPECT_EQ(report->cells[3].stdout_data.bytes, "done\n");

  // The outputs land where RunFromHatch reads them.
  NotebookRun run = RunFromHatch(*report, "");
  ASSERT_EQ(run.cells.size(), 4u);
  EXPECT_EQ(run.cells[0].outputs[0]["data"]["text/plain"], "10");
  EXPECT_EQ(run.cells[2].outputs[0]["data"]["text/plain"], "False");
  fs::remove_all(dir);
}

TEST(KernelThroughAgent, IrkernelGivesRichOutputsAndErrors) {
  auto spec = FindKernelSpec("/", "ir");
  if (!spec) GTEST_SKIP() << "r-cran-irkernel is missing";
  std::string dir = MakeTempDir();
  fs::create_directories(dir + "/exchange");
  auto host = StartLocalAgent(AgentPath());
  ASSERT_TRUE(host) << host.error().message();
  KernelRunSetup setup;
  setup.spec = *spec;
  setup.exchange_host_dir = dir + "/exchange";
  setup.exchange_sandbox_dir = dir + "/exchange";
  setup.options.heartbeat_timeout_ms = 0;
  RunOptions options;
  options.setup.cwd = dir;
  options.setup.cell_dir = dir;
  options.setup.env = {"PATH=/usr/bin:/bin", "HOME=" + dir, "LANG=C.UTF-8"};
  std::vector<CellInput> cells(3);
  const char* code[] = {"x <- 6 * 7\nx", "data.frame(a = 1:2, b = c('u', 'v'))",
                        "stop('boom')"};
  for (uint32_t i = 0; i < 3; ++i) {
    cells[i].index = i;
    cells[i].id = "r" + std::to_string(i);
    cells[i].language = "r";
    cells[i].code = code[i];
  }
  auto report = RunCellsWithKernel(cells, **host, options, setup);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->cells[0].status, CellStatus::kOk) << report->cells[0].note;
  EXPECT_EQ(report->cells[1].status, CellStatus::kOk) << report->cells[1].note;
  EXPECT_EQ(report->cells[2].status, CellStatus::kError);
  NotebookRun run = RunFromHatch(*report, "");
  ASSERT_EQ(run.cells.size(), 3u);
  EXPECT_NE(run.cells[0].outputs.dump().find("42"), std::string::npos)
      << run.cells[0].outputs.dump();
  // IRkernel's rich data frame: HTML beside the plain text.
  EXPECT_NE(run.cells[1].outputs.dump().find("text/html"), std::string::npos)
      << run.cells[1].outputs.dump();
  EXPECT_NE(run.cells[2].outputs.dump().find("boom"), std::string::npos)
      << run.cells[2].outputs.dump();
  fs::remove_all(dir);
}

// ---- through the namespaces sandbox -----------------------------------------

bool CanSandbox() { return ProbeSandboxHost().user_namespaces; }

std::vector<CellInput> PythonCells(const std::vector<std::string>& code) {
  std::vector<CellInput> cells;
  for (size_t i = 0; i < code.size(); ++i) {
    CellInput c;
    c.index = static_cast<uint32_t>(i);
    c.id = "c" + std::to_string(i);
    c.language = "python";
    c.code = code[i];
    cells.push_back(c);
  }
  return cells;
}

// A sandbox run on the host's /usr with /out and the kernel's exchange
// folder under `dir` (the exchange folder open to the sandbox's user).
SandboxRunSetup KernelSandboxSetup(const std::string& dir) {
  for (const char* sub : {"/exchange", "/out"}) {
    fs::create_directories(dir + sub);
  }
  if (geteuid() == 0) chmod((dir + "/exchange").c_str(), 0777);
  SandboxRunSetup setup;
  setup.host_runtime = true;
  setup.output_dir = dir + "/out";
  setup.exchange_dir = dir + "/exchange";
  return setup;
}

TEST(KernelInSandbox, IpykernelRunsInsideTheNamespacesSandbox) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  if (!HostHasIpykernel()) GTEST_SKIP() << "python3-ipykernel is missing";
  std::string dir = MakeTempDir();
  SandboxRunSetup setup = KernelSandboxSetup(dir);
  setup.agent.agent = AgentPath();
  setup.agent.drivers_dir = std::string(EGG_BINARY_DIR) + "/drivers";
  KernelRunSetup kernel;
  kernel.spec = *FindKernelSpec("/", "python3");
  kernel.exchange_host_dir = dir + "/exchange";
  kernel.exchange_sandbox_dir = kSandboxExchangeDir;
  RunOptions options;
  options.runner = [&](const std::vector<CellInput>& c, AgentHost& host,
                       const RunOptions& o) {
    return RunCellsWithKernel(c, host, o, kernel);
  };
  auto cells =
      PythonCells({"import os\nos.getpid()",
                   "import socket\ns = socket.socket()\ns.settimeout(2)\n"
                   "s.connect(('1.1.1.1', 53))",
                   "open('/out/made-by-kernel.txt', 'w').write('hi')"});
  auto report = RunCellsInSandbox(cells, setup, options);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->cells.size(), 3u);
  EXPECT_EQ(report->cells[0].status, CellStatus::kOk) << report->cells[0].note;
  // No network inside: the connect fails in the kernel, as an error.
  EXPECT_EQ(report->cells[1].status, CellStatus::kError)
      << report->cells[1].note;
  EXPECT_EQ(report->cells[2].status, CellStatus::kOk) << report->cells[2].note;
  EXPECT_TRUE(fs::exists(dir + "/out/made-by-kernel.txt"));
  // The files each cell wrote to /out are listed, as with the drivers.
  EXPECT_TRUE(report->cells[0].files.empty());
  ASSERT_EQ(report->cells[2].files.size(), 1u);
  EXPECT_EQ(report->cells[2].files[0].path, "made-by-kernel.txt");
  EXPECT_EQ(report->cells[2].files[0].size, 2u);
  EXPECT_EQ(report->cells[2].files[0].sha256,
            "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4");
  NotebookRun run = RunFromHatch(*report, "");
  ASSERT_FALSE(run.cells[0].outputs.empty());
  // A PID namespace: the kernel is a low pid, not a host pid.
  int pid = std::stoi(
      run.cells[0].outputs[0]["data"]["text/plain"].get<std::string>());
  EXPECT_LT(pid, 100);
  fs::remove_all(dir);
}

// A kernel cell whose files in /out pass the egg's output limit is
// stopped as a limit, and its kernel with it: the next cell gets a fresh
// one.
TEST(KernelInSandbox, FilesPastTheEggOutputLimitStopTheCell) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  if (!HostHasIpykernel()) GTEST_SKIP() << "python3-ipykernel is missing";
  std::string dir = MakeTempDir();
  SandboxRunSetup setup = KernelSandboxSetup(dir);
  setup.egg_limits.output_bytes = 1u << 20;
  setup.agent.agent = AgentPath();
  setup.agent.drivers_dir = std::string(EGG_BINARY_DIR) + "/drivers";
  KernelRunSetup kernel;
  kernel.spec = *FindKernelSpec("/", "python3");
  kernel.exchange_host_dir = dir + "/exchange";
  kernel.exchange_sandbox_dir = kSandboxExchangeDir;
  RunOptions options;
  options.runner = [&](const std::vector<CellInput>& c, AgentHost& host,
                       const RunOptions& o) {
    return RunCellsWithKernel(c, host, o, kernel);
  };
  auto cells = PythonCells(
      {"x = 1\nopen('/out/big', 'wb').write(b'x' * (2 << 20))", "1 + 1"});
  auto report = RunCellsInSandbox(cells, setup, options);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->cells.size(), 2u);
  EXPECT_EQ(report->cells[0].status, CellStatus::kLimit)
      << report->cells[0].note;
  EXPECT_EQ(report->cells[0].limit, "output");
  EXPECT_EQ(report->cells[1].status, CellStatus::kOk) << report->cells[1].note;
  EXPECT_TRUE(report->cells[1].fresh_session);
  fs::remove_all(dir);
}

// A "kernel" that never answers and fills the exchange folder beside its
// sockets while it starts: stopped at the egg's output limit, not at the
// end of the start-up time. (It stops by itself at 400 MiB, so that a
// regression fails the test without filling the disk.)
TEST(KernelInSandbox, FilesWrittenWhileAKernelStartsStopIt) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  std::string dir = MakeTempDir();
  SandboxRunSetup setup = KernelSandboxSetup(dir);
  setup.egg_limits.output_bytes = 1u << 20;
  setup.agent.agent = AgentPath();
  setup.agent.drivers_dir = std::string(EGG_BINARY_DIR) + "/drivers";
  KernelRunSetup kernel;
  kernel.spec.name = "filler";
  kernel.spec.language = "python";
  kernel.spec.argv = {"python3", "-c",
                      "import os, sys, time\n"
                      "d = '" +
                          std::string(kSandboxExchangeDir) +
                          "'\n"
                          "for i in range(400):\n"
                          "    open(os.path.join(d, 'junk%d' % i), "
                          "'wb').write(b'x' * (1 << 20))\n"
                          "time.sleep(600)\n",
                      "{connection_file}"};
  kernel.exchange_host_dir = dir + "/exchange";
  kernel.exchange_sandbox_dir = kSandboxExchangeDir;
  RunOptions options;
  options.runner = [&](const std::vector<CellInput>& c, AgentHost& host,
                       const RunOptions& o) {
    return RunCellsWithKernel(c, host, o, kernel);
  };
  auto report = RunCellsInSandbox(PythonCells({"1 + 1"}), setup, options);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->cells.size(), 1u);
  EXPECT_EQ(report->cells[0].status, CellStatus::kLimit)
      << report->cells[0].note;
  EXPECT_EQ(report->cells[0].limit, "output") << report->cells[0].note;
  fs::remove_all(dir);
}

TEST(KernelInSandbox, IrkernelRunsInsideTheNamespacesSandbox) {
  if (!CanSandbox()) GTEST_SKIP() << "the host cannot create user namespaces";
  auto spec = FindKernelSpec("/", "ir");
  if (!spec) GTEST_SKIP() << "r-cran-irkernel is missing";
  std::string dir = MakeTempDir();
  SandboxRunSetup setup = KernelSandboxSetup(dir);
  setup.agent.agent = AgentPath();
  setup.agent.drivers_dir = std::string(EGG_BINARY_DIR) + "/drivers";
  KernelRunSetup kernel;
  kernel.spec = *spec;
  kernel.exchange_host_dir = dir + "/exchange";
  kernel.exchange_sandbox_dir = kSandboxExchangeDir;
  kernel.options.heartbeat_timeout_ms = 0;
  RunOptions options;
  options.runner = [&](const std::vector<CellInput>& c, AgentHost& host,
                       const RunOptions& o) {
    return RunCellsWithKernel(c, host, o, kernel);
  };
  std::vector<CellInput> cells(2);
  cells[0].index = 0;
  cells[0].language = "r";
  cells[0].code = "Sys.getpid() < 100";
  cells[1].index = 1;
  cells[1].language = "r";
  cells[1].code = "stop('inside')";
  auto report = RunCellsInSandbox(cells, setup, options);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->cells[0].status, CellStatus::kOk)
      << report->cells[0].note << report->cells[0].stderr_data.bytes;
  EXPECT_EQ(report->cells[1].status, CellStatus::kError)
      << report->cells[1].note;
  NotebookRun run = RunFromHatch(*report, "");
  EXPECT_NE(run.cells[0].outputs.dump().find("TRUE"), std::string::npos)
      << run.cells[0].outputs.dump();
  fs::remove_all(dir);
}

const char kNotebook[] = R"nb({
 "nbformat": 4, "nbformat_minor": 5,
 "metadata": {"kernelspec": {"name": "python3", "language": "python",
                             "display_name": "Python 3"}},
 "cells": [
  {"cell_type": "code", "id": "magic", "metadata": {}, "execution_count": 1,
   "source": "!echo from-the-shell", "outputs": [
    {"output_type": "stream", "name": "stdout", "text": "from-the-shell\n"}]},
  {"cell_type": "code", "id": "value", "metadata": {}, "execution_count": 2,
   "source": "from IPython.display import HTML\nHTML('<i>rich</i>')",
   "outputs": [{"output_type": "execute_result", "execution_count": 2,
     "metadata": {}, "data": {"text/html": "<i>rich</i>",
       "text/plain": "<IPython.core.display.HTML object>"}}]},
  {"cell_type": "code", "id": "boom", "metadata": {}, "execution_count": 3,
   "source": "raise KeyError('k')", "outputs": []}
 ]})nb";

// `egg build` of a notebook into an egg with a placeholder runtime, then
// `egg hatch --host-runtime` of it, in a fresh folder per test.
class KernelHatchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    fs::create_directories(dir_ + "/rt");
    WriteText(dir_ + "/rt/README", "placeholder runtime\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Builds nb.egg from `notebook`, or from egg.yaml beside it when
  // `manifest` is given.
  void Build(const char* notebook, const char* manifest = nullptr) {
    WriteText(dir_ + "/nb.ipynb", notebook);
    std::vector<std::string> args = {"build",     dir_ + "/nb.ipynb",
                                     "--runtime", dir_ + "/rt",
                                     "-o",        dir_ + "/nb.egg"};
    if (manifest != nullptr) {
      WriteText(dir_ + "/egg.yaml", manifest);
      args = {"build", dir_ + "/egg.yaml", "-o", dir_ + "/nb.egg"};
    }
    std::string err;
    ASSERT_EQ(RunEgg(dir_, args, &err), 0) << err;
  }

  // Hatches nb.egg with `extra` flags; results in results.json, files in
  // `out_dir`.
  int Hatch(const std::vector<std::string>& extra, std::string* err,
            const std::string& out_dir = "out") {
    std::vector<std::string> args = {"hatch",
                                     dir_ + "/nb.egg",
                                     "--allow-unsigned",
                                     "--host-runtime",
                                     "-o",
                                     dir_ + "/results.json",
                                     "--out-dir",
                                     dir_ + "/" + out_dir};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunEgg(dir_, args, err);
  }

  nlohmann::json Results() const {
    return nlohmann::json::parse(ReadFile(dir_ + "/results.json"), nullptr,
                                 false);
  }

  std::string dir_;
};

// What running a kernel needs on this host; a test returns after it.
#define SKIP_WITHOUT_KERNEL()                                   \
  do {                                                          \
    if (!CanSandbox()) {                                        \
      GTEST_SKIP() << "the host cannot create user namespaces"; \
    }                                                           \
    if (!HostHasIpykernel()) {                                  \
      GTEST_SKIP() << "python3-ipykernel is missing";           \
    }                                                           \
  } while (false)

TEST_F(KernelHatchCli, HatchWithKernelJupyterRunsTheNotebookOnIpykernel) {
  SKIP_WITHOUT_KERNEL();
  Build(kNotebook);
  std::string err;
  EXPECT_EQ(Hatch({"--kernel", "jupyter"}, &err), 4) << err;  // cell 3 raises
  auto results = Results();
  ASSERT_FALSE(results.is_discarded()) << err;
  const auto& cells = results["cells"];
  ASSERT_EQ(cells.size(), 3u);
  EXPECT_EQ(cells[0]["status"], "ok") << cells[0].dump();
  EXPECT_EQ(cells[1]["status"], "ok") << cells[1].dump();
  EXPECT_EQ(cells[2]["status"], "error") << cells[2].dump();
  std::string repro = results["reproducibility"].dump();
  EXPECT_NE(repro.find("reproduced"), std::string::npos) << repro;
  // The shell line and the HTML value reproduce only on the real kernel.
  int reproduced = 0;
  for (const auto& c : results["reproducibility"]["cells"]) {
    if (c.value("verdict", "") == "reproduced") ++reproduced;
  }
  EXPECT_EQ(reproduced, 2) << repro;
}

TEST_F(KernelHatchCli, KernelIsRefusedOnBackendsItCannotCross) {
  Build(kNotebook);
  std::string err;
  EXPECT_EQ(Hatch({"--kernel", "jupyter", "--isolation", "gvisor"}, &err), 3)
      << err;
  EXPECT_NE(err.find("--kernel needs"), std::string::npos) << err;
}

TEST_F(KernelHatchCli, UnknownKernelIsAnErrorBeforeAnythingRuns) {
  Build(kNotebook);
  std::string err;
  EXPECT_NE(Hatch({"--kernel", "no-such-kernel"}, &err), 0);
  EXPECT_NE(err.find("no Jupyter kernel 'no-such-kernel'"), std::string::npos)
      << err;
}

// Two cells that grow, past the egg's output cap (64 MiB by default), what a
// kernel can write on the host's disk: /out, then the exchange folder
// beside its sockets. Each then sleeps and writes a marker file; the
// marker must never appear, because the files are measured while the
// cell runs and the kernel is killed as soon as they pass the cap.
const char kFillingNotebook[] = R"nb({
 "nbformat": 4, "nbformat_minor": 5,
 "metadata": {"kernelspec": {"name": "python3", "language": "python",
                             "display_name": "Python 3"}},
 "cells": [
  {"cell_type": "code", "id": "out", "metadata": {}, "execution_count": 1,
   "source": "import os, time\nfor i in range(2):\n    fd = os.open(f'/out/f{i}', os.O_CREAT | os.O_WRONLY, 0o644)\n    os.posix_fallocate(fd, 0, 40 << 20)\n    os.close(fd)\ntime.sleep(60)\nopen('/out/after-out', 'w').close()",
   "outputs": []},
  {"cell_type": "code", "id": "exchange", "metadata": {},
   "execution_count": 2,
   "source": "import os, time\nfor i in range(2):\n    fd = os.open(f'/.egg-exchange/x{i}', os.O_CREAT | os.O_WRONLY, 0o644)\n    os.posix_fallocate(fd, 0, 40 << 20)\n    os.close(fd)\ntime.sleep(60)\nopen('/out/after-exchange', 'w').close()",
   "outputs": []}
 ]})nb";

TEST_F(KernelHatchCli, FilesPastTheOutputCapStopTheKernelWhileTheCellRuns) {
  SKIP_WITHOUT_KERNEL();
  Build(kFillingNotebook);
  std::string err;
  EXPECT_EQ(Hatch({"--kernel", "jupyter"}, &err), 4) << err;
  auto results = Results();
  ASSERT_FALSE(results.is_discarded()) << err;
  const auto& cells = results["cells"];
  ASSERT_EQ(cells.size(), 2u);
  for (const auto& c : cells) {
    EXPECT_EQ(c["status"], "limit") << c.dump();
    EXPECT_EQ(c["limit"], "output") << c.dump();
  }
  EXPECT_FALSE(fs::exists(dir_ + "/out/after-out"));
  EXPECT_FALSE(fs::exists(dir_ + "/out/after-exchange"));
}

TEST_F(KernelHatchCli, AutoWithAKernelChoosesNamespacesAndSaysSo) {
  SKIP_WITHOUT_KERNEL();
  Build(kNotebook);
  std::string err;
  EXPECT_EQ(Hatch({"--kernel", ""}, &err, "out0"), 2);
  EXPECT_NE(err.find("--kernel: empty value"), std::string::npos) << err;
  // The third cell raises.
  EXPECT_EQ(Hatch({"--kernel", "jupyter", "--isolation", "auto"}, &err), 4)
      << err;
  EXPECT_NE(err.find("using namespaces"), std::string::npos) << err;
  auto results = Results();
  ASSERT_FALSE(results.is_discarded()) << err;
  EXPECT_EQ(results["isolation"], "namespaces") << results.dump();
  EXPECT_EQ(results["cells"][0]["status"], "ok") << results.dump();
}

// The last cell ignores interrupts and runs into the egg's whole wall time:
// the sandbox is stopped under the kernel. egg must survive that (no
// SIGPIPE writing to the gone agent), write the results, charge the cell
// with the wall time and not report an agent failure.
TEST_F(KernelHatchCli, CellThatOutlivesTheEggsWallTimeLeavesCompleteResults) {
  SKIP_WITHOUT_KERNEL();
  Build(R"nb({
 "nbformat": 4, "nbformat_minor": 5,
 "metadata": {"kernelspec": {"name": "python3", "language": "python",
                             "display_name": "Python 3"}},
 "cells": [
  {"cell_type": "code", "id": "one", "metadata": {}, "execution_count": 1,
   "source": "print('one')", "outputs": []},
  {"cell_type": "code", "id": "stuck", "metadata": {}, "execution_count": 2,
   "source": "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(100)",
   "outputs": []}
 ]})nb",
        "name: stuck\ncreated: 2024-05-01T09:00:00Z\nnotebook: nb.ipynb\n"
        "runtime: {folder: rt}\nlimits: {wall_time: 2s}\n");
  std::string err;
  EXPECT_EQ(Hatch({"--kernel", "jupyter"}, &err), 4) << err;
  auto results = Results();
  ASSERT_FALSE(results.is_discarded()) << err;
  EXPECT_EQ(results["agent_error"], "") << results.dump();
  ASSERT_EQ(results["cells"].size(), 2u);
  EXPECT_EQ(results["cells"][0]["status"], "ok") << results.dump();
  EXPECT_EQ(results["cells"][1]["status"], "limit") << results.dump();
  EXPECT_EQ(results["cells"][1]["limit"], "wall_time") << results.dump();
}

}  // namespace
}  // namespace egg

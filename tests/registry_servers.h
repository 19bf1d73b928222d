// Servers the registry tests start on 127.0.0.1: Debian's docker-registry
// with a temporary config and storage folder, and the misbehaving registry
// in registry_hostile_server.py. Each is killed when its owner goes out of
// scope, and also when the test process dies (PR_SET_PDEATHSIG).
#ifndef EGG_TESTS_REGISTRY_SERVERS_H_
#define EGG_TESTS_REGISTRY_SERVERS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace egg::testing {

using egg_test::TempDir;

inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

inline bool PortAccepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok =
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// A child process killed (SIGTERM, then SIGKILL) on destruction.
class ChildServer {
 public:
  ChildServer() = default;
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;
  ~ChildServer() { Stop(); }

  // Starts argv with stdout on a pipe (when read_port) or on log_path.
  bool Start(const std::vector<std::string>& argv, bool read_port,
             const std::string& log_path) {
    int pipefd[2] = {-1, -1};
    if (read_port && ::pipe2(pipefd, O_CLOEXEC) != 0) return false;
    pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (log >= 0) {
        ::dup2(log, STDERR_FILENO);
        ::dup2(log, STDOUT_FILENO);
      }
      if (read_port) ::dup2(pipefd[1], STDOUT_FILENO);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    if (read_port) {
      ::close(pipefd[1]);
      std::string line;
      char c;
      while (::read(pipefd[0], &c, 1) == 1 && c != '\n') line += c;
      ::close(pipefd[0]);
      port_ = std::atoi(line.c_str());
      return port_ > 0;
    }
    return true;
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  int port() const { return port_; }
  void set_port(int port) { port_ = port; }
  bool alive() const {
    return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

inline const char* kDockerRegistry = "/usr/bin/docker-registry";

// Debian's docker-registry on a free port with storage in `dir`. Returns
// false (and leaves nothing running) when it does not come up in 20 s.
inline bool StartDockerRegistry(ChildServer& server, const std::string& dir) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    int port = FreePort();
    std::string config = dir + "/config.yml";
    std::ofstream(config) << "version: 0.1\n"
                          << "log:\n  level: error\n"
                          << "storage:\n  filesystem:\n    rootdirectory: "
                          << dir << "/data\n"
                          << "  delete:\n    enabled: true\n"
                          << "http:\n  addr: 127.0.0.1:" << port << "\n";
    if (!server.Start({kDockerRegistry, "serve", config}, false,
                      dir + "/registry.log")) {
      return false;
    }
    for (int i = 0; i < 200 && server.alive(); ++i) {
      if (PortAccepts(port)) {
        server.set_port(port);
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    server.Stop();
  }
  return false;
}

// A test suite with one docker-registry for all its tests, started on
// 127.0.0.1 before the first and stopped after the last; each test skips
// when docker-registry is not installed.
class DockerRegistrySuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::access(kDockerRegistry, X_OK) != 0) return;
    dir_ = new TempDir("egg-registry-test");
    server_ = new ChildServer();
    if (!StartDockerRegistry(*server_, dir_->path())) {
      delete server_;
      server_ = nullptr;
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (::access(kDockerRegistry, X_OK) != 0) {
      GTEST_SKIP() << "docker-registry is not installed (scripts/deps.sh)";
    }
    ASSERT_NE(server_, nullptr) << "docker-registry did not start";
  }
  // True when SetUp let the test go on (a derived SetUp calls it first).
  bool Ready() const { return !IsSkipped() && !HasFatalFailure(); }
  static int registry_port() { return server_->port(); }
  // Where the registry keeps the blob `hex`, to damage it in a test.
  static std::string BlobPath(const std::string& hex) {
    return dir_->path() + "/data/docker/registry/v2/blobs/sha256/" +
           hex.substr(0, 2) + "/" + hex + "/data";
  }

 private:
  static inline TempDir* dir_ = nullptr;
  static inline ChildServer* server_ = nullptr;
};

// The misbehaving registry; its port is read from its first line.
inline bool StartHostileServer(ChildServer& server, const std::string& dir) {
  std::string script =
      std::string(EGG_SOURCE_DIR) + "/tests/registry_hostile_server.py";
  return server.Start({"/usr/bin/python3", script}, true, dir + "/hostile.log");
}

}  // namespace egg::testing

#endif  // EGG_TESTS_REGISTRY_SERVERS_H_

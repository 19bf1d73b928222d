// A TCP listener on 127.0.0.1, on a port the kernel picks, that writes a
// greeting to every connection and closes it, until it is destroyed: what
// a cell granted the network can reach on the host's loopback.
#ifndef EGG_TESTS_LOOPBACK_GREETER_H_
#define EGG_TESTS_LOOPBACK_GREETER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace egg_test {

class LoopbackGreeter {
 public:
  explicit LoopbackGreeter(std::string greeting)
      : greeting_(std::move(greeting)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    server_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // shutdown() ends the wait
        ssize_t n = ::write(c, greeting_.data(), greeting_.size());
        (void)n;
        ::close(c);
      }
    });
  }
  ~LoopbackGreeter() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    if (server_.joinable()) server_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  LoopbackGreeter(const LoopbackGreeter&) = delete;
  LoopbackGreeter& operator=(const LoopbackGreeter&) = delete;

  // The port it listens on; 0 when it could not listen.
  int port() const { return port_; }

 private:
  std::string greeting_;
  int fd_ = -1;
  int port_ = 0;
  std::thread server_;
};

}  // namespace egg_test

#endif  // EGG_TESTS_LOOPBACK_GREETER_H_

// egg-init: the small static program that starts a sandbox's command in
// the stronger backends (docs/ISOLATION.md). It has two modes.
//
//   egg-init shim [--fd SLOT:TARGET]... [--seccomp FILE] -- ARGV...
//
// Run as the first process of an OCI container (runc, crun, runsc). The
// runtime hands it a few fds at fixed numbers ("slots"); --fd moves slot
// SLOT to fd TARGET ("n" as SLOT opens /dev/null). Every other fd is
// closed, the seccomp programs in FILE are loaded (the same ones the
// namespaces backend loads), and ARGV is exec'd with the environment as
// given. gVisor's runsc of this Debian release passes only fds 0-2, so
// the shim is what puts the hatch's socket at fd 3.
//
//   egg-init vm
//
// PID 1 of the micro-VM (src/sandbox/vm_sandbox.cc writes its plan on the
// kernel command line and in /egg/plan of the initramfs): loads the
// virtio, erofs and vsock modules listed in /egg/modules (dependency
// order), mounts the runtime disk, scratch, data and output, bridges the
// virtio-serial port to fd 3 and runs ARGV like the shim, then powers off.
//
// Failures print one line "egg-init: <step>: <reason>" on stderr and exit
// with 125 (shim) or power the VM off (vm).
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "guest/guest.h"

namespace egg::guest {
namespace {

constexpr int kSetupFailed = 125;
constexpr char kSeccompMagic[8] = {'E', 'G', 'G', 'S', 'C', 'M', 'P', '1'};

}  // namespace

void Die(const std::string& step, const std::string& reason) {
  std::string line = "egg-init: " + step + ": " + reason + "\n";
  ssize_t ignored = ::write(2, line.data(), line.size());
  (void)ignored;
  ::_exit(kSetupFailed);
}

void DieErrno(const std::string& step) { Die(step, strerror(errno)); }

bool ReadWhole(const std::string& path, std::string* out, size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || out->size() + n > max) {
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out->append(buf, n);
  }
  ::close(fd);
  return true;
}

// File: magic, then twice (u32 count, count * struct sock_filter), LE.
bool DecodeSeccomp(const std::string& bytes,
                   std::vector<std::vector<sock_filter>>* programs) {
  size_t pos = sizeof(kSeccompMagic);
  if (bytes.size() < pos || memcmp(bytes.data(), kSeccompMagic, pos) != 0) {
    return false;
  }
  for (int i = 0; i < 2; ++i) {
    uint32_t count;
    if (bytes.size() - pos < 4) return false;
    memcpy(&count, bytes.data() + pos, 4);
    pos += 4;
    if (count == 0 || count > 4096 ||
        bytes.size() - pos < count * sizeof(sock_filter)) {
      return false;
    }
    std::vector<sock_filter> prog(count);
    memcpy(prog.data(), bytes.data() + pos, count * sizeof(sock_filter));
    pos += count * sizeof(sock_filter);
    programs->push_back(std::move(prog));
  }
  return pos == bytes.size();
}

void LoadSeccomp(const std::vector<std::vector<sock_filter>>& programs) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    DieErrno("no_new_privs");
  }
  for (const auto& p : programs) {
    sock_fprog prog{static_cast<unsigned short>(p.size()),
                    const_cast<sock_filter*>(p.data())};
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
      DieErrno("loading seccomp");
    }
  }
}

void ApplyFdMap(const std::vector<FdMove>& moves, int keep) {
  // Park every source above the targets first, so that no move clobbers
  // a source another move still needs.
  std::vector<int> parked;
  for (const FdMove& m : moves) {
    int fd = m.slot < 0 ? ::open("/dev/null", O_RDWR | O_CLOEXEC)
                        : ::fcntl(m.slot, F_DUPFD_CLOEXEC, 2048);
    if (fd < 0) DieErrno("fd " + std::to_string(m.slot));
    if (fd < 2048) {
      int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 2048);
      if (high < 0) DieErrno("parking fd");
      ::close(fd);
      fd = high;
    }
    parked.push_back(fd);
  }
  std::vector<int> kept;
  for (size_t i = 0; i < moves.size(); ++i) {
    if (::dup2(parked[i], moves[i].target) < 0) {
      DieErrno("fd " + std::to_string(moves[i].target));
    }
    kept.push_back(moves[i].target);
  }
  if (keep >= 0) kept.push_back(keep);
  std::sort(kept.begin(), kept.end());
  // Everything else goes, the parked copies included.
  unsigned from = 0;
  for (int fd : kept) {
    if (static_cast<unsigned>(fd) > from) {
      ::syscall(SYS_close_range, from, fd - 1, 0);
    }
    from = std::max(from, static_cast<unsigned>(fd) + 1);
  }
  ::syscall(SYS_close_range, from, ~0u, 0);
}

void ExecCommand(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.data()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  Die("exec '" + argv[0] + "'", strerror(errno));
}

bool ParseFdMove(const std::string& text, FdMove* move) {
  size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string slot = text.substr(0, colon);
  std::string target = text.substr(colon + 1);
  char* end = nullptr;
  if (slot == "n") {
    move->slot = -1;
  } else {
    long s = strtol(slot.c_str(), &end, 10);
    if (*end != '\0' || s < 0 || s >= 1024) return false;
    move->slot = static_cast<int>(s);
  }
  long t = strtol(target.c_str(), &end, 10);
  if (target.empty() || *end != '\0' || t < 0 || t >= 1024) return false;
  move->target = static_cast<int>(t);
  return true;
}

namespace {

int ShimMain(int argc, char** argv) {
  std::vector<FdMove> moves;
  std::string seccomp_path;
  int ready = -1;
  std::vector<std::string> command;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) command.push_back(argv[i]);
      break;
    }
    if (a == "--fd" && i + 1 < argc) {
      FdMove m;
      if (!ParseFdMove(argv[++i], &m)) Die("usage", "bad --fd");
      moves.push_back(m);
    } else if (a == "--ready-fd" && i + 1 < argc) {
      FdMove m;
      if (!ParseFdMove(std::string(argv[++i]) + ":0", &m) || m.slot < 0) {
        Die("usage", "bad --ready-fd");
      }
      ready = m.slot;
    } else if (a == "--seccomp" && i + 1 < argc) {
      seccomp_path = argv[++i];
    } else {
      Die("usage", "unknown argument '" + a + "'");
    }
  }
  if (command.empty() || command[0].empty() || command[0][0] != '/') {
    Die("usage", "no absolute command after --");
  }

  std::vector<std::vector<sock_filter>> programs;
  if (!seccomp_path.empty()) {
    std::string bytes;
    if (!ReadWhole(seccomp_path, &bytes, 1 << 20)) {
      DieErrno("reading '" + seccomp_path + "'");
    }
    if (!DecodeSeccomp(bytes, &programs)) Die("seccomp", "malformed file");
  }
  // The ready fd is parked where no target can land, kept through the
  // map, and closed by the exec.
  if (ready >= 0) {
    int parked = ::fcntl(ready, F_DUPFD_CLOEXEC, 4000);
    if (parked < 0) DieErrno("ready fd");
    ready = parked;
  }
  ApplyFdMap(moves, ready);
  if (!programs.empty()) LoadSeccomp(programs);
  if (ready >= 0) {
    if (::access(command[0].c_str(), X_OK) != 0) {
      std::string e = "Eexec '" + command[0] + "': " + strerror(errno);
      ssize_t ignored = ::write(ready, e.data(), e.size());
      (void)ignored;
      ::_exit(kSetupFailed);
    }
    ssize_t ignored = ::write(ready, "R", 1);
    (void)ignored;
  }
  ExecCommand(command);
}

}  // namespace
}  // namespace egg::guest

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "shim") return egg::guest::ShimMain(argc, argv);
  if (mode == "vm") return egg::guest::VmMain(argc, argv);
  egg::guest::Die("usage", "egg-init shim|vm ...");
}

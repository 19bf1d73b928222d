// A hostile cell: each command tries one escape or abuse and reports.
//
// Exit status: 0 = the attempt was blocked, 1 = it succeeded (the sandbox
// failed), 2 = usage error. One line on stdout says what happened.
// Commands that are meant to hit a limit (alloc, spin, forkbomb, fill,
// ignore-term) run until stopped.
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/sched.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <string>

namespace {

int Blocked(const char* what, int err = 0) {
  printf("blocked %s%s%s\n", what, err ? ": " : "", err ? strerror(err) : "");
  return 0;
}

int Escaped(const char* what) {
  printf("ESCAPED %s\n", what);
  return 1;
}

// A denied system call: EPERM, ENOSYS (seccomp) or EACCES.
bool Denied(long rc) {
  return rc < 0 && (errno == EPERM || errno == ENOSYS || errno == EACCES);
}

int ReadFile(const char* path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return Blocked("read", errno);
  char buf[64];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n < 0) return Blocked("read", errno);
  return Escaped("read");
}

int WriteFile(const char* path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Blocked("write", errno);
  ssize_t n = write(fd, "pwned\n", 6);
  close(fd);
  if (n != 6) return Blocked("write", errno);
  return Escaped("write");
}

int Connect(int port, int type) {
  int s = socket(AF_INET, type, 0);
  if (s < 0) return Blocked("socket", errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (type == SOCK_DGRAM) {
    // The test's listener decides whether anything arrived.
    sendto(s, "q", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    return Blocked("udp sent (listener checks)");
  }
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return Blocked("connect", errno);
  }
  return Escaped("connect");
}

// "a.b.c.d:port": a TCP connection to an address other than loopback
// (the vm backend's user-mode network reaches the host as 10.0.2.2).
int ConnectTo(const char* where) {
  std::string text = where;
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) return 2;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(atoi(text.c_str() + colon + 1)));
  if (inet_pton(AF_INET, text.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    return 2;
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) return Blocked("socket", errno);
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    return Blocked("connect", errno);
  }
  if (write(s, "egg-probe\n", 10) != 10) return Blocked("send", errno);
  close(s);
  return Escaped("connect");
}

// Network interfaces other than loopback, from /proc/net/dev.
int NetDevs() {
  FILE* f = fopen("/proc/net/dev", "r");
  if (f == nullptr) return Blocked("netdevs", errno);
  char line[512];
  int found = 0;
  while (fgets(line, sizeof(line), f) != nullptr) {
    char* colon = strchr(line, ':');
    if (colon == nullptr) continue;
    *colon = '\0';
    char* name = line;
    while (*name == ' ') ++name;
    if (strcmp(name, "lo") == 0) continue;
    printf("netdev %s\n", name);
    found = 1;
  }
  fclose(f);
  return found ? Escaped("netdevs") : Blocked("netdevs");
}

int Resolve(const char* name) {
  addrinfo* res = nullptr;
  int rc = getaddrinfo(name, "80", nullptr, &res);
  if (rc != 0) {
    printf("blocked resolve: %s\n", gai_strerror(rc));
    return 0;
  }
  freeaddrinfo(res);
  return Escaped("resolve");
}

// Sees any process whose command line names `marker`.
int Proc(const char* marker) {
  DIR* d = opendir("/proc");
  if (d == nullptr) return Blocked("proc", errno);
  int found = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (atoi(e->d_name) == getpid()) continue;  // our argv names the marker
    std::string base = std::string("/proc/") + e->d_name;
    char buf[4096] = {};
    int fd = open((base + "/cmdline").c_str(), O_RDONLY);
    if (fd >= 0) {
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      close(fd);
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\0') buf[i] = ' ';
      }
      if (strstr(buf, marker) != nullptr) found = 1;
    }
    char exe[4096];
    ssize_t n = readlink((base + "/exe").c_str(), exe, sizeof(exe) - 1);
    if (n > 0) {
      exe[n] = '\0';
      if (strstr(exe, marker) != nullptr) found = 1;
    }
  }
  closedir(d);
  return found ? Escaped("proc") : Blocked("proc");
}

int Ptrace() {
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  long rc = ptrace(PTRACE_ATTACH, child, nullptr, nullptr);
  int err = errno;
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  if (rc != 0) return Blocked("ptrace", err);
  return Escaped("ptrace");
}

int Mount() {
  if (mount("none", "/tmp", "tmpfs", 0, nullptr) == 0) return Escaped("mount");
  long fs = syscall(SYS_fsopen, "tmpfs", 0);
  if (fs >= 0) return Escaped("fsopen");
  long tree = syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1 /* CLONE */);
  if (tree >= 0) return Escaped("open_tree");
  return Blocked("mount", errno);
}

int UserNs() {
  if (unshare(CLONE_NEWUSER) == 0) return Escaped("unshare(CLONE_NEWUSER)");
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr,
                     nullptr, nullptr);
  if (pid == 0) _exit(0);
  if (pid > 0) {
    waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return Escaped("clone(CLONE_NEWUSER)");
  }
  clone_args args{};
  args.flags = CLONE_NEWUSER;
  args.exit_signal = SIGCHLD;
  pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) _exit(0);
  if (pid > 0) {
    waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return Escaped("clone3(CLONE_NEWUSER)");
  }
  return Blocked("user namespace", errno);
}

// For calls that must be denied outright (not merely fail on bad input).
int MustBeDenied(const char* what, long rc) {
  if (Denied(rc)) return Blocked(what, errno);
  printf("ESCAPED %s (rc=%ld errno=%s)\n", what, rc, strerror(errno));
  return 1;
}

int Tiocsti() {
  char c = 'X';
  long a = ioctl(0, TIOCSTI, &c);
  int ea = errno;
  unsigned long high = 0xdead000000000000ul | TIOCSTI;
  long b = syscall(SYS_ioctl, 0, high, &c);
  int eb = errno;
  printf("tiocsti rc=%ld/%s high rc=%ld/%s\n", a, strerror(ea), b,
         strerror(eb));
  if (a == 0 || b == 0) return Escaped("tiocsti");
  return Blocked("tiocsti");
}

int ForkBomb() {
  for (;;) {
    pid_t p = fork();
    if (p < 0) usleep(1000);
  }
}

int Alloc(long mib) {
  for (long i = 0; i < mib; ++i) {
    char* p = static_cast<char*>(malloc(1 << 20));
    if (p == nullptr) return Blocked("alloc", ENOMEM);
    memset(p, 1, 1 << 20);
  }
  return Escaped("alloc");
}

int Fill() {
  int fd = open("/tmp/egg-probe-fill", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return Blocked("fill open", errno);
  static char block[1 << 16];
  memset(block, 'f', sizeof(block));
  for (;;) {
    if (write(fd, block, sizeof(block)) < 0) {
      if (errno == ENOSPC) {
        printf("blocked fill: ENOSPC\n");
        return 3;  // scratch full: the run fails
      }
      return Blocked("fill", errno);
    }
  }
}

int Spin() {
  volatile unsigned long x = 0;
  for (;;) x = x + 1;
}

int IgnoreTerm() {
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}

int Background() {
  pid_t p = fork();
  if (p == 0) {
    setsid();
    prctl(PR_SET_NAME, "eggprobebg", 0, 0, 0);
    for (;;) pause();
  }
  printf("left pid %d behind\n", p);
  return 0;
}

int Normal() {
  char buf[256] = {};
  int fd = open("/data/in.txt", O_RDONLY);
  if (fd < 0) {
    printf("cannot read /data/in.txt: %s\n", strerror(errno));
    return 2;
  }
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  fd = open("/out/out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || n < 0) {
    printf("cannot write /out/out.txt: %s\n", strerror(errno));
    return 2;
  }
  std::string text = std::string("copied:") + buf;
  if (write(fd, text.data(), text.size()) !=
      static_cast<ssize_t>(text.size())) {
    return 2;
  }
  close(fd);
  fd = open("/scratch/s", O_WRONLY | O_CREAT, 0644);
  if (fd < 0) {
    printf("cannot write /scratch: %s\n", strerror(errno));
    return 2;
  }
  close(fd);
  utsname u;
  uname(&u);
  printf("ok uid=%d pid=%d host=%s\n", getuid(), getpid(), u.nodename);
  return 0;
}

int Caps() {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return Blocked("caps", errno);
  char line[256];
  int escaped = 0;
  while (fgets(line, sizeof(line), f) != nullptr) {
    if (strncmp(line, "Cap", 3) == 0) {
      const char* v = strchr(line, ':') + 1;
      while (*v == '\t' || *v == ' ') ++v;
      if (strtoull(v, nullptr, 16) != 0) escaped = 1;
      if (escaped) printf("%s", line);
    }
    if (strncmp(line, "NoNewPrivs:", 11) == 0 && strstr(line, "1") == nullptr)
      escaped = 1;
    if (strncmp(line, "Seccomp:", 8) == 0 && strstr(line, "2") == nullptr)
      escaped = 1;
  }
  fclose(f);
  if (setuid(0) == 0) escaped = 1;
  return escaped ? Escaped("capabilities") : Blocked("capabilities");
}

int ForeignArch(const char* which) {
  if (strcmp(which, "x32") == 0) {
    syscall(0x40000000 | SYS_getpid);
  } else {
    long ret;
    // i386 getpid (20) through the 32-bit entry point.
    asm volatile("int $0x80" : "=a"(ret) : "a"(20) : "memory");
    printf("i386 getpid returned %ld\n", ret);
  }
  return Escaped("foreign architecture call returned");
}

int Fds() {
  // Only 0, 1, 2 and whatever was passed should be open.
  int count = 0;
  for (int fd = 3; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) {
      printf("open fd %d\n", fd);
      ++count;
    }
  }
  return count > 0 ? Escaped("inherited fds") : Blocked("inherited fds");
}

int RunOne(const std::string& cmd, const char* arg);

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) return 2;
  // "each CMD ARG CMD ARG ...": several probes in one sandbox (a VM boot
  // is slow); the status is the OR of theirs.
  if (std::string(argv[1]) == "each") {
    int status = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
      printf("== %s %s\n", argv[i], argv[i + 1]);
      status |= RunOne(argv[i], argv[i + 1]);
    }
    return status;
  }
  return RunOne(argv[1], argc > 2 ? argv[2] : "");
}

namespace {

int RunOne(const std::string& cmd, const char* arg) {
  if (cmd == "read") return ReadFile(arg);
  if (cmd == "connect-to") return ConnectTo(arg);
  if (cmd == "netdevs") return NetDevs();
  if (cmd == "write") return WriteFile(arg);
  if (cmd == "connect") return Connect(atoi(arg), SOCK_STREAM);
  if (cmd == "udp") return Connect(atoi(arg), SOCK_DGRAM);
  if (cmd == "resolve") return Resolve(arg);
  if (cmd == "proc") return Proc(arg);
  if (cmd == "ptrace") return Ptrace();
  if (cmd == "mount") return Mount();
  if (cmd == "userns") return UserNs();
  if (cmd == "module") {
    int a =
        MustBeDenied("init_module", syscall(SYS_init_module, nullptr, 0, ""));
    int b = MustBeDenied("finit_module", syscall(SYS_finit_module, -1, "", 0));
    int c = MustBeDenied("delete_module",
                         syscall(SYS_delete_module, "egg_none", 0));
    return a | b | c;
  }
  if (cmd == "io_uring") {
    char params[120] = {};
    return MustBeDenied("io_uring_setup",
                        syscall(SYS_io_uring_setup, 4, params));
  }
  if (cmd == "fallocate") {
    // Reserving blocks in one call, plain and past the end (KEEP_SIZE),
    // must be refused in the sandbox's writable places.
    int fd = open(arg[0] != '\0' ? arg : "/tmp/egg-fallocate-probe",
                  O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0) return Blocked("open for fallocate", errno);
    long plain = fallocate(fd, 0, 0, 1 << 20);
    int plain_errno = errno;
    long keep = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20);
    int keep_errno = errno;
    close(fd);
    printf("fallocate rc=%ld/%s keep_size rc=%ld/%s\n", plain,
           strerror(plain_errno), keep, strerror(keep_errno));
    if (plain == 0 || keep == 0) return Escaped("fallocate");
    return Blocked("fallocate", keep_errno);
  }
  if (cmd == "keyctl") {
    return MustBeDenied("add_key", syscall(SYS_add_key, "user", "egg", "x", 1,
                                           -2 /* session keyring */));
  }
  if (cmd == "bpf") {
    char attr[128] = {};
    return MustBeDenied("bpf", syscall(SYS_bpf, 0, attr, sizeof(attr)));
  }
  if (cmd == "userfaultfd") {
    return MustBeDenied("userfaultfd", syscall(SYS_userfaultfd, 0));
  }
  if (cmd == "perf") {
    char attr[128] = {};
    return MustBeDenied("perf_event_open",
                        syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
  }
  if (cmd == "clone3") {
    clone_args args{};
    args.exit_signal = SIGCHLD;
    long rc = syscall(SYS_clone3, &args, sizeof(args));
    if (rc == 0) _exit(0);
    if (rc < 0 && errno == ENOSYS) return Blocked("clone3", errno);
    return Escaped("clone3 did not fail with ENOSYS");
  }
  if (cmd == "personality") {
    return MustBeDenied("personality", syscall(SYS_personality, 0x0040000));
  }
  if (cmd == "tiocsti") return Tiocsti();
  if (cmd == "forkbomb") return ForkBomb();
  if (cmd == "alloc") return Alloc(atol(arg));
  if (cmd == "fill") return Fill();
  if (cmd == "spin") return Spin();
  if (cmd == "ignore-term") return IgnoreTerm();
  if (cmd == "background") return Background();
  if (cmd == "normal") return Normal();
  if (cmd == "caps") return Caps();
  if (cmd == "arch") return ForeignArch(arg);
  if (cmd == "fds") return Fds();
  if (cmd == "exit") return atoi(arg);
  if (cmd == "sleep") {
    sleep(static_cast<unsigned>(atoi(arg)));
    return 0;
  }
  fprintf(stderr, "unknown probe command\n");
  return 2;
}

}  // namespace

// egg_seccomp_gen OUTPUT: compiles the sandbox's seccomp program once, at
// build time, and writes it as C++ initialisers for seccomp_prebuilt.cc.
// The program depends only on the rules in seccomp_filter.cc and on
// libseccomp's syscall table for this architecture, both fixed by the
// build, so every run of egg would compile the same instructions.
#include <stdio.h>

#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "sandbox/seccomp_filter.h"

namespace {

std::string Initialisers(const std::vector<sock_filter>& code) {
  std::string out;
  char line[80];
  for (const sock_filter& f : code) {
    snprintf(line, sizeof(line), "    {0x%04x, %u, %u, 0x%08xu},\n", f.code,
             f.jt, f.jf, f.k);
    out += line;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: egg_seccomp_gen OUTPUT\n");
    return 2;
  }
  auto program = egg::sandbox_internal::BuildSeccompProgram();
  if (!program) {
    fprintf(stderr, "egg_seccomp_gen: %s\n",
            program.error().message().c_str());
    return 1;
  }
  std::string text =
      "// Generated at build time by egg_seccomp_gen from "
      "seccomp_filter.cc.\n"
      "namespace egg::sandbox_internal::prebuilt {\n"
      "constexpr sock_filter kCode[] = {\n" +
      Initialisers(program->code) +
      "};\n"
      "constexpr sock_filter kIoctlGuard[] = {\n" +
      Initialisers(program->ioctl_guard) +
      "};\n"
      "}  // namespace egg::sandbox_internal::prebuilt\n";
  if (auto s = egg::WriteFileAtomic(argv[1], text, 0644, true); !s) {
    fprintf(stderr, "egg_seccomp_gen: %s\n", s.error().message().c_str());
    return 1;
  }
  return 0;
}

// Runs one probe in a sandbox and prints its outcome as the last line of
// stdout: "OUTCOME exited=E code=C signal=S stopped_by=K killed=B
// pids_hit=B scratch_full=B". The tests start it directly (as root) or
// through setpriv (as an unprivileged user), so both paths build the
// sandbox the same way. Start errors print "ERROR <code> <message>" and
// exit 3.
//
// usage: sandbox_runner --probe-dir D [--out O] [--data A] [--none]
//          [--stdin] [--memory B] [--processes N] [--cpu-ms N]
//          [--wall-ms N] [--scratch B] [--backend NAME]
//          [--oci-runtime runc|crun] [--shell] -- ARGS...
// With --shell, ARGS is one sh script in the sandbox, run as /bin/sh
// ARGS (the probe is /probe/egg_sandbox_probe there): several probes in
// one sandbox. A file, not -c: the script's text must not be in a
// command line the probes can read.
#include <stdio.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "egg/sandbox.h"

int main(int argc, char** argv) {
  std::string probe_dir, out, data, backend, oci_runtime;
  bool none = false, pass_stdin = false, shell = false;
  egg::Limits limits;
  limits.wall_ms = 20000;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--") {
      for (++i; i < argc; ++i) args.push_back(argv[i]);
      break;
    }
    if (a == "--probe-dir")
      probe_dir = next();
    else if (a == "--out")
      out = next();
    else if (a == "--data")
      data = next();
    else if (a == "--none")
      none = true;
    else if (a == "--stdin")
      pass_stdin = true;
    else if (a == "--shell")
      shell = true;
    else if (a == "--memory")
      limits.memory_bytes = std::stoull(next());
    else if (a == "--processes")
      limits.processes = std::stoull(next());
    else if (a == "--cpu-ms")
      limits.cpu_ms = std::stoull(next());
    else if (a == "--wall-ms")
      limits.wall_ms = std::stoull(next());
    else if (a == "--scratch")
      limits.scratch_bytes = std::stoull(next());
    else if (a == "--backend")
      backend = next();
    else if (a == "--oci-runtime")
      oci_runtime = next();
    else
      return 2;
  }

  egg::SandboxSpecBuilder b;
  if (none) {
    b.WeakenToNoSandbox();
    args.insert(args.begin(), probe_dir + "/egg_sandbox_probe");
  } else {
    b.RuntimeRootPart("/usr", "/usr")
        .RuntimeRootPart("/usr/bin", "/bin")
        .RuntimeRootPart("/usr/lib", "/lib");
    if (access("/usr/lib64", F_OK) == 0) {
      b.RuntimeRootPart("/usr/lib64", "/lib64");
    }
    b.ReadOnly(probe_dir, "/probe");
    if (!data.empty()) b.ReadOnly(data, "/data");
    if (shell) {
      args.insert(args.begin(), "/bin/sh");
    } else {
      args.insert(args.begin(), "/probe/egg_sandbox_probe");
    }
  }
  if (!backend.empty()) b.Backend(backend);
  if (!oci_runtime.empty()) b.OciRuntime(oci_runtime);
  if (!out.empty()) b.Output(out);
  b.SetLimits(limits).Command(args).Stdout(1).Stderr(2);
  if (pass_stdin) b.Stdin(0);
  auto spec = std::move(b).Build();
  if (!spec) {
    printf("ERROR %s %s\n", egg::CodeName(spec.error().code()),
           spec.error().message().c_str());
    return 3;
  }
  auto box = egg::StartSandbox(*spec);
  if (!box) {
    printf("ERROR %s %s\n", egg::CodeName(box.error().code()),
           box.error().message().c_str());
    return 3;
  }
  auto o = (*box)->Wait();
  if (!o) {
    printf("ERROR %s %s\n", egg::CodeName(o.error().code()),
           o.error().message().c_str());
    return 3;
  }
  fflush(stdout);
  printf(
      "OUTCOME exited=%d code=%d signal=%d stopped_by=%s killed=%d "
      "pids_hit=%d scratch_full=%d cpu_ms=%llu mem_peak=%llu\n",
      o->exited, o->exit_code, o->signal, egg::LimitKindName(o->stopped_by),
      o->killed, o->processes_limit_hit, o->scratch_full,
      static_cast<unsigned long long>(o->usage.cpu_ms),
      static_cast<unsigned long long>(o->usage.memory_peak_bytes));
  return 0;
}

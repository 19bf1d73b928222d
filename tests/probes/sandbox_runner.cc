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
//          [--oci-runtime runc|crun] [--shell] [--repeat N] -- ARGS...
// With --shell, ARGS is one sh script in the sandbox, run as /bin/sh
// ARGS (the probe is /probe/egg_sandbox_probe there): several probes in
// one sandbox. A file, not -c: the script's text must not be in a
// command line the probes can read.
// With --repeat N (for bench/sandbox_bench.sh), the sandbox is built,
// started and waited for N times in this one process, as egg hatch does
// for each session, and the last line is "PER_SESSION_US median min".
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "egg/sandbox.h"

int main(int argc, char** argv) {
  std::string probe_dir, out, data, backend, oci_runtime;
  bool none = false, pass_stdin = false, shell = false;
  unsigned long repeat = 0;
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
    else if (a == "--repeat")
      repeat = std::stoul(next());
    else
      return 2;
  }

  if (none) {
    args.insert(args.begin(), probe_dir + "/egg_sandbox_probe");
  } else if (shell) {
    args.insert(args.begin(), "/bin/sh");
  } else {
    args.insert(args.begin(), "/probe/egg_sandbox_probe");
  }
  auto make_spec = [&] {
    egg::SandboxSpecBuilder b;
    if (none) {
      b.WeakenToNoSandbox();
    } else {
      b.RuntimeRootPart("/usr", "/usr")
          .RuntimeRootPart("/usr/bin", "/bin")
          .RuntimeRootPart("/usr/lib", "/lib");
      if (access("/usr/lib64", F_OK) == 0) {
        b.RuntimeRootPart("/usr/lib64", "/lib64");
      }
      b.ReadOnly(probe_dir, "/probe");
      if (!data.empty()) b.ReadOnly(data, "/data");
    }
    if (!backend.empty()) b.Backend(backend);
    if (!oci_runtime.empty()) b.OciRuntime(oci_runtime);
    if (!out.empty()) b.Output(out);
    b.SetLimits(limits).Command(args).Stdout(1).Stderr(2);
    if (pass_stdin) b.Stdin(0);
    return std::move(b).Build();
  };
  if (repeat > 0) {
    std::vector<long long> us;
    for (unsigned long i = 0; i < repeat; ++i) {
      auto start = std::chrono::steady_clock::now();
      auto spec = make_spec();
      if (!spec) {
        printf("ERROR %s\n", spec.error().message().c_str());
        return 3;
      }
      auto box = egg::StartSandbox(*spec);
      if (!box) {
        printf("ERROR %s\n", box.error().message().c_str());
        return 3;
      }
      if (auto o = (*box)->Wait(); !o) {
        printf("ERROR %s\n", o.error().message().c_str());
        return 3;
      }
      box->reset();
      us.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now() - start)
                       .count());
    }
    std::sort(us.begin(), us.end());
    printf("PER_SESSION_US %lld %lld\n", us[us.size() / 2], us[0]);
    return 0;
  }
  auto spec = make_spec();
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

// Times hatching on one backend: start to the end of the first cell (one
// cell notebook, sandbox teardown included), and a 20-cell notebook, both
// through RunCellsInSandbox with the host's runtime, as `egg hatch` does.
//
// usage: egg_isolation_bench BUILD_DIR BACKEND [OCI_RUNTIME] RUNS
// prints: BACKEND first_cell_ms=N twenty_cells_ms=N (medians)
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "egg/hatch.h"

namespace {

using Clock = std::chrono::steady_clock;

double RunOnce(const egg::SandboxRunSetup& base, int cells) {
  char tmpl[] = "/tmp/egg-isolation-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return -1;
  egg::SandboxRunSetup setup = base;
  setup.output_dir = tmpl;
  std::vector<egg::CellInput> in;
  for (int i = 0; i < cells; ++i) {
    egg::CellInput c;
    c.index = i;
    c.id = "c" + std::to_string(i);
    c.language = "bash";
    c.code = "echo cell " + std::to_string(i);
    in.push_back(c);
  }
  auto start = Clock::now();
  auto report = egg::RunCellsInSandbox(in, setup, {});
  double ms =
      std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  std::filesystem::remove_all(tmpl);
  if (!report) {
    fprintf(stderr, "bench: %s\n", report.error().message().c_str());
    return -1;
  }
  if (!report->AllSucceeded()) {
    fprintf(stderr, "bench: a cell failed: %s\n", report->agent_error.c_str());
    return -1;
  }
  return ms;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s BUILD_DIR BACKEND [OCI_RUNTIME] RUNS\n",
            argv[0]);
    return 2;
  }
  std::string build = argv[1];
  egg::SandboxRunSetup setup;
  setup.isolation = argv[2];
  if (argc == 5) setup.isolation += std::string(":") + argv[3];
  setup.host_runtime = true;
  setup.agent = {build + "/egg-agent", build + "/drivers"};
  int runs = atoi(argv[argc - 1]);
  std::vector<double> first, twenty;
  for (int i = 0; i < runs; ++i) {
    double a = RunOnce(setup, 1);
    double b = RunOnce(setup, 20);
    if (a < 0 || b < 0) return 1;
    first.push_back(a);
    twenty.push_back(b);
  }
  printf("first_cell_ms=%.0f twenty_cells_ms=%.0f\n", Median(first),
         Median(twenty));
  return 0;
}

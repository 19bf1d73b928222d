# Tests of the hatch component: agent, drivers, RunCells, results JSON.
egg_test(test_hatch SOURCES hatch_test.cc
  DEPS egg_hatch egg_notebook nlohmann_json::nlohmann_json)
add_dependencies(test_hatch egg-agent egg_drivers)

# End-to-end: the egg binary hatching eggs written by the format library.
egg_test(test_hatch_cli SOURCES hatch_cli_test.cc
  DEPS egg_format egg_manifest egg_sandbox nlohmann_json::nlohmann_json)
add_dependencies(test_hatch_cli egg egg-agent egg_drivers)

# End-to-end: egg build --precompute, then verify, export and hatch.
egg_test(test_precompute SOURCES precompute_test.cc
  DEPS egg_sandbox nlohmann_json::nlohmann_json)
add_dependencies(test_precompute egg egg-agent egg_drivers)

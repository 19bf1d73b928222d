# Tests of the hatch component: agent, drivers, RunCells, results JSON.
egg_test(test_hatch SOURCES hatch_test.cc
  DEPS egg_hatch nlohmann_json::nlohmann_json)
add_dependencies(test_hatch egg-agent egg_drivers)

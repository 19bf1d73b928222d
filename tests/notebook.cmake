egg_test(test_notebook SOURCES notebook_test.cc DEPS egg_notebook)
# Hatches the real notebooks through the agent and the session drivers.
egg_test(test_notebook_hatch SOURCES notebook_hatch_test.cc
  DEPS egg_notebook egg_hatch)
add_dependencies(test_notebook_hatch egg-agent egg_drivers)

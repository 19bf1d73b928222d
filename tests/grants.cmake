# Granted permissions (host paths, network, devices) through `egg hatch` on
# the namespaces, oci (runc, crun) and gvisor backends.
egg_test(test_grants SOURCES grants_test.cc
  DEPS nlohmann_json::nlohmann_json)
add_dependencies(test_grants egg egg-agent egg-init egg_drivers)

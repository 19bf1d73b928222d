egg_test(test_runtime SOURCES runtime_test.cc
  DEPS egg_runtime PkgConfig::ARCHIVE)

# Builds real Debian runtimes with mmdebstrap: slow, needs the mirror.
add_executable(test_runtime_debian runtime_debian_test.cc)
target_link_libraries(test_runtime_debian PRIVATE egg_runtime
  GTest::gtest_main)
target_compile_definitions(test_runtime_debian PRIVATE
  EGG_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
gtest_discover_tests(test_runtime_debian DISCOVERY_TIMEOUT 60
  PROPERTIES LABELS slow TIMEOUT 3600)

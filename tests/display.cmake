# Rich outputs through the sandbox: egg build + egg hatch of small
# notebooks with the Python display driver, including hostile records.
egg_test(test_display_cli SOURCES display_cli_test.cc
  DEPS egg_sandbox nlohmann_json::nlohmann_json)
add_dependencies(test_display_cli egg egg-agent egg_drivers)

# The real notebooks built with a real Debian runtime (scripts/ci-runtime.sh,
# cached by package list) and hatched in the sandbox: slow, needs the mirror
# on first use.
add_executable(test_display_notebooks display_notebooks_test.cc)
target_link_libraries(test_display_notebooks PRIVATE egg_sandbox
  nlohmann_json::nlohmann_json GTest::gtest_main)
target_compile_definitions(test_display_notebooks PRIVATE
  EGG_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
  EGG_BINARY_DIR="${PROJECT_BINARY_DIR}")
add_dependencies(test_display_notebooks egg egg-agent egg_drivers)
# One CTest test for the whole binary: the runtime is imported once.
add_test(NAME test_display_notebooks COMMAND test_display_notebooks)
set_tests_properties(test_display_notebooks PROPERTIES LABELS slow
  TIMEOUT 3600 ENVIRONMENT "EGG_BIN=$<TARGET_FILE_DIR:egg>/egg")

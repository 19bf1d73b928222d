# End-to-end: how every command fails: outputs that cannot be written,
# stdout that cannot be written, empty option values, read-only commands
# that must not create anything, folders of dead builds.
egg_test(test_cli_errors SOURCES cli_errors_test.cc DEPS egg_format)
add_dependencies(test_cli_errors egg egg-agent egg_drivers)

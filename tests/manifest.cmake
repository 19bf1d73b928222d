# Manifest parser and `egg build` tests.
egg_test(test_manifest
  SOURCES manifest_parse_test.cc manifest_stored_test.cc
  DEPS egg_manifest)
egg_test(test_manifest_cli
  SOURCES manifest_cli_test.cc
  DEPS egg_manifest egg_format egg_notebook)
# The CLI tests run the egg binary.
add_dependencies(test_manifest_cli egg)

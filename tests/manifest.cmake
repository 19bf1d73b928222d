# Manifest parser and `egg build` tests.
egg_test(test_manifest
  SOURCES manifest_parse_test.cc
  DEPS egg_manifest)

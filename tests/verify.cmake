# The verify decision (content + signature chain) across components.
egg_test(test_verify SOURCES verify_test.cc format_test_util.cc
  DEPS egg_format egg_crypto PkgConfig::ZSTD)

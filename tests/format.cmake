egg_test(test_format
  SOURCES format_test.cc format_corruption_test.cc format_extract_test.cc
          format_example_test.cc format_test_util.cc
  DEPS egg_format PkgConfig::ZSTD)

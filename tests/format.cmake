egg_test(test_format
  SOURCES format_test.cc format_corruption_test.cc format_extract_test.cc
          format_example_test.cc format_corpus_test.cc
          format_cli_test.cc
          format_test_util.cc
  DEPS egg_format PkgConfig::ZSTD)

# Driver for bench/format_bench.sh (not a test).
add_executable(egg_format_bench ${PROJECT_SOURCE_DIR}/bench/format_bench_tool.cc)
target_link_libraries(egg_format_bench PRIVATE egg_format)

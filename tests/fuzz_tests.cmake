# Fuzzing of the decoders of untrusted input (issue 12). The bounded mutation tests run in ctest
# with a fixed seed and iteration count; with clang and -DRMA_FUZZERS=ON the same targets are also
# built as libFuzzer binaries (tests/fuzz/README.md).
add_library(rma_fuzz_targets STATIC fuzz/protocol_targets.cc)
rma_target_defaults(rma_fuzz_targets)
target_link_libraries(rma_fuzz_targets PUBLIC rma_protocol)

rma_add_test(protocol_fuzz_test SOURCES fuzz/protocol_fuzz_test.cc LIBS rma_fuzz_targets
             LABELS unit TIMEOUT 600)

if(RMA_FUZZERS)  # the option and the instrumentation: cmake/RmaCompile.cmake
  foreach(target codec frames)
    add_executable(fuzz_${target} fuzz/fuzz_${target}_main.cc)
    rma_target_defaults(fuzz_${target})
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(fuzz_${target} PRIVATE rma_fuzz_targets)
  endforeach()
endif()

# Compile settings for rma's own targets: warnings (as errors when RMA_WERROR) and the sanitizer options.
# Third-party headers are included as SYSTEM so their warnings never fail our build.
if(RMA_ASAN AND RMA_TSAN)
  message(FATAL_ERROR "RMA_ASAN and RMA_TSAN cannot be combined")
endif()

set(RMA_WARNINGS -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor -Wno-missing-field-initializers)
# GCC 12 reports -Wrestrict inside libstdc++'s std::string when it inlines `"literal" + std::string` at
# -O3 (GCC bug 105651, fixed in GCC 13): a false positive in library code, not in ours, so only that
# warning is turned off, and only on the affected compiler.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
   AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  list(APPEND RMA_WARNINGS -Wno-restrict)
endif()
if(RMA_WERROR)
  list(APPEND RMA_WARNINGS -Werror)
endif()

if(RMA_ASAN)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(RMA_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "RMA_FUZZERS needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Coverage instrumentation everywhere, so libFuzzer sees into the decoders; ASan and UBSan catch
  # what a mutated input does to memory. Only the fuzz_* binaries link libFuzzer's main.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(RMA_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

# rma_target_defaults(target): the warning set and include root every rma target uses.
function(rma_target_defaults target)
  target_compile_options(${target} PRIVATE ${RMA_WARNINGS})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()

# rma_add_test(name SOURCES... LIBS... [LABEL]): a GoogleTest executable registered with ctest. One
# label per test: gtest_discover_tests (CMake 3.25) splits a list of labels into separate properties.
function(rma_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  rma_target_defaults(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest_main GTest::gmock)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  list(LENGTH ARG_LABELS label_count)
  if(label_count GREATER 1)
    message(FATAL_ERROR "rma_add_test(${name}): one label only, got '${ARG_LABELS}'")
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()

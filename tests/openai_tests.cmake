# OpenAI compatibility (included by tests/CMakeLists.txt): the official `openai` npm SDK
# (tests/openai/, pinned in its package-lock.json and installed with `npm ci` by the build when
# node_modules is missing or the lock changed, as the dashboard's and the browser test's packages
# are) runs tests/openai/sdk_check.mjs against TestBackend's OpenAI routes (label e2e). Needs node
# >= 18.19 and npm, the same as the dashboard; without them, or with -DRMA_OPENAI_SDK_TESTS=OFF
# (a build without the npm registry), the test is left out.
option(RMA_OPENAI_SDK_TESTS "Install the openai npm SDK (tests/openai) and run its checks" ON)

set(openai_skip_reason "")
if(NOT RMA_OPENAI_SDK_TESTS)
  set(openai_skip_reason "RMA_OPENAI_SDK_TESTS is OFF")
else()
  # Cached by dashboard/CMakeLists.txt when the dashboard is built; found here when it is not.
  find_program(RMA_NODE node)
  find_program(RMA_NPM npm)
  if(NOT RMA_NODE OR NOT RMA_NPM)
    set(openai_skip_reason "node and npm were not found")
  else()
    execute_process(COMMAND ${RMA_NODE} --version OUTPUT_VARIABLE openai_node_version
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE openai_node_result)
    string(REGEX REPLACE "^v" "" openai_node_version "${openai_node_version}")
    if(NOT openai_node_result EQUAL 0 OR openai_node_version VERSION_LESS 18.19)
      set(openai_skip_reason "node ${openai_node_version} is older than 18.19")
    endif()
  endif()
endif()

if(openai_skip_reason)
  message(STATUS "rma: no OpenAI SDK test (${openai_skip_reason})")
else()
  set(openai_dir ${CMAKE_CURRENT_SOURCE_DIR}/openai)
  set(openai_stamp ${CMAKE_CURRENT_BINARY_DIR}/openai-npm-ci.stamp)
  add_custom_target(openai_sdk_npm_ci
    COMMAND ${CMAKE_COMMAND} -DNPM=${RMA_NPM} -DDIR=${openai_dir} -DSTAMP=${openai_stamp}
            -P ${PROJECT_SOURCE_DIR}/cmake/npm_ci.cmake
    BYPRODUCTS ${openai_stamp}
    COMMENT "Checking the OpenAI SDK test's npm packages"
    VERBATIM)
  rma_add_test(openai_backend_test SOURCES e2e/openai_backend_test.cc
               LIBS rma_test_support rma_test_backend LABELS e2e TIMEOUT 180)
  add_dependencies(openai_backend_test openai_sdk_npm_ci)
  target_compile_definitions(openai_backend_test PRIVATE
    RMA_NODE_EXECUTABLE="${RMA_NODE}"
    RMA_OPENAI_SDK_CHECK="${openai_dir}/sdk_check.mjs")
endif()

# The same SDK through the whole pool: rma-gateway's /v1 routes, rma-broker, rma-worker.
if(NOT openai_skip_reason)
  rma_add_test(openai_gateway_test SOURCES e2e/openai_gateway_test.cc
               LIBS rma_test_support rma_test_backend LABELS e2e TIMEOUT 180)
  add_dependencies(openai_gateway_test openai_sdk_npm_ci ${RMA_BINARIES})
  target_compile_definitions(openai_gateway_test PRIVATE
    RMA_NODE_EXECUTABLE="${RMA_NODE}"
    RMA_OPENAI_SDK_CHECK="${openai_dir}/sdk_check.mjs")
endif()

# Dashboard tests (included by tests/CMakeLists.txt): how the gateway serves the embedded bundle
# (label e2e), and the page itself in headless Chromium against a running pool (label browser). The
# browser test's npm packages (playwright-core, axe-core) live in tests/browser/ and are installed
# with `npm ci` by the build, like the dashboard's own.
rma_add_test(dashboard_serving_test SOURCES browser/dashboard_serving_test.cc
             LIBS rma_test_support LABELS e2e TIMEOUT 120)
add_dependencies(dashboard_serving_test ${RMA_BINARIES})
if(RMA_DASHBOARD_BUILT)
  target_compile_definitions(dashboard_serving_test PRIVATE RMA_DASHBOARD_BUILT=1)
else()
  target_compile_definitions(dashboard_serving_test PRIVATE RMA_DASHBOARD_BUILT=0)
endif()

if(RMA_DASHBOARD_BUILT)
  set(browser_dir ${CMAKE_CURRENT_SOURCE_DIR}/browser)
  set(browser_stamp ${CMAKE_CURRENT_BINARY_DIR}/browser-npm-ci.stamp)
  add_custom_target(browser_test_npm_ci
    COMMAND ${CMAKE_COMMAND} -DNPM=${RMA_NPM} -DDIR=${browser_dir} -DSTAMP=${browser_stamp}
            -P ${PROJECT_SOURCE_DIR}/cmake/npm_ci.cmake
    BYPRODUCTS ${browser_stamp}
    COMMENT "Checking the browser test's npm packages"
    VERBATIM)
  # The accounts board's and the console's cases need PostgreSQL (rma_account_pool): they skip
  # without RMA_TEST_PG_URL.
  rma_add_test(dashboard_browser_test SOURCES browser/dashboard_browser_test.cc
               LIBS rma_test_support rma_account_pool LABELS browser TIMEOUT 720)
  add_dependencies(dashboard_browser_test ${RMA_BINARIES} browser_test_npm_ci)
  target_compile_definitions(dashboard_browser_test PRIVATE
    RMA_NODE_EXECUTABLE="${RMA_NODE}"
    RMA_BROWSER_TEST_SCRIPT="${browser_dir}/dashboard.test.mjs"
    RMA_ACCOUNTS_BOARD_TEST_SCRIPT="${browser_dir}/accounts_board.test.mjs"
    RMA_CONSOLE_TEST_SCRIPT="${browser_dir}/console.test.mjs"
    RMA_BROWSER_ARTIFACTS_DIR="${CMAKE_CURRENT_BINARY_DIR}/browser-artifacts")
else()
  message(STATUS "rma: no browser test without the dashboard (RMA_BUILD_DASHBOARD, node and npm)")
endif()

# The console on a large pool (1,000 workers, 100,000 tasks): page load times, each under a second.
# Too slow for the normal run: its own label, run with `ctest -L console_scale --output-on-failure`
# (needs RMA_TEST_PG_URL, like every pg test).
if(RMA_DASHBOARD_BUILT)
  rma_add_test(console_scale_test SOURCES browser/console_scale_test.cc
               LIBS rma_test_support rma_test_peers rma_store_test_env LABELS console_scale TIMEOUT 600)
  add_dependencies(console_scale_test ${RMA_BINARIES} browser_test_npm_ci)
  target_compile_definitions(console_scale_test PRIVATE
    RMA_NODE_EXECUTABLE="${RMA_NODE}"
    RMA_CONSOLE_SCALE_TEST_SCRIPT="${browser_dir}/console_scale.test.mjs"
    RMA_BROWSER_ARTIFACTS_DIR="${CMAKE_CURRENT_BINARY_DIR}/browser-artifacts")
endif()

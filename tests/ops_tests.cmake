# Build, install and deployment tests (issue 10; included by tests/CMakeLists.txt): the version each
# program reports, the Debian packages and `cmake --install`, the compose file, scripts/demo.sh, the
# nginx TLS proxy, the Prometheus rules and the Grafana dashboard. Scripts and sources in tests/ops/.
set(ops_dir ${CMAKE_CURRENT_SOURCE_DIR}/ops)
set(rma_programs rma-broker rma-worker rma-gateway rmactl)

add_test(NAME version_reported_by_every_program
         COMMAND bash ${ops_dir}/version_test.sh ${PROJECT_BINARY_DIR}/bin ${RMA_VERSION_FILE}
                 ${PROJECT_SOURCE_DIR} ${PROJECT_VERSION})
set_tests_properties(version_reported_by_every_program PROPERTIES LABELS unit TIMEOUT 60)

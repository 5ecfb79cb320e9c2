# Gateway tests (issue 5): every route and error through real HTTP, clients vanishing while their
# calls wait, several gateways and restarts, rmactl.
add_library(rma_gateway_test_support STATIC gateway/raw_http.cc)
rma_target_defaults(rma_gateway_test_support)
target_link_libraries(rma_gateway_test_support PUBLIC rma_test_support rma_test_peers)

find_program(RMA_PROMTOOL promtool)
foreach(test gateway_api_test gateway_disconnect_test gateway_cluster_test broker_secret_test)
  rma_add_test(${test} SOURCES gateway/${test}.cc LIBS rma_gateway_test_support LABELS e2e
               TIMEOUT 600)
  add_dependencies(${test} ${RMA_BINARIES} rmactl)
  target_compile_definitions(${test} PRIVATE RMA_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                             RMA_PROMTOOL="${RMA_PROMTOOL}")
endforeach()

# Streamed answers of synchronous calls (issue 15): real broker, worker, gateway and backend.
rma_add_test(gateway_stream_e2e_test SOURCES e2e/gateway_stream_e2e_test.cc
             LIBS rma_test_support rma_test_backend LABELS e2e TIMEOUT 120)
add_dependencies(gateway_stream_e2e_test ${RMA_BINARIES})

# Reputation (issue 17): a failing worker quarantined, shown and restored, through real processes.
rma_add_test(reputation_e2e_test SOURCES e2e/reputation_e2e_test.cc LIBS rma_test_support
             LABELS e2e TIMEOUT 120)
add_dependencies(reputation_e2e_test ${RMA_BINARIES} rmactl)
# ...and across a broker restart, on PostgreSQL.
rma_add_test(reputation_restart_e2e_test SOURCES e2e/reputation_restart_e2e_test.cc
             LIBS rma_test_support rma_store_test_env LABELS pg TIMEOUT 120)
add_dependencies(reputation_restart_e2e_test ${RMA_BINARIES})
# Verification by replication (issue 17): 3 honest workers and a liar, 2,000 tasks over HTTP.
rma_add_test(verification_e2e_test SOURCES e2e/verification_e2e_test.cc LIBS rma_test_support
             LABELS e2e TIMEOUT 300)
add_dependencies(verification_e2e_test ${RMA_BINARIES})

# The operator's console API (issue 19): every route through real processes, without a database
# and on PostgreSQL.
rma_add_test(console_e2e_test SOURCES e2e/console_e2e_test.cc LIBS rma_test_support LABELS e2e
             TIMEOUT 180)
add_dependencies(console_e2e_test ${RMA_BINARIES})
rma_add_test(console_pg_e2e_test SOURCES e2e/console_pg_e2e_test.cc
             LIBS rma_test_support rma_store_test_env LABELS pg TIMEOUT 180)
add_dependencies(console_pg_e2e_test ${RMA_BINARIES})

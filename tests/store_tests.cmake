# Tests of the PostgreSQL store (issue 6). "pg" tests need the server scripts/test.sh starts; the
# process tests also start real rma-broker / rma-worker / rma-gateway processes.
add_library(rma_store_test_env STATIC store/pg_env.cc)
rma_target_defaults(rma_store_test_env)
target_compile_definitions(rma_store_test_env PRIVATE RMA_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
target_link_libraries(rma_store_test_env PUBLIC rma_test_support PkgConfig::PQXX GTest::gtest)

rma_add_test(store_unit_test SOURCES store/pg_values_test.cc store/stats_recorder_test.cc
             LIBS rma_broker rma_broker_pg)
rma_add_test(pg_store_test SOURCES store/pg_store_test.cc
             LIBS rma_broker rma_broker_pg rma_store_test_env LABELS pg TIMEOUT 300)
rma_add_test(pg_console_test SOURCES store/pg_console_test.cc
             LIBS rma_broker rma_broker_pg rma_store_test_env LABELS pg TIMEOUT 120)
rma_add_test(pg_hang_test SOURCES store/pg_hang_test.cc support/tcp_relay.cc
             LIBS rma_broker rma_broker_pg rma_store_test_env LABELS pg TIMEOUT 120)

rma_add_test(store_recovery_test SOURCES store/recovery_test.cc
             LIBS rma_store_test_env rma_test_peers LABELS pg TIMEOUT 300)
add_dependencies(store_recovery_test ${RMA_BINARIES})
rma_add_test(store_crash_test SOURCES store/crash_test.cc
             LIBS rma_broker rma_broker_pg rma_store_test_env rma_test_peers LABELS pg TIMEOUT 600)
add_dependencies(store_crash_test ${RMA_BINARIES})
rma_add_test(store_submit_wait_test SOURCES store/submit_wait_test.cc
             LIBS rma_store_test_env rma_test_peers LABELS pg TIMEOUT 300)
add_dependencies(store_submit_wait_test ${RMA_BINARIES})

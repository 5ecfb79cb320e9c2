# Durable tasks through rma-broker on PostgreSQL (issue 6): store_bench, run by store_bench.sh.
add_executable(store_bench ${CMAKE_CURRENT_SOURCE_DIR}/store_bench.cc)
rma_target_defaults(store_bench)
target_link_libraries(store_bench PRIVATE rma_test_peers PkgConfig::PQXX)

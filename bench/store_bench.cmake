# Durable tasks through rma-broker on PostgreSQL (issue 6): store_bench, run by store_bench.sh.
if(NOT TARGET rma_store_test_peers)
  # ZeroMQ client and fake worker, shared with tests/store_tests.cmake.
  add_library(rma_store_test_peers STATIC ${PROJECT_SOURCE_DIR}/tests/store/zmq_peers.cc)
  rma_target_defaults(rma_store_test_peers)
  target_link_libraries(rma_store_test_peers PUBLIC rma_protocol)
endif()
add_executable(store_bench ${CMAKE_CURRENT_SOURCE_DIR}/store_bench.cc)
rma_target_defaults(store_bench)
target_link_libraries(store_bench PRIVATE rma_store_test_peers PkgConfig::PQXX)

# Worker tests (issue 4): the HTTP test backend (a library for unit tests, rma-test-backend for
# end-to-end tests) and the worker's end-to-end tests with real broker, gateway, worker and backend
# processes.
add_library(rma_test_backend STATIC support/test_backend.cc)
rma_target_defaults(rma_test_backend)
target_link_libraries(rma_test_backend PUBLIC nlohmann_json::nlohmann_json Threads::Threads)

add_executable(rma-test-backend support/test_backend_main.cc)
rma_target_defaults(rma-test-backend)
target_link_libraries(rma-test-backend PRIVATE rma_test_backend)

rma_add_test(worker_e2e_test SOURCES e2e/worker_e2e_test.cc LIBS rma_test_support LABELS e2e
             TIMEOUT 300)
add_dependencies(worker_e2e_test ${RMA_BINARIES} rma-test-backend)

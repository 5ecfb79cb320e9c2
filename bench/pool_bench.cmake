# pool_bench: the rma side of bench/pool_bench.sh (issue 14): tasks through rma-broker and real
# rma-worker processes over the client protocol. rabbit_bench (the RabbitMQ side, a C client on
# librabbitmq) is built by the script, since librabbitmq is only installed for benchmarks.
add_executable(pool_bench pool_bench.cc)
rma_target_defaults(pool_bench)
target_link_libraries(pool_bench PRIVATE rma_test_peers CLI11::CLI11)
add_dependencies(pool_bench rma-broker rma-worker)

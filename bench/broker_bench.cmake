# broker_bench: throughput, latency and scale of rma-broker over ZeroMQ (issue 3). It starts the rma-broker
# built next to it, so build it in Release for meaningful figures (bench/run_broker_bench.sh does).
add_executable(broker_bench broker_bench.cc)
rma_target_defaults(broker_bench)
target_link_libraries(broker_bench PRIVATE rma_protocol rma_test_support CLI11::CLI11)
add_dependencies(broker_bench rma-broker)

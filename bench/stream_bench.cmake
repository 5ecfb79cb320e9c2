# stream_bench (issue 15): streamed answers through rma-gateway, rma-broker and rma-worker against
# the backend called directly, in the same run; TestBackend runs in-process so that the backend's
# write times and the client's arrival times share one clock. Driven by bench/stream_bench.sh.
add_executable(stream_bench stream_bench.cc)
rma_target_defaults(stream_bench)
target_link_libraries(stream_bench PRIVATE rma_test_support rma_test_backend CLI11::CLI11)
add_dependencies(stream_bench rma-broker rma-worker rma-gateway)

# Gateway benchmark (issue 5): bench/gateway_bench.sh drives rma-gateway and this bare Pistache
# baseline with wrk. Not a test; see docs/benchmarks.md ("Gateway").
add_executable(bare_pistache bare_pistache.cc)
rma_target_defaults(bare_pistache)
target_link_libraries(bare_pistache PRIVATE PkgConfig::PISTACHE)

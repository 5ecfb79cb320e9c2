# The broker's security tests (issue 12): one test per attack, each an attacker speaking the wire
# protocol over raw ZeroMQ sockets to a real rma-broker (tests/security/broker_attack.h). Run them
# against another build's broker with RMA_BIN_DIR=<dir>; tests/security/README.md records how each
# one failed before the fixes.
foreach(name results identity ids_ownership endpoints revoke)
  rma_add_test(security_broker_${name}_test SOURCES security/broker_${name}_test.cc
               LIBS rma_test_support rma_test_peers LABELS security TIMEOUT 120)
  add_dependencies(security_broker_${name}_test rma-broker rma-worker)
endforeach()

# The budget attacks measure the broker's peak memory and other clients' round trips, and push
# gigabytes through loopback: they run alone, so neither they nor their neighbours skew the figures.
add_executable(security_broker_budgets_test security/broker_budgets_test.cc)
rma_target_defaults(security_broker_budgets_test)
target_link_libraries(security_broker_budgets_test PRIVATE rma_test_support rma_test_peers
                      GTest::gtest_main GTest::gmock)
add_dependencies(security_broker_budgets_test rma-broker)
gtest_discover_tests(security_broker_budgets_test DISCOVERY_TIMEOUT 60
                     PROPERTIES LABELS security TIMEOUT 180 RUN_SERIAL TRUE)

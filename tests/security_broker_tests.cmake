# The broker's security tests (issue 12): one test per attack, each an attacker speaking the wire
# protocol over raw ZeroMQ sockets to a real rma-broker (tests/security/broker_attack.h). Run them
# against another build's broker with RMA_BIN_DIR=<dir>; tests/security/README.md records how each
# one failed before the fixes.
set(RMA_SECURITY_BROKER_TESTS)
foreach(name results identity ids_ownership endpoints)
  rma_add_test(security_broker_${name}_test SOURCES security/broker_${name}_test.cc
               LIBS rma_test_support rma_test_peers LABELS e2e TIMEOUT 120)
  add_dependencies(security_broker_${name}_test rma-broker)
  list(APPEND RMA_SECURITY_BROKER_TESTS security_broker_${name}_test)
endforeach()

# The budget attacks measure the broker's peak memory and other clients' round trips, and push
# gigabytes through loopback: they run alone, so neither they nor their neighbours skew the figures.
add_executable(security_broker_budgets_test security/broker_budgets_test.cc)
rma_target_defaults(security_broker_budgets_test)
target_link_libraries(security_broker_budgets_test PRIVATE rma_test_support rma_test_peers
                      GTest::gtest_main GTest::gmock)
add_dependencies(security_broker_budgets_test rma-broker)
gtest_discover_tests(security_broker_budgets_test DISCOVERY_TIMEOUT 60
                     PROPERTIES LABELS e2e TIMEOUT 180 RUN_SERIAL TRUE)
list(APPEND RMA_SECURITY_BROKER_TESTS security_broker_budgets_test)

# gtest_discover_tests flattens a list-valued property (LABELS "e2e;security" arrives as
# "LABELS e2e security", which sets neither the second label nor what follows it), so the labels
# are set by a script ctest runs after the discovered tests are defined (each target's
# <target>_TESTS list).
set(labels_script ${CMAKE_CURRENT_BINARY_DIR}/security_broker_labels.cmake)
file(WRITE ${labels_script} "")
foreach(target ${RMA_SECURITY_BROKER_TESTS})
  file(APPEND ${labels_script}
       "foreach(t IN LISTS ${target}_TESTS)\n"
       "  set_tests_properties(\"\${t}\" PROPERTIES LABELS \"e2e;security\")\n"
       "endforeach()\n")
endforeach()
set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${labels_script})

# End-to-end tests of the broker's routing and life cycle with real processes (issue 3).
rma_add_test(e2e_scenarios_test SOURCES e2e/scenarios_test.cc LIBS rma_test_support LABELS e2e TIMEOUT 300)
add_dependencies(e2e_scenarios_test ${RMA_BINARIES})
rma_add_test(e2e_stream_test SOURCES e2e/stream_e2e_test.cc
             LIBS rma_test_support rma_test_peers rma_test_backend LABELS e2e
             TIMEOUT 120)
add_dependencies(e2e_stream_test ${RMA_BINARIES})
# Routing by model (issue 15): workers list their services' models, calls go where their model is.
rma_add_test(e2e_models_test SOURCES e2e/models_e2e_test.cc
             LIBS rma_test_support rma_test_peers LABELS e2e TIMEOUT 120)
add_dependencies(e2e_models_test ${RMA_BINARIES})

# Security tests of the gateway (issue 12, "Every peer is untrusted"): each plays an attacker against
# real rma-broker, rma-gateway and rma-worker processes over raw sockets or libcurl. RMA_BIN_DIR in
# the environment points them at another build's binaries (docs/security.md, "The gateway", records how
# each failed against the binaries from before the fixes).
foreach(test gateway_exposure_test gateway_cross_site_test gateway_ownership_test
             http_framing_test gateway_honest_answers_test gateway_big_bodies_test)
  rma_add_test(${test} SOURCES security/${test}.cc
               LIBS rma_gateway_test_support rma_test_backend LABELS security TIMEOUT 600)
  add_dependencies(${test} ${RMA_BINARIES})
endforeach()

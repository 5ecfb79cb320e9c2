# CurveZMQ (issue 13): proof of encryption (tcpdump on the worker link: no payload, key or worker id
# in the capture under CURVE, all of them without it) and who CURVE admits (the broker's key pinned
# by workers, --worker-keys-file and --client-keys-file with SIGHUP, a worker is its key). Real
# rma-broker and rma-worker processes; tests/security/README.md records how each one fails without
# its rule. The capture tests skip without tcpdump or the right to capture (CI=true: fail when
# tcpdump is missing; scripts/install-deps.sh installs it).
foreach(name capture admission)
  rma_add_test(security_curve_${name}_test SOURCES security/curve_${name}_test.cc
               LIBS rma_test_support rma_test_peers LABELS security TIMEOUT 180)
  add_dependencies(security_curve_${name}_test rma-broker rma-worker)
endforeach()

# Accounts, keys and enrolment (issue 13) end to end: real rma-broker on a fresh PostgreSQL database
# with CURVE and --bootstrap-admin, rma-gateway --broker-accounts, rma-worker --enrol/--new-key.
add_library(rma_account_pool STATIC support/account_pool.cc)
target_link_libraries(rma_account_pool PUBLIC rma_test_support rma_store_test_env GTest::gmock)
rma_target_defaults(rma_account_pool)
rma_add_test(security_accounts_test SOURCES security/accounts_test.cc
             LIBS rma_account_pool LABELS pg TIMEOUT 300)
add_dependencies(security_accounts_test rma-broker rma-worker rma-gateway)

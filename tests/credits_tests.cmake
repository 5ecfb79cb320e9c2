# Credits (issue 16) end to end: real rma-broker (--credits track|enforce) on a fresh PostgreSQL
# database, rma-gateway --broker-accounts, enrolled rma-worker processes; the ledger checked with
# SQL against the balances.
rma_add_test(e2e_credits_test SOURCES e2e/credits_e2e_test.cc
             LIBS rma_account_pool LABELS pg TIMEOUT 300)
add_dependencies(e2e_credits_test rma-broker rma-worker rma-gateway)

# The ledger across kill -9 of the broker and of enrolled workers under durable load.
rma_add_test(e2e_credits_crash_test SOURCES e2e/credits_crash_e2e_test.cc
             LIBS rma_account_pool LABELS pg TIMEOUT 300)
add_dependencies(e2e_credits_crash_test rma-broker rma-worker rma-gateway)

# Broker high availability (issue 18) end to end: three rma-broker --ha on one PostgreSQL database,
# a gateway and workers with all three endpoints, kill -9 and SIGSTOP of the leader under durable
# load. Label "ha" (about a minute): `ctest -LE ha` leaves it out of a quick run;
# scripts/test.sh and CI run it.
rma_add_test(e2e_ha_test SOURCES e2e/ha_e2e_test.cc
             LIBS rma_test_support rma_store_test_env LABELS ha TIMEOUT 400)
add_dependencies(e2e_ha_test rma-broker rma-worker rma-gateway)

# The lease and the fence against a real PostgreSQL.
rma_add_test(ha_lease_test SOURCES store/ha_lease_test.cc
             LIBS rma_broker rma_broker_pg rma_store_test_env LABELS pg TIMEOUT 120)

# Broker high availability (issue 18): the lease and the fence against a real PostgreSQL.
rma_add_test(ha_lease_test SOURCES store/ha_lease_test.cc
             LIBS rma_broker rma_broker_pg rma_store_test_env LABELS pg TIMEOUT 120)

# Protocol tests (issue 11): the example worker of docs/protocol.md, cut out of the document and run with
# Debian's python3 (python3-zmq, python3-msgpack) against a real broker and gateway, so the specification's
# example cannot drift from the broker it describes.
rma_add_test(protocol_example_worker_test SOURCES protocol/example_worker_test.cc LIBS rma_test_support
             LABELS e2e TIMEOUT 300)
add_dependencies(protocol_example_worker_test rma-broker rma-gateway)
target_compile_definitions(protocol_example_worker_test PRIVATE RMA_SOURCE_DIR="${PROJECT_SOURCE_DIR}")

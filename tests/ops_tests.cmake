# Build, install and deployment tests (issue 10; included by tests/CMakeLists.txt): the version each
# program reports, the Debian packages and `cmake --install`, the compose file, scripts/demo.sh, the
# nginx TLS proxy, the Prometheus rules and the Grafana dashboard. Scripts and sources in tests/ops/.
set(ops_dir ${CMAKE_CURRENT_SOURCE_DIR}/ops)
set(rma_programs rma-broker rma-worker rma-gateway rmactl)

add_test(NAME version_reported_by_every_program
         COMMAND bash ${ops_dir}/version_test.sh ${PROJECT_BINARY_DIR}/bin ${RMA_VERSION_FILE}
                 ${PROJECT_SOURCE_DIR} ${PROJECT_VERSION})
set_tests_properties(version_reported_by_every_program PROPERTIES LABELS unit TIMEOUT 60)

# cpack, lintian, dpkg and systemd-analyze come with scripts/install-deps.sh.
find_program(RMA_LINTIAN lintian)
find_program(RMA_SYSTEMD_ANALYZE systemd-analyze)
if(RMA_LINTIAN AND RMA_SYSTEMD_ANALYZE AND RMA_MAN_PAGES)
  add_test(NAME debian_packages COMMAND bash ${ops_dir}/package_test.sh ${PROJECT_BINARY_DIR}
                                        ${PROJECT_SOURCE_DIR})
  # About 60 s alone; cpack and lintian are slow when the rest of the suite runs beside them.
  set_tests_properties(debian_packages PROPERTIES LABELS package TIMEOUT 360)
else()
  message(WARNING "rma: no package test (needs lintian, systemd-analyze and help2man: "
                  "scripts/install-deps.sh installs them)")
endif()

# scripts/demo.sh with the programs of this build: ready, its addresses answer, and it stops within
# 10 s of a Ctrl-C (to its process group, or to the script twice) leaving nothing behind.
add_test(NAME demo_script_starts_and_stops_cleanly
         COMMAND bash ${ops_dir}/demo_test.sh ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/bin)
set_tests_properties(demo_script_starts_and_stops_cleanly PROPERTIES LABELS e2e TIMEOUT 240)

# compose/ must stay valid for Debian's docker-compose (no Docker engine here to run it): accepted with
# the secrets .env.example lists, refused without any one of them.
find_program(RMA_DOCKER_COMPOSE docker-compose)
if(RMA_DOCKER_COMPOSE)
  add_test(NAME compose_config_needs_its_secrets
           COMMAND bash ${ops_dir}/compose_test.sh ${PROJECT_SOURCE_DIR})
  set_tests_properties(compose_config_needs_its_secrets PROPERTIES LABELS unit TIMEOUT 120)
endif()

# deploy/nginx/rma-gateway.conf in front of a real pool, through HTTPS (Debian's nginx and openssl).
find_program(RMA_NGINX nginx PATHS /usr/sbin /sbin)
find_program(RMA_OPENSSL openssl)
if(RMA_NGINX AND RMA_OPENSSL)
  rma_add_test(nginx_proxy_test SOURCES ops/nginx_proxy_test.cc
               LIBS rma_test_support rma_test_backend LABELS e2e TIMEOUT 180)
  add_dependencies(nginx_proxy_test ${RMA_BINARIES})
  target_compile_definitions(nginx_proxy_test PRIVATE RMA_NGINX="${RMA_NGINX}"
    RMA_OPENSSL="${RMA_OPENSSL}"
    RMA_NGINX_TEMPLATE="${PROJECT_SOURCE_DIR}/deploy/nginx/rma-gateway.conf")
else()
  message(WARNING "rma: no nginx proxy test (needs nginx and openssl: scripts/install-deps.sh)")
endif()

# Per-worker metrics (broker/admin.cc MetricsDocument -> gateway/metrics.cc) the alert rules use.
rma_add_test(worker_metrics_test SOURCES ops/worker_metrics_test.cc LIBS rma_broker rma_gateway)

# deploy/prometheus and deploy/grafana: the alert rules' unit tests (promtool, from Debian's
# prometheus package), and every metric the rules and the dashboard use against a real pool.
find_program(RMA_PROMTOOL promtool)
if(RMA_PROMTOOL)
  add_test(NAME prometheus_rules COMMAND bash ${ops_dir}/prometheus_test.sh ${PROJECT_SOURCE_DIR})
  set_tests_properties(prometheus_rules PROPERTIES LABELS unit TIMEOUT 60)
  rma_add_test(monitoring_metrics_test SOURCES ops/monitoring_metrics_test.cc
               LIBS rma_test_support LABELS e2e TIMEOUT 120)
  add_dependencies(monitoring_metrics_test ${RMA_BINARIES})
  target_compile_definitions(monitoring_metrics_test PRIVATE RMA_PROMTOOL="${RMA_PROMTOOL}"
    RMA_ALERT_RULES="${PROJECT_SOURCE_DIR}/deploy/prometheus/rma-alerts.yml"
    RMA_GRAFANA_DASHBOARD="${PROJECT_SOURCE_DIR}/deploy/grafana/rma-pool.json")
else()
  message(WARNING "rma: no Prometheus rule tests (needs promtool: scripts/install-deps.sh)")
endif()

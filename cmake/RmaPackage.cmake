# Debian packages with CPack: `cpack -G DEB` in a build tree writes one package per install component
# (cmake/RmaInstall.cmake):
#   rma-broker   the broker, its unit and settings     (a server, next to PostgreSQL)
#   rma-gateway  the gateway, its unit and settings    (a server, behind the TLS proxy), plus the
#                nginx, Prometheus and Grafana examples
#   rma-worker   the worker agent, its unit, settings  (every volunteer machine)
#   rmactl       the command-line client               (any machine that talks to a gateway)
# Split because the machines differ: a volunteer installs only rma-worker (and so none of PostgreSQL's
# or Pistache's libraries), a pool server the broker and gateway, an admin's laptop rmactl.
# Depends come from dpkg-shlibdeps (the libraries each program really links) plus adduser for the
# maintainer scripts (deploy/debian/), which create the rma user and never start a service unasked.
# Files under /etc are conffiles: an operator's edits survive upgrades.
set(CPACK_PACKAGE_NAME rma)
set(CPACK_PACKAGE_VENDOR "rma")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${RMA_PACKAGE_MAINTAINER})
# No CPACK_PACKAGE_DESCRIPTION_SUMMARY: CPack would put it before every package's own synopsis.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# With CPACK_SET_DESTDIR the install runs with this prefix (the build may be configured for /usr/local).
set(CPACK_INSTALL_PREFIX /usr)
# /etc and /lib/systemd/system are absolute paths (RmaInstall.cmake): stage with DESTDIR so they land
# in the package, never on this machine.
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_GENERATOR DEB)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL ${RMA_COMPONENTS})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${RMA_PACKAGE_MAINTAINER})
# Maintainer scripts 0755 and control files 0644 whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Extended descriptions, wrapped as Debian wants them (under 80 columns).
set(rma_description_broker
    "It keeps the worker registry and the task queues, routes every task to"
    "the best live worker (GPU > CPU > storage), retries and recovers tasks,"
    "and records tasks, workers and statistics in PostgreSQL. Workers connect"
    "to it over ZeroMQ, and gateways turn HTTP into tasks for it.")
set(rma_description_gateway
    "It turns HTTP requests into tasks on an rma broker and answers with"
    "their results, and serves the admin API, Prometheus metrics and a live"
    "dashboard. Examples for an nginx TLS proxy, Prometheus alerts and a"
    "Grafana dashboard are in its documentation folder.")
set(rma_description_worker
    "It runs on a volunteer machine, connects out to an rma broker (no open"
    "port, works behind NAT), reports the machine's real hardware and the"
    "services it offers, and runs tasks through local HTTP backends, commands"
    "or built-in handlers.")
set(rma_description_cli
    "It submits and inspects tasks and shows and manages workers, services,"
    "queues and statistics through an rma gateway's HTTP API.")

foreach(component IN LISTS RMA_COMPONENTS)
  string(TOUPPER ${component} up)
  set(package ${RMA_PACKAGE_${component}})
  set(CPACK_DEBIAN_${up}_PACKAGE_NAME ${package})
  # The first line is the synopsis, the rest the extended description.
  list(JOIN rma_description_${component} "\n" extended)
  set(CPACK_DEBIAN_${up}_DESCRIPTION "${RMA_SUMMARY_${component}}\n${extended}")
  if(component STREQUAL "cli")
    continue()
  endif()
  set(CPACK_DEBIAN_${up}_PACKAGE_DEPENDS "adduser")
  # Maintainer scripts and the conffiles list, rendered for this package.
  set(RMA_DEB_PACKAGE ${package})
  set(RMA_UNIT ${package}.service)
  set(RMA_STATE ${component})
  set(control ${PROJECT_BINARY_DIR}/debian/${component})
  foreach(script postinst prerm postrm)
    configure_file(${RMA_DEPLOY_DIR}/debian/maintscript.${script}.in ${control}/${script} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                    WORLD_READ WORLD_EXECUTE)
  endforeach()
  file(WRITE ${control}/conffiles.tmp "/etc/default/${package}\n/etc/rma/${component}.json\n")
  file(COPY_FILE ${control}/conffiles.tmp ${control}/conffiles ONLY_IF_DIFFERENT)
  file(REMOVE ${control}/conffiles.tmp)
  set(CPACK_DEBIAN_${up}_PACKAGE_CONTROL_EXTRA
      "${control}/postinst;${control}/prerm;${control}/postrm;${control}/conffiles")
endforeach()

include(CPack)

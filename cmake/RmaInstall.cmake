# What `cmake --install` puts where, in four components that are also the four Debian packages
# (cmake/RmaPackage.cmake): broker, gateway, worker and cli (rmactl). Each gets its program, a man
# page made from its --help by help2man, its docs and, for the three services, a systemd unit,
# /etc/default/rma-<service> (the RMA_* settings the unit reads) and /etc/rma/<service>.json.
#
# /etc and the unit directory depend on the prefix in force *at install time* — /usr (the Debian
# packages) means /etc and /lib/systemd/system, anything else <prefix>/etc and
# <prefix>/lib/systemd/system — and the units' ExecStart names <prefix>/bin. So those files are
# placed by install(CODE) rather than by paths fixed when the build was configured: one build tree
# serves both `cmake --install --prefix /usr/local` and `cpack`.
include(GNUInstallDirs)

set(RMA_DEPLOY_DIR ${PROJECT_SOURCE_DIR}/deploy)
set(RMA_PROGRAMS_broker rma-broker)
set(RMA_PROGRAMS_gateway rma-gateway)
set(RMA_PROGRAMS_worker rma-worker)
set(RMA_PROGRAMS_cli rmactl)
set(RMA_COMPONENTS broker gateway worker cli)
# Package (and doc folder) name of each component.
set(RMA_PACKAGE_broker rma-broker)
set(RMA_PACKAGE_gateway rma-gateway)
set(RMA_PACKAGE_worker rma-worker)
set(RMA_PACKAGE_cli rmactl)
# One-line summaries: the man pages' NAME line and the packages' synopsis.
set(RMA_SUMMARY_broker "registry, queues and router of an rma compute pool")
set(RMA_SUMMARY_gateway "HTTP API, admin API, metrics and dashboard of an rma compute pool")
set(RMA_SUMMARY_worker "agent that offers a machine's hardware and services to an rma compute pool")
set(RMA_SUMMARY_cli "command-line client of an rma compute pool")

# Run at install time, before any file of a component is placed: where /etc and the units go.
set(rma_install_dirs_code [=[
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/")
    set(rma_etc "/etc")
    set(rma_units "/lib/systemd/system")
  else()
    set(rma_etc "${CMAKE_INSTALL_PREFIX}/etc")
    set(rma_units "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
  endif()
]=])

# ---- Man pages ---------------------------------------------------------------------------------
# help2man reads `PROGRAM --help` and `PROGRAM --version` (CLI11's output is in the shape it expects);
# the pages are compressed as Debian wants them. Without help2man there are no man pages (a warning;
# `--help` says the same).
find_program(RMA_HELP2MAN help2man)
find_program(RMA_GZIP gzip)
set(RMA_MAN_PAGES "")
# Not for sanitizer builds: they are not installed, and running their programs at build time would
# drag the sanitizers' own start-up checks into the build.
if(RMA_HELP2MAN AND RMA_GZIP AND NOT RMA_ASAN AND NOT RMA_TSAN)
  set(man_dir ${PROJECT_BINARY_DIR}/man)
  foreach(component IN LISTS RMA_COMPONENTS)
    set(program ${RMA_PROGRAMS_${component}})
    set(page ${man_dir}/${program}.1)
    add_custom_command(
      OUTPUT ${page}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${man_dir}
      COMMAND ${RMA_HELP2MAN} --no-info --no-discard-stderr
              "--name=${RMA_SUMMARY_${component}}"
              "--include=${PROJECT_SOURCE_DIR}/deploy/debian/man.h2m"
              --output=${page} $<TARGET_FILE:${program}>
      COMMAND ${RMA_GZIP} -9nf ${page}
      DEPENDS ${program} ${PROJECT_SOURCE_DIR}/deploy/debian/man.h2m
      COMMENT "Man page of ${program} (help2man)"
      VERBATIM)
    list(APPEND RMA_MAN_PAGES ${page}.gz)
  endforeach()
  add_custom_target(rma_man_pages ALL DEPENDS ${RMA_MAN_PAGES})
elseif(NOT RMA_ASAN AND NOT RMA_TSAN)
  message(WARNING "rma: help2man (or gzip) not found: no man pages are installed "
                  "(scripts/install-deps.sh installs help2man)")
endif()

# ---- Debian changelog and copyright (every package's doc folder needs them) -------------------------
# The changelog's date honours SOURCE_DATE_EPOCH, so a rebuild of the same sources is the same file.
string(TIMESTAMP rma_changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(RMA_PACKAGE_MAINTAINER "rma maintainers <maintainers@rma-pool.org>"
    CACHE STRING "Maintainer of the Debian packages: Name <email>")

foreach(component IN LISTS RMA_COMPONENTS)
  set(program ${RMA_PROGRAMS_${component}})
  set(package ${RMA_PACKAGE_${component}})
  set(docdir ${CMAKE_INSTALL_DATADIR}/doc/${package})
  set(staged ${PROJECT_BINARY_DIR}/install/${component})

  install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT ${component})
  if(RMA_MAN_PAGES)
    install(FILES ${PROJECT_BINARY_DIR}/man/${program}.1.gz
            DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT ${component})
  endif()

  # Docs: what an operator of this program reads (the whole docs/ folder goes with every package;
  # it is small and its pages link to each other).
  install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${docdir} COMPONENT ${component})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${docdir}/docs COMPONENT ${component}
          FILES_MATCHING PATTERN "*.md")
  set(RMA_DEB_PACKAGE ${package})
  configure_file(${RMA_DEPLOY_DIR}/debian/changelog.in ${staged}/changelog @ONLY)
  configure_file(${RMA_DEPLOY_DIR}/debian/copyright ${staged}/copyright COPYONLY)
  # A Debian changelog is compressed (gzip -n: no name or time stamp, reproducible).
  add_custom_command(
    OUTPUT ${staged}/changelog.gz
    COMMAND ${RMA_GZIP} -9nc ${staged}/changelog > ${staged}/changelog.gz
    DEPENDS ${staged}/changelog
    VERBATIM)
  list(APPEND rma_changelogs ${staged}/changelog.gz)
  install(FILES ${staged}/copyright ${staged}/changelog.gz DESTINATION ${docdir}
          COMPONENT ${component})
  if(EXISTS ${RMA_DEPLOY_DIR}/debian/${package}.lintian-overrides)
    install(CODE "${rma_install_dirs_code}
      if(rma_etc STREQUAL \"/etc\")
        file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/share/lintian/overrides\" TYPE FILE
             RENAME ${package}
             FILES \"${RMA_DEPLOY_DIR}/debian/${package}.lintian-overrides\")
      endif()" COMPONENT ${component})
  endif()

  if(component STREQUAL "cli")
    continue()
  endif()
  # The service: its unit (ExecStart in the install-time bindir), its settings in /etc/default
  # (0600: they hold secrets; systemd reads them as root) and its JSON file in /etc/rma.
  set(unit_in ${RMA_DEPLOY_DIR}/systemd/${program}.service.in)
  install(CODE "${rma_install_dirs_code}
    set(RMA_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
    configure_file(\"${unit_in}\" \"${staged}/${program}.service\" @ONLY)
    file(INSTALL DESTINATION \"\${rma_units}\" TYPE FILE FILES \"${staged}/${program}.service\")
    file(INSTALL DESTINATION \"\${rma_etc}/default\" TYPE FILE
         PERMISSIONS OWNER_READ OWNER_WRITE
         FILES \"${RMA_DEPLOY_DIR}/etc/default/${program}\")
    file(INSTALL DESTINATION \"\${rma_etc}/rma\" TYPE FILE
         FILES \"${RMA_DEPLOY_DIR}/etc/rma/${component}.json\")" COMPONENT ${component})
endforeach()
add_custom_target(rma_package_docs ALL DEPENDS ${rma_changelogs})

# The gateway's package carries the deployment examples that sit in front of and around it.
foreach(example nginx prometheus grafana)
  install(DIRECTORY ${RMA_DEPLOY_DIR}/${example} DESTINATION
          ${CMAKE_INSTALL_DATADIR}/doc/${RMA_PACKAGE_gateway}/examples COMPONENT gateway)
endforeach()

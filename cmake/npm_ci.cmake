# Installs a folder's npm packages exactly as its package-lock.json says, only when needed: runs
# `npm ci` in DIR when DIR/node_modules is missing or was installed from another package-lock.json,
# and keeps STAMP (in the build tree) holding the lock's hash, rewritten only when that changes, so
# whatever depends on STAMP rebuilds exactly when the packages do. Cheap enough to run on every build.
#   cmake -DNPM=<npm> -DDIR=<folder with package-lock.json> -DSTAMP=<file> -P npm_ci.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var NPM DIR STAMP)
  if(NOT ${var})
    message(FATAL_ERROR "npm_ci.cmake: ${var} is required")
  endif()
endforeach()
if(NOT EXISTS "${DIR}/package-lock.json")
  message(FATAL_ERROR "npm_ci.cmake: ${DIR} has no package-lock.json")
endif()

file(SHA256 "${DIR}/package-lock.json" lock)
set(marker "${DIR}/node_modules/.rma-package-lock.sha256")
set(installed "")
if(EXISTS "${marker}")
  file(READ "${marker}" installed)
endif()
if(NOT installed STREQUAL lock OR NOT EXISTS "${DIR}/node_modules/.package-lock.json")
  message(STATUS "npm ci in ${DIR}")
  execute_process(
    COMMAND "${NPM}" ci --no-audit --no-fund --loglevel=error
    WORKING_DIRECTORY "${DIR}"
    RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "npm ci failed in ${DIR} (exit ${result}); the npm registry must be reachable")
  endif()
  file(WRITE "${marker}" "${lock}")
endif()

set(stamped "")
if(EXISTS "${STAMP}")
  file(READ "${STAMP}" stamped)
endif()
if(NOT stamped STREQUAL lock)
  file(WRITE "${STAMP}" "${lock}")
endif()

# Generates a C++ source holding every schemas/sql/NNN_name.sql migration as a string, so rma-broker carries
# its schema and needs no files at run time. Run by the build (broker/CMakeLists.txt) as
#   cmake -DOUT=<file.cc> -DSQL_DIR=<dir> -P embed_migrations.cmake
file(GLOB files "${SQL_DIR}/*.sql")
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME_WE)
  if(NOT name MATCHES "^([0-9][0-9][0-9])_[a-z0-9_]+$")
    message(FATAL_ERROR "migration file name must look like 001_name.sql: ${f}")
  endif()
  math(EXPR version "${CMAKE_MATCH_1}")
  file(READ "${f}" sql)
  string(FIND "${sql}" ")rma_sql\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${f} contains the raw-string delimiter )rma_sql\"")
  endif()
  string(APPEND body "      {${version}, \"${name}\", R\"rma_sql(${sql})rma_sql\"},\n")
endforeach()
set(content "// Generated from schemas/sql/*.sql by broker/embed_migrations.cmake. Do not edit.
#include \"broker/migrations.h\"

namespace rma::broker {

const std::vector<Migration>& EmbeddedMigrations() {
  static const std::vector<Migration> kMigrations = {
${body}  };
  return kMigrations;
}

}  // namespace rma::broker
")
# Rewrite only on change, so an unrelated reconfigure does not rebuild the broker.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUT}" "${content}")

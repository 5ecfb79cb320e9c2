// The database schema as numbered migrations: schemas/sql/NNN_name.sql, compiled into the broker
// (broker/embed_migrations.cmake) so the one source of truth is the SQL directory and the binary
// needs no files at run time. PgStore applies the missing ones at start, in order, each in its own
// transaction, and records them in rma_migrations. Plain data; safe from any thread.
#pragma once

#include <string>
#include <vector>

namespace rma::broker {

struct Migration {
  int version = 0;   // the NNN prefix
  std::string name;  // "001_initial"
  std::string sql;
};

// Every migration of this build, by increasing version.
const std::vector<Migration>& EmbeddedMigrations();

}  // namespace rma::broker

// See pg_env.h.
#include "tests/store/pg_env.h"

#include <cstdlib>
#include <filesystem>
#include <pqxx/pqxx>
#include <random>
#include <stdexcept>

#include "tests/support/process.h"

namespace rma::testing {

std::string TestServerUrl() {
  const char* url = std::getenv("RMA_TEST_PG_URL");
  return url == nullptr ? "" : url;
}

FreshDatabase::FreshDatabase(const std::string& server_url) : server_url_(server_url) {
  std::mt19937_64 rng(std::random_device{}());
  name_ = "rma_store_" + std::to_string(rng() % 1000000000000ULL);
  pqxx::connection admin(server_url_);
  pqxx::nontransaction tx(admin);
  tx.exec("CREATE DATABASE " + name_);
  url_ = server_url_.substr(0, server_url_.rfind('/') + 1) + name_;
}

FreshDatabase::~FreshDatabase() {
  try {
    pqxx::connection admin(server_url_);
    pqxx::nontransaction tx(admin);
    tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception&) {
    // The server is going away with the test run anyway.
  }
}

namespace {
std::string PgScript() { return std::string(RMA_SOURCE_DIR) + "/scripts/pg.sh"; }
}  // namespace

PrivatePg::PrivatePg() : dir_(TempDir("rma-pg")) {
  // The server runs as the postgres user, which must reach its data directory inside this one.
  std::filesystem::permissions(dir_, std::filesystem::perms::owner_all |
                                         std::filesystem::perms::group_exec |
                                         std::filesystem::perms::others_exec);
  if (!Start()) throw std::runtime_error("could not start a private PostgreSQL in " + dir_);
}

PrivatePg::~PrivatePg() {
  Stop();
  std::string cmd = "rm -rf '" + dir_ + "'";
  (void)std::system(cmd.c_str());
}

bool PrivatePg::Start() {
  std::string cmd = "bash '" + PgScript() + "' start '" + dir_ + "/pg' >/dev/null";
  if (std::system(cmd.c_str()) != 0) return false;
  std::string url = ReadFile(dir_ + "/pg/url");
  while (!url.empty() && (url.back() == '\n' || url.back() == ' ')) url.pop_back();
  if (!url_.empty() && url != url_) return false;  // the port was taken meanwhile
  url_ = url;
  return true;
}

void PrivatePg::Stop() {
  std::string cmd = "bash '" + PgScript() + "' stop '" + dir_ + "/pg' >/dev/null 2>&1";
  (void)std::system(cmd.c_str());
}

std::string QueryValue(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  pqxx::result r = tx.exec(sql);
  if (r.empty() || r[0].empty() || r[0][0].is_null()) return "";
  return r[0][0].c_str();
}

bool WaitAllCompleted(const std::string& url, const std::set<std::string>& ids,
                      std::chrono::milliseconds timeout, std::string* progress) {
  // The tasks table's ids are signed bigints of the same 64 bits.
  std::string literal = "'{";
  for (const std::string& id : ids) {
    if (literal.size() > 2) literal += ',';
    literal += std::to_string(static_cast<int64_t>(std::stoull(id)));
  }
  literal += "}'::bigint[]";
  std::string completed;
  const bool all = WaitUntil(
      [&] {
        completed = QueryValue(
            url, "SELECT count(*) FROM tasks WHERE status = 'completed' AND task_id = ANY(" +
                     literal + ")");
        return completed == std::to_string(ids.size());
      },
      timeout);
  *progress = completed + " of " + std::to_string(ids.size()) + " acknowledged tasks completed";
  if (!all) {
    // What the others are doing, for whoever reads the failure: up to 10 of them on record, and
    // how many are not on record at all.
    *progress +=
        "; missing from the table: " +
        QueryValue(url,
                   "SELECT count(*) FROM unnest(" + literal +
                       ") AS i (id) WHERE NOT EXISTS (SELECT 1 FROM tasks WHERE task_id = i.id)") +
        "; some not completed (task_id status attempts requeues worker_id attempt_log): " +
        QueryValue(
            url,
            "SELECT string_agg(concat_ws(' ', (task_id::numeric + CASE WHEN task_id < 0 THEN "
            "18446744073709551616 ELSE 0 END)::text, status, attempts, requeues, "
            "worker_id, attempt_log::text), ' | ') FROM (SELECT * FROM tasks WHERE status <> "
            "'completed' AND task_id = ANY(" +
                literal + ") LIMIT 10) t");
  }
  return all;
}

}  // namespace rma::testing

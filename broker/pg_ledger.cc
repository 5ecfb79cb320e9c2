// The credit ledger in PostgreSQL (schemas/sql/005_credits.sql; docs/accounts.md, "Credits"): the
// statements the writer adds to its group commit, and the account queries the reader answers
// (an account's credits, grants and adjustments, the leaderboard).
//
// Balances move only together with the rows that explain them, in the same transaction, so the sum
// of an account's rows is its balance after every commit. Two ways:
// - a few rows, or one row in the writer's careful path: one statement inserts them (ON CONFLICT
//   DO NOTHING on the ledger's unique indexes) and adds to accounts.credits exactly what was
//   inserted, whatever was written twice;
// - a group commit's rows (WriteLedgerRows, tolerate_duplicates false): a plain INSERT from the
//   staging table, then the balances move by the staged sums. A row already on record (an in-doubt
//   commit replayed) fails the whole transaction on a unique index, and the writer commits the
//   batch again row by row, the first way. The plain insert costs about 70% of the upsert per row
//   (docs/benchmarks.md, "Credits"): no speculative insertion, no RETURNING. A completed task's
//   spent row rides in the task's own stage row when it can (SpentRidesWithTask): it repeats that
//   row's task, owner, service, attempt, worker and time, so only its amount and compute time are
//   sent, and the separate COPY of such rows (about a third of the ledger's time) is saved.
#include <fmt/format.h>

#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include <nlohmann/json.hpp>

#include "broker/credits.h"
#include "broker/pg_internal.h"
#include "broker/pg_values.h"

namespace rma::broker::pg {

namespace {

std::string Amount(double amount) { return fmt::format("{:.6f}", RoundCredits(amount)); }

// Adds to each account on record the sum of its amounts in `rows` (a query of (account, amount)).
std::string CreditSums(std::string_view rows) {
  return fmt::format(
      "UPDATE accounts a SET credits = a.credits + s.total FROM (SELECT account, sum(amount) AS "
      "total FROM ({}) u GROUP BY account) s WHERE a.name = s.account",
      rows);
}

// `rows` (SELECT ... or VALUES ...) with the ledger's columns, inserted and added to balances.
std::string InsertAndCredit(std::string_view rows) {
  return fmt::format(
      "WITH e (at, account, kind, amount, task_id, attempt, worker_id, service, compute_s, note) "
      "AS ({}), "
      "ins AS (INSERT INTO credit_ledger (at, account, kind, amount, task_id, attempt, "
      "worker_id, service, compute_s, note) "
      "SELECT e.* FROM e JOIN accounts a ON a.name = e.account "
      // Any of the ledger's unique indexes (schemas/sql/008_verification.sql): one earned row per
      // accepted attempt, one spent row per task.
      "ON CONFLICT DO NOTHING "
      "RETURNING account, amount) {}",
      rows, CreditSums("SELECT account, amount FROM ins"));
}

// Start of the period in SQL ("day": since midnight UTC, "week": since Monday UTC).
std::string_view PeriodStart(std::string_view period) {
  if (period == "day") return "date_trunc('day', now(), 'UTC')";
  if (period == "week") return "date_trunc('week', now(), 'UTC')";
  return "'-infinity'::timestamptz";
}

}  // namespace

const std::vector<std::string>& LedgerColumns() {
  static const std::vector<std::string> columns = {"at",        "account", "kind",      "amount",
                                                   "task_id",   "attempt", "worker_id", "service",
                                                   "compute_s", "note"};
  return columns;
}

std::string LedgerStageSql() {
  return "CREATE TEMP TABLE rma_ledger_stage (at timestamptz, account text, kind text, amount "
         "numeric, task_id bigint, attempt integer, worker_id text, service text, compute_s "
         "double precision, note text) ON COMMIT DELETE ROWS";
}

std::string LedgerFromStageSql() {
  return InsertAndCredit("SELECT " + Join(LedgerColumns(), "%") + " FROM rma_ledger_stage");
}

std::string LedgerInsertStagedSql() {
  const std::string cols = Join(LedgerColumns(), "%");
  // Rows of an account not on record are left out, as in InsertAndCredit, and their sums below
  // match no account.
  return "INSERT INTO credit_ledger (" + cols + ") SELECT " + Join(LedgerColumns(), "s.%") +
         " FROM rma_ledger_stage s JOIN accounts a ON a.name = s.account";
}

std::string LedgerCreditStagedSql() {
  return CreditSums("SELECT account, amount FROM rma_ledger_stage");
}

const std::vector<std::string>& SpentStageColumns() {
  static const std::vector<std::string> columns = {"spent_amount", "spent_compute_s"};
  return columns;
}

bool SpentRidesWithTask(const LedgerEntry& e, const TaskRecord& task) {
  // Every column the spent row takes from the task row must be what the entry says, exactly as
  // each would be written (CleanText, the same timestamp): otherwise the entry keeps its own row.
  return e.kind == "spent" && e.task_id.value() != 0 && e.task_id == task.id && e.note.empty() &&
         !e.account.empty() && CleanText(e.account) == CleanText(task.owner) &&
         CleanText(e.service) == CleanText(task.service) && e.attempt == task.attempts &&
         e.attempt <= INT32_MAX && CleanText(e.worker_id) == CleanText(task.worker_id) &&
         e.at.time_since_epoch().count() > 0 && e.at == task.completed_at;
}

std::tuple<std::optional<std::string>, std::optional<double>> SpentStageValues(
    const LedgerEntry* spent) {
  if (spent == nullptr) return {std::nullopt, std::nullopt};
  return {Amount(spent->amount), spent->compute_s};
}

std::string LedgerInsertSpentStagedSql() {
  // The columns SpentRidesWithTask checked; rows of an owner not on record are left out, as above.
  return "INSERT INTO credit_ledger (" + Join(LedgerColumns(), "%") +
         ") SELECT s.completed_at, s.owner, 'spent', s.spent_amount, s.task_id, s.attempts, "
         "coalesce(s.worker_id, ''), s.service, s.spent_compute_s, '' FROM rma_stage s JOIN "
         "accounts a ON a.name = s.owner WHERE s.spent_amount IS NOT NULL";
}

std::string LedgerCreditBothStagedSql() {
  return CreditSums(
      "SELECT account, amount FROM rma_ledger_stage UNION ALL SELECT owner, spent_amount FROM "
      "rma_stage WHERE spent_amount IS NOT NULL");
}

namespace {

// The rows into rma_ledger_stage by COPY: a row costs a fifth of what it costs in a VALUES list
// (parsing every literal).
void CopyToLedgerStage(pqxx::transaction_base& tx, const std::vector<LedgerEntry>& entries) {
  pqxx::stream_to copy(tx, "rma_ledger_stage", LedgerColumns());
  for (const LedgerEntry& e : entries) {
    const bool task = e.task_id.value() != 0;
    std::optional<int64_t> task_id;
    std::optional<int64_t> attempt;
    if (task) {
      task_id = static_cast<int64_t>(e.task_id.value());
      attempt = static_cast<int64_t>(e.attempt);
    }
    copy << std::make_tuple(PgTimestamp(e.at), CleanText(e.account), e.kind, Amount(e.amount),
                            task_id, attempt, CleanText(e.worker_id), CleanText(e.service),
                            e.compute_s, CleanText(e.note));
  }
  copy.complete();
}

}  // namespace

void WriteLedgerRows(pqxx::transaction_base& tx, const std::vector<LedgerEntry>& entries,
                     bool tolerate_duplicates, bool spent_in_task_stage) {
  RMA_CHECK(!(spent_in_task_stage && tolerate_duplicates))
      << "spent rows ride in the task stage only in the group commit";
  if (entries.empty() && !spent_in_task_stage) return;
  if (!entries.empty()) CopyToLedgerStage(tx, entries);
  if (tolerate_duplicates) {
    tx.exec_prepared("rma_ledger_from_stage");
    // Emptied at commit anyway; now, for the next subtransaction's row not to be inserted twice.
    tx.exec("DELETE FROM rma_ledger_stage");
    return;
  }
  // The group commit writes its rows once per transaction: the stages are emptied at commit.
  if (!entries.empty()) tx.exec_prepared("rma_ledger_insert_staged");
  if (spent_in_task_stage) tx.exec_prepared("rma_ledger_insert_spent_staged");
  tx.exec_prepared(spent_in_task_stage ? "rma_ledger_credit_both_staged"
                                       : "rma_ledger_credit_staged");
}

std::vector<RecentEarnings> LoadRecentEarnings(pqxx::transaction_base& tx, Duration half_life) {
  const double half_life_s = std::max(1.0, ToSecondsF(half_life));
  std::vector<RecentEarnings> rows;
  // The partial index on earned rows' time bounds the read to the window.
  for (const pqxx::row& r : tx.exec_params(
           "SELECT account, service, sum(amount::float8 * power(2.0, -extract(epoch FROM now() - "
           "at) / $1))::float8 FROM credit_ledger WHERE kind = 'earned' AND at > now() - "
           "make_interval(secs => $2) GROUP BY account, service",
           half_life_s, 8 * half_life_s)) {
    RecentEarnings e;
    e.account = r[0].c_str();
    e.service = r[1].c_str();
    e.amount = r[2].as<double>();
    if (e.amount > 0) rows.push_back(std::move(e));
  }
  return rows;
}

std::string LedgerSql(pqxx::transaction_base& tx, const std::vector<LedgerEntry>& entries) {
  if (entries.empty()) return {};
  std::string values = "VALUES ";
  for (size_t i = 0; i < entries.size(); ++i) {
    const LedgerEntry& e = entries[i];
    const bool task = e.task_id.value() != 0;
    values += fmt::format(
        "{}({}::timestamptz, {}, {}, {}::numeric, {}::bigint, {}::integer, {}, {}, "
        "{}::double precision, {})",
        i == 0 ? "" : ",", tx.quote(PgTimestamp(e.at)), tx.quote(CleanText(e.account)),
        tx.quote(e.kind), Amount(e.amount),
        task ? std::to_string(static_cast<int64_t>(e.task_id.value())) : std::string("NULL"),
        task ? std::to_string(e.attempt) : std::string("NULL"), tx.quote(CleanText(e.worker_id)),
        tx.quote(CleanText(e.service)), fmt::format("{:.6f}", e.compute_s),
        tx.quote(CleanText(e.note)));
  }
  return InsertAndCredit(values);
}

nlohmann::json CreditSummary(pqxx::transaction_base& tx, const std::string& account) {
  // Earned counts what the account's workers did (and uptime); spent what its tasks cost.
  pqxx::result totals = tx.exec_params(
      "SELECT "
      "coalesce(sum(amount) FILTER (WHERE kind IN ('earned', 'uptime') AND at >= "
      "date_trunc('day', now(), 'UTC')), 0)::float8, "
      "coalesce(sum(amount) FILTER (WHERE kind IN ('earned', 'uptime') AND at >= "
      "date_trunc('week', now(), 'UTC')), 0)::float8, "
      "coalesce(sum(amount) FILTER (WHERE kind IN ('earned', 'uptime')), 0)::float8, "
      "coalesce(-sum(amount) FILTER (WHERE kind = 'spent' AND at >= "
      "date_trunc('day', now(), 'UTC')), 0)::float8, "
      "coalesce(-sum(amount) FILTER (WHERE kind = 'spent' AND at >= "
      "date_trunc('week', now(), 'UTC')), 0)::float8, "
      "coalesce(-sum(amount) FILTER (WHERE kind = 'spent'), 0)::float8, "
      "coalesce(sum(amount) FILTER (WHERE kind IN ('grant', 'adjustment')), 0)::float8 "
      "FROM credit_ledger WHERE account = $1",
      account);
  const pqxx::row t = totals[0];
  nlohmann::json doc = {
      {"earned",
       {{"today", t[0].as<double>()}, {"week", t[1].as<double>()}, {"all", t[2].as<double>()}}},
      {"spent",
       {{"today", t[3].as<double>()}, {"week", t[4].as<double>()}, {"all", t[5].as<double>()}}},
      {"granted", t[6].as<double>()}};
  nlohmann::json ledger = nlohmann::json::array();
  for (const pqxx::row& r : tx.exec_params(
           "SELECT " + Micros("at") +
               ", kind, amount::float8, task_id, attempt, worker_id, service, compute_s, note "
               "FROM credit_ledger WHERE account = $1 ORDER BY id DESC LIMIT 50",
           account)) {
    nlohmann::json e = {{"at", Timestamp(r[0])},       {"kind", Text(r[1])},
                        {"amount", r[2].as<double>()}, {"worker_id", Text(r[5])},
                        {"service", Text(r[6])},       {"compute_s", r[7].as<double>()},
                        {"note", Text(r[8])}};
    if (!r[3].is_null()) {
      e["task_id"] = std::to_string(static_cast<uint64_t>(r[3].as<int64_t>()));
      e["attempt"] = r[4].as<int64_t>();
    }
    ledger.push_back(std::move(e));
  }
  doc["ledger"] = std::move(ledger);
  return doc;
}

Result<nlohmann::json> GrantCredits(pqxx::transaction_base& tx, const LedgerEntry& grant) {
  if (grant.kind != "grant" && grant.kind != "adjustment") {
    return Status::InvalidArgument("kind must be grant or adjustment");
  }
  if (tx.exec_params("SELECT 1 FROM accounts WHERE name = $1", grant.account).empty()) {
    return Status::NotFound("no account '" + grant.account.substr(0, 64) + "'");
  }
  tx.exec(LedgerSql(tx, {grant}));
  pqxx::result balance =
      tx.exec_params("SELECT credits::float8 FROM accounts WHERE name = $1", grant.account);
  return nlohmann::json{{"account", grant.account},
                        {"kind", grant.kind},
                        {"amount", RoundCredits(grant.amount)},
                        {"note", grant.note},
                        {"balance", balance[0][0].as<double>()}};
}

Result<nlohmann::json> Leaderboard(pqxx::transaction_base& tx, std::string_view period,
                                   std::string_view by, size_t limit) {
  if (period != "day" && period != "week" && period != "all") {
    return Status::InvalidArgument("period must be day, week or all");
  }
  std::string order;
  if (by == "credits") {
    order = "credits";
  } else if (by == "tasks") {
    order = "tasks";
  } else if (by == "compute") {
    order = "compute_s";
  } else {
    return Status::InvalidArgument("by must be credits, tasks or compute");
  }
  const std::string since(PeriodStart(period));
  // One row per (account, worker) of the accounts that earned in the period; the accounts ranked
  // by their sums, the workers beneath each.
  pqxx::result rows = tx.exec(fmt::format(
      "WITH w AS (SELECT account, worker_id, sum(amount)::float8 AS credits, count(*) AS tasks, "
      "sum(compute_s) AS compute_s FROM credit_ledger WHERE kind = 'earned' AND at >= {} "
      "GROUP BY account, worker_id), "
      "a AS (SELECT account, sum(credits) AS credits, sum(tasks) AS tasks, "
      "sum(compute_s) AS compute_s FROM w GROUP BY account ORDER BY {} DESC, account LIMIT {}) "
      "SELECT a.account, a.credits, a.tasks, a.compute_s, w.worker_id, w.credits, w.tasks, "
      "w.compute_s, coalesce(c.name, '') FROM a JOIN w ON w.account = a.account "
      "LEFT JOIN LATERAL (SELECT name FROM worker_credentials wc WHERE wc.worker_id = w.worker_id "
      "AND wc.account = a.account ORDER BY last_seen DESC LIMIT 1) c ON true "
      "ORDER BY a.{} DESC, a.account, w.credits DESC, w.worker_id",
      since, order, limit, order));
  nlohmann::json accounts = nlohmann::json::array();
  for (const pqxx::row& r : rows) {
    const std::string account = Text(r[0]);
    if (accounts.empty() || accounts.back()["account"] != account) {
      accounts.push_back({{"rank", accounts.size() + 1},
                          {"account", account},
                          {"credits", RoundCredits(r[1].as<double>())},
                          {"tasks", r[2].as<int64_t>()},
                          {"compute_s", r[3].as<double>()},
                          {"workers", nlohmann::json::array()}});
    }
    accounts.back()["workers"].push_back({{"worker_id", Text(r[4])},
                                          {"name", Text(r[8])},
                                          {"credits", RoundCredits(r[5].as<double>())},
                                          {"tasks", r[6].as<int64_t>()},
                                          {"compute_s", r[7].as<double>()}});
  }
  return nlohmann::json{{"period", period}, {"by", by}, {"accounts", std::move(accounts)}};
}

nlohmann::json Timestamp(const pqxx::field& micros) {
  if (micros.is_null()) return nullptr;
  return FormatTime(FromUnixUs(micros.as<int64_t>()));
}

}  // namespace rma::broker::pg

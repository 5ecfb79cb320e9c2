// Values as PostgreSQL takes them, for the PostgreSQL store: text cleaned to what a text column
// accepts, timestamps, bytea and array literals, and the connection string with the defaults the
// broker relies on. Pure functions without libpqxx, safe on any thread; unit-tested in
// tests/store/pg_values_test.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "protocol/messages.h"

namespace rma::broker {

// PostgreSQL text must be valid UTF-8 without NUL bytes, and peers may send anything: invalid
// sequences and NULs become U+FFFD, so hostile input can never make a write fail.
std::string CleanText(std::string_view text);

// "2026-11-22 10:20:00.123456+00" (UTC, microseconds).
std::string PgTimestamp(Time t);

// The text form of a bytea: "\x" followed by two lower-case hex digits per byte.
std::string ByteaHex(std::string_view bytes);

// Array literals for a parameter: {"a","b\"c"} (text, cleaned) and {1,2,3} (bigint).
std::string TextArrayLiteral(const std::vector<std::string>& items);
std::string IdArrayLiteral(const std::vector<uint64_t>& ids);

// A task's attempt log as the JSON text of the tasks.attempt_log column ("" for an empty log:
// NULL; strings cleaned as CleanText does), and back (unreadable entries are skipped: the column is
// ours, but a log never fails a read).
std::string AttemptLogJson(const std::vector<proto::AttemptEntry>& log);
std::vector<proto::AttemptEntry> ParseAttemptLog(std::string_view json);

// The URL or key=value string with the connection settings the broker needs unless the operator
// set them: a connect timeout, TCP keepalives and a user timeout (a dead server is noticed in
// seconds, not after the kernel's retransmission limit) and an application_name for
// pg_stat_activity.
std::string ConnectionString(const std::string& url, const std::string& application_name);

// The URL with any password replaced by "***", for logs.
std::string RedactUrl(const std::string& url);

}  // namespace rma::broker

// Unit tests (no database) for the values the PostgreSQL store sends: text cleaning, timestamps,
// bytea and array literals, the attempt log's column text, connection defaults, URL redaction.
#include "broker/pg_values.h"

#include <gtest/gtest.h>

#include "broker/console.h"

namespace rma::broker {
namespace {

TEST(AttemptLogColumnTest, RoundTripsAndNeverWritesANul) {
  const Time t0 = FromUnixMs(1'800'000'000'000);
  std::vector<proto::AttemptEntry> log;
  OpenAttempt(&log, 1, "w\"1", t0);
  CloseAttempt(&log, t0 + Seconds(1), "timeout", "timeout", "took \xff too long");
  OpenAttempt(&log, 2, "w2", t0 + Seconds(2));
  const std::string text = AttemptLogJson(log);
  std::vector<proto::AttemptEntry> back = ParseAttemptLog(text);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].worker_id, "w\"1");
  EXPECT_EQ(back[0].outcome, "timeout");
  EXPECT_EQ(back[0].ended_at_ms, ToUnixMs(t0) + 1000);
  EXPECT_EQ(back[1], log[1]);
  EXPECT_EQ(AttemptLogJson({}), "");
  // No NUL escape reaches the jsonb column (PostgreSQL refuses \u0000).
  std::vector<proto::AttemptEntry> nul = {
      {1, std::string("w\0x", 3), 0, 0, "failed", "", std::string("a\0b", 3)}};
  EXPECT_EQ(AttemptLogJson(nul).find("\\u0000"), std::string::npos) << AttemptLogJson(nul);
  EXPECT_EQ(ParseAttemptLog(AttemptLogJson(nul))[0].error,
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_TRUE(ParseAttemptLog("not json").empty());
  EXPECT_TRUE(ParseAttemptLog("{}").empty());
}

TEST(CleanTextTest, KeepsValidUtf8AndReplacesInvalidBytesAndNul) {
  EXPECT_EQ(CleanText("plain ascii"), "plain ascii");
  EXPECT_EQ(CleanText("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"),
            "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(CleanText(std::string("a\0b", 3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(CleanText("\xff"), "\xEF\xBF\xBD");
  EXPECT_EQ(CleanText("\xc3"), "\xEF\xBF\xBD");                                  // truncated
  EXPECT_EQ(CleanText("\xc0\xaf"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
  EXPECT_EQ(CleanText("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(CleanText("\xf4\x90\x80\x80x"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDx");  // past U+10FFFF
}

TEST(PgTimestampTest, FormatsUtcWithMicroseconds) {
  EXPECT_EQ(PgTimestamp(FromUnixUs(0)), "1970-01-01 00:00:00.000000+00");
  EXPECT_EQ(PgTimestamp(FromUnixUs(1'800'000'000'123'456)), "2027-01-15 08:00:00.123456+00");
  EXPECT_EQ(PgTimestamp(FromUnixUs(-1)), "1969-12-31 23:59:59.999999+00");
}

TEST(ByteaHexTest, EncodesEveryByte) {
  EXPECT_EQ(ByteaHex(""), "\\x");
  EXPECT_EQ(ByteaHex(std::string("\0\x7f\x80\xff", 4)), "\\x007f80ff");
}

TEST(ArrayLiteralTest, QuotesAndEscapes) {
  EXPECT_EQ(TextArrayLiteral({}), "{}");
  EXPECT_EQ(TextArrayLiteral({"echo", "say \"hi\"", "back\\slash", "a,b{c}"}),
            "{\"echo\",\"say \\\"hi\\\"\",\"back\\\\slash\",\"a,b{c}\"}");
  // bigint is signed: the id with all 64 bits set is stored as -1.
  EXPECT_EQ(IdArrayLiteral({1, 18446744073709551615ULL}), "{1,-1}");
}

TEST(ConnectionStringTest, AddsDefaultsTheOperatorDidNotSet) {
  std::string url = ConnectionString("postgresql://rma@db:5432/rma", "rma-broker-writer");
  EXPECT_EQ(url.rfind("postgresql://rma@db:5432/rma?connect_timeout=5&", 0), 0u) << url;
  EXPECT_NE(url.find("tcp_user_timeout=30000"), std::string::npos);
  EXPECT_NE(url.find("application_name=rma-broker-writer"), std::string::npos);
  std::string own = ConnectionString("postgresql://db/rma?sslmode=require&connect_timeout=1", "x");
  EXPECT_NE(own.find("sslmode=require&connect_timeout=1&keepalives_idle=30"), std::string::npos)
      << own;
  EXPECT_EQ(own.find("connect_timeout=5"), std::string::npos);
  std::string kv = ConnectionString("host=db dbname=rma", "x");
  EXPECT_EQ(kv.rfind("host=db dbname=rma connect_timeout=5 ", 0), 0u) << kv;
}

TEST(RedactUrlTest, HidesPasswordsOnly) {
  EXPECT_EQ(RedactUrl("postgresql://rma:s3cret@db:5432/rma"), "postgresql://rma:***@db:5432/rma");
  EXPECT_EQ(RedactUrl("postgresql://rma@db:5432/rma"), "postgresql://rma@db:5432/rma");
  EXPECT_EQ(RedactUrl("host=db password=s3cret dbname=rma"), "host=db password=*** dbname=rma");
  EXPECT_EQ(RedactUrl("postgresql://db/rma?user=u&password=s3cret&sslmode=require"),
            "postgresql://db/rma?user=u&password=***&sslmode=require");
}

}  // namespace
}  // namespace rma::broker

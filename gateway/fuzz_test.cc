// Bounded random-mutation tests of the gateway's parsers of untrusted input: the HTTP head parser
// and what reads its parts (framing, targets, queries, percent-decoding, service paths), the
// chunked body decoder, and the JSON task parser in both its forms with the scanner behind the
// large one.
//
// Each test starts from valid inputs and mutates them — flipped and inserted bytes, cuts, repeated
// pieces, huge numbers, deep nesting, long strings, stray CR/LF/NUL — with a fixed seed and a fixed
// number of iterations, so a run is reproducible and takes seconds (also under ASan/UBSan, which is
// where memory errors would show). Every input must be handled without a crash in bounded time,
// and whatever a parser accepts must read back the same way (round trips, and the two forms of the
// task parser agreeing).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "gateway/http_wire.h"
#include "gateway/task_json.h"
#include "tests/support/mutator.h"

namespace rma::gateway {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kIterations = 100000;
// No single input may take longer than this (generous: sanitizer builds are slow).
constexpr auto kMaxPerInput = std::chrono::milliseconds(500);

using rma::testing::Mutator;

// Re-writes an accepted head in the form the parser reads.
std::string Rewrite(const RequestHead& h) {
  std::string out = h.method;
  out += ' ';
  out += h.target;
  out += h.http11 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n";
  for (const auto& [name, value] : h.headers) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  out += "\r\n";
  return out;
}

std::string PercentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    out += '%';
    out += kHex[u >> 4];
    out += kHex[u & 15];
  }
  return out;
}

TEST(HttpFuzzTest, HeadsTargetsAndQueriesSurviveMutationAndReadBackTheSame) {
  const std::vector<std::string> seeds = {
      "GET /health HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
      std::string("POST /api/tasks HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n") +
          "Content-Length: 42\r\nX-API-Key: client-key-1\r\n\r\n",
      "GET /api/tasks?service=ocr&status=queued&limit=10&wait=2.5 HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string("PUT /api/service/rag/v1/a%20b/c?x=1&x=2&q=a+b HTTP/1.0\r\n") +
          "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n" +
          "Origin: http://evil.example\r\n\r\n",
      std::string("\r\nDELETE /api/tasks/1795345725120862 HTTP/1.1\nHost: a\n") +
          "Content-Type: application/json\n\n",
      std::string("POST /api/admin/workers/w%2F1/drain HTTP/1.1\r\nContent-Length: 0\r\n") +
          "Content-Length: 0\r\nSec-Fetch-Site: cross-site\r\n\r\n",
  };
  const std::vector<std::string> dictionary = {"Content-Length: ",
                                               "Transfer-Encoding: chunked",
                                               "\r\n",
                                               "%2F",
                                               "%2e%2e",
                                               "..",
                                               "%00",
                                               "%",
                                               "%5C",
                                               "?",
                                               "#",
                                               "&",
                                               "=",
                                               " HTTP/1.1",
                                               "HTTP/1.0",
                                               ": ",
                                               "\t",
                                               "\x7f",
                                               "\xff",
                                               "/../"};
  Mutator m(12345);
  size_t accepted = 0;
  for (int i = 0; i < kIterations; ++i) {
    const std::string input = m.Mutate(seeds[m.Below(seeds.size())], dictionary);
    const auto start = Clock::now();
    (void)FindHeadEnd(input, m.Below(input.size() + 1));
    auto head = ParseRequestHead(input);
    if (head) {
      ++accepted;
      // What was accepted reads back the same.
      auto again = ParseRequestHead(Rewrite(*head));
      ASSERT_TRUE(again) << input;
      EXPECT_EQ(again->method, head->method);
      EXPECT_EQ(again->target, head->target);
      EXPECT_EQ(again->headers, head->headers);
      for (const auto& [name, value] : head->headers) {
        for (char c : value) {
          ASSERT_FALSE(c == '\r' || c == '\n' || c == '\0') << "control character in " << name;
        }
      }
      (void)FramingOf(*head);
      (void)KeepAlive(head->http11, head->Header("Connection").value_or(""));
    }
    const std::string_view target = head ? std::string_view(head->target) : std::string_view(input);
    if (auto t = SplitTarget(target)) {
      auto again = SplitTarget(t->query.empty() ? t->path : t->path + "?" + t->query);
      ASSERT_TRUE(again);
      EXPECT_EQ(again->path, t->path);
      EXPECT_EQ(again->query, t->query);
      (void)PathSegments(t->path);
      (void)QueryParam(t->query, "wait");
      (void)QueryParam(t->query, "x");
      if (auto decoded = PercentDecode(t->path, false)) {
        EXPECT_EQ(PercentDecode(PercentEncode(*decoded), false), decoded);
      }
      if (!ServicePathProblem(t->path)) {
        // An accepted service path has no segment that decodes to a dot segment or a separator.
        for (std::string_view seg : PathSegments(t->path)) {
          auto d = PercentDecode(seg, false);
          ASSERT_TRUE(d);
          EXPECT_NE(*d, "..");
          EXPECT_NE(*d, ".");
          EXPECT_EQ(d->find_first_of(std::string_view("/\\\0", 3)), std::string::npos);
        }
      }
    }
    const std::string logged = EscapeForLog(input, 512);
    ASSERT_EQ(logged.find_first_of("\r\n"), std::string::npos);
    ASSERT_LT(Clock::now() - start, kMaxPerInput) << input.substr(0, 200);
  }
  // The mutations must leave enough valid heads for the round trips to mean something.
  EXPECT_GT(accepted, static_cast<size_t>(kIterations / 20));
}

TEST(HttpFuzzTest, ChunkedBodiesDecodeTheSameWhateverPiecesTheyArriveIn) {
  const std::vector<std::string> seeds = {
      "5\r\nhello\r\n0\r\n\r\n",
      "1;ext=1\r\na\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nGET / HTTP/1.1",
      "0\r\n\r\n",
  };
  const std::vector<std::string> dictionary = {
      "\r\n", "0\r\n\r\n", ";", "ffffffff", "fffffffffffffffff", "1\r\nx\r\n", " "};
  Mutator m(777);
  for (int i = 0; i < kIterations; ++i) {
    const std::string input = m.Mutate(seeds[m.Below(seeds.size())], dictionary);
    const size_t max_body = 1 + m.Below(64);
    const auto start = Clock::now();
    ChunkedDecoder whole;
    std::string whole_body;
    size_t whole_consumed = 0;
    const auto whole_state = whole.Feed(input, &whole_body, max_body, &whole_consumed);
    ASSERT_LE(whole_body.size(), max_body);
    ASSERT_LE(whole_consumed, input.size());
    // The same bytes in random pieces end the same way.
    ChunkedDecoder pieces;
    std::string pieces_body;
    size_t offset = 0;
    ChunkedDecoder::State state = ChunkedDecoder::State::kMore;
    while (state == ChunkedDecoder::State::kMore && offset < input.size()) {
      const size_t n = 1 + m.Below(8);
      size_t consumed = 0;
      state =
          pieces.Feed(std::string_view(input).substr(offset, n), &pieces_body, max_body, &consumed);
      offset += consumed;
    }
    ASSERT_EQ(state, whole_state) << input;
    if (state == ChunkedDecoder::State::kDone) {
      EXPECT_EQ(pieces_body, whole_body);
      EXPECT_EQ(offset, whole_consumed);
    }
    ASSERT_LT(Clock::now() - start, kMaxPerInput);
  }
}

TEST(JsonFuzzTest, BothFormsOfTheTaskParserAgreeOnEveryMutatedSubmission) {
  const std::vector<std::string> seeds = {
      R"({"service": "ocr", "payload": {"url": "https://example.org/a.png", "page": 3}})",
      std::string(R"({"service":"rag","payload":{"q":"what is rma?","k":[1,2,3],"x":null},)") +
          R"("priority":5,"idempotency_key":"k-1","timeout_s":1.5,"min_tier":2,)" +
          R"("run_at":"2027-01-15T08:00:00Z"})",
      std::string(
          R"({"payload": [true, false, null, -0.5e+3, "\u00e9\n\"", {"a": {"b": [[]]}}],)") +
          R"( "service": "x", "delay_s": 10, "max_attempts": 3, "min_gpu_memory_gb": 8})",
      R"({"service": "s", "payload": "text", "unknown": {"deep": [1, {"x": "y"}]}, "service": "t"})",
  };
  const std::vector<std::string> dictionary = {"\"service\"",
                                               "\"payload\"",
                                               ":",
                                               ",",
                                               "{",
                                               "}",
                                               "[",
                                               "]",
                                               "\"",
                                               "\\u0000",
                                               "\\ud800",
                                               "\\",
                                               "null",
                                               "1e999",
                                               "-",
                                               ".5",
                                               "\"priority\": 9",
                                               "\xc3\xa9",
                                               "\xff",
                                               " "};
  SubmitLimits document;
  document.document_max_bytes = SIZE_MAX;
  SubmitLimits scanned;
  scanned.document_max_bytes = 0;
  const Time now = FromUnixMs(1'800'000'000'000);
  Mutator m(4242);
  size_t accepted = 0;
  for (int i = 0; i < kIterations; ++i) {
    const std::string input = m.Mutate(seeds[m.Below(seeds.size())], dictionary);
    const auto start = Clock::now();
    auto a = ParseSubmitJson(input, document, now);
    auto b = ParseSubmitJson(input, scanned, now);
    ASSERT_EQ(a.ok(), b.ok()) << input << "\n"
                              << a.status().ToString() << " / " << b.status().ToString();
    if (a.ok()) {
      ++accepted;
      // The payloads are the same JSON value; every other field is the same.
      const json pa = json::parse(a->payload.view(), nullptr, false);
      const json pb = json::parse(b->payload.view(), nullptr, false);
      if (!a->payload.empty()) {
        ASSERT_FALSE(pa.is_discarded()) << input;
        EXPECT_EQ(pa, pb) << input;
        // The document form's payload reads back to the same bytes.
        EXPECT_EQ(pa.dump(), a->payload.view());
      }
      proto::Submit sa = *a;
      proto::Submit sb = *b;
      sa.payload = sb.payload = "";
      EXPECT_EQ(sa, sb) << input;
    } else {
      EXPECT_EQ(a.status().message(), b.status().message()) << input;
    }
    // Whatever nlohmann accepts as an object within the depth limit, the scanner reads too (but
    // nlohmann stops at a NUL byte, which ParseSubmitJson refuses before either of them sees it).
    std::vector<JsonSlice> found;
    const bool scanned_ok =
        ScanJsonObject(input, kMaxJsonDepth, {"service", "payload"}, &found).ok();
    if (input.find('\0') == std::string::npos && json::accept(input) &&
        JsonDepthWithin(input, kMaxJsonDepth)) {
      const json doc = json::parse(input);
      if (doc.is_object()) {
        ASSERT_TRUE(scanned_ok) << input;
        if (doc.contains("payload")) {
          ASSERT_TRUE(found[1].present);
          EXPECT_EQ(json::parse(input.substr(found[1].begin, found[1].end - found[1].begin)),
                    doc["payload"]);
        }
      }
    }
    ASSERT_LT(Clock::now() - start, kMaxPerInput) << input.substr(0, 200);
  }
  EXPECT_GT(accepted, static_cast<size_t>(kIterations / 20));
}

}  // namespace
}  // namespace rma::gateway

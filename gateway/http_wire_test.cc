// Unit tests of the HTTP bytes the gateway writes and reads itself.
#include "gateway/http_wire.h"

#include <gtest/gtest.h>

namespace rma::gateway {
namespace {

TEST(SerializeResponseTest, WritesStatusHeadersLengthAndBody) {
  HttpReply r{202, "{\"a\":1}", "application/json", {{"Location", "/api/tasks/7"}}};
  EXPECT_EQ(SerializeResponse(r, /*keep_alive=*/true, /*head_only=*/false),
            "HTTP/1.1 202 Accepted\r\n"
            "Content-Type: application/json\r\n"
            "Location: /api/tasks/7\r\n"
            "Connection: keep-alive\r\n"
            "Content-Length: 7\r\n"
            "\r\n"
            "{\"a\":1}");
}

TEST(SerializeResponseTest, HeadKeepsTheLengthButNotTheBody) {
  HttpReply r{200, "12345", "text/plain", {}};
  std::string out = SerializeResponse(r, false, /*head_only=*/true);
  EXPECT_NE(out.find("Content-Length: 5\r\n"), std::string::npos);
  EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
}

TEST(SerializeResponseTest, NoContentHasNoBodyLengthOrType) {
  HttpReply r{204, "ignored", "application/json", {{"Allow", "GET"}}};
  EXPECT_EQ(SerializeResponse(r, true, false),
            "HTTP/1.1 204 No Content\r\nAllow: GET\r\nConnection: keep-alive\r\n\r\n");
}

TEST(SerializeResponseTest, DropsHeadersThatWouldSplitTheResponse) {
  HttpReply r{200,
              "",
              "text/plain\r\nX-Evil: 1",
              {{"X-Ok", "yes"}, {"X-Bad", "a\r\nSet-Cookie: x"}, {"Bad Name", "v"}, {"", "v"}}};
  std::string out = SerializeResponse(r, true, false);
  EXPECT_EQ(out.find("X-Evil"), std::string::npos);
  EXPECT_EQ(out.find("Set-Cookie"), std::string::npos);
  EXPECT_EQ(out.find("Bad Name"), std::string::npos);
  EXPECT_NE(out.find("X-Ok: yes\r\n"), std::string::npos);
}

TEST(SerializeResponseTest, OutOfRangeStatusBecomes500) {
  HttpReply r{7, "", "", {}};
  EXPECT_EQ(SerializeResponse(r, true, false).rfind("HTTP/1.1 500 Internal Server Error\r\n", 0),
            0u);
}

TEST(KeepAliveTest, FollowsHttpVersionAndConnectionTokens) {
  EXPECT_TRUE(KeepAlive(true, ""));
  EXPECT_FALSE(KeepAlive(true, "close"));
  EXPECT_FALSE(KeepAlive(true, "Keep-Alive, CLOSE"));
  EXPECT_FALSE(KeepAlive(false, ""));
  EXPECT_TRUE(KeepAlive(false, "keep-alive"));
  EXPECT_TRUE(KeepAlive(false, " Keep-Alive , Upgrade"));
}

TEST(RequestHeadTest, ParsesLineAndHeadersExactly) {
  auto head = ParseRequestHead(
      "POST /api/service/rag/q?b=2&a=1&a=3 HTTP/1.1\r\n"
      "Host: x\r\n"
      "Content-Type: text/plain; charset=UTF-8\r\n"
      "X-API-Key:   secret-key  \r\n"
      "\r\n");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->method, "POST");
  EXPECT_EQ(head->target, "/api/service/rag/q?b=2&a=1&a=3");
  EXPECT_TRUE(head->http11);
  EXPECT_EQ(head->Header("content-type").value_or(""), "text/plain; charset=UTF-8");
  EXPECT_EQ(head->Header("x-api-key").value_or(""), "secret-key");
  EXPECT_FALSE(head->Header("Authorization"));
}

TEST(RequestHeadTest, SkipsLeadingEmptyLinesAndAcceptsBareLineFeeds) {
  auto head = ParseRequestHead("\r\n\nGET / HTTP/1.0\nA: b\n\n");
  ASSERT_TRUE(head);
  EXPECT_FALSE(head->http11);
  EXPECT_EQ(head->Header("a").value_or(""), "b");
}

TEST(RequestHeadTest, RefusesMalformedHeads) {
  EXPECT_FALSE(ParseRequestHead("GET /\r\n\r\n"));
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/2.0\r\n\r\n"));
  EXPECT_FALSE(ParseRequestHead("get / HTTP/1.1\r\n\r\n"));
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nNoColon\r\n\r\n"));
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nBad Name: v\r\n\r\n"));
  EXPECT_FALSE(ParseRequestHead(""));
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 300; ++i) many += "H" + std::to_string(i) + ": v\r\n";
  EXPECT_FALSE(ParseRequestHead(many + "\r\n"));
}

TEST(FindHeadEndTest, FindsTheBlankLineAcrossPieces) {
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
  EXPECT_EQ(FindHeadEnd(head, 0), head.size() - 4);
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\nHost: x\r\n", 0), std::string::npos);
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\n\n", 10), 16u);
  // Leading empty lines are not the end of a head.
  EXPECT_EQ(FindHeadEnd("\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0), 22u);
}

TEST(SplitTargetTest, SplitsPathAndRawQuery) {
  auto t = SplitTarget("/a/b?x=1&x=2&y=%20#frag");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->path, "/a/b");
  EXPECT_EQ(t->query, "x=1&x=2&y=%20");
  EXPECT_FALSE(SplitTarget("http://evil/a"));
  EXPECT_FALSE(SplitTarget("*"));
  EXPECT_FALSE(SplitTarget("/a\x01"));
  EXPECT_FALSE(SplitTarget(std::string(9000, '/')));
}

TEST(QueryParamTest, DecodesTheFirstValue) {
  EXPECT_EQ(QueryParam("a=1&wait=2.5&wait=9", "wait").value_or(""), "2.5");
  EXPECT_EQ(QueryParam("service=my+svc%2Dx", "service").value_or(""), "my svc-x");
  EXPECT_EQ(QueryParam("flag&b=1", "flag").value_or("absent"), "");
  EXPECT_FALSE(QueryParam("a=1", "b"));
  EXPECT_FALSE(QueryParam("a=%zz", "a"));
  EXPECT_FALSE(QueryParam("a=%2", "a"));
}

TEST(PathSegmentsTest, SkipsEmptySegments) {
  auto s = PathSegments("//api/tasks/");
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0], "api");
  EXPECT_EQ(s[1], "tasks");
  EXPECT_TRUE(PathSegments("/").empty());
}

TEST(ParseRequestHeadTest, RefusesControlCharactersInHeaderValues) {
  // A bare CR inside a value would reach a backend (forwarded X- headers) or a log as a line break.
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nX-Note: a\rX-Injected: 1\r\n\r\n"));
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nX-Note: a\x1b[2J\r\n\r\n"));
  EXPECT_FALSE(ParseRequestHead(std::string("GET / HTTP/1.1\r\nX-Note: a\0b\r\n\r\n", 31)));
  EXPECT_FALSE(ParseRequestHead("GET / HTTP/1.1\r\nX-Note: a\x7f\r\n\r\n"));
  auto tab = ParseRequestHead("GET / HTTP/1.1\r\nX-Note: a\tb\r\nX-Utf8: caf\xc3\xa9\r\n\r\n");
  ASSERT_TRUE(tab);
  EXPECT_EQ(tab->Header("X-Note").value_or(""), "a\tb");
}

BodyFraming FramingOfHead(const std::string& head) {
  auto h = ParseRequestHead(head);
  EXPECT_TRUE(h) << head;
  auto f = FramingOf(*h);
  EXPECT_TRUE(std::holds_alternative<BodyFraming>(f)) << head;
  return std::get<BodyFraming>(f);
}

int FramingErrorOf(const std::string& head) {
  auto h = ParseRequestHead(head);
  EXPECT_TRUE(h) << head;
  auto f = FramingOf(*h);
  if (auto* e = std::get_if<FramingError>(&f)) return e->status;
  return 0;
}

TEST(FramingTest, ContentLengthChunkedOrNothing) {
  EXPECT_EQ(FramingOfHead("GET / HTTP/1.1\r\n\r\n").kind, BodyFraming::Kind::kNone);
  BodyFraming f = FramingOfHead("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n");
  EXPECT_EQ(f.kind, BodyFraming::Kind::kLength);
  EXPECT_EQ(f.length, 42u);
  // The same length twice is one length (RFC 9110, 8.6).
  EXPECT_EQ(
      FramingOfHead("POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n").length,
      7u);
  EXPECT_EQ(FramingOfHead("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").kind,
            BodyFraming::Kind::kChunked);
  EXPECT_EQ(FramingOfHead("POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n").length,
            9999999999999999999u);
}

TEST(FramingTest, RefusesAnythingTwoPartiesCouldReadDifferently) {
  for (const char* head : {
           "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
           "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
       }) {
    EXPECT_EQ(FramingErrorOf(head), 400) << head;
  }
  for (const char* head : {
           "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       }) {
    EXPECT_EQ(FramingErrorOf(head), 501) << head;
  }
}

TEST(ChunkedDecoderTest, DecodesInPiecesOfAnySize) {
  const std::string wire =
      "5;name=value\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
  for (size_t piece = 1; piece <= wire.size(); ++piece) {
    ChunkedDecoder d;
    std::string body;
    size_t offset = 0;
    ChunkedDecoder::State state = ChunkedDecoder::State::kMore;
    while (state == ChunkedDecoder::State::kMore && offset < wire.size()) {
      size_t consumed = 0;
      std::string_view in = std::string_view(wire).substr(offset, piece);
      state = d.Feed(in, &body, 1024, &consumed);
      offset += consumed;
    }
    ASSERT_EQ(state, ChunkedDecoder::State::kDone) << piece;
    EXPECT_EQ(body, "hello 0123456789") << piece;
    EXPECT_EQ(wire.substr(offset), "NEXT") << piece;
  }
}

TEST(ChunkedDecoderTest, RefusesMalformedAndOversizedBodies) {
  auto run = [](const std::string& wire, size_t max) {
    ChunkedDecoder d;
    std::string body;
    size_t consumed = 0;
    return d.Feed(wire, &body, max, &consumed);
  };
  using S = ChunkedDecoder::State;
  EXPECT_EQ(run("5\r\nhello\r\n0\r\n\r\n", 5), S::kDone);
  EXPECT_EQ(run("6\r\nhello!\r\n0\r\n\r\n", 5), S::kTooLarge);
  EXPECT_EQ(run("3\r\nabc\r\n3\r\ndef\r\n", 5), S::kTooLarge);
  EXPECT_EQ(run("ffffffffffffffff\r\n", 5), S::kTooLarge);
  EXPECT_EQ(run("10000000000000000\r\n", 5), S::kError);  // 17 digits
  EXPECT_EQ(run("\r\n", 5), S::kError);
  EXPECT_EQ(run("-1\r\n", 5), S::kError);
  EXPECT_EQ(run("5\nhello\r\n", 5), S::kError);     // bare LF
  EXPECT_EQ(run("2\r\nhello\r\n", 5), S::kError);   // data longer than its size
  EXPECT_EQ(run("0\r\nX: 1\n\r\n", 5), S::kError);  // trailer with a bare LF
  EXPECT_EQ(run("1;" + std::string(5000, 'e') + "\r\n", 5), S::kError);
  EXPECT_EQ(run("0\r\n" + std::string(5000, 't') + "\r\n", 5), S::kError);
  EXPECT_EQ(run("5\r\nhel", 5), S::kMore);
}

TEST(ServicePathTest, RefusesWhatCouldClimbOutOfABackendsBasePath) {
  for (const char* ok :
       {"/", "/v1/query", "/a%20b/c", "/file.txt", "/.well-known/x", "/a..b", "/%2541", "/a/b/"}) {
    EXPECT_FALSE(ServicePathProblem(ok)) << ok;
  }
  for (const char* bad :
       {"/..", "/a/../b", "/.", "/%2e%2e/x", "/%2E%2e", "/.%2e/x", "/..%2Fadmin", "/..%2fadmin",
        "/a%2Fb", "/a%5Cb", "/a%5cb", "/a\\b", "/a%00b", "/a%zz", "/a%2", "/%2e"}) {
    EXPECT_TRUE(ServicePathProblem(bad)) << bad;
  }
  EXPECT_TRUE(ServicePathProblem(std::string("/a\0b", 4)));
}

TEST(EscapeForLogTest, NothingAPeerSendsCanBreakALogLine) {
  EXPECT_EQ(EscapeForLog("GET /a"), "GET /a");
  EXPECT_EQ(EscapeForLog("a\r\nFAKE 2026 [error] b"), "a\\r\\nFAKE 2026 [error] b");
  EXPECT_EQ(EscapeForLog(std::string("\x1b[2J\x7f\0\\", 7)), "\\x1b[2J\\x7f\\x00\\\\");
  EXPECT_EQ(EscapeForLog(std::string(300, 'x'), 10), std::string(10, 'x') + "...");
  EXPECT_EQ(EscapeForLog("caf\xc3\xa9"), "caf\xc3\xa9");
}

TEST(JsonMediaTypeTest, ApplicationJsonWithParametersOnly) {
  EXPECT_TRUE(IsJsonMediaType("application/json"));
  EXPECT_TRUE(IsJsonMediaType("Application/JSON; charset=utf-8"));
  EXPECT_TRUE(IsJsonMediaType(" application/json ;charset=UTF-8"));
  for (const char* no :
       {"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
        "application/jsonx", "text/plain; application/json", "application/json-seq"}) {
    EXPECT_FALSE(IsJsonMediaType(no)) << no;
  }
}

}  // namespace
}  // namespace rma::gateway

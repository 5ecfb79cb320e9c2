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

}  // namespace
}  // namespace rma::gateway

// The worker's configuration file and service flags: every key, the errors a typo or a wrong type
// gets, and how RMA_SERVICES is split when commands contain commas.
#include "worker/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace rma::worker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(WorkerConfigTest, ReadsEveryKey) {
  auto c = ParseWorkerConfig(R"({
    "broker": "tcp://pool:5555", "name": "alice", "worker_id": "w-alice", "data_dir": "/var/lib/rma",
    "token": "s3cret", "broker_key": "/etc/rma/broker.pub",
    "enrol_token": "rma_enrol_5f0e9a", "simulate": "cpu", "worker_type": "storage", "generic": "builtin:sleep",
    "log_level": "debug", "slots": 4, "heartbeat_ms": 1000, "drain_grace_ms": 0,
    "health_interval_ms": 250, "health_timeout_ms": 900, "health_failures": 3,
    "connect_timeout_ms": 700, "max_output_bytes": 1024, "labels": {"site": "home"},
    "services": {
      "rag": "http://127.0.0.1:8102",
      "ocr": {"handler": "http://127.0.0.1:8103/v1", "health": "/healthz", "connect_timeout_ms": 50,
              "health_timeout_ms": 60, "timeout_ms": 70, "max_output_bytes": 80,
              "content_type": "text/plain", "kill_grace_ms": 90, "stream": true}
    }})");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->broker, "tcp://pool:5555");
  EXPECT_EQ(c->name, "alice");
  EXPECT_EQ(c->worker_id, "w-alice");
  EXPECT_EQ(c->data_dir, "/var/lib/rma");
  EXPECT_EQ(c->token, "s3cret");
  EXPECT_EQ(c->broker_key, "/etc/rma/broker.pub");
  EXPECT_EQ(c->enrol_token, "rma_enrol_5f0e9a");
  EXPECT_EQ(c->simulate, "cpu");
  EXPECT_EQ(c->worker_type, "storage");
  EXPECT_EQ(c->generic, "builtin:sleep");
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->slots, 4u);
  EXPECT_EQ(c->heartbeat_ms, 1000);
  EXPECT_EQ(c->drain_grace_ms, 0);
  EXPECT_EQ(c->health_interval_ms, 250);
  EXPECT_EQ(c->health_timeout_ms, 900);
  EXPECT_EQ(c->health_failures, 3u);
  EXPECT_EQ(c->connect_timeout_ms, 700);
  EXPECT_EQ(c->max_output_bytes, 1024);
  EXPECT_EQ(c->labels.at("site"), "home");
  ASSERT_EQ(c->services.size(), 2u);
  // JSON objects are ordered by key.
  EXPECT_EQ(c->services[0].name, "ocr");
  EXPECT_EQ(c->services[1].name, "rag");
  EXPECT_EQ(c->services[1].handler, "http://127.0.0.1:8102");
  HandlerOptions o = c->services[0].Resolve(HandlerOptions{});
  EXPECT_EQ(o.health_path, "/healthz");
  EXPECT_EQ(o.connect_timeout, Ms(50));
  EXPECT_EQ(o.health_timeout, Ms(60));
  EXPECT_EQ(o.stream_output, std::optional<bool>(true));
  EXPECT_FALSE(c->services[1].Resolve(HandlerOptions{}).stream_output.has_value());
  EXPECT_EQ(o.default_timeout, Ms(70));
  EXPECT_EQ(o.max_output_bytes, 80u);
  EXPECT_EQ(o.content_type, "text/plain");
  EXPECT_EQ(o.kill_grace, Ms(90));
  HandlerOptions untouched = c->services[1].Resolve(HandlerOptions{});
  EXPECT_EQ(untouched.health_path, "");
  EXPECT_EQ(untouched.default_timeout, HandlerOptions{}.default_timeout);
}

TEST(WorkerConfigTest, AnEmptyObjectIsValid) {
  auto c = ParseWorkerConfig("{}");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->broker.has_value());
  EXPECT_TRUE(c->services.empty());
}

TEST(WorkerConfigTest, NamesWhatIsWrong) {
  struct Case {
    const char* json;
    const char* says;
  };
  for (const Case& c : std::vector<Case>{
           {"[1]", "JSON object"},
           {"{", "not valid JSON"},
           {R"({"brokr": "x"})", "unknown key 'brokr'"},
           {R"({"slots": "4"})", "slots: must be an integer"},
           {R"({"slots": 0})", "slots: must be between 1 and 4096"},
           {R"({"slots": 1e3})", "slots: must be an integer"},
           {R"({"heartbeat_ms": 99999999999999999999})", "heartbeat_ms"},
           {R"({"simulate": "tpu"})", "simulate: must be gpu, cpu or storage"},
           {R"({"labels": ["a"]})", "labels: must be an object"},
           {R"({"labels": {"a": 1}})", "labels.a: must be a string"},
           {R"({"services": []})", "services: must be an object"},
           {R"({"services": {"rag": 5}})", "services.rag: must be a handler spec"},
           {R"({"services": {"rag": {}}})", "services.rag.handler: is required"},
           {R"({"services": {"rag": {"handler": "http://x", "helth": "/h"}}})",
            "unknown key 'services.rag.helth'"},
           {R"({"services": {"rag": {"handler": "http://x", "health": "h"}}})",
            "services.rag.health: must start with '/'"},
           {R"({"services": {"bad name": "builtin:echo"}})", "services.bad name"},
           {R"({"services": {"x": ""}})", "the handler is empty"},
           {R"({"services": {"x": {"handler": "exec:cat", "stream": "yes"}}})",
            "services.x.stream: must be true or false"},
           {R"({"enrol_token": 5})", "enrol_token: must be a string"},
           {R"({"enrol_token": ""})", "enrol_token: an enrolment token has 1 to 128"},
           {R"({"enrol_token": "rma_enrol_ 5f0e"})", "enrol_token: an enrolment token holds"},
       }) {
    auto parsed = ParseWorkerConfig(c.json);
    ASSERT_FALSE(parsed.ok()) << c.json;
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.says)) << c.json;
  }
}

TEST(WorkerConfigTest, LoadsAFileAndRefusesAMissingOrHugeOne) {
  auto dir = std::filesystem::temp_directory_path();
  std::string path = dir / ("rma-worker-config-" + std::to_string(::getpid()) + ".json");
  { std::ofstream(path) << R"({"slots": 3})"; }
  auto c = LoadWorkerConfig(path);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->slots, 3u);
  { std::ofstream(path) << "{\"name\": \"" << std::string(2 << 20, 'x') << "\"}"; }
  EXPECT_THAT(LoadWorkerConfig(path).status().message(), HasSubstr("larger than 1 MiB"));
  std::filesystem::remove(path);
  EXPECT_EQ(LoadWorkerConfig(path).status().code(), StatusCode::kNotFound);
}

TEST(ServiceFlagTest, SplitsNameAndHandler) {
  auto s = ParseServiceFlag("rag=http://127.0.0.1:8102#/ready");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->name, "rag");
  EXPECT_EQ(s->handler, "http://127.0.0.1:8102#/ready");
  auto cmd = ParseServiceFlag("wc=exec:wc -c | tr -d ' ='");
  ASSERT_TRUE(cmd.ok());
  EXPECT_EQ(cmd->handler, "exec:wc -c | tr -d ' ='");
  for (const char* bad : {"rag", "=builtin:echo", "rag=", "-x=builtin:echo", "a/b=builtin:echo"}) {
    EXPECT_EQ(ParseServiceFlag(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(CheckServiceName(std::string(65, 'a')).ok());
  EXPECT_TRUE(CheckServiceName("gpu-worker").ok());
}

TEST(ServiceFlagTest, SplitsTheEnvironmentListOnlyBetweenEntries) {
  EXPECT_THAT(SplitServiceList("echo=builtin:echo,rag=http://127.0.0.1:8102"),
              ElementsAre("echo=builtin:echo", "rag=http://127.0.0.1:8102"));
  EXPECT_THAT(SplitServiceList("cut=exec:cut -d, -f1,echo=builtin:echo"),
              ElementsAre("cut=exec:cut -d, -f1", "echo=builtin:echo"));
  EXPECT_THAT(SplitServiceList("a=exec:printf 'x,y=z'"), ElementsAre("a=exec:printf 'x,y=z'"));
  EXPECT_THAT(SplitServiceList(""), ElementsAre());
  EXPECT_THAT(SplitServiceList(",echo=builtin:echo,"), ElementsAre("echo=builtin:echo"));
}

TEST(EnrolTokenTest, TakesPrintableAsciiWithoutSpacesUpTo128Bytes) {
  EXPECT_TRUE(CheckEnrolToken("rma_enrol_0123456789abcdef").ok());
  EXPECT_TRUE(CheckEnrolToken(std::string(128, 'a')).ok());
  EXPECT_TRUE(CheckEnrolToken("!~").ok()) << "the printable range's ends";
  for (const std::string& bad :
       {std::string(), std::string(129, 'a'), std::string("rma_enrol_ ab"),
        std::string("rma_enrol_ab\n"), std::string("rma_enrol_\tab"), std::string("rma_enrol_\x7f"),
        std::string("rma_enrol_\xc3\xa9"), std::string("rma_enrol_\0ab", 13)}) {
    Status s = CheckEnrolToken(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
  }
  Status s = CheckEnrolToken("rma_enrol_secret bits");
  EXPECT_THAT(s.message(), HasSubstr("character 17 is not one"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr("secret"))) << "a token is never quoted";
  EXPECT_THAT(CheckEnrolToken(std::string(200, 'a')).message(),
              HasSubstr("1 to 128 characters, not 200"));
}

TEST(LabelTest, ParsesKeyValue) {
  auto l = ParseLabel("site=home=1");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->first, "site");
  EXPECT_EQ(l->second, "home=1");
  EXPECT_FALSE(ParseLabel("novalue").ok());
  EXPECT_FALSE(ParseLabel("=x").ok());
  EXPECT_FALSE(ParseLabel("k=" + std::string(300, 'v')).ok());
}

}  // namespace
}  // namespace rma::worker

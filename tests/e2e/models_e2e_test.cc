// Routing by model end to end, with real processes: rma-broker and two rma-worker processes whose
// service "llm" serves different models, one named in its configuration file (`models`), the other
// by flag (--model). A caller on the client endpoint (a ZmqClient, as the gateway is) gets each
// model's calls answered by the worker that lists it, with or without naming the service; the
// admin query "models" lists both; a model nobody lists is not_found, and one whose only worker
// left is unavailable (docs/protocol.md §6.1, §6.5).
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>

#include "protocol/admin_reply.h"
#include "tests/support/cluster.h"
#include "tests/support/process.h"
#include "tests/support/zmq_peers.h"

namespace rma::testing {
namespace {

using namespace std::chrono_literals;
using proto::Command;

class ModelsE2eTest : public ::testing::Test {
 protected:
  ModelsE2eTest() : client_(StartCluster().clients_endpoint()) {}

  Cluster& StartCluster() {
    ClusterOptions options;
    options.gateway = false;
    cluster_ = std::make_unique<Cluster>(options);
    return *cluster_;
  }

  nlohmann::json Admin(const std::string& query) {
    proto::Admin admin;
    admin.ref = ++ref_;
    admin.query = query;
    ClientMessage answer;
    if (!client_.Call(Command::kAdmin, proto::Encode(admin), admin.ref, 10s, &answer) ||
        answer.command != Command::kAdminReply || answer.bodies.empty()) {
      return nullptr;
    }
    proto::AdminReply reply;
    if (!decoder_.Decode(answer.bodies[0], &reply).ok()) return nullptr;
    return reply.data;
  }

  // A synchronous call for `model`; the TASK_INFO's task, or the ERROR.
  std::variant<proto::TaskView, proto::Error> Call(const std::string& model,
                                                   const std::string& service = "") {
    proto::Submit call;
    call.ref = ++ref_;
    call.model = model;
    call.service = service;
    call.payload = "hello " + model;
    call.mode = proto::SubmitMode::kSync;
    ClientMessage answer;
    if (!client_.Call(Command::kSubmit, proto::Encode(call), call.ref, 10s, &answer) ||
        answer.bodies.empty()) {
      ADD_FAILURE() << "no answer to the call for " << model << "\n" << cluster_->Logs();
      return proto::Error{};
    }
    if (answer.command == Command::kError) {
      proto::Error e;
      EXPECT_TRUE(decoder_.Decode(answer.bodies[0], &e).ok());
      return e;
    }
    EXPECT_EQ(answer.command, Command::kTaskInfo) << proto::CommandName(answer.command);
    proto::TaskInfo info;
    EXPECT_TRUE(decoder_.Decode(answer.bodies[0], &info).ok());
    return info.task;
  }

  std::unique_ptr<Cluster> cluster_;
  ZmqClient client_;
  proto::Decoder decoder_;
  uint64_t ref_ = 0;
};

TEST_F(ModelsE2eTest, CallsGoToTheWorkerServingTheirModel) {
  // "alpha" names its model in its configuration file, "beta" by flag.
  const std::string config = cluster_->dir() + "/alpha.json";
  std::ofstream(config) << R"({"services": {"llm": {"handler": "builtin:echo",
                                                    "models": ["llama3:8b"]}}})";
  cluster_->StartWorker("alpha", {"--config", config});
  cluster_->StartWorker("beta", {"--service", "llm=builtin:echo", "--model", "llm=mistral"});

  nlohmann::json models;
  ASSERT_TRUE(WaitUntil(
      [&] {
        models = Admin("models");
        return models.is_object() && models["models"].size() == 2;
      },
      20s))
      << models.dump() << "\n"
      << cluster_->Logs();
  EXPECT_EQ(models["models"][0]["id"], "llama3:8b");
  EXPECT_EQ(models["models"][1]["id"], "mistral");
  for (const auto& m : models["models"]) {
    EXPECT_EQ(m["services"], nlohmann::json::array({"llm"}));
    EXPECT_EQ(m["providers"], 1);
    EXPECT_GT(m["created"].get<int64_t>(), 0);
  }

  // Both workers offer "llm" with one slot each and are equally idle: only the model decides.
  for (int i = 0; i < 6; ++i) {
    const bool named = i % 2 == 0;
    auto llama = Call("llama3:8b", named ? "llm" : "");
    ASSERT_TRUE(std::holds_alternative<proto::TaskView>(llama))
        << std::get<proto::Error>(llama).message;
    EXPECT_EQ(std::get<proto::TaskView>(llama).worker_id, "alpha");
    EXPECT_EQ(std::get<proto::TaskView>(llama).service, "llm");
    EXPECT_EQ(std::get<proto::TaskView>(llama).result, "hello llama3:8b");
    auto mistral = Call("mistral", named ? "llm" : "");
    ASSERT_TRUE(std::holds_alternative<proto::TaskView>(mistral));
    EXPECT_EQ(std::get<proto::TaskView>(mistral).worker_id, "beta");
  }

  auto unknown = Call("gpt-4o");
  ASSERT_TRUE(std::holds_alternative<proto::Error>(unknown));
  EXPECT_EQ(std::get<proto::Error>(unknown).code, "not_found");
  EXPECT_EQ(std::get<proto::Error>(unknown).message, "model 'gpt-4o' is not served by this pool");

  // beta leaves (SIGTERM: it drains and says goodbye); the broker still knows its model.
  cluster_->worker("beta").Signal(SIGTERM);
  ASSERT_TRUE(cluster_->worker("beta").Wait(20s).has_value());
  ASSERT_TRUE(WaitUntil([&] { return Admin("models")["models"].size() == 1; }, 10s));
  auto gone = Call("mistral");
  ASSERT_TRUE(std::holds_alternative<proto::Error>(gone));
  EXPECT_EQ(std::get<proto::Error>(gone).code, "unavailable");
  EXPECT_EQ(std::get<proto::Error>(gone).message, "no live worker serves model 'mistral'");

  // The workers document shows each worker's models per service.
  nlohmann::json workers = Admin("workers");
  bool seen = false;
  for (const auto& w : workers["workers"]) {
    if (w["worker_id"] != "alpha") continue;
    seen = true;
    EXPECT_EQ(w["models"]["llm"], nlohmann::json::array({"llama3:8b"}));
  }
  EXPECT_TRUE(seen) << workers.dump();
}

}  // namespace
}  // namespace rma::testing

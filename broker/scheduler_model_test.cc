// Scheduler tests for routing by model (docs/protocol.md §5.1 `models`, §6.1 `model`): a task that
// names a model goes only to a worker whose service lists it, the service is picked from the model
// when the submission names none, a synchronous call learns at once why nobody can take it, a
// worker's new manifest re-indexes its models, and the admin query "models" lists what is served.
// Driven with a FakeClock through the fixture of scheduler_test_util.h.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "broker/admin.h"
#include "broker/scheduler_test_util.h"

namespace rma::broker::testing {
namespace {

using proto::Command;
using proto::TaskStatus;

// service name -> models
using Offer = std::vector<std::pair<std::string, std::vector<std::string>>>;

std::vector<proto::ServiceInfo> ManifestOf(const Offer& offer) {
  std::vector<proto::ServiceInfo> out;
  for (const auto& [name, models] : offer) out.push_back({name, "http", models});
  return out;
}

class SchedulerModelTest : public SchedulerFixture {
 protected:
  void RegisterOffering(const std::string& id, const Offer& offer, uint32_t slots = 4) {
    proto::Ready r;
    r.worker_id = id;
    r.worker_secret = id + "-secret";
    r.name = id;
    r.slots = slots;
    r.capabilities = CpuCaps();
    r.services = ManifestOf(offer);
    s().OnWorkerReady(now(), Ident(id), std::move(r));
    beating_.insert(id);
    ASSERT_EQ(out_.Take<proto::Welcome>(out_.to_workers, Ident(id), Command::kWelcome).size(), 1u);
  }
  void SendManifest(const std::string& id, const Offer& offer) {
    s().OnWorkerManifest(now(), Ident(id), proto::Manifest{ManifestOf(offer), 0});
  }
  proto::Submit ForModel(const std::string& model,
                         proto::SubmitMode mode = proto::SubmitMode::kAsync) {
    proto::Submit sub;
    sub.model = model;
    sub.mode = mode;
    return sub;
  }
  // A synchronous call for `model` (service "" = let the broker pick); its ERROR, if one came.
  std::optional<proto::Error> CallError(const std::string& model, const std::string& service) {
    proto::Submit sub = ForModel(model, proto::SubmitMode::kSync);
    sub.service = service;
    sub.ref = ++ref_;
    sub.payload = "call";
    s().OnSubmit(now(), "caller", sub);
    auto errors = out_.Take<proto::Error>(out_.to_clients, "caller", Command::kError);
    if (errors.empty()) return std::nullopt;
    EXPECT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].ref, sub.ref);
    return errors[0];
  }
  // An asynchronous task for `model` without a service: its ACCEPTED or ERROR.
  std::variant<proto::Accepted, proto::Error> SubmitModelOnly(const std::string& model) {
    proto::Submit sub = ForModel(model);
    sub.ref = ++ref_;
    sub.payload = "p";
    s().OnSubmit(now(), "client", sub);
    auto acc = out_.Take<proto::Accepted>(out_.to_clients, "client", Command::kAccepted);
    if (!acc.empty()) return acc[0];
    auto errors = out_.Take<proto::Error>(out_.to_clients, "client", Command::kError);
    EXPECT_EQ(errors.size(), 1u);
    return errors.empty() ? proto::Error{} : errors[0];
  }
};

TEST_F(SchedulerModelTest, ATaskForAModelGoesOnlyToWorkersListingIt) {
  // "a" comes first in the ready set (same tier and load, lower slot): without the model rule it
  // would take every task.
  RegisterOffering("a", {{"llm", {"llama"}}});
  RegisterOffering("b", {{"llm", {"mistral"}}});
  std::vector<TaskId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Submit("llm", ForModel("mistral")));
  EXPECT_TRUE(Tasks("a").empty()) << "a task for mistral went to the worker serving only llama";
  auto b = Tasks("b");
  ASSERT_EQ(b.size(), 3u);
  for (const auto& t : b) EXPECT_EQ(t.service, "llm");

  Submit("llm", ForModel("llama"));
  EXPECT_EQ(Tasks("a").size(), 1u);
  EXPECT_TRUE(Tasks("b").empty());
  // A task without a model may go to any worker of the service.
  Submit("llm");
  EXPECT_EQ(Tasks("a").size() + Tasks("b").size(), 1u);
}

TEST_F(SchedulerModelTest, ATaskWhoseModelNobodyServesWaitsWithoutBlockingTheService) {
  RegisterOffering("a", {{"llm", {"llama"}}}, /*slots=*/1);
  const TaskId waiting = Submit("llm", ForModel("mistral"));
  EXPECT_TRUE(s().View(now(), *s().FindTask(waiting), false).waiting_for_provider);
  // Behind it in the same queue, a task the ready worker can take starts at once.
  const TaskId served = Submit("llm", ForModel("llama"));
  auto a = Tasks("a");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].task_id, served);
  Result("a", a[0]);
  EXPECT_TRUE(Tasks("a").empty()) << "the free worker took the task of a model it does not serve";
  EXPECT_EQ(Status(waiting), TaskStatus::kQueued);

  // A provider of the model arrives: the waiting task goes to it.
  RegisterOffering("m", {{"llm", {"mistral"}}});
  auto m = Tasks("m");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].task_id, waiting);
  EXPECT_FALSE(s().View(now(), *s().FindTask(waiting), false).waiting_for_provider);
}

TEST_F(SchedulerModelTest, TheServiceIsPickedFromTheModel) {
  RegisterOffering("a", {{"chat", {"llama"}}, {"embed", {"bge"}}});
  auto accepted = SubmitModelOnly("bge");
  ASSERT_TRUE(std::holds_alternative<proto::Accepted>(accepted));
  const TaskId id = std::get<proto::Accepted>(accepted).task_id;
  EXPECT_EQ(s().FindTask(id)->service, "embed");
  auto a = Tasks("a");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].service, "embed");

  // Two services list the same model: the one with more live providers, then the first by name.
  RegisterOffering("x", {{"zeta", {"shared"}}});
  RegisterOffering("y", {{"zeta", {"shared"}}});
  RegisterOffering("z", {{"alpha", {"shared"}}});
  accepted = SubmitModelOnly("shared");
  ASSERT_TRUE(std::holds_alternative<proto::Accepted>(accepted));
  EXPECT_EQ(s().FindTask(std::get<proto::Accepted>(accepted).task_id)->service, "zeta");
  RegisterOffering("w", {{"alpha", {"shared"}}});
  accepted = SubmitModelOnly("shared");
  ASSERT_TRUE(std::holds_alternative<proto::Accepted>(accepted));
  EXPECT_EQ(s().FindTask(std::get<proto::Accepted>(accepted).task_id)->service, "alpha")
      << "two providers each: the first by name";
}

TEST_F(SchedulerModelTest, ASynchronousCallSaysWhetherTheModelIsUnknownOrHasNoLiveProvider) {
  auto e = CallError("llama", "");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "not_found");
  EXPECT_EQ(e->message, "model 'llama' is not served by this pool");
  e = CallError("llama", "llm");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "not_found");

  RegisterOffering("a", {{"llm", {"llama"}}});
  EXPECT_FALSE(CallError("llama", "").has_value());
  EXPECT_EQ(Tasks("a").size(), 1u);
  // Known to the pool, but not under this service.
  e = CallError("llama", "other");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "not_found");
  EXPECT_EQ(e->message, "model 'llama' is not served by service 'other'");

  // Its only worker goes away but is remembered (offline retention): known, nobody live.
  beating_.erase("a");
  AdvanceInSteps(Seconds(4));
  ASSERT_FALSE(s().workers()[0].alive);
  for (const char* service : {"", "llm"}) {
    e = CallError("llama", service);
    ASSERT_TRUE(e.has_value()) << service;
    EXPECT_EQ(e->code, "unavailable");
    EXPECT_EQ(e->message, "no live worker serves model 'llama'");
  }
  // Once the broker forgets the worker, it forgets the model.
  AdvanceInSteps(config_.offline_retention + Seconds(1), Seconds(1));
  e = CallError("llama", "");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "not_found");
  EXPECT_EQ(s().FindModel("llama"), nullptr);
}

TEST_F(SchedulerModelTest, ADrainingProviderIsNoLiveProvider) {
  RegisterOffering("a", {{"llm", {"llama"}}});
  ASSERT_TRUE(s().DrainWorker(now(), "a").ok());
  auto e = CallError("llama", "llm");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "unavailable");
  ASSERT_TRUE(s().UndrainWorker(now(), "a").ok());
  EXPECT_FALSE(CallError("llama", "llm").has_value());
}

TEST_F(SchedulerModelTest, AnAsynchronousTaskForAnUnknownModelWaitsWhenItNamesAService) {
  proto::Submit sub = ForModel("llama");
  sub.service = "llm";
  sub.ref = ++ref_;
  s().OnSubmit(now(), "client", sub);
  auto acc = out_.Take<proto::Accepted>(out_.to_clients, "client", Command::kAccepted);
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_TRUE(acc[0].waiting_for_provider);
  // A worker of the service without the model does not take it; one with the model does.
  RegisterOffering("plain", {{"llm", {}}});
  EXPECT_TRUE(Tasks("plain").empty());
  RegisterOffering("a", {{"llm", {"llama"}}});
  EXPECT_EQ(Tasks("a").size(), 1u);

  // Without a service there is no queue to wait in.
  auto answer = SubmitModelOnly("unknown");
  ASSERT_TRUE(std::holds_alternative<proto::Error>(answer));
  EXPECT_EQ(std::get<proto::Error>(answer).code, "not_found");
}

TEST_F(SchedulerModelTest, AManifestWithOtherModelsReindexesTheWorker) {
  RegisterOffering("a", {{"llm", {"llama"}}});
  SendManifest("a", {{"llm", {"mistral", "qwen"}}});
  EXPECT_EQ(s().FindModel("llama"), nullptr) << "nobody lists llama any more";
  const TaskId llama = Submit("llm", ForModel("llama"));
  EXPECT_TRUE(Tasks("a").empty()) << "the worker no longer serves llama";
  Submit("llm", ForModel("qwen"));
  EXPECT_EQ(Tasks("a").size(), 1u);
  // And back: the waiting task is dispatched when the worker lists its model again.
  SendManifest("a", {{"llm", {"llama"}}});
  auto a = Tasks("a");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].task_id, llama);
  EXPECT_EQ(s().FindModel("qwen"), nullptr);
  // A re-registration with another manifest re-indexes as well.
  RegisterOffering("a", {{"llm", {"phi"}}});
  EXPECT_EQ(s().FindModel("llama"), nullptr);
  ASSERT_NE(s().FindModel("phi"), nullptr);
  EXPECT_EQ(s().FindModelService("phi", "llm")->providers, 1u);
}

TEST_F(SchedulerModelTest, TheModelsQueryListsModelsWithALiveProvider) {
  RegisterOffering("a", {{"chat", {"llama", "mistral"}}, {"embed", {"bge"}}});
  Advance(Seconds(5));
  RegisterOffering("b", {{"chat", {"llama"}}});
  RegisterOffering("c", {{"other", {"llama", "qwen"}}});
  ASSERT_TRUE(s().DrainWorker(now(), "c").ok());  // takes no new work: not listed
  nlohmann::json doc = ModelsDocument(s());
  ASSERT_EQ(doc["models"].size(), 3u) << doc.dump();
  EXPECT_EQ(doc["models"][0]["id"], "bge");
  EXPECT_EQ(doc["models"][1]["id"], "llama");
  EXPECT_EQ(doc["models"][2]["id"], "mistral");
  EXPECT_EQ(doc["models"][1]["services"], nlohmann::json::array({"chat"}));
  EXPECT_EQ(doc["models"][1]["providers"], 2);
  EXPECT_EQ(doc["models"][0]["providers"], 1);
  const int64_t first = ToUnixMs(s().FindModel("llama")->first_seen) / 1000;
  EXPECT_EQ(doc["models"][1]["created"], first);

  // The workers document shows each worker's models per service.
  nlohmann::json workers = WorkersDocument(s(), now());
  EXPECT_EQ(workers["workers"][0]["models"]["chat"], nlohmann::json::array({"llama", "mistral"}));
  EXPECT_EQ(workers["workers"][0]["models"]["embed"], nlohmann::json::array({"bge"}));
}

}  // namespace
}  // namespace rma::broker::testing

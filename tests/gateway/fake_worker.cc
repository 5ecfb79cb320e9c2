// See fake_worker.h.
#include "tests/gateway/fake_worker.h"

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include <chrono>

#include "protocol/codec.h"
#include "protocol/frames.h"

namespace rma::testing {

using proto::Command;

FakeWorker::FakeWorker(std::string broker_endpoint, std::string worker_id,
                       std::vector<std::string> services, int heartbeat_ms, Backend backend)
    : endpoint_(std::move(broker_endpoint)),
      worker_id_(std::move(worker_id)),
      services_(std::move(services)),
      heartbeat_ms_(heartbeat_ms),
      backend_(backend ? std::move(backend) : Backend(DescribeRequest)) {
  thread_ = std::thread([this] { Loop(); });
}

FakeWorker::~FakeWorker() {
  stop_.store(true);
  thread_.join();
}

std::vector<proto::TaskAssignment> FakeWorker::tasks() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_;
}

proto::TaskResult FakeWorker::DescribeRequest(const proto::TaskAssignment& task) {
  nlohmann::json j = {{"service", task.service},
                      {"body", task.payload},
                      {"content_type", task.content_type},
                      {"timeout_ms", task.timeout_ms}};
  if (task.request) {
    j["method"] = task.request->method;
    j["path"] = task.request->path;
    j["query"] = task.request->query;
    j["headers"] = task.request->headers;
  }
  proto::TaskResult r;
  r.task_id = task.task_id;
  r.attempt = task.attempt;
  r.outcome = proto::Outcome::kOk;
  r.result = j.dump();
  r.content_type = "application/x-rma-test";
  r.http_status = 201;
  return r;
}

void FakeWorker::Loop() {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  proto::Limits limits;
  proto::ConfigureSocket(socket, limits, /*is_router=*/false);
  socket.connect(endpoint_);
  proto::Decoder decoder(limits);

  proto::Ready ready;
  ready.worker_id = worker_id_;
  ready.name = worker_id_;
  ready.agent_version = "fake";
  ready.slots = 16;
  ready.capabilities.cpu_cores = 1;
  ready.capabilities.ram_gb = 1;
  for (const std::string& s : services_) ready.services.push_back({s, "http"});
  (void)proto::SendOne(socket, {}, Command::kReady, ready);

  auto last_beat = std::chrono::steady_clock::now();
  proto::InMessage msg;
  while (!stop_.load()) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(20));
    if (std::chrono::steady_clock::now() - last_beat > std::chrono::milliseconds(heartbeat_ms_)) {
      (void)proto::SendOne(socket, {}, Command::kHeartbeat, proto::Heartbeat{});
      last_beat = std::chrono::steady_clock::now();
    }
    for (;;) {
      auto got = proto::ReceiveMessage(socket, /*has_identity=*/false, limits, &msg);
      if (!got.ok() || !*got) break;
      if (msg.command() == Command::kWelcome) registered_.store(true);
      if (msg.command() == Command::kDisconnect) {
        registered_.store(false);
        (void)proto::SendOne(socket, {}, Command::kReady, ready);
      }
      if (msg.command() != Command::kTask) continue;
      proto::OutMessage out(Command::kResult);
      for (size_t i = 0; i < msg.body_count(); ++i) {
        proto::TaskAssignment task;
        if (!decoder.Decode(msg.body(i), &task).ok()) continue;
        {
          std::lock_guard<std::mutex> lock(mu_);
          tasks_.push_back(task);
        }
        out.Add(backend_(task));
      }
      if (!out.empty()) (void)out.Send(socket);
    }
  }
  (void)proto::SendOne(socket, {}, Command::kDisconnect, proto::Disconnect{"test over", false});
}

}  // namespace rma::testing

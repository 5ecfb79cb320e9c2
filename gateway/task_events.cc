// See task_events.h.
#include "gateway/task_events.h"

#include <charconv>
#include <cmath>

#include "gateway/task_json.h"

namespace rma::gateway {

using nlohmann::json;
using proto::Command;

namespace {

// How long one watch lasts before the client is asked to reconnect (the broker caps it further
// with --max-wait-ms).
constexpr uint32_t kWatchMs = 300'000;
constexpr size_t kMaxBuffered = 256u << 10;

bool ParseU32(std::string_view text, uint32_t* out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

std::optional<EventId> ParseEventId(std::string_view id) {
  if (id.size() < 4 || id.size() > 64) return std::nullopt;
  EventId e;
  e.text = std::string(id);
  e.output = id[0] == 'o';
  if (id[0] != 'o' && id[0] != 's') return std::nullopt;
  id.remove_prefix(1);
  const size_t dot = id.find('.');
  if (dot == std::string_view::npos || !ParseU32(id.substr(0, dot), &e.attempt)) {
    return std::nullopt;
  }
  if (e.output && !ParseU32(id.substr(dot + 1), &e.seq)) return std::nullopt;
  return e;
}

std::string StatusEventId(const proto::TaskView& task) {
  const long progress = task.progress < 0 ? -1 : std::lround(task.progress * 1000);
  return "s" + std::to_string(task.attempts) + "." +
         std::string(proto::TaskStatusName(task.status)) + "." + std::to_string(progress);
}

void TaskEvents::Start(ApiContext* ctx, std::shared_ptr<Deferred> deferred, proto::Get get,
                       std::optional<EventId> last, bool admin) {
  auto events = std::make_shared<TaskEvents>(ctx, std::move(deferred), std::move(last), admin);
  get.watch = true;
  get.wait_ms = kWatchMs;
  ctx->broker.Request(
      Command::kGet, std::move(get), Ms(kWatchMs) + Seconds(5),
      [events](Result<BrokerAnswer> answer) { events->OnAnswer(std::move(answer)); },
      [events](StreamEvent event) { events->OnEvent(std::move(event)); });
}

bool TaskEvents::Open() {
  if (stream_) return true;
  if (!deferred_) return false;
  auto [fd, to] = deferred_->TakeForStream();
  deferred_.reset();
  if (!fd.valid()) return false;
  keep_alive_ = to.gate ? to.gate->KeepAlive(to.keep_alive) : to.keep_alive;
  HttpReply head;
  head.status = 200;
  head.content_type = "text/event-stream";
  head.headers.emplace_back("Cache-Control", "no-cache");
  head.headers.emplace_back("X-Accel-Buffering", "no");
  head.headers.insert(head.headers.end(), to.extra.begin(), to.extra.end());
  ctx_->metrics.Record(to.route, 200, ctx_->clock.Now() - to.started);
  stream_ = ctx_->writer.OpenStream(std::move(fd), to.gate, kMaxBuffered);
  return stream_->Append(SerializeStreamHead(head, keep_alive_));
}

bool TaskEvents::Write(const std::string& event) {
  std::string framed;
  AppendChunk(event, &framed);
  return stream_->Append(framed);
}

bool TaskEvents::Status(const proto::TaskView& task, bool final) {
  attempt_ = task.attempts;
  const std::string id = StatusEventId(task);
  if (last_ && !last_->output && last_->text == id) {
    last_.reset();  // the client has this one
    return Open();
  }
  if (!Open()) return false;
  json body = TaskJson(task, /*with_result=*/final, /*with_owner=*/admin_);
  if (task.progress >= 0) {
    body["progress"] = task.progress;
    if (!task.progress_message.empty()) body["progress_message"] = task.progress_message;
  }
  return Write("id: " + id + "\nevent: status\ndata: " +
               body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
}

bool TaskEvents::Output(const proto::CallPartial& chunk) {
  if (last_ && last_->output && last_->attempt == attempt_ && chunk.seq <= last_->seq) return true;
  if (!Open()) return false;
  json body = {{"seq", chunk.seq}, {"data", std::string(chunk.data.view())}};
  return Write("id: o" + std::to_string(attempt_) + "." + std::to_string(chunk.seq) +
               "\nevent: output\ndata: " +
               body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n");
}

void TaskEvents::OnEvent(StreamEvent event) {
  if (ended_) return;
  bool ok = true;
  if (auto* info = std::get_if<proto::TaskInfo>(&event)) {
    ok = Status(info->task, /*final=*/false);
  } else if (auto* chunk = std::get_if<proto::CallPartial>(&event)) {
    ok = Output(*chunk);
  }
  // A client that is gone: the broker's watch ends by itself when its time is up.
  if (!ok) ended_ = true;
}

void TaskEvents::OnAnswer(Result<BrokerAnswer> answer) {
  const bool client_gone = ended_;
  ended_ = true;
  if (client_gone) return;  // the stream broke on an earlier event
  const auto* info = answer.ok() ? std::get_if<proto::TaskInfo>(&*answer) : nullptr;
  if (!stream_) {
    // Nothing sent yet: a failure is an ordinary error answer.
    if (!deferred_) return;
    if (!answer.ok()) return deferred_->Reply(TransportErrorReply(answer.status()));
    if (auto* err = std::get_if<proto::Error>(&*answer)) {
      return deferred_->Reply(BrokerErrorReply(*err));
    }
    if (info == nullptr) return deferred_->Reply(UnexpectedAnswer());
    // The task has ended and the client has its last event: 204 tells EventSource to stop.
    if (proto::IsTerminal(info->task.status) && last_ && !last_->output &&
        last_->text == StatusEventId(info->task)) {
      HttpReply done;
      done.status = 204;
      done.content_type.clear();
      return deferred_->Reply(std::move(done));
    }
  }
  // The end, or the watch's time is up (the client reconnects with its Last-Event-ID).
  if (info != nullptr && !Status(info->task, proto::IsTerminal(info->task.status))) return;
  if (stream_) stream_->Finish("0\r\n\r\n", !keep_alive_);
}

}  // namespace rma::gateway

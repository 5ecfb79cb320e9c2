// See call_stream.h.
#include "gateway/call_stream.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "protocol/names.h"

namespace rma::gateway {

using nlohmann::json;
using proto::Command;

namespace {

// Headers of the backend's answer that describe one hop, not the answer: the gateway frames its
// own answer. X-RMA- headers are the gateway's to set, never a backend's.
bool ForwardedAnswerHeader(std::string_view lower) {
  static constexpr std::string_view kHopByHop[] = {
      "connection", "keep-alive", "transfer-encoding", "content-length",     "content-type",
      "te",         "trailer",    "upgrade",           "proxy-authenticate", "proxy-connection"};
  for (std::string_view h : kHopByHop) {
    if (lower == h) return false;
  }
  return lower.rfind("x-rma-", 0) != 0;
}

bool IsEventStream(std::string_view content_type) {
  constexpr std::string_view kSse = "text/event-stream";
  if (content_type.size() < kSse.size()) return false;
  for (size_t i = 0; i < kSse.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(content_type[i])) != kSse[i]) return false;
  }
  return true;
}

constexpr size_t kMaxForwardedHeaders = 64;
constexpr size_t kMaxHeaderValueBytes = 8192;

}  // namespace

CallStream::CallStream(ApiContext* ctx, std::shared_ptr<Deferred> deferred, std::string owner,
                       Options options)
    : ctx_(ctx), owner_(std::move(owner)), options_(std::move(options)) {
  MutexLock lock(&mu_);
  to_ = deferred->to();
  deferred_ = std::move(deferred);
}

void CallStream::Start(ApiContext* ctx, std::shared_ptr<Deferred> deferred, proto::Submit submit,
                       Duration timeout, Options options, std::shared_ptr<void> lease) {
  const bool head_only = deferred->to().head_only;
  auto call =
      std::make_shared<CallStream>(ctx, std::move(deferred), submit.owner, std::move(options));
  submit.announce = true;
  {
    MutexLock lock(&call->mu_);
    call->ignore_chunks_ = head_only;  // a HEAD answer has no body to stream
    if (call->to_.on_gone) {
      std::weak_ptr<CallStream> weak = call;
      call->hook_token_ = call->to_.on_gone->Set([weak] {
        if (auto c = weak.lock()) c->OnClientGone();
      });
    }
  }
  ctx->broker.Request(
      Command::kSubmit, std::move(submit), timeout,
      [call, lease](Result<BrokerAnswer> answer) { call->OnAnswer(std::move(answer)); },
      [call](StreamEvent event) { call->OnEvent(std::move(event)); });
}

void CallStream::OnEvent(StreamEvent event) {
  MutexLock lock(&mu_);
  if (ended_) return;
  if (auto* accepted = std::get_if<proto::Accepted>(&event)) {
    task_id_ = accepted->task_id;
    if (cancel_wanted_) Cancel(cancel_reason_);
    return;
  }
  if (auto* partial = std::get_if<proto::CallPartial>(&event)) OnPartial(*partial);
}

void CallStream::OnPartial(proto::CallPartial& p) {
  if (!task_id_) task_id_ = p.task_id;
  if (ignore_chunks_ || cancel_wanted_) return;
  if (p.seq != next_seq_) {
    // The broker does not buffer: a gap means chunks were lost on the way (docs/protocol.md §6.7).
    if (!stream_) {
      ignore_chunks_ = true;  // nothing was written yet: the whole result will answer
      return;
    }
    return EndWithError("chunks of the answer were lost on the way", "stream_interrupted");
  }
  ++next_seq_;
  if (!stream_ && !Open(p)) return;
  if (!WriteChunk(p.data.view())) {
    Cancel("the client stopped reading the streamed answer");
    return;
  }
  streamed_bytes_ += p.data.size();
}

bool CallStream::Open(const proto::CallPartial& first) {
  const int status = first.http_status == 0 ? 200 : static_cast<int>(first.http_status);
  if (status < 200 || status > 599 || !deferred_) {
    ignore_chunks_ = true;  // the final answer says what went wrong
    return false;
  }
  HttpReply head;
  head.status = status;
  head.content_type =
      first.content_type.empty() ? std::string("application/octet-stream") : first.content_type;
  sse_ = IsEventStream(head.content_type);
  for (const auto& [name, value] : first.headers) {
    if (head.headers.size() >= kMaxForwardedHeaders || value.size() > kMaxHeaderValueBytes) break;
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (ForwardedAnswerHeader(lower)) head.headers.emplace_back(name, value);
  }
  head.headers.emplace_back("X-RMA-Task-Id", ToString(first.task_id));
  // Reverse proxies (nginx) buffer answers unless told not to; a stream must not wait in them.
  head.headers.emplace_back("X-Accel-Buffering", "no");
  head.headers.insert(head.headers.end(), to_.extra.begin(), to_.extra.end());
  auto [fd, to] = deferred_->TakeForStream();
  deferred_.reset();
  if (!fd.valid()) {
    ignore_chunks_ = true;
    return false;
  }
  const bool keep_alive = to.gate ? to.gate->KeepAlive(to.keep_alive) : to.keep_alive;
  to_.keep_alive = keep_alive;
  status_ = status;
  stream_ = ctx_->writer.OpenStream(std::move(fd), to.gate, options_.max_buffered);
  first_byte_ = ctx_->clock.Now() - to_.started;
  if (!stream_->Append(SerializeStreamHead(head, keep_alive))) {
    Cancel("the client went away");
    return false;
  }
  return true;
}

bool CallStream::WriteChunk(std::string_view data) {
  std::string framed;
  framed.reserve(data.size() + 16);
  AppendChunk(data, &framed);
  return framed.empty() || stream_->Append(framed);
}

void CallStream::OnAnswer(Result<BrokerAnswer> answer) {
  MutexLock lock(&mu_);
  if (ended_) return;
  ended_ = true;
  Unhook();
  const auto* info = answer.ok() ? std::get_if<proto::TaskInfo>(&*answer) : nullptr;
  const bool completed = info != nullptr && info->task.status == proto::TaskStatus::kCompleted;
  if (!stream_) {
    if (!deferred_) return;
    HttpReply reply;
    if (!answer.ok()) {
      reply = TransportErrorReply(answer.status());
      if (options_.reshape_error) reply = options_.reshape_error(std::move(reply));
    } else if (auto* err = std::get_if<proto::Error>(&*answer)) {
      reply = BrokerErrorReply(*err);
      if (options_.reshape_error) reply = options_.reshape_error(std::move(reply));
    } else {
      reply = options_.whole(*answer);
    }
    if (options_.on_end) {
      End end;
      end.status = reply.status;
      if (completed) end.result = info->task.result.view();
      options_.on_end(end);
    }
    deferred_->Reply(std::move(reply));
    deferred_.reset();
    return;
  }
  ctx_->metrics.Record(to_.route, status_, ctx_->clock.Now() - to_.started);
  if (options_.on_end) {
    End end;
    end.status = status_;
    end.first_byte = first_byte_;
    end.event_stream = sse_;
    if (completed) end.result = info->task.result.view();
    options_.on_end(end);
  }
  if (stream_->broken()) return;  // the client is gone; the task was cancelled
  if (!completed) {
    std::string message = "the service call failed after its answer started";
    std::string code = "stream_interrupted";
    if (!answer.ok()) {
      message = answer.status().message();
      code = "deadline_exceeded";
    } else if (auto* err = std::get_if<proto::Error>(&*answer)) {
      message = err->message;
      code = err->code;
    } else if (info != nullptr) {
      if (!info->task.error.empty()) message = info->task.error;
      code = info->task.error_code.empty() ? "handler_error" : info->task.error_code;
      if (!proto::IsTerminal(info->task.status)) code = "timeout";
    }
    cancel_sent_ = true;  // the broker ended the call itself
    return EndWithError(message, code);
  }
  // The worker streams everything it sends in chunks, but may stop early (its own bound): the
  // final result holds the rest.
  const std::string_view result = info->task.result.view();
  std::string last;
  if (result.size() > streamed_bytes_) AppendChunk(result.substr(streamed_bytes_), &last);
  last += "0\r\n\r\n";
  stream_->Finish(last, !to_.keep_alive);
}

void CallStream::OnClientGone() {
  MutexLock lock(&mu_);
  if (ended_) return;
  Cancel("the client closed its connection");
}

void CallStream::EndWithError(const std::string& message, const std::string& code) {
  Cancel(message);
  ignore_chunks_ = true;
  if (!stream_ || stream_->broken()) return;
  if (!sse_) {
    stream_->Abort();  // an incomplete chunked body: the client reports an error
    return;
  }
  json error = {{"error", {{"message", message}, {"type", "server_error"}, {"code", code}}}};
  std::string last;
  AppendChunk("data: " + error.dump() + "\n\n", &last);
  last += "0\r\n\r\n";
  stream_->Finish(last, !to_.keep_alive);
}

void CallStream::Cancel(const std::string& why) {
  if (cancel_sent_) return;
  cancel_wanted_ = true;
  cancel_reason_ = why;
  if (!task_id_) return;  // sent when the ACCEPTED brings the task id
  cancel_sent_ = true;
  spdlog::debug("cancelling call {}: {}", ToString(*task_id_), why);
  proto::CancelTask cancel;
  cancel.task_id = *task_id_;
  cancel.owner = owner_;
  ctx_->broker.Request(Command::kCancelTask, std::move(cancel), Seconds(5),
                       [](Result<BrokerAnswer>) {});
}

void CallStream::Unhook() {
  if (to_.on_gone && hook_token_ != 0) to_.on_gone->Clear(hook_token_);
  hook_token_ = 0;
}

}  // namespace rma::gateway

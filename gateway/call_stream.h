// A synchronous service call whose answer may stream (docs/http-api.md, "Streamed answers").
//
// The call is sent as an announced SUBMIT: the broker answers ACCEPTED with the task id at once,
// then relays the worker's PARTIAL chunks, then the TASK_INFO that ends the call. When the first
// chunk arrives the HTTP answer starts at once with the backend's status, content type and
// end-to-end headers, in chunked transfer encoding; every chunk is written as it comes (an SSE
// event of a `text/event-stream` byte for byte), through a SocketStream that bounds what waits for
// a slow reader. A call whose backend does not stream is answered whole from its TASK_INFO, as
// before.
//
// The end of a started stream: a completed call ends the chunked body (with whatever the final
// result holds beyond the chunks, should the worker have stopped streaming early); a failed one
// ends it with an error "in the format the client expects" — for `text/event-stream` an event
// `data: {"error": {"message", "type", "code"}}` (OpenAI's shape) and a clean end, for anything
// else an incomplete body (the connection is cut), which every HTTP client reports as an error.
//
// Cancelling: a client that closes its connection (reported by the reactor through the
// connection's DisconnectHook), a stream cut for a slow reader, or a gap in the chunks cancels the
// task with CANCEL_TASK, so the worker aborts its backend request. A cancel wanted before the
// ACCEPTED arrived is sent when it does.
//
// Threads: events and the answer arrive on the BrokerClient thread; the disconnection on a reactor
// thread. One mutex orders them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "gateway/exchange.h"

namespace rma::gateway {

class CallStream : public std::enable_shared_from_this<CallStream> {
 public:
  // Turns the call's final answer into the whole HTTP answer when nothing was streamed.
  using WholeAnswer = std::function<HttpReply(const BrokerAnswer&)>;
  // How a call ended, for metrics: the HTTP status sent, the time to the first streamed byte (none
  // when answered whole), and the final result when the call completed.
  struct End {
    int status = 0;
    std::optional<Duration> first_byte;
    std::string_view result;
    bool event_stream = false;
  };

  struct Options {
    size_t max_buffered = 256u << 10;  // bytes waiting for a slow reader before the stream is cut
    WholeAnswer whole;
    // Reshapes the gateway's own error answers (the broker's ERROR, a transport failure), e.g. into
    // OpenAI's error shape. None: as they are.
    std::function<HttpReply(HttpReply)> reshape_error;
    std::function<void(const End&)> on_end;  // called once, on the BrokerClient thread
  };

  CallStream(ApiContext* ctx, std::shared_ptr<Deferred> deferred, std::string owner,
             Options options);

  // Sends `submit` (made announced) and streams or answers what comes back. `lease` is held until
  // the call ends.
  static void Start(ApiContext* ctx, std::shared_ptr<Deferred> deferred, proto::Submit submit,
                    Duration timeout, Options options, std::shared_ptr<void> lease);

 private:
  void OnEvent(StreamEvent event);
  void OnAnswer(Result<BrokerAnswer> answer);
  void OnClientGone();

  void OnPartial(proto::CallPartial& p) RMA_REQUIRES(mu_);
  // Opens the HTTP answer with the first chunk's status, type and headers; false when it cannot.
  bool Open(const proto::CallPartial& first) RMA_REQUIRES(mu_);
  // Writes one chunk of the body in chunked encoding; false when the stream broke.
  bool WriteChunk(std::string_view data) RMA_REQUIRES(mu_);
  // Ends a started stream with an error (see the file comment) and cancels the task.
  void EndWithError(const std::string& message, const std::string& code) RMA_REQUIRES(mu_);
  // Asks the broker to cancel the task (once; when its id is known).
  void Cancel(const std::string& why) RMA_REQUIRES(mu_);
  void Unhook() RMA_REQUIRES(mu_);

  ApiContext* const ctx_;
  const std::string owner_;
  const Options options_;
  Mutex mu_;
  std::shared_ptr<Deferred> deferred_ RMA_GUARDED_BY(mu_);  // until the answer starts or ends
  ReplyTo to_ RMA_GUARDED_BY(mu_);
  uint64_t hook_token_ RMA_GUARDED_BY(mu_) = 0;
  std::optional<TaskId> task_id_ RMA_GUARDED_BY(mu_);
  bool cancel_wanted_ RMA_GUARDED_BY(mu_) = false;
  std::string cancel_reason_ RMA_GUARDED_BY(mu_);
  bool cancel_sent_ RMA_GUARDED_BY(mu_) = false;
  std::shared_ptr<SocketStream> stream_ RMA_GUARDED_BY(mu_);
  int status_ RMA_GUARDED_BY(mu_) = 0;
  bool sse_ RMA_GUARDED_BY(mu_) = false;
  bool ignore_chunks_ RMA_GUARDED_BY(mu_) = false;  // answered whole (HEAD, a bad first chunk)
  uint32_t next_seq_ RMA_GUARDED_BY(mu_) = 0;
  size_t streamed_bytes_ RMA_GUARDED_BY(mu_) = 0;
  std::optional<Duration> first_byte_ RMA_GUARDED_BY(mu_);
  bool ended_ RMA_GUARDED_BY(mu_) = false;
};

}  // namespace rma::gateway

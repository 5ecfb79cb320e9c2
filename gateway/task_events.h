// GET /api/tasks/{id}/events: a task's life as Server-Sent Events (docs/http-api.md, "Task
// events"). The gateway sends the broker a GET with watch: the broker answers the task as it
// stands, then again at every change of status or progress, relays the output chunks its worker
// streams (PARTIAL), and ends with the task's end. Each becomes one event on a `text/event-stream`
// answer written through a SocketStream (bounded for slow readers):
//
//   id: s<attempts>.<status>.<progress in thousandths>   event: status   data: the task's JSON
//   id: o<attempt>.<seq>                                  event: output   data: {"seq", "data"}
//
// The stream ends after the event of a terminal status, or when the watch's time is up (the
// client reconnects, as EventSource does). Resuming: with `Last-Event-ID` the events the client has
// are not sent again — the status event with that id, and output chunks of that attempt up to that
// seq; output produced while the client was away is not kept (partial output is never persisted;
// the final result is in the task). A reconnect after the terminal status event is answered 204,
// which tells EventSource to stop.
//
// Threads: events and the answer arrive on the BrokerClient thread only.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "gateway/exchange.h"

namespace rma::gateway {

// What a Last-Event-ID names (nullopt: nothing the gateway sent).
struct EventId {
  bool output = false;  // an output chunk (else a status)
  uint32_t attempt = 0;
  uint32_t seq = 0;  // output
  std::string text;  // the id as sent
};
std::optional<EventId> ParseEventId(std::string_view id);
std::string StatusEventId(const proto::TaskView& task);

class TaskEvents : public std::enable_shared_from_this<TaskEvents> {
 public:
  // Watches `get.task_id` (get.watch and wait_ms are set here) and streams its events.
  static void Start(ApiContext* ctx, std::shared_ptr<Deferred> deferred, proto::Get get,
                    std::optional<EventId> last, bool admin);

  TaskEvents(ApiContext* ctx, std::shared_ptr<Deferred> deferred, std::optional<EventId> last,
             bool admin)
      : ctx_(ctx), deferred_(std::move(deferred)), last_(std::move(last)), admin_(admin) {}

 private:
  void OnEvent(StreamEvent event);
  void OnAnswer(Result<BrokerAnswer> answer);
  // Writes a status event (opening the answer first); false when the stream broke.
  bool Status(const proto::TaskView& task, bool final);
  bool Output(const proto::CallPartial& chunk);
  bool Open();
  bool Write(const std::string& event);

  ApiContext* const ctx_;
  std::shared_ptr<Deferred> deferred_;  // until the answer opens
  std::optional<EventId> last_;
  const bool admin_;
  std::shared_ptr<SocketStream> stream_;
  bool keep_alive_ = true;
  uint32_t attempt_ = 0;  // of the output chunks that arrive: the running attempt's
  bool ended_ = false;
};

}  // namespace rma::gateway

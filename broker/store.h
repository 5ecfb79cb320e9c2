// TaskStore: where the broker records tasks and workers. MemoryStore keeps nothing beyond the
// scheduler's own memory; PgStore (pg_store.h) makes every accepted task durable in PostgreSQL.
//
// The broker loop thread is the only caller. Writes are queued without blocking and numbered; an
// implementation with its own thread reports through poll_fd()/OnReadable() how far writes are
// durable, so the loop can release the ACCEPTED answers that wait for them. Lookups of tasks no
// longer in memory are answered asynchronously through the same path.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/store_types.h"
#include "common/status.h"
#include "schemas/messages.h"

namespace rma::broker {

// An answer for a client that the store produced (TASK_INFO, TASK_LIST or ERROR), ready to send.
struct StoreReply {
  std::string client;
  proto::Command command = proto::Command::kError;
  std::string body;
};

struct RecoveredState {
  std::vector<TaskRecord>
      tasks;  // unfinished tasks, plus finished ones still worth keeping in memory
  uint64_t max_task_id = 0;
};

class TaskStore {
 public:
  virtual ~TaskStore() = default;
  virtual std::string_view name() const = 0;
  // Whether writes survive a crash (and ACCEPTED must wait for them).
  virtual bool durable() const = 0;
  // Called once before the loop starts serving.
  virtual Result<RecoveredState> Recover() = 0;

  // Queue a write; returns its sequence number (increasing).
  virtual uint64_t Write(TaskWrite write) = 0;
  virtual void WriteWorker(WorkerRecord record) = 0;
  // Hand the writes queued during this loop iteration to the store (one batch).
  virtual void Flush() = 0;
  // Every write with a sequence number <= this is durable.
  virtual uint64_t durable_seq() const = 0;
  // Whether the store currently accepts writes (false while the database is unreachable).
  virtual bool available() const = 0;

  // Asynchronous reads for tasks that are not in the broker's memory.
  virtual bool can_lookup() const = 0;
  virtual void LookupTask(const std::string& client, uint64_t ref, TaskId id) = 0;
  virtual void ListTasks(const std::string& client, const proto::List& query) = 0;

  // A descriptor the loop polls; -1 when the store never has anything to report.
  virtual int poll_fd() const = 0;
  // Called when poll_fd() is readable: collects progress (durable_seq, available) and finished
  // reads.
  virtual void OnReadable(std::vector<StoreReply>* replies) = 0;
};

class MemoryStore final : public TaskStore {
 public:
  std::string_view name() const override { return "memory"; }
  bool durable() const override { return false; }
  Result<RecoveredState> Recover() override { return RecoveredState{}; }
  uint64_t Write(TaskWrite) override { return ++seq_; }
  void WriteWorker(WorkerRecord) override {}
  void Flush() override {}
  uint64_t durable_seq() const override { return seq_; }
  bool available() const override { return true; }
  bool can_lookup() const override { return false; }
  void LookupTask(const std::string&, uint64_t, TaskId) override {}
  void ListTasks(const std::string&, const proto::List&) override {}
  int poll_fd() const override { return -1; }
  void OnReadable(std::vector<StoreReply>*) override {}

 private:
  uint64_t seq_ = 0;
};

}  // namespace rma::broker

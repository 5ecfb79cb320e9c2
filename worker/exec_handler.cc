// See exec_handler.h.
#include "worker/exec_handler.h"

#include <string.h>

#include "worker/subprocess.h"

namespace rma::worker {

namespace {

constexpr size_t kMaxCommandBytes = 64 * 1024;
// stderr quoted in a task error.
constexpr size_t kErrorTailBytes = 2048;

class ExecHandler final : public Handler {
 public:
  ExecHandler(std::string command, HandlerOptions options)
      : command_(std::move(command)), options_(std::move(options)) {}

  std::string_view kind() const override { return "exec"; }
  std::string Describe() const override { return "exec:" + command_; }

  Result<HandlerOutput> Run(const proto::TaskAssignment& task, const CancelToken& cancel) override {
    return Execute(task, cancel, nullptr);
  }
  Result<HandlerOutput> RunStreaming(const proto::TaskAssignment& task, const CancelToken& cancel,
                                     OutputStream& stream) override {
    return Execute(task, cancel, streams_ ? &stream : nullptr);
  }

 private:
  Result<HandlerOutput> Execute(const proto::TaskAssignment& task, const CancelToken& cancel,
                                OutputStream* stream) {
    SubprocessRequest request;
    if (stream != nullptr) {
      request.on_output = [&](std::string_view data) {
        stream->Chunk(data, 200, options_.content_type);
      };
    }
    request.argv = {"/bin/sh", "-c", command_};
    request.env = {"RMA_TASK_ID=" + ToString(task.task_id),
                   "RMA_ATTEMPT=" + std::to_string(task.attempt), "RMA_SERVICE=" + task.service,
                   "RMA_CONTENT_TYPE=" + task.content_type};
    request.input = task.payload;
    request.max_output_bytes = options_.max_output_bytes;
    request.error_tail_bytes = kErrorTailBytes;
    request.timeout = task.timeout_ms > 0 ? Ms(task.timeout_ms) : options_.default_timeout;
    request.kill_grace = options_.kill_grace;
    RMA_ASSIGN_OR_RETURN(SubprocessResult r, RunSubprocess(request, &cancel));

    std::string stderr_tail = PrintableTail(r.error_tail, kErrorTailBytes);
    auto with_stderr = [&](std::string message) {
      if (!stderr_tail.empty()) message += "; stderr: " + stderr_tail;
      return message;
    };
    switch (r.end) {
      case SubprocessEnd::kExited:
        if (r.exit_code == 0) return HandlerOutput{std::move(r.output), options_.content_type, 0};
        return Status::Internal(
            with_stderr("command exited with status " + std::to_string(r.exit_code)));
      case SubprocessEnd::kSignalled: {
        const char* name = sigabbrev_np(r.signal);
        return Status::Internal(with_stderr("command was killed by signal " +
                                            std::to_string(r.signal) + " (SIG" +
                                            (name != nullptr ? name : "?") + ")"));
      }
      case SubprocessEnd::kTimedOut:
        return Status::DeadlineExceeded(with_stderr("command did not finish within " +
                                                    std::to_string(ToMs(request.timeout)) +
                                                    " ms; its process group was killed"));
      case SubprocessEnd::kCancelled:
        return Status::Cancelled(cancel.reason());
      case SubprocessEnd::kOutputTooLarge:
        return Status::ResourceExhausted("command wrote more than " +
                                         std::to_string(options_.max_output_bytes) +
                                         " bytes to stdout; its process group was killed");
    }
    return Status::Internal("unreachable");
  }

  const std::string command_;
  const HandlerOptions options_;
  const bool streams_ =
      options_.stream_output.value_or(options_.content_type.rfind("text/event-stream", 0) == 0);
};

}  // namespace

Result<std::shared_ptr<Handler>> MakeExecHandler(const std::string& command,
                                                 const HandlerOptions& options) {
  if (command.find_first_not_of(" \t") == std::string::npos) {
    return Status::InvalidArgument("exec: needs a command, e.g. exec:wc -c");
  }
  if (command.find('\0') != std::string::npos) {
    return Status::InvalidArgument("exec: the command contains a NUL byte");
  }
  if (command.size() > kMaxCommandBytes) {
    return Status::InvalidArgument("exec: the command is longer than 64 KiB");
  }
  return std::shared_ptr<Handler>(std::make_shared<ExecHandler>(command, options));
}

}  // namespace rma::worker

// See http_load.h.
#include "tests/support/http_load.h"

#include <nlohmann/json.hpp>

#include "tests/support/http_client.h"
#include "tests/support/process.h"

namespace rma::testing {

using namespace std::chrono_literals;

HttpLoad::HttpLoad(std::string url, std::string key, int clients)
    : url_(std::move(url)), key_(std::move(key)) {
  for (int i = 0; i < clients; ++i) threads_.emplace_back([this, i] { Run(i); });
}

HttpLoad::~HttpLoad() { Stop(); }

void HttpLoad::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::set<std::string> HttpLoad::acked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_;
}

bool HttpLoad::AfterMoreAcks(size_t more, std::chrono::milliseconds timeout) const {
  const size_t target = acked_count_ + more;
  return WaitUntil([&] { return acked_count_ >= target; }, timeout);
}

void HttpLoad::Run(int client) {
  std::vector<std::string> headers = {"Content-Type: application/json"};
  if (!key_.empty()) headers.push_back("X-API-Key: " + key_);
  for (int n = 0; !stop_; ++n) {
    nlohmann::json body = {{"service", "echo"},
                           {"payload", "c" + std::to_string(client) + "-" + std::to_string(n)}};
    HttpResponse r = HttpCall("POST", url_, body.dump(), headers, 10000);
    if (r.status == 202) {
      const std::string id = r.Json().value("task_id", "");
      std::lock_guard<std::mutex> lock(mu_);
      if (!id.empty() && acked_.insert(id).second) ++acked_count_;
      continue;
    }
    ++(r.status == 503 ? unavailable_ : unknown_);
    std::this_thread::sleep_for(20ms);
  }
}

}  // namespace rma::testing

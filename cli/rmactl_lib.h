// rmactl's pieces that are not argument parsing: one HTTP call to the gateway (libcurl) and the
// readable tables and summaries printed for the gateway's JSON. The render functions are pure, so
// rmactl_test.cc checks them without a gateway.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace rma::cli {

// Exit codes of rmactl (docs/configuration.md, "rmactl").
inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;      // the gateway answered with an error (HTTP 4xx/5xx)
inline constexpr int kExitUsage = 2;        // bad command line
inline constexpr int kExitUnreachable = 3;  // no answer from the gateway (connection, timeout)
inline constexpr int kExitTaskFailed = 4;   // --wait: the task ended without a result

struct Reply {
  long status = 0;  // 0: no answer (see error)
  std::string body;
  std::string error;
  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
};

struct Client {
  std::string gateway;  // "http://127.0.0.1:8080" (a trailing '/' is ignored)
  std::string key;      // sent as X-API-Key when not empty
  long timeout_s = 30;
  Reply Call(const std::string& method, const std::string& path, const std::string& body = "",
             long timeout_s_override = 0) const;
};

// Columns padded to their widest cell, two spaces apart, header first.
std::string Table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows);

std::string RenderWorkers(const nlohmann::json& doc);
std::string RenderServices(const nlohmann::json& doc);
std::string RenderQueues(const nlohmann::json& doc);
std::string RenderStats(const nlohmann::json& doc);
std::string RenderTask(const nlohmann::json& task);
std::string RenderTaskList(const nlohmann::json& doc);
// An error answer: "error 404 (not_found): task '7' not found".
std::string RenderError(const Reply& reply);

// Whether a task status is final (nothing will change it without an admin).
bool IsFinal(const std::string& status);

}  // namespace rma::cli

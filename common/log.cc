// See log.h.
#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <string>

namespace rma {

Status SetUpLogging(std::string_view process_name, std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return Status::InvalidArgument("unknown log level '" + std::string(level) +
                                   "' (use trace, debug, info, warn, error or off)");
  }
  auto logger = spdlog::stderr_color_mt(std::string(process_name));
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  spdlog::set_level(parsed);
  spdlog::flush_on(spdlog::level::warn);
  return Status::Ok();
}

}  // namespace rma

// Hardware detection for the capability record a worker reports. The parsers are pure functions
// over the text of /proc files (tested against recorded samples); Detect() reads the real files on
// the calling thread. A machine without a GPU is a normal answer, never an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "schemas/messages.h"

namespace rma::worker {

struct MemInfo {
  double total_gb = 0;
  double available_gb = 0;
};

// /proc/meminfo: MemTotal and MemAvailable (kB).
std::optional<MemInfo> ParseMeminfo(std::string_view text);
// /proc/cpuinfo: the first "model name" (x86) or "Model"/"Hardware" (ARM boards such as the
// Raspberry Pi).
std::string ParseCpuModel(std::string_view text);
// /proc/loadavg: the 1-minute load average.
std::optional<double> ParseLoadavg(std::string_view text);

// Detects cores, CPU model, RAM, disk (for data_dir), OS and architecture of this machine.
proto::Capabilities DetectCapabilities(const std::string& data_dir);
// Declared capabilities of a simulated gpu|cpu|storage worker.
Result<proto::Capabilities> SimulatedCapabilities(std::string_view kind);

// Live readings for heartbeats.
double LoadPerCore();
double AvailableRamGb();

}  // namespace rma::worker

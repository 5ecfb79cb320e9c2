// Hardware detection for the capability record a worker reports, and the live readings its
// heartbeats carry. The parsers are pure functions over the text of /proc files (tested against
// recorded samples); DetectCapabilities() reads the real files on the calling thread (main, at
// start-up); a Sampler is read by the monitor thread. GPUs come from gpu.h. A machine without a GPU
// is a normal answer, never an error.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "protocol/messages.h"
#include "worker/gpu.h"

namespace rma::worker {

struct MemInfo {
  double total_gb = 0;
  double available_gb = 0;
};

// /proc/meminfo: MemTotal and MemAvailable (kB).
std::optional<MemInfo> ParseMeminfo(std::string_view text);
// /proc/cpuinfo: the processor's "model name" (x86, 32-bit ARM); on boards that name themselves
// ("Model: Raspberry Pi 4 Model B Rev 1.4") the board first, with the processor in parentheses
// when known; else "Hardware", "cpu model" (MIPS), or "unknown".
std::string ParseCpuModel(std::string_view text);
// /proc/loadavg: the 1-minute load average.
std::optional<double> ParseLoadavg(std::string_view text);

// Detects cores, CPU model, RAM, disk (for data_dir), OS and architecture of this machine, and its
// GPUs through `gpus` (null: none). The GPUs found are also returned in *found when given.
proto::Capabilities DetectCapabilities(const std::string& data_dir, GpuSource* gpus,
                                       std::vector<GpuInfo>* found = nullptr);
// Declared capabilities of a simulated gpu|cpu|storage worker.
Result<proto::Capabilities> SimulatedCapabilities(std::string_view kind);

// What a heartbeat reports about the machine right now.
struct Readings {
  double load = 0;  // 1-minute load average per core
  double ram_available_gb = 0;
  double gpu_util = 0;  // 0..1, mean over the GPUs
  bool operator==(const Readings&) const = default;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual Readings Sample() = 0;
};

// Reads /proc/loadavg, /proc/meminfo and the GPUs' utilisation (when `gpus` is not null).
std::unique_ptr<Sampler> MakeSystemSampler(std::shared_ptr<GpuSource> gpus);
// Always the same readings: simulated workers.
std::unique_ptr<Sampler> MakeFixedSampler(Readings readings);

}  // namespace rma::worker

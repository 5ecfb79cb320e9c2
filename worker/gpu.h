// NVIDIA GPU discovery and utilisation readings.
//
// Two sources, tried in this order: NVML, loaded at run time with dlopen("libnvidia-ml.so.1") and
// called through function pointers (so rma-worker builds without the CUDA toolkit and runs where
// no driver is installed), and `nvidia-smi --query-gpu=...` as a fallback when the library cannot
// be loaded. Neither present, or no device: the machine has no GPU, which is a normal answer.
//
// ParseNvidiaSmi is a pure function tested against recorded output. A GpuSource may be queried
// from one thread at a time (the monitor thread after start-up).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "protocol/messages.h"

namespace rma::worker {

struct GpuInfo {
  std::string name;
  double memory_gb = 0;    // total memory (GiB)
  double utilization = 0;  // 0..1; 0 when the device does not report it
  bool operator==(const GpuInfo&) const = default;
};

// Output of `nvidia-smi --query-gpu=name,memory.total,utilization.gpu
// --format=csv,noheader,nounits`: one line per GPU, e.g. "NVIDIA GeForce RTX 3090, 24576, 3".
// "[N/A]" and "[Not Supported]" readings count as 0. InvalidArgument for a line that is not three
// fields with numbers in the last two.
Result<std::vector<GpuInfo>> ParseNvidiaSmi(std::string_view text);

class GpuSource {
 public:
  virtual ~GpuSource() = default;
  // "NVML" or "nvidia-smi", for logs.
  virtual std::string_view name() const = 0;
  virtual Result<std::vector<GpuInfo>> Query() = 0;
};

// NVML from `library` (a soname or a path). Null when it cannot be loaded or initialised (no
// driver): the reason goes to *why when given.
std::unique_ptr<GpuSource> OpenNvml(const std::string& library = "libnvidia-ml.so.1",
                                    std::string* why = nullptr);
// nvidia-smi at `program` (a path, or a name looked up in PATH); each query runs it with
// `timeout`.
std::unique_ptr<GpuSource> NvidiaSmiSource(std::string program = "nvidia-smi",
                                           Duration timeout = Seconds(10));

// NVML if it loads, else nvidia-smi if it answers, else null. Logs what it found.
std::unique_ptr<GpuSource> FindGpuSource();

// Sets has_gpu, gpu_count, gpu_type (the first GPU's name, "2 x NAME" for two alike, or the names
// joined) and gpu_memory_gb (the largest).
void ApplyGpus(const std::vector<GpuInfo>& gpus, proto::Capabilities* caps);
// Mean utilisation of the GPUs (0 without any).
double MeanUtilization(const std::vector<GpuInfo>& gpus);

}  // namespace rma::worker

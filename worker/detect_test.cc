// Detection: the /proc and nvidia-smi parsers against recorded samples (x86 server, Raspberry Pi 4
// in 32- and 64-bit, an old kernel, malformed input), NVML through a fake libnvidia-ml loaded with
// dlopen, nvidia-smi through fake scripts run as real processes, and a sanity check of this
// machine.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "worker/detect.h"
#include "worker/gpu.h"

namespace rma::worker {
namespace {

std::string Sample(const std::string& name) {
  std::ifstream in(std::string(RMA_WORKER_TESTDATA) + "/" + name);
  EXPECT_TRUE(in) << "missing sample " << name;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(ParseMeminfoTest, ReadsTotalAndAvailableFromAnX86Server) {
  auto m = ParseMeminfo(Sample("meminfo_x86.txt"));
  ASSERT_TRUE(m.has_value());
  EXPECT_NEAR(m->total_gb, 32768232 / 1048576.0, 1e-9);
  EXPECT_NEAR(m->available_gb, 21044300 / 1048576.0, 1e-9);
}

TEST(ParseMeminfoTest, ReadsARaspberryPi) {
  auto m = ParseMeminfo(Sample("meminfo_rpi4.txt"));
  ASSERT_TRUE(m.has_value());
  EXPECT_NEAR(m->total_gb, 3.704, 0.001);
  EXPECT_NEAR(m->available_gb, 3.257, 0.001);
}

TEST(ParseMeminfoTest, FallsBackToMemFreeOnKernelsWithoutMemAvailable) {
  auto m = ParseMeminfo(Sample("meminfo_old_kernel.txt"));
  ASSERT_TRUE(m.has_value());
  EXPECT_NEAR(m->available_gb, 884532 / 1048576.0, 1e-9);
}

TEST(ParseMeminfoTest, RejectsMalformedAndEmptyInput) {
  EXPECT_FALSE(ParseMeminfo(Sample("meminfo_malformed.txt")).has_value());
  EXPECT_FALSE(ParseMeminfo("").has_value());
  EXPECT_FALSE(ParseMeminfo("MemTotal: -5 kB\n").has_value());
}

TEST(ParseCpuModelTest, NamesTheProcessorOnX86) {
  EXPECT_EQ(ParseCpuModel(Sample("cpuinfo_x86.txt")), "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz");
}

TEST(ParseCpuModelTest, NamesTheBoardAndProcessorOnA32BitRaspberryPi) {
  EXPECT_EQ(ParseCpuModel(Sample("cpuinfo_rpi4_armv7.txt")),
            "Raspberry Pi 4 Model B Rev 1.4 (ARMv7 Processor rev 3 (v7l))");
}

TEST(ParseCpuModelTest, NamesTheBoardOnA64BitRaspberryPi) {
  EXPECT_EQ(ParseCpuModel(Sample("cpuinfo_rpi4_aarch64.txt")), "Raspberry Pi 4 Model B Rev 1.4");
}

TEST(ParseCpuModelTest, SaysUnknownWhenNothingNamesTheCpu) {
  EXPECT_EQ(ParseCpuModel(""), "unknown");
  EXPECT_EQ(ParseCpuModel("processor\t: 0\nBogoMIPS\t: 108.00\n"), "unknown");
  EXPECT_EQ(ParseCpuModel("Hardware\t: BCM2835\n"), "BCM2835");
}

TEST(ParseLoadavgTest, ReadsTheOneMinuteAverageAndRejectsJunk) {
  EXPECT_DOUBLE_EQ(*ParseLoadavg("0.52 0.58 0.59 1/389 12345\n"), 0.52);
  EXPECT_DOUBLE_EQ(*ParseLoadavg("12.00 1 1 1/1 1"), 12.0);
  EXPECT_FALSE(ParseLoadavg("").has_value());
  EXPECT_FALSE(ParseLoadavg("abc 1 1").has_value());
  EXPECT_FALSE(ParseLoadavg("-1.0 1 1").has_value());
}

TEST(ParseNvidiaSmiTest, NoOutputMeansNoGpu) {
  auto gpus = ParseNvidiaSmi(Sample("nvidia_smi_0gpu.txt"));
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  EXPECT_TRUE(gpus->empty());
}

TEST(ParseNvidiaSmiTest, ReadsOneGpu) {
  auto gpus = ParseNvidiaSmi(Sample("nvidia_smi_1gpu.txt"));
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].name, "NVIDIA GeForce RTX 3090");
  EXPECT_DOUBLE_EQ((*gpus)[0].memory_gb, 24.0);
  EXPECT_DOUBLE_EQ((*gpus)[0].utilization, 0.03);
}

TEST(ParseNvidiaSmiTest, ReadsTwoDifferentGpus) {
  auto gpus = ParseNvidiaSmi(Sample("nvidia_smi_2gpu.txt"));
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0], (GpuInfo{"NVIDIA A100-SXM4-40GB", 40.0, 0.87}));
  EXPECT_EQ((*gpus)[1], (GpuInfo{"Tesla T4", 15.0, 0.0}));
}

TEST(ParseNvidiaSmiTest, CountsUnavailableReadingsAsZero) {
  auto gpus = ParseNvidiaSmi(Sample("nvidia_smi_na.txt"));
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].utilization, 0);
  EXPECT_DOUBLE_EQ((*gpus)[0].memory_gb, 2.0);
}

TEST(ParseNvidiaSmiTest, KeepsCommasInTheName) {
  auto gpus = ParseNvidiaSmi("Odd, Vendor GPU, 1024, 5\n");
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  EXPECT_EQ((*gpus)[0].name, "Odd, Vendor GPU");
}

TEST(ParseNvidiaSmiTest, RejectsMalformedLines) {
  EXPECT_EQ(ParseNvidiaSmi(Sample("nvidia_smi_malformed.txt")).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseNvidiaSmi("GPU, lots, 3\n").ok());
  EXPECT_FALSE(ParseNvidiaSmi("GPU, 1024, 250\n").ok());  // utilisation over 100 %
  EXPECT_FALSE(ParseNvidiaSmi(", 1024, 3\n").ok());       // no name
  EXPECT_FALSE(ParseNvidiaSmi("GPU, 1024\n").ok());
  std::string many;
  for (int i = 0; i < 100; ++i) many += "GPU, 1024, 1\n";
  EXPECT_FALSE(ParseNvidiaSmi(many).ok());
}

TEST(ApplyGpusTest, SetsCountTypeAndLargestMemory) {
  proto::Capabilities c;
  ApplyGpus({{"Tesla T4", 15, 0}, {"Tesla T4", 15, 0.5}}, &c);
  EXPECT_TRUE(c.has_gpu);
  EXPECT_EQ(c.gpu_count, 2u);
  EXPECT_EQ(c.gpu_type, "Tesla T4");
  ApplyGpus({{"NVIDIA A100", 40, 0}, {"Tesla T4", 15, 0}}, &c);
  EXPECT_EQ(c.gpu_type, "NVIDIA A100 + Tesla T4");
  EXPECT_EQ(c.gpu_memory_gb, 40);
  ApplyGpus({}, &c);
  EXPECT_FALSE(c.has_gpu);
  EXPECT_EQ(c.gpu_count, 0u);
  EXPECT_EQ(c.gpu_type, "");
  EXPECT_EQ(MeanUtilization({{"a", 1, 0.2}, {"b", 1, 0.6}}), 0.4);
  EXPECT_EQ(MeanUtilization({}), 0);
}

TEST(NvmlTest, ReadsGpusThroughTheDynamicallyLoadedLibrary) {
  std::string why;
  auto nvml = OpenNvml(RMA_FAKE_NVML, &why);
  ASSERT_NE(nvml, nullptr) << why;
  EXPECT_EQ(nvml->name(), "NVML");
  auto gpus = nvml->Query();
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0], (GpuInfo{"NVIDIA GeForce RTX 4090", 24.0, 0.42}));
  // The second device does not report utilisation: 0, not an error.
  EXPECT_EQ((*gpus)[1], (GpuInfo{"NVIDIA RTX A2000", 6.0, 0.0}));
}

TEST(NvmlTest, AMissingLibraryIsNoGpuWithAReason) {
  std::string why;
  EXPECT_EQ(OpenNvml("/nonexistent/libnvidia-ml.so.1", &why), nullptr);
  EXPECT_THAT(why, ::testing::HasSubstr("libnvidia-ml"));
}

TEST(NvmlTest, ADriverThatIsNotLoadedIsNoGpuWithAReason) {
  setenv("RMA_FAKE_NVML_FAIL_INIT", "1", 1);
  std::string why;
  auto nvml = OpenNvml(RMA_FAKE_NVML, &why);
  unsetenv("RMA_FAKE_NVML_FAIL_INIT");
  EXPECT_EQ(nvml, nullptr);
  EXPECT_THAT(why, ::testing::HasSubstr("Driver Not Loaded"));
}

// A fake nvidia-smi: a shell script printing `output` and exiting with `status`.
class FakeNvidiaSmi {
 public:
  FakeNvidiaSmi(const std::string& output, int status) {
    char dir[] = "/tmp/rma-fake-smi.XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/nvidia-smi";
    std::ofstream script(path_);
    script << "#!/bin/sh\n"
           << "case \"$*\" in *--query-gpu=name,memory.total,utilization.gpu*) ;; "
           << "*) echo \"unexpected arguments: $*\" >&2; exit 64;; esac\n"
           << "cat <<'OUT'\n"
           << output << (output.empty() || output.back() == '\n' ? "" : "\n") << "OUT\n"
           << "exit " << status << "\n";
    script.close();
    chmod(path_.c_str(), 0755);
  }
  ~FakeNvidiaSmi() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

TEST(NvidiaSmiTest, RunsTheProgramAndParsesItsAnswer) {
  FakeNvidiaSmi smi(Sample("nvidia_smi_2gpu.txt"), 0);
  auto gpus = NvidiaSmiSource(smi.path(), Seconds(30))->Query();
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  EXPECT_EQ(gpus->size(), 2u);
}

TEST(NvidiaSmiTest, NoDevicesIsNoGpuNotAnError) {
  FakeNvidiaSmi smi(Sample("nvidia_smi_no_devices.txt"), 6);
  auto gpus = NvidiaSmiSource(smi.path(), Seconds(30))->Query();
  ASSERT_TRUE(gpus.ok()) << gpus.status().ToString();
  EXPECT_TRUE(gpus->empty());
}

TEST(NvidiaSmiTest, ADriverFailureIsAnErrorWithItsMessage) {
  FakeNvidiaSmi smi(Sample("nvidia_smi_malformed.txt"), 9);
  auto gpus = NvidiaSmiSource(smi.path(), Seconds(30))->Query();
  ASSERT_FALSE(gpus.ok());
  EXPECT_THAT(gpus.status().message(), ::testing::HasSubstr("couldn't communicate"));
}

TEST(NvidiaSmiTest, AMissingProgramIsUnavailable) {
  auto gpus = NvidiaSmiSource("/nonexistent/nvidia-smi", Seconds(30))->Query();
  EXPECT_EQ(gpus.status().code(), StatusCode::kUnavailable);
}

TEST(DetectCapabilitiesTest, ThisMachineHasCoresMemoryAndAnOs) {
  auto gpu = OpenNvml(RMA_FAKE_NVML);
  ASSERT_NE(gpu, nullptr);
  std::vector<GpuInfo> found;
  proto::Capabilities c = DetectCapabilities(
      std::filesystem::temp_directory_path() / "no-such-dir/x", gpu.get(), &found);
  EXPECT_GT(c.cpu_cores, 0u);
  EXPECT_NE(c.cpu_model, "");
  EXPECT_GT(c.ram_gb, 0);
  EXPECT_GT(c.ram_available_gb, 0);
  EXPECT_LE(c.ram_available_gb, c.ram_gb);
  EXPECT_GT(c.disk_gb, 0);  // measured on the nearest existing ancestor
  EXPECT_THAT(c.os, ::testing::StartsWith("Linux"));
  EXPECT_NE(c.arch, "");
  EXPECT_TRUE(c.has_gpu);
  EXPECT_EQ(c.gpu_count, 2u);
  EXPECT_EQ(found.size(), 2u);
  proto::Capabilities none = DetectCapabilities(".", nullptr);
  EXPECT_FALSE(none.has_gpu);
}

TEST(SamplerTest, SystemReadingsAreSaneAndFixedReadingsAreFixed) {
  auto sampler = MakeSystemSampler(OpenNvml(RMA_FAKE_NVML));
  Readings r = sampler->Sample();
  EXPECT_GE(r.load, 0);
  EXPECT_GT(r.ram_available_gb, 0);
  EXPECT_DOUBLE_EQ(r.gpu_util, 0.21);  // mean of 42 % and "not supported"
  Readings fixed{0.5, 12, 0.25};
  EXPECT_EQ(MakeFixedSampler(fixed)->Sample(), fixed);
}

TEST(SimulatedCapabilitiesTest, DeclaresEachKindAndRefusesOthers) {
  auto gpu = SimulatedCapabilities("gpu");
  ASSERT_TRUE(gpu.ok());
  EXPECT_TRUE(gpu->has_gpu);
  EXPECT_EQ(gpu->worker_type, "gpu");
  auto storage = SimulatedCapabilities("storage");
  ASSERT_TRUE(storage.ok());
  EXPECT_FALSE(storage->has_gpu);
  EXPECT_EQ(SimulatedCapabilities("tpu").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rma::worker

// Micro-benchmarks of the hot codec paths: TASK/RESULT encode and decode (Google Benchmark).
#include <benchmark/benchmark.h>

#include "protocol/codec.h"

namespace rma::proto {
namespace {

void BM_EncodeTask(benchmark::State& state) {
  TaskAssignment t{TaskId(1'700'000'000'000'001), 1, "echo", std::string(64, 'p'), "", 30000, {}};
  std::string out;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark idiom
    out.clear();
    Encode(t, &out);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_EncodeTask);

void BM_DecodeResult(benchmark::State& state) {
  TaskResult r{
      TaskId(1'700'000'000'000'001), 1, Outcome::kOk, std::string(64, 'r'), "", 0, "", true, 1};
  std::string bytes = Encode(r);
  Decoder d;
  TaskResult out;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark idiom
    Status s = d.Decode(bytes, &out);
    benchmark::DoNotOptimize(s);
  }
}
BENCHMARK(BM_DecodeResult);

void BM_DecodeSubmit(benchmark::State& state) {
  Submit s;
  s.ref = 1;
  s.service = "echo";
  s.payload = std::string(64, 'p');
  std::string bytes = Encode(s);
  Decoder d;
  Submit out;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): Google Benchmark idiom
    Status st = d.Decode(bytes, &out);
    benchmark::DoNotOptimize(st);
  }
}
BENCHMARK(BM_DecodeSubmit);

}  // namespace
}  // namespace rma::proto

BENCHMARK_MAIN();

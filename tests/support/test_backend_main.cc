// rma-test-backend: TestBackend (test_backend.h) as a program, the stand-in for a service backend
// in end-to-end tests. Flags: --port N (default 0: any free port), --port-file FILE (the chosen
// port and a newline are written there once it listens), --unhealthy (start with /health
// answering 503), --model ID (repeatable: the models GET /v1/models lists, instead of
// "test-model"), --token-delay-ms N (the pause before each generated token of the OpenAI routes
// when a request has no X-Test-Token-Delay-Ms header), --strict-models (404 for every model not
// listed). Runs until SIGTERM or SIGINT; exits 2 on bad flags, 1 when it cannot listen.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/support/test_backend.h"

int main(int argc, char** argv) {
  rma::testing::TestBackend::Options options;
  std::string port_file;
  bool models_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      options.port = std::atoi(argv[++i]);
    } else if (arg == "--port-file" && i + 1 < argc) {
      port_file = argv[++i];
    } else if (arg == "--unhealthy") {
      options.healthy = false;
    } else if (arg == "--model" && i + 1 < argc) {
      if (!models_given) options.models.clear();
      models_given = true;
      options.models.push_back(argv[++i]);
    } else if (arg == "--token-delay-ms" && i + 1 < argc) {
      options.token_delay_ms = std::atoll(argv[++i]);
    } else if (arg == "--strict-models") {
      options.strict_models = true;
    } else {
      std::fprintf(stderr,
                   "usage: rma-test-backend [--port N] [--port-file FILE] [--unhealthy] "
                   "[--model ID]... [--token-delay-ms N] [--strict-models]\n");
      return 2;
    }
  }
  // Blocked before the server's threads start, so only sigwait below sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  try {
    rma::testing::TestBackend backend(options);
    std::printf("rma-test-backend listening on 127.0.0.1:%d\n", backend.port());
    std::fflush(stdout);
    if (!port_file.empty()) {
      std::ofstream tmp(port_file + ".tmp");
      tmp << backend.port() << "\n";
      tmp.close();
      std::rename((port_file + ".tmp").c_str(), port_file.c_str());
    }
    int sig = 0;
    sigwait(&set, &sig);
    backend.Stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rma-test-backend: %s\n", e.what());
    return 1;
  }
  return 0;
}

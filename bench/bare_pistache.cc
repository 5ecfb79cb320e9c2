// bare_pistache: the baseline of the gateway benchmark (bench/gateway_bench.sh). A Pistache 0.0.5
// endpoint with the gateway's options and a handler that answers at once on the reactor thread —
// GET: "ok", POST: the body back (echo) — with keep-alive for HTTP/1.1 clients like the gateway.
// The gateway's overhead is its figures divided by these, measured in the same run.
#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace {

namespace Http = Pistache::Http;

class BareHandler final : public Http::Handler {
 public:
  HTTP_PROTOTYPE(BareHandler)
  void onRequest(const Http::Request& req, Http::ResponseWriter response) override {
    // Pistache answers HTTP/1.1 without a Connection header with "Connection: Close"
    // (pistache#940); the gateway keeps such connections open, so the baseline does too.
    response.headers().remove<Http::Header::Connection>();
    response.headers().add<Http::Header::Connection>(Http::ConnectionControl::KeepAlive);
    if (req.method() == Http::Method::Post) {
      response.send(Http::Code::Ok, req.body());
    } else {
      response.send(Http::Code::Ok, "ok");
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  int threads = 2;
  std::string port_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--listen") == 0) listen = argv[i + 1];
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--port-file") == 0) port_file = argv[i + 1];
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  Http::Endpoint endpoint{Pistache::Address(listen)};
  endpoint.init(Http::Endpoint::options()
                    .threads(threads)
                    .flags(Pistache::Tcp::Options::ReuseAddr)
                    .maxRequestSize((16u << 20) + (64u << 10)));
  endpoint.setHandler(Http::make_handler<BareHandler>());
  endpoint.serveThreaded();
  if (!port_file.empty()) std::ofstream(port_file) << endpoint.getPort() << "\n";
  std::printf("bare_pistache listening on port %d with %d threads\n",
              static_cast<int>(endpoint.getPort()), threads);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  endpoint.shutdown();
  return 0;
}

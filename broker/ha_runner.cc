// See ha_runner.h.
#include "broker/ha_runner.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <random>

#include "broker/pg_values.h"
#include "common/files.h"

namespace rma::broker {

std::string LeaseHolderName() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::mt19937_64 rng(std::random_device{}());
  char instance[16];
  std::snprintf(instance, sizeof instance, "%08llx",
                static_cast<unsigned long long>(rng() & 0xffffffffULL));
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + instance;
}

Status BootstrapAdminKey(PgStore& store) {
  auto key = store.BootstrapAdmin();
  if (!key.ok()) return key.status();
  if (key->has_value()) {
    // On stdout, once: the log may be shipped elsewhere; the operator's terminal is not.
    std::printf("rma admin API key (shown once; keep it safe): %s\n", (*key)->c_str());
    std::fflush(stdout);
    spdlog::warn("--bootstrap-admin: created the admin account; its key was printed once");
  } else {
    spdlog::info("--bootstrap-admin: an admin account exists already; nothing created");
  }
  return Status::Ok();
}

int RunHighlyAvailable(HaRunOptions run, const Clock* clock, int stop_fd, int reload_fd) {
  PgLease lease(run.lease, clock);
  std::string workers = run.loop.workers_endpoint;
  std::string clients = run.loop.clients_endpoint;
  bool endpoints_written = run.endpoints_file.empty();
  for (;;) {
    {
      LoopOptions o = run.loop;
      o.workers_endpoint = workers;
      o.clients_endpoint = clients;
      o.standby = true;
      o.leading = [&lease] { return lease.Leading(); };
      o.leader_hint = [&lease]() -> std::string {
        const LeaderInfo l = lease.leader();
        if (!l.live || l.holder.empty()) return "";
        return l.workers_endpoint + " (workers), " + l.clients_endpoint + " (clients), epoch " +
               std::to_string(l.epoch);
      };
      BrokerLoop standby(run.config, o, std::make_unique<NullStore>(), clock);
      if (Status s = standby.Start(); !s.ok()) {
        spdlog::error("{}", s.ToString());
        return 1;
      }
      // Ports chosen with '*' stay this broker's for its life: the next loop binds these.
      workers = standby.workers_endpoint();
      clients = standby.clients_endpoint();
      lease.SetEndpoints(workers, clients);
      // Started once the endpoints are known: the lease row tells them to the standbys' peers.
      if (!lease.started()) lease.Start();
      if (!endpoints_written) {
        std::string lines = workers;
        lines.append("\n").append(clients).append("\n");
        if (Status w = WriteFileAtomically(run.endpoints_file, lines); !w.ok()) {
          spdlog::error("{}", w.ToString());
          return 1;
        }
        endpoints_written = true;
      }
      spdlog::info(
          "ha: standby on {} (workers) and {} (clients); serving once this broker "
          "holds the lease",
          workers, clients);
      if (Status s = standby.Run(stop_fd, reload_fd); !s.ok()) {
        spdlog::error("{}", s.ToString());
        return 1;
      }
      if (!standby.leadership_changed()) return 0;
    }
    const int64_t epoch = lease.epoch();
    if (epoch == 0) continue;  // lost again before it began
    PgStoreOptions pg = run.store;
    pg.ha_epoch = epoch;
    pg.on_fenced = [&lease](int64_t e) { lease.OnFenced(e); };
    auto opened = PgStore::Open(pg, clock, stop_fd);
    if (!opened.ok()) {
      if (opened.status().code() == StatusCode::kCancelled) return 0;
      // A database this broker must not use (a broker without --ha on it, a newer schema).
      if (opened.status().code() == StatusCode::kFailedPrecondition) {
        spdlog::error("ha: {}", opened.status().message());
        return 1;
      }
      spdlog::error("ha: epoch {}: {}; giving the lease up", epoch, opened.status().message());
      lease.Release();
      continue;
    }
    if (run.bootstrap_admin) {
      if (Status s = BootstrapAdminKey(**opened); !s.ok()) spdlog::error("{}", s.message());
      run.bootstrap_admin = false;
    }
    LoopOptions o = run.loop;
    o.workers_endpoint = workers;
    o.clients_endpoint = clients;
    o.leading = [&lease, epoch] { return lease.Leading() && lease.epoch() == epoch; };
    o.ha_epoch = epoch;
    BrokerLoop loop(run.config, o, std::move(*opened), clock);
    if (Status s = loop.Start(); !s.ok()) {
      spdlog::error("{}", s.ToString());
      return 1;
    }
    spdlog::info("ha: leading with epoch {} on {} (workers) and {} (clients)", epoch, workers,
                 clients);
    if (Status s = loop.Run(stop_fd, reload_fd); !s.ok()) {
      spdlog::error("{}", s.ToString());
      return 1;
    }
    if (!loop.leadership_changed()) return 0;
    spdlog::warn("ha: epoch {} is over (the lease ran out or another broker took it): standby",
                 epoch);
  }
}

}  // namespace rma::broker

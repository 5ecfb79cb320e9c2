// rma-broker: parses flags and environment, sets up logging and signals, runs the BrokerLoop until
// SIGINT or SIGTERM. Everything else lives in the rma_broker library.
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <memory>

#include "broker/broker_loop.h"
#include "broker/ha_runner.h"
#include "broker/pg_store.h"
#include "broker/pg_values.h"
#include "common/files.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/version.h"
#include "protocol/curve_keys.h"

int main(int argc, char** argv) {
  using namespace rma;
  broker::BrokerConfig config;
  config.catalog = broker::DefaultCatalog();
  broker::LoopOptions options;
  std::string config_file;
  std::string log_level = "info";
  std::string db_url;
  int64_t heartbeat_ms = 3000;
  int64_t default_timeout_ms = 300000;
  int64_t max_queue_time_ms = 3600000;
  int64_t result_ttl_ms = 3600000;
  int64_t retention_days = 7;
  int64_t stats_retention_days = 90;
  int64_t db_wait_ms = 30000;
  int64_t offline_retention_ms = 300000;
  int64_t reattach_grace_ms = -1;  // heartbeat x liveness

  CLI::App app{"rma-broker: the registry, queues and router of an rma compute pool"};
  // "NAME VERSION", the first line help2man reads when it writes the man page.
  app.set_version_flag("--version", std::string("rma-broker ") + kVersion);
  app.add_option("--workers", options.workers_endpoint, "ZeroMQ endpoint workers connect to")
      ->envname("RMA_WORKERS")
      ->capture_default_str();
  app.add_option("--clients", options.clients_endpoint,
                 "ZeroMQ endpoint gateways and clients connect to")
      ->envname("RMA_CLIENTS")
      ->capture_default_str();
  app.add_option("--db", db_url,
                 "PostgreSQL URL (postgresql://...); without it tasks live in memory only")
      ->envname("RMA_DB");
  app.add_option("--config", config_file, "JSON file with further settings (docs/configuration.md)")
      ->envname("RMA_CONFIG");
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat interval, both directions")
      ->envname("RMA_HEARTBEAT_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3600000}));
  app.add_option("--liveness", config.liveness, "missed heartbeats before a peer is dead")
      ->envname("RMA_LIVENESS")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-attempts", config.default_max_attempts,
                 "default attempts per task before dead-letter")
      ->envname("RMA_MAX_ATTEMPTS")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--default-timeout-ms", default_timeout_ms, "default per-attempt timeout")
      ->envname("RMA_DEFAULT_TIMEOUT_MS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue-time-ms", max_queue_time_ms,
                 "queued longer than this without starting: expired")
      ->envname("RMA_MAX_QUEUE_TIME_MS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--result-ttl-ms", result_ttl_ms, "how long finished tasks stay in memory")
      ->envname("RMA_RESULT_TTL_MS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--retention-days", retention_days,
                 "with --db: delete finished tasks this many days after they ended (0: keep)")
      ->envname("RMA_RETENTION_DAYS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{36500}));
  app.add_option("--stats-retention-days", stats_retention_days,
                 "with --db: delete per-minute statistics after this many days (0: keep)")
      ->envname("RMA_STATS_RETENTION_DAYS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{36500}));
  app.add_option("--db-wait-ms", db_wait_ms,
                 "with --db: how long to wait at start for the database (and for a previous "
                 "broker to let go of it)")
      ->envname("RMA_DB_WAIT_MS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  int64_t db_hang_ms = 3000;
  app.add_option("--db-hang-ms", db_hang_ms,
                 "with --db: a database call that has not returned after this long marks the "
                 "store unavailable (new tasks are refused) until it returns")
      ->envname("RMA_DB_HANG_MS")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{100}, int64_t{600000}));
  app.add_option(
         "--offline-retention-ms", offline_retention_ms,
         "how long an offline worker stays listed (red on the dashboard) before it is forgotten")
      ->envname("RMA_OFFLINE_RETENTION_MS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--reattach-grace-ms", reattach_grace_ms,
                 "after a restart or a takeover, a task that was running waits this long for its "
                 "worker to register again and keep it before it is given to another (0: at once; "
                 "default: heartbeat x liveness)")
      ->envname("RMA_REATTACH_GRACE_MS")
      ->check(CLI::Range(int64_t{0}, int64_t{3600000}));
  double aging_s = 60;
  app.add_option("--aging-s", aging_s,
                 "at equal priority, no queued task waits much longer than this behind the tasks "
                 "of accounts that contributed more (0: no donor priority, accounts take turns)")
      ->envname("RMA_AGING_S")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  app.add_flag("--allow-simulated", config.allow_simulated,
               "accept workers that declare simulated hardware")
      ->envname("RMA_ALLOW_SIMULATED");
  std::string worker_token_file;
  std::string client_secret_file;
  app.add_option("--worker-token", options.auth.worker_token,
                 "shared secret workers present in the handshake (prefer --worker-token-file: a "
                 "flag shows in the process list)")
      ->envname("RMA_WORKER_TOKEN");
  app.add_option("--worker-token-file", worker_token_file,
                 "file holding the worker token (mode 600)")
      ->envname("RMA_WORKER_TOKEN_FILE");
  app.add_option("--client-secret", options.auth.client_secret,
                 "shared secret gateways and tools present on the client endpoint")
      ->envname("RMA_CLIENT_SECRET");
  app.add_option("--client-secret-file", client_secret_file,
                 "file holding the client secret (mode 600)")
      ->envname("RMA_CLIENT_SECRET_FILE");
  std::string curve_secret_file;
  app.add_option("--curve-secret-file", curve_secret_file,
                 "the broker's CURVE secret key (rma-broker keygen DIR makes one): encrypts and "
                 "authenticates the worker endpoint, and the client endpoint with "
                 "--client-keys-file")
      ->envname("RMA_CURVE_SECRET_FILE");
  app.add_option("--worker-keys-file", options.worker_keys_file,
                 "CURVE public keys of the workers admitted, one a line (default: any key); read "
                 "again on SIGHUP")
      ->envname("RMA_WORKER_KEYS_FILE");
  app.add_option("--client-keys-file", options.client_keys_file,
                 "CURVE public keys of the gateways and tools admitted on the client endpoint, "
                 "one a line; read again on SIGHUP")
      ->envname("RMA_CLIENT_KEYS_FILE");
  app.add_flag("--allow-unenrolled-workers", options.allow_unenrolled_workers,
               "with --db and CURVE: admit worker keys that are not enrolled to an account (by "
               "default a new worker needs `rma-worker --enrol TOKEN` or --worker-keys-file)")
      ->envname("RMA_ALLOW_UNENROLLED_WORKERS");
  bool bootstrap_admin = false;
  app.add_flag("--bootstrap-admin", bootstrap_admin,
               "with --db: when there is no admin account, create 'admin' and print its API key "
               "once on stdout")
      ->envname("RMA_BOOTSTRAP_ADMIN");
  app.add_flag("--insecure-plaintext", options.insecure_plaintext,
               "allow an endpoint other machines can reach without a token or secret (warned at "
               "start and every hour)")
      ->envname("RMA_INSECURE_PLAINTEXT");
  // Credits (docs/accounts.md, "Credits").
  std::string credits_mode;  // "": track with --db, off without
  app.add_option("--credits", credits_mode,
                 "off | track | enforce: credit accounts for accepted results and charge the "
                 "submitters (enforce: refuse submissions an account cannot pay with 402); "
                 "default track with --db, off without")
      ->envname("RMA_CREDITS")
      ->check(CLI::IsMember({"off", "track", "enforce"}));
  app.add_option("--initial-credits", config.credits.initial_credits,
                 "credits a new account starts with (a grant row in its ledger)")
      ->envname("RMA_INITIAL_CREDITS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--credit-fee", config.credits.fee,
                 "credits a submitter pays per accepted result on top of its price")
      ->envname("RMA_CREDIT_FEE")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--min-credits", config.credits.default_min_credits,
                 "with --credits enforce: the balance a submission needs, for services whose "
                 "catalog entry sets no min_credits")
      ->envname("RMA_MIN_CREDITS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--uptime-credit", config.credits.uptime_credit,
                 "credits an enrolled worker's account earns per hour the worker is online and "
                 "healthy (0: none)")
      ->envname("RMA_UPTIME_CREDIT")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  int64_t uptime_period_s = 3600;
  app.add_option("--uptime-period-s", uptime_period_s,
                 "how often uptime credit is paid, pro rata, for that much healthy time online")
      ->envname("RMA_UPTIME_PERIOD_S")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{86400}));
  std::string free_accounts;
  app.add_option("--free-accounts", free_accounts,
                 "with --credits enforce: accounts that may submit whatever their balance (the "
                 "free tier), comma-separated; admin accounts always may")
      ->envname("RMA_FREE_ACCOUNTS");
  // Budgets (docs/configuration.md, "Budgets").
  app.add_option("--max-queued-bytes", config.max_unfinished_bytes,
                 "payload bytes of unfinished tasks held at once; more submissions get queue_full")
      ->envname("RMA_MAX_QUEUED_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queued-tasks", config.max_unfinished_tasks,
                 "unfinished tasks held at once; more submissions get queue_full")
      ->envname("RMA_MAX_QUEUED_TASKS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-result-bytes", config.max_result_bytes_in_memory,
                 "result bytes of finished tasks kept in memory (older ones are evicted)")
      ->envname("RMA_MAX_RESULT_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-waiters-per-task", config.max_waiters_per_task,
                 "long-polls (GET ?wait) on one task at once")
      ->envname("RMA_MAX_WAITERS_PER_TASK")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-waiters-per-client", config.max_waiters_per_client,
                 "long-polls and synchronous calls of one client (gateway) at once")
      ->envname("RMA_MAX_WAITERS_PER_CLIENT")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-services", config.max_services,
                 "distinct service names held at once (idle ones are forgotten)")
      ->envname("RMA_MAX_SERVICES")
      ->capture_default_str()
      ->check(CLI::Range(size_t{16}, size_t{1000000}));
  app.add_option("--max-services-per-worker", config.max_services_per_worker,
                 "services one worker may offer")
      ->envname("RMA_MAX_SERVICES_PER_WORKER")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{4096}));
  app.add_option("--max-payload-bytes", config.limits.max_payload_bytes,
                 "largest task payload or result (a ZeroMQ frame may be 1 MiB larger)")
      ->envname("RMA_MAX_PAYLOAD_BYTES")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30));
  app.add_option("--max-pending-reply-bytes", options.reply_pacing.max_deferred_bytes,
                 "large results (1 MiB and more) waiting to be sent to one client; beyond it a "
                 "read gets resource_exhausted")
      ->envname("RMA_MAX_PENDING_REPLY_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-pending-reply-total-bytes", options.reply_pacing.max_deferred_total_bytes,
                 "the same, for all clients together")
      ->envname("RMA_MAX_PENDING_REPLY_TOTAL_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--reply-window-bytes", options.reply_pacing.window_bytes,
                 "large results handed to ZeroMQ for one client and not yet written to its "
                 "connection; more wait until it reads")
      ->envname("RMA_REPLY_WINDOW_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--reply-window-total-bytes", options.reply_pacing.total_window_bytes,
                 "the same, for all clients together")
      ->envname("RMA_REPLY_WINDOW_TOTAL_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  // High availability (docs/operations.md "High availability").
  bool ha = false;
  app.add_flag("--ha", ha,
               "with --db: several brokers share the database; the one holding its lease serves, "
               "the others are standbys that tell peers where the leader is and take over when "
               "its lease runs out")
      ->envname("RMA_HA");
  int64_t ha_lease_s = 5;
  app.add_option("--ha-lease-s", ha_lease_s,
                 "with --ha: the leader's lease; a standby takes over this long (plus a poll) "
                 "after the leader stopped renewing it")
      ->envname("RMA_HA_LEASE_S")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{600}));
  std::string endpoints_file;
  app.add_option(
         "--endpoints-file", endpoints_file,
         "write the bound endpoints here (two lines: workers, clients), for ports chosen with '*'")
      ->envname("RMA_ENDPOINTS_FILE");
  app.add_option("--seed", options.seed, "random seed for retry jitter (0: random)")
      ->envname("RMA_SEED");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->envname("RMA_LOG_LEVEL")
      ->capture_default_str();
  // rma-broker keygen DIR: a CURVE keypair for a broker (or a gateway, a tool) to start with.
  CLI::App* keygen = app.add_subcommand(
      "keygen", "write a CURVE keypair: DIR/NAME.key (secret, mode 600) and DIR/NAME.pub");
  std::string keygen_dir;
  std::string keygen_name = "broker";
  keygen->add_option("DIR", keygen_dir, "directory for the key files")->required();
  keygen->add_option("--name", keygen_name, "file name of the pair")->capture_default_str();
  bool keygen_if_missing = false;
  keygen->add_flag("--if-missing", keygen_if_missing,
                   "do nothing (and succeed) when DIR/NAME.key exists already");
  CLI11_PARSE(app, argc, argv);
  if (keygen->parsed()) {
    const std::string existing = keygen_dir + "/" + keygen_name + ".key";
    if (keygen_if_missing && access(existing.c_str(), F_OK) == 0) return 0;
    auto keys = proto::WriteNewKeypair(keygen_dir, keygen_name);
    if (!keys.ok()) {
      std::fprintf(stderr, "rma-broker keygen: %s\n", keys.status().message().c_str());
      return 1;
    }
    std::printf("%s\n", keys->public_key.c_str());
    std::fprintf(stderr, "wrote %s/%s.key (secret, mode 600) and %s/%s.pub\n", keygen_dir.c_str(),
                 keygen_name.c_str(), keygen_dir.c_str(), keygen_name.c_str());
    return 0;
  }

  if (Status s = SetUpLogging("broker", log_level); !s.ok()) {
    std::fprintf(stderr, "rma-broker: %s\n", s.message().c_str());
    return 2;
  }
  for (auto [file, secret] : {std::pair{&worker_token_file, &options.auth.worker_token},
                              std::pair{&client_secret_file, &options.auth.client_secret}}) {
    if (file->empty()) continue;
    auto read = ReadSecretFile(*file);
    if (!read.ok()) {
      spdlog::error("{}", read.status().message());
      return 2;
    }
    *secret = std::move(*read);
  }
  if (!curve_secret_file.empty()) {
    auto keys = proto::ReadSecretKeyFile(curve_secret_file);
    if (!keys.ok()) {
      spdlog::error("--curve-secret-file: {}", keys.status().message());
      return 2;
    }
    options.curve = std::move(*keys);
  }
  // libzmq refuses (and disconnects) a frame over this before the broker sees a byte of it.
  config.limits.max_frame_bytes = config.limits.max_payload_bytes + (size_t{1} << 20);
  config.heartbeat_interval = Ms(heartbeat_ms);
  config.default_timeout = Ms(default_timeout_ms);
  config.max_timeout = std::max(config.max_timeout, config.default_timeout);
  config.max_queue_time = Ms(max_queue_time_ms);
  config.result_ttl = Ms(result_ttl_ms);
  config.offline_retention = Ms(offline_retention_ms);
  if (reattach_grace_ms >= 0) config.reattach_grace = Ms(reattach_grace_ms);
  config.aging = Duration(static_cast<int64_t>(aging_s * 1e6));
  if (!config_file.empty()) {
    if (Status s = broker::LoadConfigFile(config_file, &config); !s.ok()) {
      spdlog::error("{}", s.ToString());
      return 2;
    }
  }
  if (credits_mode.empty()) credits_mode = db_url.empty() ? "off" : "track";
  config.credits.mode = *broker::ParseCreditMode(credits_mode);  // checked by CLI11
  config.credits.uptime_period = Seconds(uptime_period_s);
  if (config.credits.mode != broker::CreditMode::kOff && db_url.empty()) {
    spdlog::error("--credits {} needs --db: the ledger and the balances live in PostgreSQL",
                  credits_mode);
    return 2;
  }
  for (const std::string& name : broker::SplitCommaList(free_accounts)) {
    config.credits.free_accounts.insert(name);
  }
  if (Status s = broker::Validate(config); !s.ok()) {
    spdlog::error("invalid configuration: {}", s.message());
    return 2;
  }
  auto signals = SignalWatcher::Create({SIGINT, SIGTERM});
  auto reload = SignalWatcher::Create({SIGHUP});  // read the key lists again
  if (!signals.ok() || !reload.ok()) {
    spdlog::error("{}", (signals.ok() ? reload.status() : signals.status()).ToString());
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::debug("open files limit: {}", RaiseFileLimit());

  SystemClock clock;
  std::unique_ptr<broker::TaskStore> store;
  if (bootstrap_admin && db_url.empty()) {
    spdlog::error("--bootstrap-admin needs --db (accounts live in PostgreSQL)");
    return 1;
  }
  broker::PgStoreOptions pg;
  pg.url = db_url;
  pg.retention = Seconds(retention_days * 86400);
  pg.stats_retention = Seconds(stats_retention_days * 86400);
  pg.connect_wait = Ms(db_wait_ms);
  pg.hang_timeout = Ms(db_hang_ms);
  pg.contribution_half_life = config.contribution_half_life;
  if (ha) {
    if (db_url.empty()) {
      spdlog::error("--ha needs --db: the brokers share the lease and the tasks in PostgreSQL");
      return 2;
    }
    broker::HaRunOptions run;
    run.config = config;
    run.loop = options;
    run.store = pg;
    run.store.ha_idle_transaction_timeout = Seconds(ha_lease_s) / 2;
    run.lease.url = db_url;
    run.lease.lease.lease = Seconds(ha_lease_s);
    run.lease.holder = broker::LeaseHolderName();
    run.endpoints_file = endpoints_file;
    run.bootstrap_admin = bootstrap_admin;
    spdlog::info("high availability: lease {} s in PostgreSQL at {}, as {}", ha_lease_s,
                 broker::RedactUrl(db_url), run.lease.holder);
    return broker::RunHighlyAvailable(std::move(run), &clock, signals->fd(), reload->fd());
  }
  if (db_url.empty()) {
    spdlog::warn("no --db given: tasks live in memory only and are lost if the broker stops");
    store = std::make_unique<broker::NullStore>();
  } else {
    // Started after the signal watcher, so the store's threads inherit the blocked signals.
    auto opened = broker::PgStore::Open(pg, &clock, signals->fd());
    if (!opened.ok()) {
      spdlog::error("--db: {}", opened.status().message());
      return 1;
    }
    spdlog::info("recording tasks in PostgreSQL at {} (finished tasks kept {})",
                 broker::RedactUrl(db_url),
                 retention_days > 0 ? std::to_string(retention_days) + " days" : "forever");
    if (bootstrap_admin) {
      if (Status b = broker::BootstrapAdminKey(**opened); !b.ok()) {
        spdlog::error("{}", b.message());
        return 1;
      }
    }
    store = std::move(*opened);
  }
  broker::BrokerLoop loop(config, options, std::move(store), &clock);
  if (Status s = loop.Start(); !s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  if (!endpoints_file.empty()) {
    if (Status w = WriteFileAtomically(
            endpoints_file, loop.workers_endpoint() + "\n" + loop.clients_endpoint() + "\n");
        !w.ok()) {
      spdlog::error("{}", w.ToString());
      return 1;
    }
  }
  Status s = loop.Run(signals->fd(), reload->fd());
  if (!s.ok()) {
    spdlog::error("{}", s.ToString());
    return 1;
  }
  return 0;
}

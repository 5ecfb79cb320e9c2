// rabbit_bench: the RabbitMQ side of the rma comparison (RabbitMQ 3.10, rabbitmq-c 0.11).
//
// Models rma's task pool on RabbitMQ: a client publishes tasks (--payload bytes) to the queue
// `tasks`; --workers worker threads, each with its own connection and channel (basic.qos prefetch
// = --slots, manual acks), consume `tasks`, publish a reply with the same payload to the task's
// reply_to queue (`replies`, with its correlation_id) and then basic.ack the task; the client
// consumes `replies` (no acks).
//   --mode throughput: --tasks tasks, at most --window unreplied; tasks/s from the first publish to
//     the last reply (with --durable, to the last publisher confirm if later). The client publishes
//     from one thread and connection and takes replies on another.
//   --mode latency: one task at a time, --samples round trips after 200 warm-up ones; p50 and p99
//     in microseconds of publish -> reply received.
//   --durable: durable queues, persistent messages (delivery_mode 2, replies too), the client's
//     channel in publisher-confirm mode; latency mode also reports ack = publish -> confirm
//     received (RabbitMQ's durable acknowledgement). Without it: transient queues and messages, no
//     confirms; workers still ack manually.
// Queues are deleted and declared afresh at start (runs are independent) and deleted at the end.
// Prints one summary line:
//   rabbitmq mode=throughput durable=0 workers=2 slots=100 tasks=20000 window=2000 payload=100
//     tasks_per_s=N
//   rabbitmq mode=latency durable=1 workers=2 slots=100 samples=2000 payload=100 ack_p50_us=N
//     ack_p99_us=N p50_us=N p99_us=N            (ack_* only with --durable)
// Build and run (needs librabbitmq-dev; bench/rabbitmq.sh starts a private node, and
// bench/rabbit_bench.sh builds this, starts a node and runs all four cases):
//   cc -O2 -o rabbit_bench bench/rabbit_bench.c -lrabbitmq -lpthread
//   ./rabbit_bench --port PORT --mode throughput|latency [--durable]
// Options (defaults): --host 127.0.0.1 --port 5672 --mode throughput --workers 2 --slots 100
//   --tasks 20000 --window 2000 --samples 2000 --payload 100 --durable (off).
// Exit status: 0, 1 on any error (broker unreachable, refused login, timeout...), 2 on bad usage.
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif
#else
#include <amqp.h>
#include <amqp_tcp_socket.h>
#endif

#define TASK_QUEUE "tasks"
#define REPLY_QUEUE "replies"
#define WARMUP 200
#define IO_TIMEOUT_S 30 /* no frame for this long while one is expected: give up */

static struct {
  const char* host;
  int port;
  const char* mode;
  int workers, slots;
  long tasks, window, samples;
  size_t payload;
  bool durable;
} opt = {"127.0.0.1", 5672, "throughput", 2, 100, 20000, 2000, 2000, 100, false};

static amqp_bytes_t payload;
static atomic_bool stopping;

_Noreturn static void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("rabbit_bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Dies with a readable reason unless an RPC succeeded. */
static void check_rpc(amqp_rpc_reply_t r, const char* what) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return;
    case AMQP_RESPONSE_NONE:
      die("%s: missing RPC reply", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      die("%s: %s", what, amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t* m = r.reply.decoded;
        die("%s: connection closed by the broker: %u %.*s", what, m->reply_code,
            (int)m->reply_text.len, (char*)m->reply_text.bytes);
      }
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t* m = r.reply.decoded;
        die("%s: channel closed by the broker: %u %.*s", what, m->reply_code,
            (int)m->reply_text.len, (char*)m->reply_text.bytes);
      }
      die("%s: unexpected server method 0x%08X", what, r.reply.id);
  }
  die("%s: unknown reply type %d", what, (int)r.reply_type);
}

static void check_status(int status, const char* what) {
  if (status != AMQP_STATUS_OK) die("%s: %s", what, amqp_error_string2(status));
}

/* librabbitmq only says "a socket error occurred": find out which with a plain connect. */
static const char* connect_error(void) {
  static char buf[128];
  char port[8];
  snprintf(port, sizeof port, "%d", opt.port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
  if (getaddrinfo(opt.host, port, &hints, &ai) != 0 || !ai) return "a socket error occurred";
  int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
  int err = fd < 0 ? errno : (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno);
  if (fd >= 0) close(fd);
  freeaddrinfo(ai);
  snprintf(buf, sizeof buf, "a socket error occurred%s%s", err ? ": " : "",
           err ? strerror(err) : "");
  return buf;
}

/* A connection with channel 1 open; heartbeats off (no thread would service them). */
static amqp_connection_state_t connect_broker(void) {
  amqp_connection_state_t conn = amqp_new_connection();
  if (!conn) die("out of memory");
  amqp_socket_t* sock = amqp_tcp_socket_new(conn);
  if (!sock) die("cannot create a TCP socket");
  struct timeval tv = {5, 0};
  int st = amqp_socket_open_noblock(sock, opt.host, opt.port, &tv);
  if (st != AMQP_STATUS_OK)
    die("cannot connect to RabbitMQ at %s:%d: %s (is the broker running? bench/rabbitmq.sh start "
        "DIR)",
        opt.host, opt.port,
        st == AMQP_STATUS_SOCKET_ERROR ? connect_error() : amqp_error_string2(st));
  amqp_rpc_reply_t r =
      amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    char what[128];
    snprintf(what, sizeof what, "login as guest at %s:%d", opt.host, opt.port);
    check_rpc(r, what);
  }
  amqp_channel_open(conn, 1);
  check_rpc(amqp_get_rpc_reply(conn), "channel.open");
  return conn;
}

static void close_broker(amqp_connection_state_t conn) {
  amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

static void declare_queues(amqp_connection_state_t conn) {
  const char* names[] = {TASK_QUEUE, REPLY_QUEUE};
  for (int i = 0; i < 2; i++) {
    /* Deleting a queue that does not exist is not an error in RabbitMQ. */
    amqp_queue_delete(conn, 1, amqp_cstring_bytes(names[i]), 0, 0);
    check_rpc(amqp_get_rpc_reply(conn), "queue.delete");
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(names[i]), 0, opt.durable, 0, 0,
                       amqp_empty_table);
    check_rpc(amqp_get_rpc_reply(conn), "queue.declare");
  }
}

static void delete_queues(amqp_connection_state_t conn) {
  amqp_queue_delete(conn, 1, amqp_cstring_bytes(TASK_QUEUE), 0, 0);
  check_rpc(amqp_get_rpc_reply(conn), "queue.delete");
  amqp_queue_delete(conn, 1, amqp_cstring_bytes(REPLY_QUEUE), 0, 0);
  check_rpc(amqp_get_rpc_reply(conn), "queue.delete");
}

/* ---- workers ---- */

static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv = PTHREAD_COND_INITIALIZER;
static int workers_ready;

static void* worker_main(void* arg) {
  (void)arg;
  amqp_connection_state_t conn = connect_broker();
  amqp_basic_qos(conn, 1, 0, (uint16_t)opt.slots, 0);
  check_rpc(amqp_get_rpc_reply(conn), "worker basic.qos");
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(TASK_QUEUE), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  check_rpc(amqp_get_rpc_reply(conn), "worker basic.consume");
  pthread_mutex_lock(&ready_mu);
  workers_ready++;
  pthread_cond_broadcast(&ready_cv);
  pthread_mutex_unlock(&ready_mu);

  struct timeval poll = {0, 100000}; /* wake up to notice the end of the run */
  while (!atomic_load(&stopping)) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &poll, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
      continue;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
      amqp_frame_t f;
      if (amqp_simple_wait_frame(conn, &f) == AMQP_STATUS_OK && f.frame_type == AMQP_FRAME_METHOD)
        die("worker: unexpected method 0x%08X from the broker", f.payload.method.id);
      die("worker: unexpected frame from the broker");
    }
    check_rpc(r, "worker consume");
    amqp_basic_properties_t* in = &env.message.properties;
    if (!(in->_flags & AMQP_BASIC_REPLY_TO_FLAG)) die("worker: task without reply_to");
    amqp_basic_properties_t out;
    memset(&out, 0, sizeof out);
    if (in->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
      out._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
      out.correlation_id = in->correlation_id;
    }
    if (opt.durable) {
      out._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
      out.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    }
    check_status(
        amqp_basic_publish(conn, 1, amqp_empty_bytes, in->reply_to, 0, 0, &out, env.message.body),
        "worker reply publish");
    check_status(amqp_basic_ack(conn, 1, env.delivery_tag, 0), "worker basic.ack");
    amqp_destroy_envelope(&env);
  }
  close_broker(conn);
  return NULL;
}

/* ---- client side: frames on a connection that publishes, consumes `replies`, or both ---- */

typedef struct {
  amqp_connection_state_t conn;
  uint64_t next_tag;       /* delivery tag of the next publish (confirm mode) */
  uint64_t confirmed_upto; /* every tag <= this is confirmed */
  uint8_t* confirmed;      /* per-tag flags beyond confirmed_upto (throughput mode) */
  uint64_t confirmed_cap;
} client_t;

static void mark_confirmed(client_t* c, uint64_t tag, bool multiple) {
  if (multiple) {
    if (tag > c->confirmed_upto) c->confirmed_upto = tag;
  } else if (tag == c->confirmed_upto + 1) {
    c->confirmed_upto = tag;
  } else if (tag > c->confirmed_upto) {
    if (!c->confirmed || tag >= c->confirmed_cap)
      die("confirm for unknown delivery tag %" PRIu64, tag);
    c->confirmed[tag] = 1;
  }
  while (c->confirmed && c->confirmed_upto + 1 < c->confirmed_cap &&
         c->confirmed[c->confirmed_upto + 1])
    c->confirmed_upto++;
}

enum event { EV_TIMEOUT, EV_CONFIRM, EV_REPLY };

/* Reads one frame's worth of events. A reply's correlation id goes to *corr (if non-NULL). */
static enum event next_event(client_t* c, const struct timeval* timeout, long* corr) {
  amqp_frame_t f;
  amqp_maybe_release_buffers(c->conn);
  int st = amqp_simple_wait_frame_noblock(c->conn, &f, timeout);
  if (st == AMQP_STATUS_TIMEOUT) return EV_TIMEOUT;
  check_status(st, "client read");
  if (f.frame_type != AMQP_FRAME_METHOD) die("client: unexpected frame type %d", f.frame_type);
  switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      amqp_basic_ack_t* a = f.payload.method.decoded;
      mark_confirmed(c, a->delivery_tag, a->multiple);
      return EV_CONFIRM;
    }
    case AMQP_BASIC_NACK_METHOD:
      die("client: the broker nacked a publish (delivery tag %" PRIu64 ")",
          ((amqp_basic_nack_t*)f.payload.method.decoded)->delivery_tag);
    case AMQP_BASIC_DELIVER_METHOD: {
      amqp_message_t msg;
      check_rpc(amqp_read_message(c->conn, f.channel, &msg, 0), "client read reply");
      if (msg.body.len != opt.payload)
        die("client: reply of %zu bytes, expected %zu", msg.body.len, opt.payload);
      if (corr) {
        *corr = -1;
        if (msg.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
          char buf[32];
          size_t n = msg.properties.correlation_id.len < sizeof buf - 1
                         ? msg.properties.correlation_id.len
                         : sizeof buf - 1;
          memcpy(buf, msg.properties.correlation_id.bytes, n);
          buf[n] = 0;
          *corr = strtol(buf, NULL, 10);
        }
      }
      amqp_destroy_message(&msg);
      return EV_REPLY;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      amqp_channel_close_t* m = f.payload.method.decoded;
      die("client: channel closed by the broker: %u %.*s", m->reply_code, (int)m->reply_text.len,
          (char*)m->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      amqp_connection_close_t* m = f.payload.method.decoded;
      die("client: connection closed by the broker: %u %.*s", m->reply_code, (int)m->reply_text.len,
          (char*)m->reply_text.bytes);
    }
    default:
      die("client: unexpected method 0x%08X", f.payload.method.id);
  }
  return EV_TIMEOUT;
}

static void publish_task(client_t* c, long id) {
  char corr[24];
  snprintf(corr, sizeof corr, "%ld", id);
  amqp_basic_properties_t p;
  memset(&p, 0, sizeof p);
  p._flags = AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG;
  p.reply_to = amqp_cstring_bytes(REPLY_QUEUE);
  p.correlation_id = amqp_cstring_bytes(corr);
  if (opt.durable) {
    p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  }
  check_status(amqp_basic_publish(c->conn, 1, amqp_empty_bytes, amqp_cstring_bytes(TASK_QUEUE), 0,
                                  0, &p, payload),
               "client publish");
  c->next_tag++;
}

static void enable_confirms(client_t* c) {
  amqp_confirm_select(c->conn, 1);
  check_rpc(amqp_get_rpc_reply(c->conn), "confirm.select");
  c->next_tag = 1;
}

static void consume_replies(client_t* c) {
  /* The client takes its replies without acks, as fast as the broker delivers them. */
  amqp_basic_consume(c->conn, 1, amqp_cstring_bytes(REPLY_QUEUE), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  check_rpc(amqp_get_rpc_reply(c->conn), "client basic.consume");
}

/* ---- throughput ---- */

static pthread_mutex_t win_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t win_cv = PTHREAD_COND_INITIALIZER;
static long replied; /* under win_mu */
static uint64_t t_first_publish, t_last_confirm;

static void* publisher_main(void* arg) {
  client_t* c = arg;
  struct timeval zero = {0, 0}, wait = {IO_TIMEOUT_S, 0};
  t_first_publish = now_ns();
  for (long i = 0; i < opt.tasks; i++) {
    pthread_mutex_lock(&win_mu);
    while (i - replied >= opt.window) pthread_cond_wait(&win_cv, &win_mu);
    pthread_mutex_unlock(&win_mu);
    publish_task(c, i);
    if (opt.durable && (i & 63) == 63)
      while (next_event(c, &zero, NULL) != EV_TIMEOUT) {
      }
  }
  if (opt.durable) {
    while (c->confirmed_upto < (uint64_t)opt.tasks)
      if (next_event(c, &wait, NULL) == EV_TIMEOUT)
        die("no publisher confirm for %d s (%" PRIu64 " of %ld confirmed)", IO_TIMEOUT_S,
            c->confirmed_upto, opt.tasks);
    t_last_confirm = now_ns();
  }
  return NULL;
}

static void run_throughput(void) {
  client_t pub = {.conn = connect_broker()}, sub = {.conn = connect_broker()};
  if (opt.durable) {
    enable_confirms(&pub);
    pub.confirmed_cap = (uint64_t)opt.tasks + 2;
    pub.confirmed = calloc(pub.confirmed_cap, 1);
    if (!pub.confirmed) die("out of memory");
  }
  consume_replies(&sub);
  pthread_t th;
  if (pthread_create(&th, NULL, publisher_main, &pub)) die("pthread_create failed");
  struct timeval wait = {IO_TIMEOUT_S, 0};
  long got = 0;
  while (got < opt.tasks) {
    enum event ev = next_event(&sub, &wait, NULL);
    if (ev == EV_TIMEOUT)
      die("no reply for %d s (%ld of %ld replied)", IO_TIMEOUT_S, got, opt.tasks);
    if (ev != EV_REPLY) continue;
    got++;
    pthread_mutex_lock(&win_mu);
    replied = got;
    pthread_cond_signal(&win_cv);
    pthread_mutex_unlock(&win_mu);
  }
  uint64_t t_last_reply = now_ns();
  pthread_join(th, NULL);
  uint64_t end = t_last_reply > t_last_confirm ? t_last_reply : t_last_confirm;
  double secs = (double)(end - t_first_publish) / 1e9;
  printf(
      "rabbitmq mode=throughput durable=%d workers=%d slots=%d tasks=%ld window=%ld payload=%zu "
      "tasks_per_s=%.0f\n",
      opt.durable, opt.workers, opt.slots, opt.tasks, opt.window, opt.payload,
      (double)opt.tasks / secs);
  free(pub.confirmed);
  close_broker(pub.conn);
  close_broker(sub.conn);
}

/* ---- latency ---- */

static int cmp_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), in microseconds. */
static double pct_us(const uint64_t* v, long n, double p) {
  long k = (long)(p * (double)n + 0.999999) - 1;
  if (k < 0) k = 0;
  if (k >= n) k = n - 1;
  return (double)v[k] / 1000.0;
}

static void run_latency(void) {
  client_t c = {.conn = connect_broker()};
  if (opt.durable) enable_confirms(&c);
  consume_replies(&c);
  uint64_t *ack = calloc((size_t)opt.samples, sizeof *ack),
           *done = calloc((size_t)opt.samples, sizeof *done);
  if (!ack || !done) die("out of memory");
  struct timeval wait = {IO_TIMEOUT_S, 0};
  for (long i = 0; i < WARMUP + opt.samples; i++) {
    uint64_t t0 = now_ns(), t_ack = 0, t_done = 0;
    publish_task(&c, i);
    uint64_t tag = c.next_tag - 1;
    while (!t_done || (opt.durable && !t_ack)) {
      long corr;
      enum event ev = next_event(&c, &wait, &corr);
      if (ev == EV_TIMEOUT)
        die("no %s for task %ld in %d s", t_done ? "confirm" : "reply", i, IO_TIMEOUT_S);
      if (ev == EV_CONFIRM && !t_ack && c.confirmed_upto >= tag) t_ack = now_ns();
      if (ev == EV_REPLY) {
        if (corr != i) die("reply for task %ld while waiting for task %ld", corr, i);
        t_done = now_ns();
      }
    }
    if (i >= WARMUP) {
      ack[i - WARMUP] = t_ack - t0;
      done[i - WARMUP] = t_done - t0;
    }
  }
  qsort(done, (size_t)opt.samples, sizeof *done, cmp_u64);
  printf("rabbitmq mode=latency durable=%d workers=%d slots=%d samples=%ld payload=%zu ",
         opt.durable, opt.workers, opt.slots, opt.samples, opt.payload);
  if (opt.durable) {
    qsort(ack, (size_t)opt.samples, sizeof *ack, cmp_u64);
    printf("ack_p50_us=%.0f ack_p99_us=%.0f ", pct_us(ack, opt.samples, 0.50),
           pct_us(ack, opt.samples, 0.99));
  }
  printf("p50_us=%.0f p99_us=%.0f\n", pct_us(done, opt.samples, 0.50),
         pct_us(done, opt.samples, 0.99));
  free(ack);
  free(done);
  close_broker(c.conn);
}

/* ---- main ---- */

static void usage(void) {
  fprintf(stderr,
          "usage: rabbit_bench [--host 127.0.0.1] [--port 5672] [--mode throughput|latency] "
          "[--workers 2]\n"
          "                    [--slots 100] [--tasks 20000] [--window 2000] [--samples 2000] "
          "[--payload 100]\n"
          "                    [--durable]\n");
  exit(2);
}

static long num_arg(const char* name, const char* v, long lo, long hi) {
  char* end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || *end || end == v || x < lo || x > hi) {
    fprintf(stderr, "rabbit_bench: %s wants an integer in [%ld, %ld], got '%s'\n", name, lo, hi, v);
    exit(2);
  }
  return x;
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (!strcmp(a, "--durable")) {
      opt.durable = true;
      continue;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage();
    if (i + 1 >= argc) usage();
    const char* v = argv[++i];
    if (!strcmp(a, "--host"))
      opt.host = v;
    else if (!strcmp(a, "--port"))
      opt.port = (int)num_arg(a, v, 1, 65535);
    else if (!strcmp(a, "--mode"))
      opt.mode = v;
    else if (!strcmp(a, "--workers"))
      opt.workers = (int)num_arg(a, v, 1, 1024);
    else if (!strcmp(a, "--slots"))
      opt.slots = (int)num_arg(a, v, 1, 65535);
    else if (!strcmp(a, "--tasks"))
      opt.tasks = num_arg(a, v, 1, 1000000000);
    else if (!strcmp(a, "--window"))
      opt.window = num_arg(a, v, 1, 1000000000);
    else if (!strcmp(a, "--samples"))
      opt.samples = num_arg(a, v, 1, 100000000);
    else if (!strcmp(a, "--payload"))
      opt.payload = (size_t)num_arg(a, v, 0, 64 << 20);
    else {
      fprintf(stderr, "rabbit_bench: unknown option %s\n", a);
      usage();
    }
  }
  bool throughput = !strcmp(opt.mode, "throughput");
  if (!throughput && strcmp(opt.mode, "latency")) {
    fprintf(stderr, "rabbit_bench: --mode must be throughput or latency, got '%s'\n", opt.mode);
    exit(2);
  }
  payload.len = opt.payload;
  payload.bytes = malloc(opt.payload ? opt.payload : 1);
  if (!payload.bytes) die("out of memory");
  memset(payload.bytes, 'x', opt.payload);

  amqp_connection_state_t admin = connect_broker();
  declare_queues(admin);

  pthread_t* ws = calloc((size_t)opt.workers, sizeof *ws);
  if (!ws) die("out of memory");
  for (int i = 0; i < opt.workers; i++)
    if (pthread_create(&ws[i], NULL, worker_main, NULL)) die("pthread_create failed");
  pthread_mutex_lock(&ready_mu);
  while (workers_ready < opt.workers) pthread_cond_wait(&ready_cv, &ready_mu);
  pthread_mutex_unlock(&ready_mu);

  if (throughput)
    run_throughput();
  else
    run_latency();
  fflush(stdout);

  atomic_store(&stopping, true);
  for (int i = 0; i < opt.workers; i++) pthread_join(ws[i], NULL);
  delete_queues(admin);
  close_broker(admin);
  free(ws);
  free(payload.bytes);
  return 0;
}

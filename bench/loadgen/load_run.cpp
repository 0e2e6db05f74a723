#include "load_run.hpp"

#include <openssl/ssl.h>
#include <sys/resource.h>

#include <unistd.h>

#include <deque>
#include <fstream>
#include <thread>

#include "connection.hpp"

namespace loadgen {

bool acknowledged(result r) {
  return r == result::applied || r == result::duplicate || r == result::stale ||
         r == result::ignored || r == result::other_2xx;
}

void tally::merge(tally&& other) {
  sent += other.sent;
  for (std::size_t i = 0; i < result_kinds; ++i) by_result[i] += other.by_result[i];
  for (const auto& [status, n] : other.by_status) by_status[status] += n;
  timeouts += other.timeouts;
  reconnects += other.reconnects;
  resigned += other.resigned;
  latency_ns.insert(latency_ns.end(), other.latency_ns.begin(), other.latency_ns.end());
}

result classify(unsigned status, const std::string& body) {
  if (status < 200 || status > 299) return result::non_2xx;
  if (body.find("\"applied\"") != std::string::npos) return result::applied;
  if (body.find("\"duplicate\"") != std::string::npos) return result::duplicate;
  if (body.find("\"stale\"") != std::string::npos) return result::stale;
  if (body.find("\"ignored\"") != std::string::npos) return result::ignored;
  return result::other_2xx;
}

namespace {

// User plus system CPU time of this process so far, in seconds.
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Busy CPU time of the whole machine so far (all cores; idle and iowait excluded), in seconds:
// on a shared machine, what else ran during the timed phase. 0 where /proc/stat is missing.
double machine_cpu_seconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal)) return 0;
  return (user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

ssl::context make_tls(const options& opts) {
  ssl::context ctx(ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (opts.insecure) {
    ctx.set_verify_mode(ssl::verify_none);
  } else {
    if (opts.cafile.empty()) {
      ctx.set_default_verify_paths();
    } else {
      ctx.load_verify_file(opts.cafile.string());
    }
    ctx.set_verify_mode(ssl::verify_peer);
  }
  return ctx;
}

// The io_context threads; each context keeps running until release().
class io_threads {
 public:
  explicit io_threads(unsigned n) : contexts_(n) {
    for (auto& ioc : contexts_) {
      guards_.emplace_back(net::make_work_guard(ioc));
      threads_.emplace_back([&ioc] { ioc.run(); });
    }
  }
  ~io_threads() { release(); }
  net::io_context& operator[](std::size_t i) { return contexts_[i % contexts_.size()]; }
  void release() {
    guards_.clear();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  std::deque<net::io_context> contexts_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

template <class Stream>
load_result drive(run_state& run) {
  const unsigned n = run.opts.connections;
  io_threads threads(run.opts.threads);
  std::vector<std::shared_ptr<connection<Stream>>> conns;
  const auto connecting = steady::now();
  for (unsigned i = 0; i < n; ++i) {
    conns.push_back(std::make_shared<connection<Stream>>(run, threads[i], i));
    net::post(threads[i], [c = conns.back()] { c->connect(); });
  }
  std::unique_lock lock(run.mutex);
  run.changed.wait(lock, [&] { return run.ready == n; });
  load_result out;
  for (const auto& c : conns) {
    if (c->usable()) ++out.connected;
  }
  if (out.connected == 0) throw std::runtime_error("could not connect to " + run.opts.url.host_header());
  run.finished = n - out.connected;
  const double cpu_before = process_cpu_seconds();
  const double machine_before = machine_cpu_seconds();
  run.start = steady::now();
  out.connect_seconds = std::chrono::duration<double>(run.start - connecting).count();
  if (run.opts.duration_s > 0) {
    run.deadline = run.start + std::chrono::nanoseconds(static_cast<std::int64_t>(run.opts.duration_s * 1e9));
  }
  for (unsigned i = 0; i < n; ++i) {
    if (conns[i]->usable()) net::post(threads[i], [c = conns[i]] { c->begin(); });
  }
  run.changed.wait(lock, [&] { return run.finished == n; });
  out.seconds = std::chrono::duration<double>(steady::now() - run.start).count();
  out.cpu_seconds = process_cpu_seconds() - cpu_before;
  out.machine_cpu_seconds = machine_cpu_seconds() - machine_before;
  lock.unlock();
  threads.release();
  for (auto& c : conns) out.totals.merge(std::move(c->stats()));
  return out;
}

}  // namespace

load_result run_load(const options& opts, const event_plan& plan, const request_builder& builder,
                     signed_batch& batch) {
  std::vector<result> results(plan.events.size(), result::unsent);
  const auto endpoints = resolve_loopback(opts.url);
  std::optional<ssl::context> tls_ctx;
  if (opts.url.tls) tls_ctx.emplace(make_tls(opts));
  run_state run{opts, plan, builder, batch, results, endpoints, tls_ctx ? &*tls_ctx : nullptr, {}, {}, {}, {}, 0, 0};
  load_result out = opts.url.tls ? drive<beast::ssl_stream<beast::tcp_stream>>(run)
                                 : drive<beast::tcp_stream>(run);
  out.results = std::move(results);
  return out;
}

}  // namespace loadgen

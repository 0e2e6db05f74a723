#pragma once
// The single writer: the only thread that touches the read-write connection. HTTP threads
// hand it decoded deliveries; it applies what has queued up together in one transaction
// (group commit, each delivery in its own savepoint) and calls each completion, on the
// writer thread, only after that commit has returned (synchronous=FULL).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "metrics.hpp"
#include "store.hpp"

namespace usersync {

// The outcome of one write: an apply outcome, a recorded rejection, or a failure.
struct write_result {
  std::optional<apply_outcome> outcome;   // set when an event was committed (or a duplicate)
  bool recorded = false;                  // set when a rejection was committed
  std::optional<storage_failure> failure; // set when nothing was written
  std::string error;                      // the failure, for the operator's log
};

struct writer_options {
  std::size_t queue_limit = 10000;
  std::size_t max_batch = 256;            // deliveries per transaction; 1 turns group commit off
  std::chrono::microseconds batch_wait{0};  // extra wait for a fuller batch; 0: none when idle
  std::chrono::hours delivery_retention{24 * 14};
  std::chrono::minutes maintenance_interval{60};
  histogram* commit_latency = nullptr;  // observes each transaction, when set
};

class writer {
 public:
  using completion = std::function<void(write_result)>;

  // Takes over `db`, which the caller has migrated; starts the writer thread.
  writer(store& db, const writer_options& options);
  ~writer();  // stop()
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  // Queue work; `done` runs exactly once on the writer thread. When the queue is full or
  // the writer is stopping, `done` runs at once with failure busy (the sender retries).
  void apply(delivery d, completion done);
  void record_rejected(rejected_delivery r, completion done);

  // An empty transaction through the queue: its completion (recorded=true, or a failure)
  // tells whether the database takes writes now. For readiness probes.
  void probe(completion done);

  // Why the last transaction failed, until one commits again; empty while writes succeed.
  std::string last_failure() const;

  // Finishes everything queued, checkpoints, and joins the thread. Idempotent.
  void stop();

  std::size_t queue_depth() const;
  std::uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  std::uint64_t committed_deliveries() const { return committed_.load(std::memory_order_relaxed); }

 private:
  struct job {
    std::function<write_result(write_batch&)> work;
    completion done;
    bool probe = false;  // not a delivery: left out of the delivery count
  };
  void submit(job j);
  void run();
  std::deque<job> take_batch(std::unique_lock<std::mutex>& lock);
  void write(std::deque<job>& batch);
  void maintain();

  store& db_;
  writer_options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<job> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point next_maintenance_;
  std::atomic<std::uint64_t> commits_{0};
  std::atomic<std::uint64_t> committed_{0};
  std::string last_failure_;  // guarded by mutex_
  std::thread thread_;
};

}  // namespace usersync

#pragma once
// The single writer: the only thread that touches the read-write connection. HTTP threads
// hand it decoded deliveries; it applies each in its own transaction and calls the
// completion, on the writer thread, only after the commit has returned (synchronous=FULL).
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

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
  std::chrono::hours delivery_retention{24 * 14};
  std::chrono::minutes maintenance_interval{60};
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

  // Finishes everything queued, checkpoints, and joins the thread. Idempotent.
  void stop();

  std::size_t queue_depth() const;

 private:
  struct job {
    std::function<write_result(store&)> work;
    completion done;
  };
  void submit(job j);
  void run();
  void maintain();

  store& db_;
  writer_options options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<job> queue_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point next_maintenance_;
  std::thread thread_;
};

}  // namespace usersync

#include "writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace usersync {
namespace {

write_result failed(const storage_error& e) {
  write_result r;
  r.failure = e.kind();
  r.error = e.what();
  return r;
}

write_result busy_now(const char* why) {
  write_result r;
  r.failure = storage_failure::busy;
  r.error = why;
  return r;
}

}  // namespace

writer::writer(store& db, const writer_options& options)
    : db_(db),
      options_(options),
      next_maintenance_(std::chrono::steady_clock::now()),
      thread_([this] { run(); }) {}

writer::~writer() { stop(); }

void writer::apply(delivery d, completion done) {
  submit({[d = std::move(d)](write_batch& batch) {
            write_result r;
            r.outcome = batch.apply(d);
            return r;
          },
          std::move(done)});
}

void writer::record_rejected(rejected_delivery rejection, completion done) {
  submit({[rejection = std::move(rejection)](write_batch& batch) {
            batch.record_rejected(rejection);
            write_result r;
            r.recorded = true;
            return r;
          },
          std::move(done)});
}

void writer::probe(completion done) {
  submit({[](write_batch& batch) {
            batch.probe();
            write_result r;
            r.recorded = true;
            return r;
          },
          std::move(done), true});
}

std::string writer::last_failure() const {
  std::lock_guard lock(mutex_);
  return last_failure_;
}

void writer::submit(job j) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queue_.size() < options_.queue_limit) {
      queue_.push_back(std::move(j));
      wake_.notify_one();
      return;
    }
  }
  j.done(busy_now(stopping_ ? "usersync is shutting down" : "the writer queue is full"));
}

std::size_t writer::queue_depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void writer::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait_until(lock, next_maintenance_, [&] { return stopping_ || !queue_.empty(); });
    if (std::chrono::steady_clock::now() >= next_maintenance_) {
      lock.unlock();
      maintain();
      lock.lock();
      continue;
    }
    if (queue_.empty()) {
      if (stopping_) return;  // everything queued before stop() has been written
      continue;
    }
    std::deque<job> batch = take_batch(lock);
    lock.unlock();
    write(batch);
    lock.lock();
  }
}

// Everything queued, up to max_batch; with batch_wait, waits that long for more to arrive.
std::deque<writer::job> writer::take_batch(std::unique_lock<std::mutex>& lock) {
  if (options_.batch_wait.count() > 0 && queue_.size() < options_.max_batch && !stopping_) {
    wake_.wait_for(lock, options_.batch_wait,
                   [&] { return stopping_ || queue_.size() >= options_.max_batch; });
  }
  std::deque<job> batch;
  while (!queue_.empty() && batch.size() < options_.max_batch) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return batch;
}

// One transaction for the batch. A delivery that fails on its own gets its own error; a
// failure of the transaction (busy, full, I/O, or the commit itself) fails every delivery
// in it, since none of them is durable.
void writer::write(std::deque<job>& batch) {
  std::vector<write_result> results(batch.size());
  const auto started = std::chrono::steady_clock::now();
  try {
    write_batch tx(db_);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      try {
        results[i] = batch[i].work(tx);
      } catch (const storage_error& e) {
        if (e.kind() != storage_failure::other) throw;
        results[i] = failed(e);
      }
    }
    tx.commit();
    const auto deliveries = static_cast<std::uint64_t>(
        std::count_if(batch.begin(), batch.end(), [](const job& j) { return !j.probe; }));
    // Readiness probes are not deliveries: they stay out of the commit figures.
    if (deliveries > 0) {
      if (options_.commit_latency != nullptr) {
        options_.commit_latency->observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      }
      commits_.fetch_add(1, std::memory_order_relaxed);
      committed_.fetch_add(deliveries, std::memory_order_relaxed);
    }
    std::lock_guard lock(mutex_);
    last_failure_.clear();
  } catch (const storage_error& e) {
    for (auto& r : results) r = failed(e);
    std::lock_guard lock(mutex_);
    last_failure_ = e.what();
  }
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
}

// Forgets old delivery ids; runs between jobs, so it never races a write.
void writer::maintain() {
  next_maintenance_ = std::chrono::steady_clock::now() + options_.maintenance_interval;
  try {
    const auto cutoff = std::chrono::system_clock::now() - options_.delivery_retention;
    if (auto removed = db_.prune_deliveries(cutoff); removed > 0) {
      spdlog::info("pruned {} delivery records older than the retention", removed);
    }
  } catch (const storage_error& e) {
    spdlog::warn("pruning old delivery records failed, will retry in an hour: {}", e.what());
  }
}

void writer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace usersync

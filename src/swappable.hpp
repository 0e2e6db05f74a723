#pragma once
// A value that SIGHUP may replace while other threads read it. Readers get a shared_ptr to
// the version current at that moment and keep it alive for as long as they use it.
// Use swappable<const T> for values readers must not change.
#include <memory>
#include <mutex>

namespace usersync {

template <class T>
class swappable {
 public:
  explicit swappable(std::shared_ptr<T> initial) : value_(std::move(initial)) {}

  std::shared_ptr<T> get() const {
    std::lock_guard lock(mutex_);
    return value_;
  }

  void set(std::shared_ptr<T> next) {
    std::lock_guard lock(mutex_);
    value_.swap(next);
  }  // the old value is released outside the lock, by `next`'s destructor

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<T> value_;
};

}  // namespace usersync

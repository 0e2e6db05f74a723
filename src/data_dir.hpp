#pragma once
// The data directory: created 0700, locked by one process at a time, holding the database and
// the dev credentials made on first run.
#include <filesystem>
#include <string>

namespace usersync {

// Creates `dir` (and parents) when missing and makes it owner-only (0700). Throws
// std::runtime_error naming the directory and the fix.
void prepare_data_dir(const std::filesystem::path& dir);

// An exclusive flock on DIR/usersync.lock holding this process's PID; released by the
// destructor or by the OS when the process dies, so a crash never leaves a stale lock.
class data_dir_lock {
 public:
  // Throws std::runtime_error naming the holder's PID when another process has the lock.
  explicit data_dir_lock(const std::filesystem::path& dir);
  ~data_dir_lock();
  data_dir_lock(const data_dir_lock&) = delete;
  data_dir_lock& operator=(const data_dir_lock&) = delete;

 private:
  int fd_ = -1;
};

// The PID holding the lock on `dir`, or 0 when nobody does.
long lock_holder(const std::filesystem::path& dir);

std::filesystem::path database_path(const std::filesystem::path& dir);

// Writes `content` to `file` with mode 0600, atomically (temporary file, fsync, rename).
void write_private_file(const std::filesystem::path& file, const std::string& content);

// A credential made on first run so the service works out of the box, reused afterwards.
struct dev_credential {
  std::string value;
  std::filesystem::path file;
  bool created = false;
};
// DIR/dev-webhook-secret: "whsec_" + base64 of 24 random bytes.
dev_credential load_or_create_dev_secret(const std::filesystem::path& dir);
// DIR/dev-query-token: 48 random hex characters.
dev_credential load_or_create_dev_query_token(const std::filesystem::path& dir);

}  // namespace usersync

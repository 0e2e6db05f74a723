#include "data_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "base64.hpp"

namespace usersync {
namespace fs = std::filesystem;
namespace {

constexpr const char* lock_name = "usersync.lock";

std::string errno_text() { return std::strerror(errno); }

void write_all(int fd, const std::string& content, const fs::path& file) {
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot write " + file.string() + ": " + errno_text());
    done += static_cast<std::size_t>(n);
  }
}

long read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}

}  // namespace

void prepare_data_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw std::runtime_error("cannot create data directory " + dir.string() + ": " + ec.message() +
                             "; choose another with --data-dir or USERSYNC_DATA_DIR");
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) {
    throw std::runtime_error("cannot make data directory " + dir.string() +
                             " owner-only (0700): " + ec.message());
  }
}

data_dir_lock::data_dir_lock(const fs::path& dir) {
  const fs::path file = dir / lock_name;
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw std::runtime_error("cannot open lock file " + file.string() + ": " + errno_text());
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const long holder = read_pid(fd_);
    ::close(fd_);
    throw std::runtime_error("data directory " + dir.string() + " is in use by usersync (pid " +
                             std::to_string(holder) + "); stop that process first, or give this "
                             "one another --data-dir");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0) throw std::runtime_error("cannot write " + file.string());
  ::pwrite(fd_, pid.data(), pid.size(), 0);
}

data_dir_lock::~data_dir_lock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

long lock_holder(const fs::path& dir) {
  const int fd = ::open((dir / lock_name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  long holder = 0;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) holder = read_pid(fd);
  ::close(fd);
  return holder;
}

fs::path database_path(const fs::path& dir) { return dir / "usersync.db"; }

void write_private_file(const fs::path& file, const std::string& content) {
  const fs::path tmp = file.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + tmp.string() + ": " + errno_text());
  try {
    write_all(fd, content, tmp);
    if (::fsync(fd) != 0) throw std::runtime_error("cannot fsync " + tmp.string() + ": " + errno_text());
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp.string() + ": " + errno_text());
  }
}

namespace {

template <class Make>
dev_credential load_or_create(const fs::path& file, Make make) {
  dev_credential out{{}, file, false};
  if (std::ifstream in(out.file); in) {
    std::getline(in, out.value);
    if (!out.value.empty()) return out;
  }
  out.value = make();
  write_private_file(out.file, out.value + "\n");
  out.created = true;
  return out;
}

}  // namespace

dev_credential load_or_create_dev_secret(const fs::path& dir) {
  return load_or_create(dir / "dev-webhook-secret",
                        [] { return "whsec_" + base64_encode(random_bytes(24)); });
}

dev_credential load_or_create_dev_query_token(const fs::path& dir) {
  return load_or_create(dir / "dev-query-token", [] {
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    for (char c : random_bytes(24)) {
      const auto byte = static_cast<unsigned char>(c);
      hex += digits[byte >> 4];
      hex += digits[byte & 0xf];
    }
    return hex;
  });
}

}  // namespace usersync

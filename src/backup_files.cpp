#include "backup_files.hpp"

#include <fcntl.h>
#include <signal.h>
#include <openssl/evp.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE (glibc 2.28+)
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace usersync::backup_files {
namespace fs = std::filesystem;
namespace {

constexpr std::size_t chunk_size = 1 << 20;

std::string errno_text() { return std::strerror(errno); }

// An owned file descriptor.
class fd_holder {
 public:
  explicit fd_holder(int fd) : fd_(fd) {}
  ~fd_holder() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_holder(const fd_holder&) = delete;
  fd_holder& operator=(const fd_holder&) = delete;
  int get() const { return fd_; }
  // close(2) can report a delayed write error (NFS, some FUSE file systems): check it.
  void close_checked(const fs::path& file) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw std::runtime_error("cannot close " + file.string() + ": " + errno_text());
  }

 private:
  int fd_;
};

fd_holder open_or_throw(const fs::path& file, int flags, const char* what) {
  const int fd = ::open(file.c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(std::string("cannot ") + what + " " + file.string() + ": " + errno_text());
  return fd_holder(fd);
}

void write_all(int fd, const char* data, std::size_t size, const fs::path& file) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot write " + file.string() + ": " + errno_text());
    done += static_cast<std::size_t>(n);
  }
}

std::size_t read_some(int fd, char* buffer, std::size_t size, const fs::path& file) {
  for (;;) {
    const ssize_t n = ::read(fd, buffer, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error("cannot read " + file.string() + ": " + errno_text());
    return static_cast<std::size_t>(n);
  }
}

void fsync_fd(int fd, const fs::path& file) {
  if (::fsync(fd) != 0) throw std::runtime_error("cannot fsync " + file.string() + ": " + errno_text());
}

// SHA-256 through OpenSSL's EVP interface.
class sha256 {
 public:
  sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("OpenSSL could not start a SHA-256 digest");
    }
  }
  void update(const char* data, std::size_t size) {
    if (EVP_DigestUpdate(ctx_.get(), data, size) != 1) throw std::runtime_error("SHA-256 update failed");
  }
  std::string hex() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), digest.data(), &size) != 1) {
      throw std::runtime_error("SHA-256 final failed");
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
      out += digits[digest[i] >> 4];
      out += digits[digest[i] & 0x0f];
    }
    return out;
  }

 private:
  struct deleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, deleter> ctx_;
};

}  // namespace

void create_exclusive(const fs::path& file) {
  auto fd = open_or_throw(file, O_WRONLY | O_CREAT | O_EXCL, "create");
  fd.close_checked(file);
}

void fsync_file(const fs::path& file) {
  auto fd = open_or_throw(file, O_RDONLY, "open");
  fsync_fd(fd.get(), file);
}

void fsync_dir(const fs::path& dir) {
  auto fd = open_or_throw(dir, O_RDONLY | O_DIRECTORY, "open directory");
  fsync_fd(fd.get(), dir);
}

void rename_no_replace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno == EEXIST) {
    throw std::runtime_error(to.string() + " already exists; it was left as it is");
  }
  throw std::runtime_error("cannot rename " + from.string() + " to " + to.string() + ": " + errno_text());
}

void rename_replace(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw std::runtime_error("cannot rename " + from.string() + " to " + to.string() + ": " + errno_text());
  }
}

void write_new_file(const fs::path& file, const std::string& content) {
  auto fd = open_or_throw(file, O_WRONLY | O_CREAT | O_EXCL, "create");
  write_all(fd.get(), content.data(), content.size(), file);
  fsync_fd(fd.get(), file);
  fd.close_checked(file);
}

std::string sha256_file(const fs::path& file, std::stop_token stop) {
  auto fd = open_or_throw(file, O_RDONLY, "open");
  sha256 digest;
  std::unique_ptr<char[]> buffer(new char[chunk_size]);
  while (const std::size_t n = read_some(fd.get(), buffer.get(), chunk_size, file)) {
    if (stop.stop_requested()) throw std::runtime_error("stopped while hashing " + file.string());
    digest.update(buffer.get(), n);
  }
  return digest.hex();
}

std::string copy_file_synced(const fs::path& from, const fs::path& to) {
  auto in = open_or_throw(from, O_RDONLY, "open");
  auto out = open_or_throw(to, O_WRONLY | O_CREAT | O_EXCL, "create");
  sha256 digest;
  std::unique_ptr<char[]> buffer(new char[chunk_size]);
  while (const std::size_t n = read_some(in.get(), buffer.get(), chunk_size, from)) {
    digest.update(buffer.get(), n);
    write_all(out.get(), buffer.get(), n, to);
  }
  fsync_fd(out.get(), to);
  out.close_checked(to);
  return digest.hex();
}

cleanup_guard::~cleanup_guard() {
  for (const auto& file : files_) ::unlink(file.c_str());  // ENOENT is fine: never created
}

writeback_pacer::writeback_pacer(const fs::path& file, std::chrono::milliseconds period)
    : fd_(::open(file.c_str(), O_WRONLY | O_CLOEXEC)) {
  if (fd_ < 0) return;  // only a smoothing measure: the copy is fsynced at the end anyway
  thread_ = std::jthread([fd = fd_, period](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any cv;
    std::unique_lock lock(m);
    while (!cv.wait_for(lock, stop, period, [] { return false; }) && !stop.stop_requested()) {
      ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    }
  });
}

writeback_pacer::~writeback_pacer() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  if (fd_ >= 0) ::close(fd_);
}

void remove_orphaned_temporaries(const fs::path& dir, const std::string& prefix) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const auto at = name.find(".tmp-");
    if (!name.starts_with(prefix) || at == std::string::npos) continue;
    const long pid = std::strtol(name.c_str() + at + 5, nullptr, 10);
    if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
}

std::vector<fs::path> sqlite_side_files(const fs::path& db_file) {
  return {db_file.string() + "-journal", db_file.string() + "-wal", db_file.string() + "-shm"};
}

}  // namespace usersync::backup_files

#include "openssl_cli.hpp"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <unistd.h>

namespace usersync::test {
namespace {

// A mkstemp file holding exactly `bytes`, removed when the owner goes out of scope.
class temp_file {
 public:
  explicit temp_file(std::string_view bytes) {
    const char* dir = std::getenv("TMPDIR");
    path_ = std::string(dir && *dir ? dir : "/tmp") + "/usersync-test-XXXXXX";
    const int fd = ::mkstemp(path_.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed for " + path_);
    const bool ok = write_all(fd, bytes);
    ::close(fd);
    if (!ok) {
      ::unlink(path_.c_str());
      throw std::runtime_error("could not write test input to " + path_);
    }
  }
  ~temp_file() { ::unlink(path_.c_str()); }
  temp_file(const temp_file&) = delete;
  temp_file& operator=(const temp_file&) = delete;

  const std::string& path() const { return path_; }

 private:
  static bool write_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
      const auto n = ::write(fd, bytes.data(), bytes.size());
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  std::string path_;
};

// Runs a shell command and returns its stdout; throws unless it exits with status 0.
std::string run(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  const int status = ::pclose(pipe);
  if (status != 0) throw std::runtime_error("command failed: " + command);
  return out;
}

}  // namespace

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    hex.push_back(digits[b >> 4]);
    hex.push_back(digits[b & 0x0F]);
  }
  return hex;
}

std::string openssl_hmac_sha256_base64(std::string_view key_bytes, std::string_view message) {
  const temp_file input(message);
  // Two commands rather than a pipe, so a failing `dgst` cannot hide behind `base64`'s
  // exit status. The key goes as hex, so it needs no quoting.
  const auto mac = run("openssl dgst -sha256 -mac HMAC -macopt hexkey:" + to_hex(key_bytes) +
                       " -binary '" + input.path() + "'");
  if (mac.size() != 32) throw std::runtime_error("openssl dgst did not print 32 MAC bytes");
  return openssl_base64(mac);
}

std::string openssl_base64(std::string_view bytes) {
  const temp_file input(bytes);
  return run("openssl base64 -A -in '" + input.path() + "'");
}

}  // namespace usersync::test

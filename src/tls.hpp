#pragma once
// TLS server contexts (TLS 1.2 and newer) from PEM files, and the self-signed dev
// certificate made on first run when no certificate is configured.
#include <filesystem>
#include <memory>

namespace boost::asio::ssl { class context; }

namespace usersync {

// Loads a certificate chain and its key. Throws std::runtime_error naming the file and the
// problem (unreadable, not PEM, key does not match the certificate).
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const std::filesystem::path& cert,
                                                            const std::filesystem::path& key);

struct dev_certificate {
  std::filesystem::path cert;
  std::filesystem::path key;
  bool created = false;
};

// DIR/tls/dev-cert.pem and dev-key.pem (0600): an ECDSA P-256 certificate for localhost,
// 127.0.0.1 and ::1, made when missing and reused afterwards.
dev_certificate load_or_create_dev_certificate(const std::filesystem::path& data_dir);

}  // namespace usersync

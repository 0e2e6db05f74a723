#include "tls.hpp"

#include <boost/asio/ssl/context.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <stdexcept>
#include <string>

#include "data_dir.hpp"

namespace usersync {
namespace ssl = boost::asio::ssl;
namespace fs = std::filesystem;
namespace {

template <class T, void (*Free)(T*)>
struct openssl_deleter {
  void operator()(T* p) const { Free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;

std::string openssl_error(const char* what) {
  const unsigned long code = ERR_get_error();
  char buf[256] = {};
  ERR_error_string_n(code, buf, sizeof buf);
  return std::string(what) + ": " + buf;
}

void check(int ok, const char* what) {
  if (ok != 1) throw std::runtime_error(openssl_error(what));
}

void add_extension(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) throw std::runtime_error(openssl_error("X509V3_EXT_conf_nid"));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  check(ok, "X509_add_ext");
}

x509_ptr self_signed(EVP_PKEY* key) {
  x509_ptr cert(X509_new());
  check(X509_set_version(cert.get(), 2), "X509_set_version");
  unsigned char serial[16];
  check(RAND_bytes(serial, sizeof serial), "RAND_bytes");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 60L * 60 * 24 * 825);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("usersync dev"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  check(X509_set_issuer_name(cert.get(), name), "X509_set_issuer_name");
  check(X509_set_pubkey(cert.get(), key), "X509_set_pubkey");
  add_extension(cert.get(), NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1");
  add_extension(cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), NID_ext_key_usage, "serverAuth");
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) throw std::runtime_error(openssl_error("X509_sign"));
  return cert;
}

template <class Write>
std::string to_pem(Write write) {
  bio_ptr bio(BIO_new(BIO_s_mem()));
  check(write(bio.get()), "PEM write");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const fs::path& cert, const fs::path& key) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  // tls_server allows every version; TLS 1.0 and 1.1 are refused here.
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert.string(), ec);
  if (ec) {
    throw std::runtime_error("TLS certificate " + cert.string() + ": " + ec.message() +
                             "; give a readable PEM chain with --tls-cert");
  }
  ctx->use_private_key_file(key.string(), ssl::context::pem, ec);
  if (ec) {
    throw std::runtime_error("TLS key " + key.string() + ": " + ec.message() +
                             "; give a readable, unencrypted PEM key with --tls-key");
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    throw std::runtime_error("TLS key " + key.string() + " does not match certificate " +
                             cert.string());
  }
  return ctx;
}

dev_certificate load_or_create_dev_certificate(const fs::path& data_dir) {
  const fs::path dir = data_dir / "tls";
  dev_certificate out{dir / "dev-cert.pem", dir / "dev-key.pem", false};
  if (fs::exists(out.cert) && fs::exists(out.key)) return out;
  prepare_data_dir(dir);
  pkey_ptr key(EVP_EC_gen("P-256"));
  if (!key) throw std::runtime_error(openssl_error("EVP_EC_gen"));
  x509_ptr cert = self_signed(key.get());
  write_private_file(out.key, to_pem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  }));
  write_private_file(out.cert, to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert.get()); }));
  out.created = true;
  return out;
}

}  // namespace usersync

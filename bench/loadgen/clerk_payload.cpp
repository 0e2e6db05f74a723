#include "clerk_payload.hpp"

#include <boost/json.hpp>

#include <array>

namespace loadgen {
namespace json = boost::json;
namespace {

constexpr std::array<std::string_view, 16> first_names = {
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John",
    "Margaret", "Ken", "Radia", "Dennis", "Sophie", "Tony", "Hedy", "Niklaus"};
constexpr std::array<std::string_view, 16> last_names = {
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus",
    "Hamilton", "Thompson", "Perlman", "Ritchie", "Wilson", "Hoare", "Lamarr", "Wirth"};
constexpr std::string_view instance_id = "ins_2qYkz0aB3cD4eF5gH6iJ7kL8mN9";
constexpr std::string_view image_url =
    "https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJodHRwczovL2xoMy5nb29nbGV1c2VyY29udGVudC5jb20vYS9BQ2c4b2NFeGFtcGxlIn0";

std::string padded(std::string_view prefix, std::string_view run_id, std::uint64_t n, std::size_t width) {
  std::string digits = std::to_string(n);
  std::string out(prefix);
  out.append(run_id);
  const std::size_t used = run_id.size() + digits.size();
  if (used < width) out.append(width - used, '0');
  return out.append(digits);
}

// An identification id ("idn_...") derived from the user and what it names.
std::string idn(std::string_view run_id, std::uint32_t user, char what) {
  return padded(std::string("idn_") + what, run_id, user, 26);
}

// A user's last name changes every fourth update: the service keeps a name history.
std::string_view last_name(std::uint32_t user, std::uint32_t version) {
  return last_names[(user / 16 + version / 4) % last_names.size()];
}

std::string email(std::uint32_t user, std::uint32_t version) {
  std::string local(first_names[user % first_names.size()]);
  local += ".";
  local += last_name(user, version);
  for (char& c : local) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return local + "." + std::to_string(user) + "@example.com";
}

json::object verification(std::string_view status, std::string_view strategy) {
  return {{"attempts", nullptr}, {"expire_at", nullptr}, {"status", status}, {"strategy", strategy}};
}

json::object email_address(std::string_view run_id, std::uint32_t user, std::uint32_t version) {
  const std::int64_t at = created_at_ms(user);
  return {{"created_at", at - 2000},
          {"email_address", email(user, version)},
          {"id", idn(run_id, user, 'e')},
          {"linked_to", json::array{json::object{{"id", idn(run_id, user, 'g')}, {"type", "oauth_google"}}}},
          {"matches_sso_connection", false},
          {"object", "email_address"},
          {"reserved", false},
          {"updated_at", at + 7},
          {"verification", verification("verified", "from_oauth_google")}};
}

json::object google_account(std::string_view run_id, std::uint32_t user, std::uint32_t version) {
  const std::int64_t at = created_at_ms(user);
  return {{"approved_scopes", "email https://www.googleapis.com/auth/userinfo.email "
                              "https://www.googleapis.com/auth/userinfo.profile openid profile"},
          {"avatar_url", "https://lh3.googleusercontent.com/a/ACg8ocExample=s1000-c"},
          {"created_at", at - 1500},
          {"email_address", email(user, version)},
          {"email_address_verified", true},
          {"first_name", first_names[user % first_names.size()]},
          {"id", idn(run_id, user, 'g')},
          {"identification_id", idn(run_id, user, 'g')},
          {"image_url", image_url},
          {"label", nullptr},
          {"last_name", last_name(user, version)},
          {"object", "external_account"},
          {"phone_number", nullptr},
          {"provider", "oauth_google"},
          {"provider_user_id", std::to_string(104857600123456789ULL + user)},
          {"public_metadata", json::object{}},
          {"updated_at", at - 13},
          {"username", nullptr},
          {"verification", verification("verified", "oauth_google")}};
}

json::object phone_number(std::string_view run_id, std::uint32_t user) {
  return {{"backup_codes", nullptr},        {"created_at", created_at_ms(user) + 86'400'000},
          {"default_second_factor", true},   {"id", idn(run_id, user, 'p')},
          {"linked_to", json::array{}},      {"object", "phone_number"},
          {"phone_number", "+1555555" + std::to_string(1000 + user % 9000)},
          {"reserved", false},               {"reserved_for_second_factor", true},
          {"updated_at", created_at_ms(user) + 86'400'000},
          {"verification", verification("verified", "phone_code")}};
}

void add_flags(json::object& u, std::uint32_t version) {
  const bool mfa = version >= 2;
  u["backup_code_enabled"] = false;
  u["banned"] = false;
  u["create_organization_enabled"] = true;
  u["create_organizations_limit"] = nullptr;
  u["delete_self_enabled"] = true;
  u["has_image"] = true;
  u["locked"] = false;
  u["lockout_expires_in_seconds"] = nullptr;
  u["mfa_disabled_at"] = nullptr;
  u["mfa_enabled_at"] = mfa ? json::value(created_at_ms(0) + 86'400'000) : json::value(nullptr);
  u["password_enabled"] = version >= 1;
  u["totp_enabled"] = false;
  u["two_factor_enabled"] = mfa;
  u["verification_attempts_remaining"] = 100;
}

// Emails, phones and linked accounts: a phone and MFA arrive with the third version.
void add_identifications(json::object& u, std::string_view run_id, const planned_event& e) {
  json::array phones;
  if (e.version >= 2) phones.push_back(phone_number(run_id, e.user));
  u["email_addresses"] = json::array{email_address(run_id, e.user, e.version)};
  u["enterprise_accounts"] = json::array{};
  u["external_accounts"] = json::array{google_account(run_id, e.user, e.version)};
  u["passkeys"] = json::array{};
  u["phone_numbers"] = std::move(phones);
  u["primary_email_address_id"] = idn(run_id, e.user, 'e');
  u["primary_phone_number_id"] = e.version >= 2 ? json::value(idn(run_id, e.user, 'p')) : json::value(nullptr);
  u["primary_web3_wallet_id"] = nullptr;
  u["saml_accounts"] = json::array{};
  u["web3_wallets"] = json::array{};
}

void add_profile(json::object& u, std::string_view run_id, const planned_event& e) {
  const std::int64_t updated = updated_at_ms(e.user, e.version);
  u["created_at"] = created_at_ms(e.user);
  u["external_id"] = e.version >= 1 ? json::value("crm-" + std::to_string(e.user)) : json::value(nullptr);
  u["first_name"] = first_names[e.user % first_names.size()];
  u["id"] = clerk_id(run_id, e.user);
  u["image_url"] = image_url;
  u["last_active_at"] = updated - 40;
  u["last_name"] = last_name(e.user, e.version);
  u["last_sign_in_at"] = updated - 90;
  u["legal_accepted_at"] = nullptr;
  u["locale"] = e.version >= 1 ? json::value("en-GB") : json::value(nullptr);
  u["object"] = "user";
  u["password_last_updated_at"] = nullptr;
  u["private_metadata"] = json::object{};
  u["profile_image_url"] = "https://images.clerk.dev/oauth_google/img_2qYl8yExampleProfileImage";
  // Every fifth version promotes the user: the role column follows public_metadata.role.
  u["public_metadata"] = e.version % 5 == 4 ? json::object{{"plan", "pro"}, {"role", "admin"}} : json::object{};
  u["unsafe_metadata"] = json::object{};
  u["updated_at"] = updated;
  u["username"] = nullptr;
}

json::object user_object(std::string_view run_id, const planned_event& e) {
  json::object u;
  add_flags(u, e.version);
  add_identifications(u, run_id, e);
  add_profile(u, run_id, e);
  return u;
}

json::object envelope(std::string_view type, json::object data, std::int64_t timestamp_ms) {
  return {{"data", std::move(data)},
          {"event_attributes",
           json::object{{"http_request",
                         json::object{{"client_ip", "198.51.100.23"},
                                      {"user_agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"}}}}},
          {"instance_id", instance_id},
          {"object", "event"},
          {"timestamp", timestamp_ms},
          {"type", type}};
}

}  // namespace

std::string clerk_id(std::string_view run_id, std::uint32_t user) { return padded("user_", run_id, user, 27); }

std::string svix_id(std::string_view run_id, std::uint64_t index) { return padded("msg_", run_id, index, 27); }

std::string clerk_body(std::string_view run_id, const planned_event& e) {
  const std::int64_t at = updated_at_ms(e.user, e.version) + 14;
  switch (e.type) {
    case event_type::created:
      return json::serialize(envelope("user.created", user_object(run_id, e), at));
    case event_type::updated:
      return json::serialize(envelope("user.updated", user_object(run_id, e), at));
    case event_type::deleted:
      return json::serialize(envelope(
          "user.deleted",
          json::object{{"deleted", true}, {"id", clerk_id(run_id, e.user)}, {"object", "user"}}, at));
  }
  return {};
}

}  // namespace loadgen

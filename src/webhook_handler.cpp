#include "webhook_handler.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>

#include "clerk_event.hpp"
#include "writer.hpp"

namespace usersync {
namespace {

// Svix sends svix-*; the Standard Webhooks names are webhook-*. Either is accepted.
std::string_view header(const request& req, std::string_view svix_name, std::string_view std_name) {
  auto it = req.find(svix_name);
  if (it == req.end()) it = req.find(std_name);
  if (it == req.end()) return {};
  return it->value();
}

webhook_headers read_headers(const request& req) {
  return {header(req, "svix-id", "webhook-id"), header(req, "svix-timestamp", "webhook-timestamp"),
          header(req, "svix-signature", "webhook-signature")};
}

std::string_view failure_code(storage_failure f) {
  switch (f) {
    case storage_failure::busy: return "database_busy";
    case storage_failure::full: return "disk_full";
    case storage_failure::io: return "io_error";
    case storage_failure::corrupt: return "database_corrupt";
    case storage_failure::other: return "internal_error";
  }
  return "internal_error";
}

reply failure_reply(const write_result& result) {
  const storage_failure f = *result.failure;
  const bool transient =
      f == storage_failure::busy || f == storage_failure::full || f == storage_failure::io;
  if (!transient) {
    return json_error(http::status::internal_server_error, failure_code(f),
                      "the event was not applied; the operator has been alerted in the log");
  }
  reply r = json_error(http::status::service_unavailable, failure_code(f),
                       "the event was not applied; retry later");
  r.res.set(http::field::retry_after, "5");
  return r;
}

std::string note(std::string_view svix_id, std::string_view type, std::string_view outcome) {
  return "svix_id=" + std::string(svix_id) + " type=" + std::string(type) +
         " outcome=" + std::string(outcome);
}

}  // namespace

reply reply_for(const write_result& result) {
  if (result.failure) return failure_reply(result);
  boost::json::object body;
  body["outcome"] = to_string(*result.outcome);
  return json_reply(http::status::ok, boost::json::serialize(body));
}

webhook_handler::webhook_handler(writer& w, std::vector<webhook_secret> secrets,
                                 std::chrono::seconds tolerance, clock_fn now)
    : writer_(w),
      secrets_(std::make_shared<const std::vector<webhook_secret>>(std::move(secrets))),
      tolerance_(tolerance),
      now_(std::move(now)) {}

void webhook_handler::operator()(const request& req, const path_params&, responder respond) const {
  const webhook_headers headers = read_headers(req);
  const auto received_at = now_();
  // Verify before parsing: nothing in an unauthenticated body is ever looked at.
  const verify_result verified = verify_webhook(*secrets_, headers, req.body(), received_at, tolerance_);
  if (verified != verify_result::ok) {
    reply r = json_error(http::status::unauthorized, to_string(verified),
                         "the request is not signed by a configured webhook secret");
    r.log_note = note(headers.id, "-", "unauthorized:" + std::string(to_string(verified)));
    respond(std::move(r));
    return;
  }
  std::string svix_id(headers.id);
  decode_result decoded = decode_clerk_event(req.body());
  if (!decoded.event) {
    rejected_delivery rejection{svix_id, decoded.error, req.body(), received_at};
    writer_.record_rejected(std::move(rejection), [respond, svix_id, error = decoded.error](write_result r) {
      if (r.failure) spdlog::warn("could not record rejected delivery {}: {}", svix_id, r.error);
      reply out = json_error(http::status::bad_request, "malformed_event", error);
      out.log_note = note(svix_id, "-", "malformed");
      respond(std::move(out));
    });
    return;
  }
  const std::string type = decoded.event->type;
  delivery d{svix_id, std::move(*decoded.event), received_at};
  writer_.apply(std::move(d), [respond, svix_id, type](write_result r) {
    if (r.failure) spdlog::error("delivery {} not applied: {}", svix_id, r.error);
    reply out = reply_for(r);
    out.log_note = note(svix_id, type, r.failure ? failure_code(*r.failure) : to_string(*r.outcome));
    respond(std::move(out));
  });
}

}  // namespace usersync

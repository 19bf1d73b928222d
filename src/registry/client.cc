// The OCI distribution client over libcurl.
//
// Redirects are followed here, not by libcurl, so that every hop (and every
// upload Location a server hands back) is checked against the trust config:
// same registry or an allowed redirect host, and never plain HTTP unless the
// target host is allowed it. Credentials and tokens go only to the registry
// itself (Basic credentials also to the token realm it names).
#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/base64.h"
#include "common/bytes.h"
#include "common/fd.h"
#include "egg/registry.h"
#include "registry/internal.h"

namespace egg {
namespace {

using registry_internal::Challenge;
using registry_internal::ParseChallenge;
using registry_internal::ResolveLocation;
using registry_internal::SplitUrl;
using registry_internal::UrlEncode;

constexpr std::string_view kUserAgent = "egg/0.1";

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;
  // Upload body: from memory, or from byte ranges of fd, in order.
  bool upload = false;
  std::string_view body;
  int fd = -1;
  std::vector<FileExtent> extents;
  uint64_t size = 0;  // total of extents
  // Cap on a collected (or streamed 2xx) response body.
  uint64_t max_body = 1 << 20;
  // Bytes the request is expected to move; stretches the deadline.
  uint64_t expected_bytes = 0;
  const BlobSink* sink = nullptr;  // 2xx bodies go here when set
  const BlobProgressFn* progress = nullptr;
  bool follow_redirects = false;
  bool may_authenticate = true;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string url;
  uint64_t received = 0;

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// State the libcurl callbacks share for one transfer.
struct Transfer {
  CURL* curl = nullptr;
  const Request* req = nullptr;
  Response* resp = nullptr;
  std::optional<Error> error;  // why a callback aborted
  bool checked_length = false;
  uint64_t read_pos = 0;

  bool Success() const { return resp->status >= 200 && resp->status < 300; }
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response (after 100 Continue): forget the previous headers.
    t->resp->headers.clear();
    size_t sp = line.find(' ');
    t->resp->status = sp == line.npos ? 0 : std::atol(line.data() + sp + 1);
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == line.npos) return size * n;
  std::string name;
  for (char c : line.substr(0, colon)) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' ||
                            value.back() == ' ')) {
    value.remove_suffix(1);
  }
  // Keep the first challenge; later ones are alternatives.
  if (name == "www-authenticate" && t->resp->headers.count(name)) {
    return size * n;
  }
  t->resp->headers[name] = std::string(value);
  return size * n;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  bool to_sink = t->req->sink && t->Success();
  uint64_t cap = t->Success() ? t->req->max_body : 64 << 10;
  if (!t->checked_length) {
    t->checked_length = true;
    curl_off_t declared = -1;
    curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &declared);
    if (declared > 0 && static_cast<uint64_t>(declared) > cap) {
      t->error = Error(Code::kIo,
                       "server declares a body of " + std::to_string(declared) +
                           " bytes, over the cap of " + std::to_string(cap));
      return 0;
    }
  }
  if (t->resp->received + len > cap) {
    t->error = Error(Code::kIo, "body larger than the " + std::to_string(cap) +
                                    " bytes expected; cut off");
    return 0;
  }
  t->resp->received += len;
  if (to_sink) {
    auto st = (*t->req->sink)(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data), len));
    if (!st) {
      t->error = st.error();
      return 0;
    }
  } else {
    t->resp->body.append(data, len);
  }
  return len;
}

size_t OnRead(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const Request& req = *t->req;
  uint64_t total = req.fd >= 0 ? req.size : req.body.size();
  uint64_t want = std::min<uint64_t>(size * n, total - t->read_pos);
  if (want == 0) return 0;
  if (req.fd >= 0) {
    // Find the extent holding read_pos; extents are few (one per pack run).
    uint64_t at = t->read_pos;
    for (const auto& e : req.extents) {
      if (at >= e.length) {
        at -= e.length;
        continue;
      }
      want = std::min<uint64_t>(want, e.length - at);
      auto st = PreadExact(
          req.fd, std::span<uint8_t>(reinterpret_cast<uint8_t*>(buffer), want),
          e.offset + at);
      if (!st) {
        t->error = st.error();
        return CURL_READFUNC_ABORT;
      }
      break;
    }
  } else {
    std::memcpy(buffer, req.body.data() + t->read_pos, want);
  }
  t->read_pos += want;
  return want;
}

int OnProgress(void* user, curl_off_t, curl_off_t dl, curl_off_t,
               curl_off_t ul) {
  auto* t = static_cast<Transfer*>(user);
  if (t->req->progress && *t->req->progress) {
    (*t->req->progress)(static_cast<uint64_t>(dl > ul ? dl : ul));
  }
  return 0;
}

// The part [from, from + length) of the byte stream the extents make.
std::vector<FileExtent> SliceExtents(const std::vector<FileExtent>& extents,
                                     uint64_t from, uint64_t length) {
  std::vector<FileExtent> out;
  for (const auto& e : extents) {
    if (length == 0) break;
    if (from >= e.length) {
      from -= e.length;
      continue;
    }
    uint64_t take = std::min(e.length - from, length);
    out.push_back({e.offset + from, take});
    length -= take;
    from = 0;
  }
  return out;
}

Code CodeForStatus(long status) {
  if (status == 404) return Code::kNotFound;
  if (status == 401 || status == 403) return Code::kPermissionDenied;
  return Code::kIo;
}

// "HTTP 404 BLOB_UNKNOWN: blob unknown to registry" from an error body.
std::string DescribeFailure(const Response& resp) {
  std::string out = "HTTP " + std::to_string(resp.status);
  nlohmann::json doc = nlohmann::json::parse(resp.body, nullptr, false);
  if (doc.is_object() && doc.contains("errors") && doc["errors"].is_array() &&
      !doc["errors"].empty() && doc["errors"][0].is_object()) {
    const auto& e = doc["errors"][0];
    if (e.contains("code") && e["code"].is_string()) {
      out += " " + e["code"].get<std::string>().substr(0, 64);
    }
    if (e.contains("message") && e["message"].is_string()) {
      out += ": " + e["message"].get<std::string>().substr(0, 200);
    }
  }
  return out;
}

}  // namespace

struct RegistryClient::Impl {
  Reference ref;
  ClientOptions options;
  std::string scheme;
  std::string authority;
  std::string base;  // "scheme://authority"
  CURL* curl = nullptr;
  std::string bearer;  // current token, if any
  bool use_basic = false;
  TransferStats stats;

  ~Impl() {
    if (curl) curl_easy_cleanup(curl);
  }

  std::string RepoUrl(const std::string& repo, const std::string& tail) {
    return base + "/v2/" + repo + tail;
  }

  // Checks that a URL a server handed us may be contacted.
  Status CheckUrl(const std::string& url, const char* why) {
    auto parts = SplitUrl(url);
    if (!parts) {
      return Fail(Code::kIo, std::string(why) + " to a malformed URL");
    }
    bool same = parts->authority == authority;
    if (!same && !options.trust.AllowsRedirectTo(parts->authority)) {
      return Fail(Code::kPermissionDenied,
                  std::string(why) + " to another host \"" + parts->authority +
                      "\" refused (not in redirect_hosts of the trust "
                      "config)");
    }
    if (parts->scheme == "http" &&
        !options.trust.AllowsPlainHttp(parts->authority)) {
      return Fail(Code::kPermissionDenied,
                  std::string(why) + " to plain HTTP at \"" + parts->authority +
                      "\" refused (not in plain_http of the trust config)");
    }
    return {};
  }

  bool SameRegistry(const std::string& url) {
    auto parts = SplitUrl(url);
    return parts && parts->authority == authority && parts->scheme == scheme;
  }

  // One HTTP exchange, no redirects, no authentication retry.
  Result<Response> Exchange(const Request& req, const std::string& url,
                            bool send_auth) {
    curl_easy_reset(curl);
    Response resp;
    resp.url = url;
    Transfer t;
    t.curl = curl;
    t.req = &req;
    t.resp = &resp;

    uint64_t deadline = options.deadline_ms;
    if (options.min_rate > 0) {
      deadline += req.expected_bytes / options.min_rate * 1000;
    }
    curl_slist* headers = nullptr;
    for (const auto& h : req.headers) {
      headers = curl_slist_append(headers, h.c_str());
    }
    headers = curl_slist_append(headers, "Expect:");
    std::string auth_header;
    if (send_auth && !bearer.empty()) {
      auth_header = "Authorization: Bearer " + bearer;
    } else if (send_auth && use_basic && options.credentials) {
      auth_header = "Authorization: Basic " +
                    Base64Encode(options.credentials->username + ":" +
                                 options.credentials->password);
    }
    if (!auth_header.empty()) {
      headers = curl_slist_append(headers, auth_header.c_str());
    }

    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, std::string(kUserAgent).c_str());
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(deadline));
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options.connect_ms));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT,
                     static_cast<long>(options.stall_rate));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(options.stall_seconds));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);
    // Blob bodies arrive in larger pieces: fewer callbacks and copies.
    if (req.sink) curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L << 10);
    if (req.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (req.method != "GET") {
      uint64_t size = req.fd >= 0 ? req.size : req.body.size();
      curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnRead);
      curl_easy_setopt(curl, CURLOPT_READDATA, &t);
      curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                       static_cast<curl_off_t>(size));
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }

    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    ++stats.requests;
    std::string what = req.method + " " + url;
    if (t.error) return Fail(t.error->Wrap(what));
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      double total = 0;
      curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &total);
      bool overall = total * 1000 + 50 >= static_cast<double>(deadline);
      return Fail(
          Code::kIo,
          what + (overall ? ": deadline of " + std::to_string(deadline / 1000) +
                                " s passed before the transfer ended"
                          : ": transfer stalled (under " +
                                std::to_string(options.stall_rate) +
                                " bytes/s for " +
                                std::to_string(options.stall_seconds) + " s)"));
    }
    if (rc != CURLE_OK) {
      return Fail(Code::kIo, what + ": " + curl_easy_strerror(rc));
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    resp.status = status;
    return resp;
  }

  // Fetches a bearer token for the challenge.
  Status FetchToken(const Challenge& c) {
    auto realm = c.params.find("realm");
    if (realm == c.params.end()) {
      return Fail(Code::kPermissionDenied, "bearer challenge without a realm");
    }
    auto check = CheckUrl(realm->second, "token realm");
    if (!check) return check;
    std::string url = realm->second;
    char sep = url.find('?') == std::string::npos ? '?' : '&';
    for (const char* key : {"service", "scope"}) {
      auto it = c.params.find(key);
      if (it == c.params.end()) continue;
      url += sep + std::string(key) + "=" + UrlEncode(it->second);
      sep = '&';
    }
    Request req;
    req.url = url;
    req.max_body = options.max_small_body;
    bool saved_basic = use_basic;
    std::string saved_bearer;
    std::swap(saved_bearer, bearer);
    use_basic = options.credentials.has_value();
    auto resp = Exchange(req, url, true);
    use_basic = saved_basic;
    if (!resp) return Fail(resp.error().Wrap("token request"));
    if (resp->status != 200) {
      return Fail(CodeForStatus(resp->status) == Code::kNotFound
                      ? Code::kIo
                      : CodeForStatus(resp->status),
                  "token request: " + DescribeFailure(*resp));
    }
    nlohmann::json doc = nlohmann::json::parse(resp->body, nullptr, false);
    std::string token;
    for (const char* key : {"token", "access_token"}) {
      if (doc.is_object() && doc.contains(key) && doc[key].is_string()) {
        token = doc[key].get<std::string>();
        break;
      }
    }
    if (token.empty() || token.size() > 16384 ||
        token.find_first_of("\r\n") != std::string::npos) {
      return Fail(Code::kPermissionDenied,
                  "token request: no usable token in the answer");
    }
    bearer = token;
    return {};
  }

  // A request with redirects (for GET/HEAD when asked) and one
  // authentication retry.
  Result<Response> Send(const Request& req) {
    std::string url = req.url;
    bool retried_auth = false;
    for (int hop = 0;;) {
      auto check = CheckUrl(url, hop ? "redirect" : "request");
      if (!check) return Fail(check.error());
      bool same = SameRegistry(url);
      auto resp = Exchange(req, url, same);
      if (!resp) return resp;

      if (resp->status == 401 && same && req.may_authenticate &&
          !retried_auth) {
        retried_auth = true;
        auto challenge = ParseChallenge(resp->Header("www-authenticate"));
        if (!challenge) {
          return Fail(
              Code::kPermissionDenied,
              req.method + " " + url + ": HTTP 401 without a usable challenge");
        }
        if (challenge->scheme == "bearer") {
          if (!options.credentials) {
            auto found = FindCredentials(authority);
            if (!found) return Fail(found.error());
            options.credentials = *found;
          }
          auto st = FetchToken(*challenge);
          if (!st) return Fail(st.error());
          continue;
        }
        if (challenge->scheme == "basic") {
          if (!options.credentials) {
            auto found = FindCredentials(authority);
            if (!found) return Fail(found.error());
            options.credentials = *found;
          }
          if (!options.credentials) {
            return Fail(Code::kPermissionDenied,
                        req.method + " " + url +
                            ": registry wants a login and no credentials "
                            "name \"" +
                            authority + "\"");
          }
          if (scheme != "https") {
            // Basic credentials over plain HTTP only where allowed; the
            // host already passed CheckUrl, so it is in plain_http.
          }
          use_basic = true;
          continue;
        }
        return Fail(
            Code::kNotSupported,
            "unsupported authentication scheme \"" + challenge->scheme + "\"");
      }

      bool redirect = resp->status == 301 || resp->status == 302 ||
                      resp->status == 303 || resp->status == 307 ||
                      resp->status == 308;
      if (redirect && req.follow_redirects) {
        if (++hop > options.max_redirects) {
          return Fail(Code::kIo,
                      req.method + " " + req.url + ": too many redirects");
        }
        auto next = ResolveLocation(url, resp->Header("location"));
        if (!next) {
          return Fail(Code::kIo, req.method + " " + url +
                                     ": redirect without a valid Location");
        }
        url = *next;
        continue;
      }
      return resp;
    }
  }

  Error Failure(const Request& req, const Response& resp) {
    return Error(CodeForStatus(resp.status),
                 req.method + " " + resp.url + ": " + DescribeFailure(resp));
  }

  // Resolves and checks the Location of an upload session.
  Result<std::string> UploadLocation(const Response& resp) {
    auto next = ResolveLocation(resp.url, resp.Header("location"));
    if (!next) {
      return Fail(Code::kIo, "upload: server gave no valid Location");
    }
    auto check = CheckUrl(*next, "upload location");
    if (!check) return Fail(check.error());
    return *next;
  }

  Result<bool> Push(const std::string& repo, const Digest& digest,
                    std::string_view data, int fd,
                    const std::vector<FileExtent>& extents, uint64_t size,
                    const std::string& mount_from,
                    const BlobProgressFn& progress) {
    auto has = Has(repo, digest, nullptr);
    if (!has) return Fail(has.error());
    if (*has) return false;

    // Start a session, asking for a mount when a source repo is known.
    Request start;
    start.method = "POST";
    start.url = RepoUrl(repo, "/blobs/uploads/");
    if (!mount_from.empty() && mount_from != repo) {
      start.url += "?mount=" + UrlEncode(DigestRef(digest)) +
                   "&from=" + UrlEncode(mount_from);
    }
    start.upload = true;
    auto started = Send(start);
    if (!started) return Fail(started.error());
    if (started->status == 201) return false;  // mounted
    if (started->status != 202) return Fail(Failure(start, *started));
    auto location = UploadLocation(*started);
    if (!location) return Fail(location.error());

    // PATCH chunks when large, then PUT the rest with the digest.
    uint64_t sent = 0;
    uint64_t chunk = std::max<uint64_t>(options.upload_chunk, 1);
    BlobProgressFn shifted;
    if (progress) shifted = [&](uint64_t n) { progress(sent + n); };
    while (size - sent > chunk) {
      Request patch;
      patch.method = "PATCH";
      patch.url = *location;
      patch.upload = true;
      patch.fd = fd;
      patch.extents = SliceExtents(extents, sent, chunk);
      patch.size = chunk;
      if (fd < 0) patch.body = data.substr(sent, chunk);
      patch.expected_bytes = chunk;
      patch.progress = &shifted;
      patch.headers = {"Content-Type: application/octet-stream",
                       "Content-Range: " + std::to_string(sent) + "-" +
                           std::to_string(sent + chunk - 1)};
      auto r = Send(patch);
      if (!r) return Fail(r.error());
      if (r->status != 202) return Fail(Failure(patch, *r));
      location = UploadLocation(*r);
      if (!location) return Fail(location.error());
      sent += chunk;
    }
    Request put;
    put.method = "PUT";
    char sep = location->find('?') == std::string::npos ? '?' : '&';
    put.url = *location + sep + "digest=" + UrlEncode(DigestRef(digest));
    put.upload = true;
    put.fd = fd;
    put.extents = SliceExtents(extents, sent, size - sent);
    put.size = size - sent;
    if (fd < 0) put.body = data.substr(sent);
    put.expected_bytes = size - sent;
    put.progress = &shifted;
    put.headers = {"Content-Type: application/octet-stream"};
    auto r = Send(put);
    if (!r) return Fail(r.error());
    if (r->status != 201) return Fail(Failure(put, *r));
    ++stats.blobs_pushed;
    stats.bytes_pushed += size;
    return true;
  }

  Result<bool> Has(const std::string& repo, const Digest& digest,
                   uint64_t* size) {
    Request req;
    req.method = "HEAD";
    req.url = RepoUrl(repo, "/blobs/" + DigestRef(digest));
    req.follow_redirects = true;
    auto resp = Send(req);
    if (!resp) return Fail(resp.error());
    if (resp->status == 404) return false;
    if (resp->status != 200) return Fail(Failure(req, *resp));
    if (size) {
      std::string len = resp->Header("content-length");
      *size = std::strtoull(len.c_str(), nullptr, 10);
    }
    return true;
  }
};

RegistryClient::RegistryClient(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
RegistryClient::~RegistryClient() = default;

Result<std::unique_ptr<RegistryClient>> RegistryClient::Create(
    const Reference& ref, ClientOptions options) {
  GlobalInit();
  auto impl = std::make_unique<Impl>();
  impl->ref = ref;
  impl->authority = ref.Authority();
  impl->scheme =
      options.trust.AllowsPlainHttp(impl->authority) ? "http" : "https";
  impl->base = impl->scheme + "://" + impl->authority;
  impl->options = std::move(options);
  impl->curl = curl_easy_init();
  if (!impl->curl) return Fail(Code::kInternal, "curl_easy_init failed");
  return std::unique_ptr<RegistryClient>(new RegistryClient(std::move(impl)));
}

const std::string& RegistryClient::base_url() const { return impl_->base; }
const TransferStats& RegistryClient::stats() const { return impl_->stats; }

Result<bool> RegistryClient::HasBlob(const std::string& repo,
                                     const Digest& digest, uint64_t* size) {
  return impl_->Has(repo, digest, size);
}

Status RegistryClient::FetchBlob(const std::string& repo,
                                 const Descriptor& want, const BlobSink& sink,
                                 const BlobProgressFn& progress) {
  Sha256 hash;
  uint64_t got = 0;
  BlobSink hashing = [&](std::span<const uint8_t> bytes) -> Status {
    hash.Update(bytes);
    got += bytes.size();
    return sink(bytes);
  };
  Request req;
  req.url = impl_->RepoUrl(repo, "/blobs/" + DigestRef(want.digest));
  req.max_body = want.size;
  req.expected_bytes = want.size;
  req.sink = &hashing;
  req.progress = &progress;
  req.follow_redirects = true;
  auto resp = impl_->Send(req);
  if (!resp) return Fail(resp.error());
  if (resp->status != 200) return Fail(impl_->Failure(req, *resp));
  std::string what = "blob " + DigestRef(want.digest);
  if (got != want.size) {
    return Fail(Code::kVerificationFailed,
                what + ": got " + std::to_string(got) + " bytes, expected " +
                    std::to_string(want.size));
  }
  Digest digest = hash.Finish();
  if (digest != want.digest) {
    return Fail(Code::kVerificationFailed, what + ": content hashes to " +
                                               DigestRef(digest) + "; refused");
  }
  ++impl_->stats.blobs_fetched;
  impl_->stats.bytes_fetched += got;
  return {};
}

Result<std::string> RegistryClient::FetchBlobToString(const std::string& repo,
                                                      const Descriptor& want) {
  if (want.size > impl_->options.max_manifest_bytes * 64) {
    return Fail(Code::kInvalidArgument,
                "blob " + DigestRef(want.digest) + " too large for memory");
  }
  std::string out;
  out.reserve(want.size);
  auto st = FetchBlob(repo, want, [&](std::span<const uint8_t> b) -> Status {
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
    return {};
  });
  if (!st) return Fail(st.error());
  return out;
}

Status RegistryClient::FetchBlobToFile(const std::string& repo,
                                       const Descriptor& want,
                                       const std::string& path,
                                       const BlobProgressFn& progress) {
  auto file = AtomicFile::Create(path, 0644, true);
  if (!file) return Fail(file.error());
  int fd = file->fd();
  auto st = FetchBlob(
      repo, want, [fd](std::span<const uint8_t> b) { return WriteAll(fd, b); },
      progress);
  if (!st) return st;  // the temporary file is removed
  return file->Commit();
}

Result<bool> RegistryClient::PushBlob(const std::string& repo,
                                      const Digest& digest,
                                      std::string_view data,
                                      const std::string& mount_from) {
  return impl_->Push(repo, digest, data, -1, {}, data.size(), mount_from,
                     nullptr);
}

Result<bool> RegistryClient::PushBlobFromFile(
    const std::string& repo, const Digest& digest, int fd,
    const std::vector<FileExtent>& extents, const BlobProgressFn& progress) {
  uint64_t size = 0;
  for (const auto& e : extents) {
    if (AddOverflows(size, e.length, &size)) {
      return Fail(Code::kInvalidArgument, "extent lengths overflow");
    }
  }
  return impl_->Push(repo, digest, {}, fd, extents, size, "", progress);
}

Result<RegistryClient::Manifest> RegistryClient::FetchManifest(
    const std::string& repo, const std::string& target) {
  Request req;
  req.url = impl_->RepoUrl(repo, "/manifests/" + target);
  req.max_body = impl_->options.max_manifest_bytes;
  req.follow_redirects = true;
  req.headers = {"Accept: " + std::string(kOciManifestType) + ", " +
                 std::string(kOciIndexType) +
                 ", application/vnd.docker.distribution.manifest.v2+json"};
  auto resp = impl_->Send(req);
  if (!resp) return Fail(resp.error());
  if (resp->status != 200) return Fail(impl_->Failure(req, *resp));
  Manifest m;
  m.bytes = std::move(resp->body);
  m.media_type = resp->Header("content-type");
  m.media_type = m.media_type.substr(0, m.media_type.find(';'));
  m.digest = Sha256Of(m.bytes);
  impl_->stats.bytes_fetched += m.bytes.size();
  if (target.starts_with("sha256:")) {
    auto want = ParseDigest(target);
    if (!want || *want != m.digest) {
      return Fail(Code::kVerificationFailed,
                  "manifest " + target + ": content hashes to " +
                      DigestRef(m.digest) + "; refused");
    }
  }
  return m;
}

Result<Digest> RegistryClient::PushManifest(const std::string& repo,
                                            const std::string& target,
                                            std::string_view media_type,
                                            std::string_view bytes) {
  if (bytes.size() > impl_->options.max_manifest_bytes) {
    return Fail(Code::kInvalidArgument,
                "manifest of " + std::to_string(bytes.size()) +
                    " bytes is over the registry cap of " +
                    std::to_string(impl_->options.max_manifest_bytes));
  }
  Request req;
  req.method = "PUT";
  req.url = impl_->RepoUrl(repo, "/manifests/" + target);
  req.upload = true;
  req.body = bytes;
  req.headers = {"Content-Type: " + std::string(media_type)};
  auto resp = impl_->Send(req);
  if (!resp) return Fail(resp.error());
  if (resp->status != 201) return Fail(impl_->Failure(req, *resp));
  Digest digest = Sha256Of(bytes);
  std::string echoed = resp->Header("docker-content-digest");
  if (!echoed.empty() && echoed != DigestRef(digest)) {
    return Fail(Code::kVerificationFailed,
                "registry stored the manifest as " + echoed.substr(0, 80) +
                    ", expected " + DigestRef(digest));
  }
  impl_->stats.bytes_pushed += bytes.size();
  return digest;
}

}  // namespace egg

// Exec credential plugins against a real kube-apiserver 1.20: a kubeconfig whose user is an exec
// plugin syncs an informer; a short-lived credential is renewed on later requests; a refused
// token (401) fails that request and makes the next one run the plugin again, as client-go does;
// a client certificate from the plugin authenticates new connections.
#include "informer/apiserver/exec_credential.hpp"

#include <boost/test/unit_test.hpp>

#include "control_plane.hpp"
#include "shared_control_plane.hpp"
#include "io_threads.hpp"
#include "informer/apiserver/http_client.hpp"
#include "informer/apiserver/kubeconfig.hpp"
#include "informer/apiserver/lister_watcher.hpp"
#include "informer/client/shared_informer.hpp"
#include "informer/core/resource.hpp"

#include <boost/asio/use_future.hpp>
#include <boost/beast/http/verb.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>

#include <unistd.h>

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace http = boost::beast::http;
using namespace std::chrono_literals;
using informer::errc;
using informer::http_client;
using informer::testing::cluster;
using informer::testing::cluster_fixture;
using informer::testing::cluster_running;
using informer::testing::control_plane;
using informer::testing::io_threads;

namespace {

std::size_t lines_in(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

// A temp folder holding a plugin script that counts its runs.
struct plugin_fixture {
  plugin_fixture() {
    std::string pattern = (fs::temp_directory_path() / "exec-live-test-XXXXXX").string();
    BOOST_TEST_REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
  }
  ~plugin_fixture() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }

  // The plugin: on run n (from 1) answers `token_of_run` (a bash expression over $n), with an
  // expiry `expires_in` seconds ahead unless empty.
  std::string plugin(const std::string& token_of_run, const std::string& expires_in = "") const {
    const fs::path p = dir / "plugin.sh";
    std::ofstream out(p, std::ios::trunc);
    out << "#!/bin/bash\n"
        << "echo run >> '" << counter().string() << "'\n"
        << "n=$(wc -l < '" << counter().string() << "')\n"
        << "tok=" << token_of_run << "\n"
        << "exp=''\n";
    if (!expires_in.empty()) {
      out << "exp=\",\\\"expirationTimestamp\\\":\\\"$(date -u -d '+" << expires_in
          << " seconds' +%Y-%m-%dT%H:%M:%SZ)\\\"\"\n";
    }
    out << "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
           "\"status\":{\"token\":\"%s\"%s}}' \"$tok\" \"$exp\"\n";
    out.close();
    fs::permissions(p, fs::perms::owner_all);
    return p.string();
  }

  fs::path counter() const { return dir / "runs.txt"; }

  informer::rest_config config_with(const std::string& command) const {
    return {.server = cluster->apiserver_url(),
            .tls = {.ca_file = cluster->ca_file()},
            .qps = 0,
            .exec = informer::exec_config{.api_version = "client.authentication.k8s.io/v1",
                                          .command = command,
                                          .interactive_mode = informer::exec_interactive_mode::never}};
  }

  fs::path dir;
};

http_client make_client(io_threads& io, const informer::rest_config& config) {
  auto c = http_client::create(io.ctx.get_executor(), config);
  BOOST_TEST_REQUIRE(c.has_value(), "http_client::create failed: " << c.error().what());
  return *c;
}

std::tuple<informer::error, informer::http_response> get(http_client& client, std::string path) {
  auto f = client.async_request(http::verb::get, std::move(path), {}, {}, asio::use_future);
  BOOST_TEST_REQUIRE((f.wait_for(60s) == std::future_status::ready), "request did not complete");
  return f.get();
}

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(cluster_fixture);

BOOST_AUTO_TEST_SUITE(exec_credential_live, *boost::unit_test::precondition(cluster_running))

BOOST_FIXTURE_TEST_CASE(a_kubeconfig_exec_user_syncs_an_informer, plugin_fixture) {
  plugin("'" + cluster->admin_token() + "'");
  const fs::path kubeconfig = dir / "kubeconfig";
  {
    std::ofstream out(kubeconfig);
    out << "apiVersion: v1\nkind: Config\n"
        << "clusters:\n- name: c\n  cluster:\n    server: " << cluster->apiserver_url()
        << "\n    certificate-authority: " << cluster->ca_file() << "\n"
        << "users:\n- name: u\n  user:\n    exec:\n"
        << "      apiVersion: client.authentication.k8s.io/v1\n"
        << "      command: ./plugin.sh\n"  // relative to the kubeconfig's folder
        << "      interactiveMode: IfAvailable\n"
        << "      provideClusterInfo: true\n"
        << "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n";
  }
  auto config = informer::load_kubeconfig({.files = {kubeconfig}});
  BOOST_TEST_REQUIRE(config.has_value(), config.error().what());
  BOOST_TEST_REQUIRE(config->exec.has_value());
  BOOST_TEST(lines_in(counter()) == 0u);  // loading runs nothing

  io_threads io;
  auto client = make_client(io, *config);
  auto lw = informer::apiserver_lister_watcher::create(client, informer::parse_resource("namespaces").value());
  BOOST_TEST_REQUIRE(lw.has_value(), lw.error().what());
  auto inf = informer::shared_informer::create(*lw);
  inf->run();
  BOOST_TEST_REQUIRE(informer::wait_for_cache_sync({inf}, 30s), "the informer did not sync");
  BOOST_TEST(inf->get_store()->get_by_key("default") != nullptr);
  inf->stop();
  // The list and the watch shared one run: the token has no expiry.
  BOOST_TEST(lines_in(counter()) == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_short_lived_credential_is_renewed_on_later_requests, plugin_fixture) {
  // Expires within the 10 s renewal margin: each request runs the plugin again.
  auto config = config_with(plugin("'" + cluster->admin_token() + "'", "5"));
  io_threads io;
  auto client = make_client(io, config);
  for (int i = 1; i <= 3; ++i) {
    auto [e, r] = get(client, "/api/v1/namespaces/default");
    BOOST_TEST_REQUIRE(!e, e.what());
    BOOST_TEST(lines_in(counter()) == static_cast<std::size_t>(i));
  }
  // An hour ahead: kept.
  fs::remove(counter());
  auto lasting = make_client(io, config_with(plugin("'" + cluster->admin_token() + "'", "3600")));
  for (int i = 0; i < 3; ++i) BOOST_TEST(!std::get<0>(get(lasting, "/api/v1/namespaces/default")));
  BOOST_TEST(lines_in(counter()) == 1u);
}

BOOST_FIXTURE_TEST_CASE(a_refused_token_fails_the_request_and_the_next_one_runs_the_plugin, plugin_fixture) {
  // Run 1 answers a wrong token, later runs the right one.
  auto config = config_with(plugin("$([ \"$n\" -eq 1 ] && echo wrong-token || echo '" + cluster->admin_token() + "')"));
  io_threads io;
  auto client = make_client(io, config);
  auto [e1, r1] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST(e1.code() == make_error_code(errc::unauthorized), e1.what());
  BOOST_TEST(!e1.detail().empty());
  BOOST_TEST(lines_in(counter()) == 1u);  // not resent: client-go does not retry either
  auto [e2, r2] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST(!e2, e2.what());
  BOOST_TEST(r2.status_code == 200u);
  BOOST_TEST(lines_in(counter()) == 2u);
  auto [e3, r3] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST(!e3, e3.what());
  BOOST_TEST(lines_in(counter()) == 2u);
}

BOOST_FIXTURE_TEST_CASE(a_plugin_that_always_gives_a_wrong_token_runs_once_per_request, plugin_fixture) {
  io_threads io;
  auto client = make_client(io, config_with(plugin("wrong-token")));
  for (int i = 1; i <= 3; ++i) {
    auto [e, r] = get(client, "/api/v1/namespaces/default");
    BOOST_TEST(e.code() == make_error_code(errc::unauthorized), e.what());
    BOOST_TEST(lines_in(counter()) == static_cast<std::size_t>(i));
  }
}

BOOST_FIXTURE_TEST_CASE(a_failing_plugin_fails_the_request_with_its_error, plugin_fixture) {
  io_threads io;
  auto client = make_client(io, config_with(plugin("x; echo boom >&2; exit 3")));
  auto [e, r] = get(client, "/api/v1/namespaces/default");
  BOOST_TEST_REQUIRE(static_cast<bool>(e));
  BOOST_TEST(e.code() == make_error_code(errc::invalid_config), e.what());
  BOOST_TEST(e.detail().find("exited with code 3") != std::string::npos, e.detail());
  BOOST_TEST(e.detail().find("boom") != std::string::npos, e.detail());
  BOOST_TEST(e.detail().find("/api/v1/namespaces/default") != std::string::npos, e.detail());
}

BOOST_FIXTURE_TEST_CASE(a_client_certificate_from_the_plugin_authenticates, plugin_fixture) {
  const fs::path p = dir / "cert-plugin.sh";
  {
    std::ofstream out(p);
    out << "#!/bin/bash\necho run >> '" << counter().string() << "'\n"
        << "exec python3 -c 'import json, sys; print(json.dumps({\"apiVersion\": "
           "\"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\", \"status\": "
           "{\"clientCertificateData\": open(sys.argv[1]).read(), \"clientKeyData\": open(sys.argv[2]).read()}}))' '"
        << cluster->admin_cert() << "' '" << cluster->admin_key() << "'\n";
  }
  fs::permissions(p, fs::perms::owner_all);
  io_threads io;
  auto client = make_client(io, config_with(p.string()));
  for (int i = 0; i < 2; ++i) {
    auto [e, r] = get(client, "/api/v1/namespaces/kube-system");
    BOOST_TEST_REQUIRE(!e, e.what());
    BOOST_TEST(r.status_code == 200u);
  }
  BOOST_TEST(lines_in(counter()) == 1u);
  BOOST_TEST(client.stats().connections_opened == 1u);  // the second request reused the connection
}

BOOST_AUTO_TEST_SUITE_END()

// tests/support/shared_control_plane.hpp
//
// One control plane (etcd + kube-apiserver) for a whole integration test file, since each takes
// seconds to start: the file's global fixture starts it when the binaries are available, its
// suites run only then, and its cases reach it through `cluster`:
//   BOOST_TEST_GLOBAL_FIXTURE(informer::testing::cluster_fixture);
//   BOOST_AUTO_TEST_SUITE(name, *boost::unit_test::precondition(informer::testing::cluster_running))
#pragma once

#include "control_plane.hpp"

#include <boost/test/unit_test.hpp>

namespace informer::testing {

/// The file's control plane; null before the fixture ran or when the binaries are missing.
inline control_plane* cluster = nullptr;

struct cluster_fixture {
  cluster_fixture() {
    if (control_plane::available()) cluster = new control_plane();
  }
  ~cluster_fixture() {
    delete cluster;
    cluster = nullptr;
  }
  cluster_fixture(const cluster_fixture&) = delete;
  cluster_fixture& operator=(const cluster_fixture&) = delete;
};

/// A precondition: the file's control plane runs.
inline bool cluster_running(boost::unit_test::test_unit_id) { return cluster != nullptr; }

}  // namespace informer::testing

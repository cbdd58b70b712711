// SPDX-License-Identifier: Apache-2.0
// Tests for renderMetrics: the Prometheus text a scraper and the dashboard read.
#include "ctrl/lastmiled/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace lastmile::ctrl {
namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

TEST(MetricsTest, EveryFailureReasonHasASeriesEvenAtZero) {
    MetricsInput in;
    in.dataplane.failures[static_cast<std::size_t>(dataplane::Failure::VerifyFailed)] = 3;
    const std::string text = renderMetrics(in);
    EXPECT_TRUE(contains(text, "lastmile_failures_total{reason=\"verify_failed\"} 3\n"));
    EXPECT_TRUE(contains(text, "lastmile_failures_total{reason=\"fail_closed\"} 0\n"));
    EXPECT_TRUE(contains(text, "# TYPE lastmile_failures_total counter\n"));
}

TEST(MetricsTest, HeapInUseIsAGauge) {
    MetricsInput in;
    in.heapInUseBytes = 123456;
    const std::string text = renderMetrics(in);
    EXPECT_TRUE(contains(text, "# TYPE lastmile_heap_in_use_bytes gauge\n"));
    EXPECT_TRUE(contains(text, "lastmile_heap_in_use_bytes 123456\n"));
}

TEST(MetricsTest, HandshakeHistogramBucketsAreCumulative) {
    MetricsInput in;
    in.dataplane.handshakeSeconds.buckets[0] = 2;  // <= 1 ms
    in.dataplane.handshakeSeconds.buckets[3] = 1;  // <= 10 ms
    in.dataplane.handshakeSeconds.count = 3;
    in.dataplane.handshakeSeconds.sum = 0.012;
    const std::string text = renderMetrics(in);
    EXPECT_TRUE(contains(text, "lastmile_handshake_duration_seconds_bucket{le=\"0.001\"} 2\n"));
    EXPECT_TRUE(contains(text, "lastmile_handshake_duration_seconds_bucket{le=\"0.01\"} 3\n"));
    EXPECT_TRUE(contains(text, "lastmile_handshake_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
    EXPECT_TRUE(contains(text, "lastmile_handshake_duration_seconds_count 3\n"));
}

TEST(MetricsTest, LabelValuesFromManifestsAreEscaped) {
    MetricsInput in;
    dataplane::ServiceKey key{"team \"a\"", {"ns\\x", "svc\nname", 443}};
    in.dataplane.services[key].connections = 7;
    const std::string text = renderMetrics(in);
    EXPECT_TRUE(contains(text, "lastmile_service_connections_total{project=\"team \\\"a\\\"\","
                               "namespace=\"ns\\\\x\",service=\"svc\\nname\",port=\"443\"} 7\n"))
        << text;
}

TEST(MetricsTest, InterceptionSeriesAppearOnlyWhenInterceptionIsConfigured) {
    MetricsInput in;
    const route::ListenerId id{"default", "ns", "gw", "tcp"};
    in.dataplane.listeners[id].connections = 5;
    EXPECT_FALSE(contains(renderMetrics(in), "intercept")) << "not configured: no series";

    const auto host = static_cast<std::size_t>(dataplane::InterceptMode::Host);
    in.dataplane.listeners[id].intercepted[host] = 3;
    in.dataplane.interception[dataplane::InterceptMode::Host] = {true, {7, 1}};
    in.dataplane.interception[dataplane::InterceptMode::Routed] = {false, {}};
    const std::string text = renderMetrics(in);
    const std::string labels =
        "project=\"default\",namespace=\"ns\",gateway=\"gw\",listener=\"tcp\"";
    EXPECT_TRUE(contains(text, "# TYPE lastmile_intercepted_connections_total counter\n"));
    EXPECT_TRUE(contains(text, "lastmile_intercepted_connections_total{" + labels +
                                   ",mode=\"host\"} 3\n"))
        << text;
    EXPECT_TRUE(contains(text, "lastmile_intercepted_connections_total{" + labels +
                                   ",mode=\"routed\"} 0\n"));
    EXPECT_TRUE(contains(text, "lastmile_interception_usable{mode=\"host\"} 1\n"));
    EXPECT_TRUE(contains(text, "lastmile_interception_usable{mode=\"routed\"} 0\n"));
    EXPECT_TRUE(contains(text, "lastmile_interception_redirects_total{mode=\"host\"} 7\n"));
    EXPECT_TRUE(contains(text, "lastmile_interception_refused_total{mode=\"host\"} 1\n"));
    EXPECT_TRUE(contains(text, "# HELP lastmile_interception_refused_total "));
}

TEST(MetricsTest, ResumptionRatioIsZeroBeforeAnyHandshake) {
    MetricsInput in;
    EXPECT_TRUE(contains(renderMetrics(in), "lastmile_resumption_ratio 0\n"));
    in.dataplane.handshakesFull = 1;
    in.dataplane.handshakesResumed = 3;
    EXPECT_TRUE(contains(renderMetrics(in), "lastmile_resumption_ratio 0.75\n"));
}

// An engine that only reports what a probe found.
class ProbedEngine final : public drivers::RecordEngine {
public:
    ProbedEngine(std::string name, drivers::EngineProbe probe)
        : name_(std::move(name)), probe_(std::move(probe)) {}
    std::string_view name() const noexcept override { return name_; }
    drivers::EngineProbe probe() const override { return probe_; }
    bool serves(drivers::Offload) const noexcept override { return true; }
    bool keepsTickets() const noexcept override { return true; }
    drivers::Attach attach(SSL*, int, drivers::Wire&) override {
        return drivers::Attach::declined("reports only");
    }

private:
    std::string name_;
    drivers::EngineProbe probe_;
};

TEST(MetricsTest, EngineFeaturesDevicesAndDeclinesAreExportedInTheConfiguredOrder) {
    std::vector<std::unique_ptr<drivers::RecordEngine>> list;
    list.push_back(std::make_unique<ProbedEngine>(
        "nic", drivers::EngineProbe{false, "none", {}, {{"eth0", {{"tx", true}, {"rx", false}}}}}));
    list.push_back(std::make_unique<ProbedEngine>(
        "kernel", drivers::EngineProbe{true, "ulp ok", {{"ulp", true}, {"rekey", false}}, {}}));
    const drivers::EngineSet engines = drivers::EngineSet::of(std::move(list));
    MetricsInput in;
    in.engines = &engines;
    in.dataplane.engineDeclines[{"kernel", "cipher"}] = 2;
    const std::string text = renderMetrics(in);
    EXPECT_TRUE(contains(text, "lastmile_record_engine_usable{engine=\"nic\"} 0\n"
                               "lastmile_record_engine_usable{engine=\"kernel\"} 1\n"))
        << text;
    EXPECT_TRUE(contains(text, "lastmile_record_engine_feature{engine=\"kernel\",feature=\"ulp\"} 1\n"));
    EXPECT_TRUE(contains(text, "lastmile_record_engine_feature{engine=\"kernel\",feature=\"rekey\"} 0\n"));
    EXPECT_TRUE(contains(
        text, "lastmile_record_engine_device{engine=\"nic\",device=\"eth0\",feature=\"tx\"} 1\n"));
    EXPECT_TRUE(contains(
        text, "lastmile_record_engine_device{engine=\"nic\",device=\"eth0\",feature=\"rx\"} 0\n"));
    EXPECT_TRUE(contains(text, "lastmile_engine_declines_total{engine=\"kernel\",reason=\"cipher\"} 2\n"));
}

}  // namespace
}  // namespace lastmile::ctrl
// SPDX-License-Identifier: Apache-2.0
// The engine registry: the configured order, refused names, and which engines prepare a
// profile's SSL_CTX.
#include "drivers/engines.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/tls/openssl_handles.h"

namespace lastmile::drivers {
namespace {

std::vector<std::string> names(const EngineSet& set) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < set.size(); ++i) {
        out.emplace_back(set.at(i).name());
    }
    return out;
}

TEST(EngineSetTest, DefaultIsEveryBuiltEngineCheapestFirstWithTheFloorLast) {
    auto set = EngineSet::create({});
    ASSERT_TRUE(set) << set.error().message();
    const std::vector<std::string> expected(builtEngines().begin(), builtEngines().end());
    EXPECT_EQ(names(*set), expected);
    EXPECT_EQ(names(*set).back(), "openssl");
    EXPECT_TRUE(set->usable(set->size() - 1)) << "the floor works everywhere";
}

TEST(EngineSetTest, KeepsTheConfiguredOrder) {
    auto set = EngineSet::create({"openssl", "kernel"});
    ASSERT_TRUE(set) << set.error().message();
    EXPECT_EQ(names(*set), (std::vector<std::string>{"openssl", "kernel"}));
}

TEST(EngineSetTest, RefusesUnknownAndRepeatedNames) {
    auto unknown = EngineSet::create({"kernel", "quantum"});
    ASSERT_FALSE(unknown);
    EXPECT_EQ(unknown.error().code(), make_error_code(Errc::Invalid));
    std::string built;
    for (auto name : builtEngines()) {
        built += (built.empty() ? "" : ", ") + std::string(name);
    }
    EXPECT_NE(unknown.error().context().find("\"quantum\" is not built into this lastmiled "
                                             "(built: " + built + ")"),
              std::string::npos)
        << unknown.error().context();
    auto twice = EngineSet::create({"openssl", "kernel", "openssl"});
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error().context(), "record engine \"openssl\" is listed twice");
}

// Counts what the compiler asks of it.
class CountingEngine final : public RecordEngine {
public:
    CountingEngine(std::string name, bool usable, Offload own, int& prepared)
        : name_(std::move(name)), usable_(usable), own_(own), prepared_(prepared) {}
    std::string_view name() const noexcept override { return name_; }
    EngineProbe probe() const override { return {usable_, "test", {}, {}}; }
    bool serves(Offload o) const noexcept override { return o == Offload::Auto || o == own_; }
    bool keepsTickets() const noexcept override { return false; }
    void prepareContext(SSL_CTX*, const ContextFacts&) const override { ++prepared_; }
    Attach attach(SSL*, int, Wire&) override { return Attach::declined("test"); }

private:
    std::string name_;
    bool usable_;
    Offload own_;
    int& prepared_;
};

// A profile's context carries only what the engines its sessions may reach asked for: with
// `offload: userspace` the kernel engine's keylog hook is never installed.
TEST(EngineSetTest, OnlyUsableEnginesServingThePreferencePrepareTheContext) {
    int kernel = 0;
    int nic = 0;
    std::vector<std::unique_ptr<RecordEngine>> list;
    list.push_back(std::make_unique<CountingEngine>("nic", false, Offload::Nic, nic));
    list.push_back(std::make_unique<CountingEngine>("kernel", true, Offload::Kernel, kernel));
    const EngineSet set = EngineSet::of(std::move(list));
    tls::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    for (Offload o : kOffloads) {
        set.prepareContext(ctx.get(), o, {});
    }
    EXPECT_EQ(kernel, 2) << "auto and kernel";
    EXPECT_EQ(nic, 0) << "unusable on this host";
}

}  // namespace
}  // namespace lastmile::drivers

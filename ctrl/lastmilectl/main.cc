// SPDX-License-Identifier: Apache-2.0
// lastmilectl: the operator's kubectl-shaped CLI for lastmiled.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "ctrl/lastmilectl/commands.h"

int main(int argc, char** argv) {
    using namespace lastmile::ctl;
    CliEnv env{std::cin, std::cout, std::cerr};
    if (const char* server = std::getenv("LASTMILE_SERVER"); server != nullptr && *server != '\0') {
        env.defaultServer = server;
    }
    env.now = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    env.connect = [](const std::string& server) -> lastmile::Result<std::unique_ptr<Transport>> {
        auto t = CurlTransport::create(server);
        if (!t) {
            return lastmile::fail(std::move(t).error());
        }
        return std::unique_ptr<Transport>(std::move(*t));
    };
    std::vector<std::string> args(argv + 1, argv + argc);
    return runCli(args, env);
}

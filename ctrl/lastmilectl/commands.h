// SPDX-License-Identifier: Apache-2.0
// lastmilectl's command line: parsing and the commands, with every outside effect injected.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "ctrl/lastmilectl/client.h"
#include "base/result.h"

namespace lastmile::ctl {

inline constexpr const char* kDefaultServer = "unix:///run/lastmile/api.sock";

// What a run of the CLI may touch. main() wires the real process; tests pass string streams,
// a fixed clock and a fake transport.
struct CliEnv {
    std::istream& in;                            // `apply -f -`
    std::ostream& out;                           // results
    std::ostream& err;                           // errors and "No resources found"
    std::string defaultServer = kDefaultServer;  // LASTMILE_SERVER when set
    std::int64_t now = 0;                        // Unix seconds, for AGE
    // Opens a transport for --server; called at most once per run, and only by commands
    // that talk to lastmiled (explain, api-resources and version never do).
    std::function<Result<std::unique_ptr<Transport>>(const std::string& server)> connect;
};

// Runs one command line (`args` excludes the program name). Returns the exit status: 0 on
// success (and for --help), 1 when anything failed. Never throws.
int runCli(const std::vector<std::string>& args, CliEnv& env);

}  // namespace lastmile::ctl

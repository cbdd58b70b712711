// SPDX-License-Identifier: Apache-2.0
// HTTP error answers for connections lastmile refuses.
#include "dataplane/worker/http_reply.h"

namespace lastmile::dataplane {
namespace {

std::string_view statusText(int status) {
    switch (status) {
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        default:
            return "Error";
    }
}

}  // namespace

std::string httpErrorResponse(int status, std::string_view reason) {
    std::string body;
    body.reserve(reason.size() + 1);
    for (char ch : reason) {
        body.push_back(ch == '\r' || ch == '\n' ? ' ' : ch);
    }
    body.push_back('\n');
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(statusText(status)) +
                      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    out += body;
    return out;
}

}  // namespace lastmile::dataplane

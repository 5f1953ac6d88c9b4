// Loopback helpers for tests: every port is chosen free at run time.
#pragma once

namespace scenefarm::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close), not one
// this process was given before (unless 100 tries in a row give only such ports). Free only until
// someone binds it: a test running beside this one can take it first (StartRedisProcess in
// redis_server.h checks for that).
int FreePort();

// True once something accepts TCP connections on 127.0.0.1:port.
bool PortOpen(int port);

// A TCP connection to 127.0.0.1:port whose reads give up after `read_guard_seconds` (a guard
// against a hung server, not a timing): its fd, or -1 when nothing accepts. The caller closes it.
int ConnectLoopback(int port, int read_guard_seconds);

}  // namespace scenefarm::testing

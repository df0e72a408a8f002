// orchestrate-server: the HTTP server under test. See server/README.md.
#include <cstdio>
#include <string>

#include "Options.h"
#include "Server.h"

int main(int argc, char** argv) {
  orch::Options options;
  std::string error;
  switch (orch::parseOptions(argc, argv, &options, &error)) {
    case orch::ParseOutcome::kHelp:
    case orch::ParseOutcome::kVersion:  // the server has no --version: help, as -h
      std::fputs(orch::usage().c_str(), stdout);
      return 0;
    case orch::ParseOutcome::kError:
      std::fprintf(stderr, "orchestrate-server: %s\n%s", error.c_str(), orch::usage().c_str());
      return 2;
    case orch::ParseOutcome::kOk:
      break;
  }
  orch::Server server(std::move(options));
  return server.run();
}

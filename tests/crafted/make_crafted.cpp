// make_crafted DIR — writes tests/crafted/crafted_gguf.h's files into DIR:
// ok.gguf (a valid tiny model) and one BAD-NAME.gguf per crafted case, with
// BAD-NAME.expect holding a part of the error line the CLI must print.
#include <cstdio>
#include <fstream>
#include <string>

#include "crafted_gguf.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_crafted DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  try {
    ms::crafted::write_tiny_gguf(dir + "/ok.gguf", ms::crafted::tiny_meta());
    for (const auto& c : ms::crafted::cases()) {
      ms::crafted::write_tiny_gguf(dir + "/bad-" + c.name + ".gguf", ms::crafted::apply(c));
      std::ofstream(dir + "/bad-" + std::string(c.name) + ".expect") << c.message << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_crafted: %s\n", e.what());
    return 1;
  }
  return 0;
}

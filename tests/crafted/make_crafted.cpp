// make_crafted DIR — writes tests/crafted/crafted_gguf.h's files into DIR:
// ok.gguf (a valid tiny model) and one bad-NAME.gguf per crafted case, with
// bad-NAME.expect holding a part of the error line the CLI must print.
//
// make_crafted --seeds CORPUS — writes the fuzzers' seed corpora
// (tests/fuzz/corpus/{gguf,safetensors}): tiny models in several weight
// types, the crafted files, and a tiny Hugging Face checkpoint framed as the
// safetensors target reads it (4-byte config length, config.json, weights).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "crafted_gguf.h"
#include "model/synth_hf.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_crafted(const std::string& dir) {
  ms::crafted::write_tiny_gguf(dir + "/ok.gguf", ms::crafted::tiny_meta());
  for (const auto& c : ms::crafted::cases()) {
    ms::crafted::write_tiny_gguf(dir + "/bad-" + c.name + ".gguf", ms::crafted::apply(c));
    std::ofstream(dir + "/bad-" + std::string(c.name) + ".expect") << c.message << "\n";
  }
}

void write_seeds(const std::string& corpus) {
  namespace fs = std::filesystem;
  const std::string g = corpus + "/gguf", s = corpus + "/safetensors";
  fs::create_directories(g);
  fs::create_directories(s);
  write_crafted(g);
  for (const auto& e : fs::directory_iterator(g))
    if (e.path().extension() == ".expect") fs::remove(e.path());
  // Block-32 types at hidden 32, and Q4_K/Q6_K (256-element super-blocks) at hidden 256.
  ms::crafted::Meta m32 = ms::crafted::tiny_meta();
  m32.u64["embedding_length"] = 32;
  m32.u64["feed_forward_length"] = 32;
  m32.u64["attention.key_length"] = 16;
  const std::pair<const char*, ms::DType> small[] = {
      {"q8_0", ms::DType::Q8_0}, {"q4_0", ms::DType::Q4_0}, {"f16", ms::DType::F16}, {"bf16", ms::DType::BF16}};
  for (const auto& [name, t] : small) ms::crafted::write_tiny_gguf(g + "/ok-" + name + ".gguf", m32, 2, t);
  ms::crafted::Meta m256 = m32;
  m256.u64["embedding_length"] = 256;
  m256.u64["feed_forward_length"] = 256;
  m256.u64["attention.key_length"] = 128;
  ms::crafted::write_tiny_gguf(g + "/ok-q4_k.gguf", m256, 3, ms::DType::Q4_K);

  ms::test::SynthSpec spec;
  spec.vocab = 32;
  spec.hidden = 8;
  spec.ffn = 8;
  spec.layers = 1;
  spec.heads = 2;
  spec.kv_heads = 1;
  spec.head_dim = 4;
  spec.experts = 2;
  spec.top_k = 1;
  spec.dtype = "F32";
  const std::string tmp = s + "/.tmp";
  fs::create_directories(tmp);
  ms::test::write_synth(spec, tmp);
  const std::string cfg = slurp(tmp + "/config.json"), st = slurp(tmp + "/model.safetensors");
  const uint32_t n = uint32_t(cfg.size());
  std::ofstream out(s + "/tiny-mixtral.bin", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&n), 4);
  out << cfg << st;
  fs::remove_all(tmp);
}

}  // namespace

int main(int argc, char** argv) {
  const bool seeds = argc == 3 && std::string(argv[1]) == "--seeds";
  if (argc != 2 && !seeds) {
    std::fprintf(stderr, "usage: make_crafted DIR | make_crafted --seeds CORPUS\n");
    return 2;
  }
  try {
    if (seeds)
      write_seeds(argv[2]);
    else
      write_crafted(argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_crafted: %s\n", e.what());
    return 1;
  }
  return 0;
}

// moeserve generate — prints the continuation of a prompt.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "commands.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace ms::cli {

namespace {

struct GenerateArgs {
  RuntimeOptions rt;
  std::string prompt, ids, chat;
  int32_t n = 64;
  SamplingParams sp;
  int64_t seed = -1;
  bool json = false;
};

void run_generate(const GenerateArgs& a) {
  // A stop string is matched against the decoded (valid UTF-8) text, so one
  // that is not valid UTF-8 could never match: refused before loading.
  for (const std::string& s : a.sp.stop)
    if (!is_valid_utf8(s)) bad_input("--stop: a stop string is not valid UTF-8 (stop strings match the decoded text)");
  if (!a.prompt.empty() && !is_valid_utf8(a.prompt)) bad_input("-p: the prompt is not valid UTF-8");
  RuntimeOptions ro = resolve(a.rt);
  ro.max_batch = 1;
  auto rt = load_runtime(ro);
  Request req;
  if (!a.ids.empty()) {
    req.prompt = parse_ids(a.ids, "--ids");
    for (int32_t id : req.prompt)
      if (id >= rt->desc.cfg.vocab_size)
        bad_input("--ids: token id " + std::to_string(id) + " outside the vocabulary (size " +
                  std::to_string(rt->desc.cfg.vocab_size) + ")");
  } else if (!a.chat.empty()) {
    req.prompt = encode_chat(need_tokenizer(*rt, "--chat"), read_chat_file(a.chat));
  } else {
    req.prompt = need_tokenizer(*rt, "-p").encode(a.prompt);
    req.prompt.insert(req.prompt.begin(), rt->desc.cfg.bos_id);
  }
  req.sampling = a.sp;
  req.sampling.max_tokens = a.n;
  if (a.seed >= 0) {
    req.sampling.has_seed = true;
    req.sampling.seed = uint64_t(a.seed);
  }
  std::vector<int32_t> out_ids;
  std::string text, error;
  const bool stream = !a.json;
  const int32_t eos = rt->desc.cfg.eos_id;
  req.on_event = [&](const StreamEvent& ev) {
    // The end-of-sequence token ends the completion and is not part of it.
    if (ev.token >= 0 && (ev.token != eos || a.sp.ignore_eos)) out_ids.push_back(ev.token);
    text += ev.text;
    if (stream && !ev.text.empty()) {
      std::fwrite(ev.text.data(), 1, ev.text.size(), stdout);
      std::fflush(stdout);
    }
    if (ev.finish == FinishReason::Error) error = ev.error;
  };
  std::vector<Request> reqs;
  const std::vector<int32_t> prompt = req.prompt;
  reqs.push_back(std::move(req));
  rt->engine->run_to_completion(std::move(reqs));
  if (!error.empty()) bad_input(error);
  if (a.json) {
    nlohmann::json j = {{"prompt_ids", prompt}, {"ids", out_ids}, {"text", text}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "\n";
  }
}

}  // namespace

void add_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  a->sp.temperature = 0.0f;
  CLI::App* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt");
  add_model_options(cmd, a->rt);
  auto* p = cmd->add_option("-p,--prompt", a->prompt, "Prompt text (BOS is added)");
  auto* i = cmd->add_option("--ids", a->ids, "Prompt token ids, comma-separated (used as given)");
  auto* c = cmd->add_option("--chat", a->chat, "JSON file with an OpenAI-style messages array");
  p->excludes(i)->excludes(c);
  i->excludes(c);
  cmd->add_option("-n,--max-tokens", a->n, "Tokens to generate (default 64)")->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--temperature", a->sp.temperature, "Sampling temperature; 0 = greedy (default 0)")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--top-k", a->sp.top_k, "Keep the k most likely tokens (0 = off)")->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--top-p", a->sp.top_p, "Nucleus sampling mass (0, 1]")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--min-p", a->sp.min_p, "Drop tokens below min_p * p(max)")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", a->seed, "Random seed (same seed, same output)")->check(CLI::Range(int64_t(0), INT64_MAX));
  cmd->add_option("--repetition-penalty", a->sp.repetition_penalty, "HF-style repetition penalty (1 = off)")
      ->check(CLI::Range(0.01, 100.0));
  cmd->add_option("--presence-penalty", a->sp.presence_penalty, "OpenAI presence penalty")->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("--frequency-penalty", a->sp.frequency_penalty, "OpenAI frequency penalty")->check(CLI::Range(-2.0, 2.0));
  cmd->add_option("--stop", a->sp.stop, "Stop string (repeatable)");
  cmd->add_flag("--ignore-eos", a->sp.ignore_eos, "Keep generating after the end-of-sequence token");
  cmd->add_flag("--json", a->json, "Print one JSON object {prompt_ids, ids, text}");
  cmd->callback([a] {
    if (a->prompt.empty() && a->ids.empty() && a->chat.empty()) bad_input("generate: give one of -p, --ids or --chat");
    if (a->sp.top_p <= 0.0f) bad_input("--top-p must be in (0, 1]");
    run_generate(*a);
  });
}

}  // namespace ms::cli

#include "tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/error.h"

namespace ms {

Tokenizer::Tokenizer() : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const auto st = t->sp_->Load(path);
  if (!st.ok()) bad_input(path + ": cannot load SentencePiece model: " + st.ToString());
  t->build_tables();
  return t;
}

std::unique_ptr<Tokenizer> Tokenizer::from_serialized_proto(const std::string& bytes, const std::string& origin) {
  std::unique_ptr<Tokenizer> t(new Tokenizer());
  const auto st = t->sp_->LoadFromSerializedProto(bytes);
  if (!st.ok()) bad_input(origin + ": cannot build tokenizer: " + st.ToString());
  t->build_tables();
  return t;
}

void Tokenizer::build_tables() {
  const int n = sp_->GetPieceSize();
  bytes_.resize(size_t(n));
  marker_.assign(size_t(n), false);
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK
  for (int i = 0; i < n; ++i) {
    if (sp_->IsUnknown(i)) {  // the model's unk surface, " ⁇ " by default
      std::string surface;
      bytes_[i] = sp_->Decode(std::vector<int>{i}, &surface).ok() ? surface : " \xE2\x81\x87 ";
      continue;
    }
    if (sp_->IsControl(i)) continue;  // <s>, </s>: no text
    const std::string p = sp_->IdToPiece(i);
    if (sp_->IsByte(i) && p.size() == 6 && p.rfind("<0x", 0) == 0) {
      bytes_[i] = std::string(1, char(std::stoi(p.substr(3, 2), nullptr, 16)));
      continue;
    }
    marker_[size_t(i)] = true;
    std::string out;
    for (size_t k = 0; k < p.size();) {
      if (p.compare(k, kSpace.size(), kSpace) == 0) {
        out += ' ';
        k += kSpace.size();
      } else {
        out += p[k++];
      }
    }
    bytes_[i] = std::move(out);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  if (!is_valid_utf8(text)) bad_input("text is not valid UTF-8");
  std::vector<int> ids;
  const auto st = sp_->Encode(text, &ids);
  if (!st.ok()) bad_input("tokenizer: " + st.ToString());
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) bad_input("token id " + std::to_string(id) + " outside the vocabulary");
    v.push_back(id);
  }
  std::string out;
  const auto st = sp_->Decode(v, &out);
  if (!st.ok()) bad_input("tokenizer: " + st.ToString());
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) >= bytes_.size()) return "";
  return bytes_[size_t(id)];
}

bool Tokenizer::leading_space_is_marker(int32_t id) const {
  return id >= 0 && size_t(id) < marker_.size() && marker_[size_t(id)];
}

std::string Tokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return "";
  return sp_->IdToPiece(id);
}

int32_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int32_t Tokenizer::bos_id() const { return sp_->bos_id(); }
int32_t Tokenizer::eos_id() const { return sp_->eos_id(); }
bool Tokenizer::is_control(int32_t id) const { return id >= 0 && id < vocab_size() && sp_->IsControl(id); }

namespace {
// Length of the UTF-8 sequence starting at s[i] if valid and complete, 0 if
// invalid, -1 if valid so far but truncated by the end of s.
int utf8_seq(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int len;
  uint32_t min;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
  else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
  else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
  else return 0;
  uint32_t cp = c & (0x3F >> (len - 1));
  for (int k = 1; k < len; ++k) {
    if (i + size_t(k) >= s.size()) return -1;
    const unsigned char cc = static_cast<unsigned char>(s[i + size_t(k)]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
    // Reject overlong/surrogate/out-of-range as early as the second byte allows.
    if (k == 1) {
      if (len == 3 && c == 0xE0 && cc < 0xA0) return 0;
      if (len == 3 && c == 0xED && cc > 0x9F) return 0;
      if (len == 4 && c == 0xF0 && cc < 0x90) return 0;
      if (len == 4 && c == 0xF4 && cc > 0x8F) return 0;
    }
  }
  if (cp < min) return 0;
  return len;
}
}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const int n = utf8_seq(s, i);
    if (n <= 0) return false;
    i += size_t(n);
  }
  return true;
}

size_t utf8_complete_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const int n = utf8_seq(s, i);
    if (n < 0) return i;      // incomplete tail: hold back
    i += size_t(n > 0 ? n : 1);  // invalid byte: let it through (caller replaces)
  }
  return i;
}

}  // namespace ms

// spm_proto.cpp — protobuf wire encoding/decoding of the few
// sentencepiece.ModelProto fields moeserve needs (see spm_proto.h).
#include "tokenizer/spm_proto.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <set>

#include "core/error.h"

namespace ms {

namespace {

// ---- encoding ----
enum Wire { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void tag(std::string& out, int field, Wire w) { varint(out, (uint64_t(field) << 3) | uint64_t(w)); }
void put_bytes(std::string& out, int field, const std::string& s) {
  tag(out, field, kLen);
  varint(out, s.size());
  out += s;
}
void put_int(std::string& out, int field, int64_t v) {  // int32/enum/bool: negative values take 10 bytes
  tag(out, field, kVarint);
  varint(out, uint64_t(v));
}
void put_float(std::string& out, int field, float f) {
  tag(out, field, kFixed32);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

// ---- decoding ----
struct Field {
  int number = 0;
  Wire wire = kVarint;
  uint64_t value = 0;      // varint / fixed
  std::string_view bytes;  // length-delimited
};

class Reader {
 public:
  Reader(std::string_view s, const std::string& origin) : s_(s), origin_(origin) {}
  bool done() const { return pos_ >= s_.size(); }
  Field next() {
    Field f;
    const uint64_t t = varint();
    f.number = int(t >> 3);
    f.wire = Wire(t & 7);
    switch (f.wire) {
      case kVarint: f.value = varint(); break;
      case kFixed64: f.value = fixed(8); break;
      case kFixed32: f.value = fixed(4); break;
      case kLen: {
        const uint64_t n = varint();
        if (n > s_.size() - pos_) fail("length past the end");
        f.bytes = s_.substr(pos_, size_t(n));
        pos_ += size_t(n);
        break;
      }
      default: fail("unsupported wire type " + std::to_string(int(f.wire)));
    }
    return f;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { bad_input(origin_ + ": malformed SentencePiece model: " + what); }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= s_.size()) fail("truncated varint");
      const uint8_t b = uint8_t(s_[pos_++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint too long");
  }
  uint64_t fixed(size_t n) {
    if (n > s_.size() - pos_) fail("truncated fixed-size field");
    uint64_t v = 0;
    std::memcpy(&v, s_.data() + pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view s_;
  size_t pos_ = 0;
  const std::string& origin_;
};

float as_float(uint64_t bits) {
  const uint32_t u = uint32_t(bits);
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

bool has_all_bytes(const SpmVocab& v) {
  std::set<std::string> bytes;
  for (size_t i = 0; i < v.pieces.size(); ++i)
    if (v.types[i] == kSpmByte) bytes.insert(v.pieces[i]);
  if (bytes.size() < 256) return false;
  static const char* hex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const std::string p = std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
    if (!bytes.count(p)) return false;
  }
  return true;
}

}  // namespace

std::string build_spm_proto(const SpmVocab& v, const std::string& origin, const SpmOptions& o) {
  const size_t n = v.pieces.size();
  if (n == 0) bad_input(origin + ": empty tokenizer vocabulary");
  if (v.scores.size() != n || v.types.size() != n)
    bad_input(origin + ": tokenizer arrays differ in length (" + std::to_string(n) + " pieces, " +
              std::to_string(v.scores.size()) + " scores, " + std::to_string(v.types.size()) + " types)");
  if (n > size_t(INT32_MAX)) bad_input(origin + ": tokenizer vocabulary too large");
  const int64_t N = int64_t(n);
  if (v.unk_id < 0 || v.unk_id >= N) bad_input(origin + ": unknown-token id " + std::to_string(v.unk_id) + " outside the vocabulary");
  for (auto [name, id] : {std::pair<const char*, int32_t>{"BOS", v.bos_id}, {"EOS", v.eos_id}, {"padding", v.pad_id}})
    if (id < -1 || id >= N) bad_input(origin + ": " + name + " id " + std::to_string(id) + " outside the vocabulary");
  if (v.types[size_t(v.unk_id)] != kSpmUnknown)
    bad_input(origin + ": piece " + std::to_string(v.unk_id) + " ('" + v.pieces[size_t(v.unk_id)] +
              "') is the unknown token but is not of the unknown type");
  if (o.model_type < 1 || o.model_type > 4) bad_input(origin + ": invalid SentencePiece model type " + std::to_string(o.model_type));

  std::string out;
  out.reserve(n * 24 + 256);
  std::string piece;
  for (size_t i = 0; i < n; ++i) {
    const int32_t t = v.types[i];
    if (t < kSpmNormal || t > kSpmByte)
      bad_input(origin + ": token " + std::to_string(i) + " has invalid type " + std::to_string(t));
    if (v.pieces[i].empty()) bad_input(origin + ": token " + std::to_string(i) + " is an empty string");
    piece.clear();
    put_bytes(piece, 1, v.pieces[i]);
    put_float(piece, 2, v.scores[i]);
    if (t != kSpmNormal) put_int(piece, 3, t);
    put_bytes(out, 1, piece);
  }

  const bool byte_fallback = o.byte_fallback < 0 ? has_all_bytes(v) : o.byte_fallback != 0;
  std::string ts;
  put_int(ts, 3, o.model_type);
  put_int(ts, 4, N);
  put_int(ts, 24, o.treat_whitespace_as_suffix);
  put_int(ts, 25, o.split_digits);
  put_int(ts, 26, o.allow_whitespace_only_pieces);
  put_int(ts, 35, byte_fallback);
  put_int(ts, 40, v.unk_id);
  put_int(ts, 41, v.bos_id);
  put_int(ts, 42, v.eos_id);
  put_int(ts, 43, v.pad_id);
  put_bytes(ts, 45, v.pieces[size_t(v.unk_id)]);
  if (v.bos_id >= 0) put_bytes(ts, 46, v.pieces[size_t(v.bos_id)]);
  if (v.eos_id >= 0) put_bytes(ts, 47, v.pieces[size_t(v.eos_id)]);
  if (v.pad_id >= 0) put_bytes(ts, 48, v.pieces[size_t(v.pad_id)]);
  put_bytes(out, 2, ts);

  std::string ns;
  put_bytes(ns, 1, "identity");
  put_int(ns, 3, o.add_dummy_prefix);
  put_int(ns, 4, o.remove_extra_whitespaces);
  put_int(ns, 5, o.escape_whitespaces);
  put_bytes(out, 3, ns);
  return out;
}

SpmModel read_spm_model(const std::string& path) {
  sentencepiece::SentencePieceProcessor sp;
  const auto st = sp.Load(path);
  if (!st.ok()) bad_input(path + ": cannot load SentencePiece model: " + st.ToString());
  const std::string bytes = sp.serialized_model_proto();

  SpmModel m;
  SpmOptions& o = m.options;
  // proto2 defaults of the fields read below
  o.model_type = 1;
  o.byte_fallback = 0;
  o.add_dummy_prefix = true;
  o.remove_extra_whitespaces = true;
  o.escape_whitespaces = true;
  o.treat_whitespace_as_suffix = false;
  o.allow_whitespace_only_pieces = false;
  o.split_digits = false;
  SpmVocab& v = m.vocab;
  Reader top(bytes, path);
  while (!top.done()) {
    const Field f = top.next();
    if (f.number == 1 && f.wire == kLen) {
      std::string piece;
      float score = 0.0f;
      int32_t type = kSpmNormal;
      Reader r(f.bytes, path);
      while (!r.done()) {
        const Field p = r.next();
        if (p.number == 1 && p.wire == kLen) piece = std::string(p.bytes);
        else if (p.number == 2 && p.wire == kFixed32) score = as_float(p.value);
        else if (p.number == 3 && p.wire == kVarint) type = int32_t(p.value);
      }
      v.pieces.push_back(std::move(piece));
      v.scores.push_back(score);
      v.types.push_back(type);
    } else if (f.number == 2 && f.wire == kLen) {
      Reader r(f.bytes, path);
      while (!r.done()) {
        const Field p = r.next();
        if (p.wire != kVarint) continue;
        const int32_t x = int32_t(int64_t(p.value));
        switch (p.number) {
          case 3: o.model_type = x; break;
          case 24: o.treat_whitespace_as_suffix = x != 0; break;
          case 25: o.split_digits = x != 0; break;
          case 26: o.allow_whitespace_only_pieces = x != 0; break;
          case 35: o.byte_fallback = x != 0; break;
          case 40: v.unk_id = x; break;
          case 41: v.bos_id = x; break;
          case 42: v.eos_id = x; break;
          case 43: v.pad_id = x; break;
          default: break;
        }
      }
    } else if (f.number == 3 && f.wire == kLen) {
      Reader r(f.bytes, path);
      while (!r.done()) {
        const Field p = r.next();
        if (p.wire != kVarint) continue;
        if (p.number == 3) o.add_dummy_prefix = p.value != 0;
        else if (p.number == 4) o.remove_extra_whitespaces = p.value != 0;
        else if (p.number == 5) o.escape_whitespaces = p.value != 0;
      }
    }
  }
  if (int64_t(v.pieces.size()) != sp.GetPieceSize())
    bad_input(path + ": SentencePiece model has " + std::to_string(sp.GetPieceSize()) + " pieces but " +
              std::to_string(v.pieces.size()) + " were decoded");
  return m;
}

}  // namespace ms

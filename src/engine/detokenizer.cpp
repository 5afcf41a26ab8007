#include "engine/detokenizer.h"

#include <algorithm>

namespace ms {

namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

inline bool is_trail(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the character a lead byte announces (SentencePiece's reading), 0 if none.
inline int lead_length(unsigned char b) {
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) return 2;
  if ((b & 0xF0) == 0xE0) return 3;
  if ((b & 0xF8) == 0xF0) return 4;
  return 0;
}

// Whether an unfinished sequence (lead + some trail bytes) can still become a
// valid character. Only used to decide sooner; the final decision is decode's.
bool may_complete(const unsigned char* s, size_t n) {
  for (size_t i = 1; i < n; ++i)
    if (!is_trail(s[i])) return false;
  const unsigned char b = s[0];
  if (b == 0xC0 || b == 0xC1 || b >= 0xF5) return false;
  if (n >= 2) {
    const unsigned char c = s[1];
    if (b == 0xE0 && c < 0xA0) return false;  // overlong
    if (b == 0xED && c > 0x9F) return false;  // surrogate
    if (b == 0xF0 && c < 0x90) return false;  // overlong
    if (b == 0xF4 && c > 0x8F) return false;  // > U+10FFFF
  }
  return true;
}

// Decodes one complete character at s (n >= lead length), SentencePiece's rule.
bool valid_char(const unsigned char* s, int len) {
  uint32_t cp = 0;
  switch (len) {
    case 2:
      if (!is_trail(s[1])) return false;
      cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
      return cp >= 0x80;
    case 3:
      if (!is_trail(s[1]) || !is_trail(s[2])) return false;
      cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
      return cp >= 0x800 && (cp < 0xD800 || cp >= 0xE000);
    case 4:
      if (!is_trail(s[1]) || !is_trail(s[2]) || !is_trail(s[3])) return false;
      cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) | (s[3] & 0x3Fu);
      return cp >= 0x10000 && cp <= 0x10FFFF;
    default:
      return false;
  }
}

}  // namespace

std::string decode_utf8_prefix(std::string& bytes, bool final) {
  std::string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const int len = lead_length(s[i]);
    if (len == 1) {
      out.push_back(static_cast<char>(s[i++]));
      continue;
    }
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (n - i < static_cast<size_t>(len)) {
      if (!final && may_complete(s + i, n - i)) break;  // wait for more bytes
      out += kReplacement;
      ++i;
      continue;
    }
    if (valid_char(s + i, len)) {
      out.append(bytes, i, len);
      i += len;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  bytes.erase(0, i);
  return out;
}

Detokenizer::Detokenizer(const TokenText& text, std::vector<std::string> stop_strings) : text_(&text) {
  for (auto& s : stop_strings)
    if (!s.empty()) stops_.push_back(std::move(s));
  for (const auto& s : stops_) max_stop_ = std::max(max_stop_, s.size());
}

std::string Detokenizer::add(int32_t token) {
  const std::string b = text_->token_bytes(token);
  // A token without text (<s>, </s>) still ends a run of byte pieces:
  // SentencePiece decodes each run on its own, so an unfinished character
  // before it is final (U+FFFD per byte) even if bytes that would finish it follow.
  if (b.empty()) return stopped_ || pending_.empty() ? std::string() : release(decode_utf8_prefix(pending_, true), false);
  return add_bytes(b, text_->leading_space_is_marker(token));
}

std::string Detokenizer::add_bytes(std::string_view b, bool marker) {
  if (stopped_) return {};
  if (at_start_ && !b.empty()) {
    at_start_ = false;  // only the first token with text is at the start, even "▁" alone
    if (marker && b.front() == ' ') b.remove_prefix(1);
  }
  pending_.append(b);
  return release(decode_utf8_prefix(pending_, false), false);
}

std::string Detokenizer::flush() {
  if (stopped_) return {};
  return release(decode_utf8_prefix(pending_, true), true);
}

std::string Detokenizer::release(std::string text, bool final) {
  std::string buf = std::move(held_);
  held_.clear();
  buf += text;
  if (!stops_.empty()) {
    size_t first = std::string::npos;
    for (const auto& s : stops_) first = std::min(first, buf.find(s));
    if (first != std::string::npos) {
      buf.resize(first);
      stopped_ = true;
      pending_.clear();
      emitted_ += buf;
      return buf;
    }
    if (!final) {
      // Hold back the longest tail of buf that is a proper prefix of a stop string.
      size_t hold = 0;
      for (size_t k = std::min(buf.size(), max_stop_ - 1); k > 0 && hold == 0; --k) {
        const std::string_view tail(buf.data() + buf.size() - k, k);
        for (const auto& s : stops_)
          if (s.size() > k && std::string_view(s).substr(0, k) == tail) {
            hold = k;
            break;
          }
      }
      // Never split a character (only matters for stop strings that are not valid UTF-8).
      while (hold < buf.size() && hold > 0 && is_trail(static_cast<unsigned char>(buf[buf.size() - hold]))) ++hold;
      held_ = buf.substr(buf.size() - hold);
      buf.resize(buf.size() - hold);
    }
  }
  emitted_ += buf;
  return buf;
}

}  // namespace ms

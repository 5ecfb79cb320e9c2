// Test support: a seeded mutator of byte strings for the bounded fuzz tests (tests/fuzz/ and the
// gateway's). It starts from valid inputs and applies a few edits per call — flipped and random
// bytes, cuts, deleted ranges, repeated pieces, words from a dictionary the parser cares about,
// huge numbers, long runs, stray terminators, deep nesting — so that most inputs get past the
// first check and reach the deeper parts of a parser. A fixed seed makes every run the same.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace rma::testing {

class Mutator {
 public:
  explicit Mutator(uint32_t seed) : rng_(seed) {}

  // A number in [0, n) (0 when n is 0).
  size_t Below(size_t n) {
    return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }
  bool OneIn(size_t n) { return Below(n) == 0; }
  template <typename T>
  const T& Pick(const std::vector<T>& items) {
    return items[Below(items.size())];
  }

  // `s` with one to four edits. `dictionary` may be empty.
  std::string Mutate(std::string s, const std::vector<std::string>& dictionary) {
    const size_t rounds = 1 + Below(4);
    for (size_t r = 0; r < rounds; ++r) {
      const size_t at = Below(s.size() + 1);
      switch (Below(11)) {
        case 0:  // flip a bit
          if (!s.empty()) s[Below(s.size())] ^= static_cast<char>(1u << Below(8));
          break;
        case 1:  // a random byte
          s.insert(at, 1, static_cast<char>(Below(256)));
          break;
        case 2:  // cut the rest
          s.resize(at);
          break;
        case 3:  // delete a range
          if (at < s.size()) s.erase(at, Below(16));
          break;
        case 4: {  // repeat a piece
          if (s.empty()) break;
          const size_t from = Below(s.size());
          const std::string piece =
              s.substr(from, 1 + Below(std::min<size_t>(64, s.size() - from)));
          for (size_t k = 1 + Below(4); k > 0; --k) s.insert(at, piece);
          break;
        }
        case 5:  // a word that means something to the parser
          if (!dictionary.empty()) s.insert(at, Pick(dictionary));
          break;
        case 6:  // a huge number
          s.insert(at, OneIn(2) ? "99999999999999999999999" : std::string(200 + Below(400), '9'));
          break;
        case 7:  // a long run of one byte
          s.insert(at, std::string(100 + Below(5000), "a%\\\"[{ 0.-\r\n\xff"[Below(14)]));
          break;
        case 8:  // stray line and string terminators
          s.insert(at, std::string(1, "\r\n\0\"\\:;,"[Below(9)]));
          break;
        case 9:  // deep nesting
          s.insert(at, std::string(10 + Below(200), OneIn(2) ? '[' : '{'));
          break;
        default:  // overwrite one byte
          if (!s.empty()) s[Below(s.size())] = static_cast<char>(Below(256));
          break;
      }
    }
    return s;
  }

 private:
  std::mt19937 rng_;
};

}  // namespace rma::testing

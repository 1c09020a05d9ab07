// protocol_unit.cpp - host unit tests of the protocol building blocks (base64,
// frame parsing, line assembly with resynchronization, number formatting).
// Built and run by tests/test_protocol.py; prints one line per failed check and
// "checks=<n> failures=<m>" at the end; exit status 1 on any failure.
//
// Modes used by the Python tests for cross-language checks:
//   protocol_unit fmt <float>...     prints format_float(x) per argument
//   protocol_unit b64 <hex>          prints base64 of the bytes
//   protocol_unit frame <seq> <word> [tokens...]  prints a frame built by FrameWriter
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "odl_base64.h"
#include "odl_blob.h"
#include "odl_protocol.h"

static int g_checks = 0, g_fail = 0;
#define CHECK(cond)                                          \
  do {                                                       \
    ++g_checks;                                              \
    if (!(cond)) {                                           \
      ++g_fail;                                              \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                        \
  } while (0)

static std::string make_frame(const std::string& body) {
  char crc[9];
  snprintf(crc, sizeof crc, "%08x", (unsigned)odl::crc32((const uint8_t*)body.data(), body.size()));
  return "$" + body + " *" + crc + "\n";
}

struct Fed {
  std::vector<int> results;  // per event: 1 frame, 2 reject (with error code * 10)
  std::vector<std::string> frames;
  std::vector<int> errors;
};

static Fed feed_all(odl::LineAssembler& a, const std::string& s) {
  Fed f;
  for (unsigned char c : s) {
    odl::LineAssembler::Result r = a.feed(c);
    if (r == odl::LineAssembler::kFrame) f.frames.push_back(std::string(a.line(), a.length()));
    if (r == odl::LineAssembler::kReject) f.errors.push_back(a.error());
  }
  return f;
}

static void test_base64() {
  const char* vec[][2] = {{"", ""},
                          {"f", "Zg=="},
                          {"fo", "Zm8="},
                          {"foo", "Zm9v"},
                          {"foob", "Zm9vYg=="},
                          {"fooba", "Zm9vYmE="},
                          {"foobar", "Zm9vYmFy"}};
  for (auto& v : vec) {
    char out[64];
    size_t n = odl::base64_encode((const uint8_t*)v[0], strlen(v[0]), out, sizeof out);
    CHECK(n == strlen(v[1]) && memcmp(out, v[1], n) == 0);
    uint8_t back[64];
    long m = odl::base64_decode(v[1], strlen(v[1]), back, sizeof back);
    CHECK(m == (long)strlen(v[0]) && memcmp(back, v[0], (size_t)m) == 0);
  }
  uint8_t buf[16];
  CHECK(odl::base64_decode("Zm9", 3, buf, sizeof buf) == -1);       // length not multiple of 4
  CHECK(odl::base64_decode("Zm9v!A==", 8, buf, sizeof buf) == -1);  // bad char
  CHECK(odl::base64_decode("Zg==Zg==", 8, buf, sizeof buf) == -1);  // padding in the middle
  CHECK(odl::base64_decode("Zh==", 4, buf, sizeof buf) == -1);      // non-canonical padding bits
  CHECK(odl::base64_decode("Zm9vYmFy", 8, buf, 5) == -1);           // output too small
  char small[4];
  CHECK(odl::base64_encode((const uint8_t*)"foo", 3, small, 3) == 0);  // out too small
}

static void test_parse() {
  std::string fr = make_frame("7 TRAIN epochs=3 lr=0.1");
  std::string line = fr.substr(0, fr.size() - 1);
  std::vector<char> b(line.begin(), line.end());
  b.push_back(0);
  odl::Frame f;
  bool trusted = false;
  CHECK(odl::parse_frame(b.data(), line.size(), &f, &trusted) == 0);
  CHECK(trusted && f.seq == 7 && strcmp(f.word, "TRAIN") == 0 && f.num_tokens == 2);
  CHECK(strcmp(odl::frame_arg(f, "lr"), "0.1") == 0 && odl::frame_arg(f, "l") == nullptr);
  // every single-byte change of the body or CRC is detected
  int detected = 0, total = 0;
  for (size_t i = 1; i < line.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<char> m(line.begin(), line.end());
      m[i] ^= (char)(1 << bit);
      m.push_back(0);
      odl::Frame g;
      bool t2;
      ++total;
      if (odl::parse_frame(m.data(), line.size(), &g, &t2) != 0) ++detected;
    }
  }
  CHECK(detected == total);
  // syntax errors with a valid CRC
  const char* bad[] = {"x HELLO", "1", "1  HELLO", "1 HELLO ", " 1 HELLO", "1234567890 HELLO", "-1 HELLO"};
  for (const char* body : bad) {
    std::string s = make_frame(body);
    std::vector<char> m(s.begin(), s.end() - 1);
    m.push_back(0);
    odl::Frame g;
    bool t2;
    CHECK(odl::parse_frame(m.data(), s.size() - 1, &g, &t2) == odl::kPeMalformed);
  }
  // too many tokens: rejected as BAD_ARG, with the seq trusted (the CRC matched)
  {
    std::string s = make_frame("9 HELLO a b c d e f g h i j k l m n o p q");
    std::vector<char> m(s.begin(), s.end() - 1);
    m.push_back(0);
    odl::Frame g;
    bool t2 = false;
    CHECK(odl::parse_frame(m.data(), s.size() - 1, &g, &t2) == odl::kPeBadArg && t2 && g.seq == 9);
  }
  // upper-case CRC digits are rejected (lower case only: a flipped case bit is a corruption too)
  std::string up = make_frame("1 HELLO");
  up = up.substr(0, up.size() - 1);
  bool has_letter = false;
  for (size_t i = up.size() - 8; i < up.size(); ++i) {
    if (up[i] >= 'a') has_letter = true;
    up[i] = (char)toupper(up[i]);
  }
  std::vector<char> u(up.begin(), up.end());
  u.push_back(0);
  CHECK(!has_letter || odl::parse_frame(u.data(), up.size(), &f, &trusted) == odl::kPeBadCrc);
}

static void test_assembler() {
  odl::LineAssembler a;
  std::string f1 = make_frame("1 HELLO"), f2 = make_frame("2 INFO");
  Fed r = feed_all(a, f1 + f2);
  CHECK(r.frames.size() == 2 && r.errors.empty());
  // lost '\n': first frame reported truncated, second intact
  r = feed_all(a, f1.substr(0, f1.size() - 1) + f2);
  CHECK(r.frames.size() == 1 && r.errors.size() == 1 && r.errors[0] == odl::kPeMalformed);
  // lost '$': junk line reported, next frame intact
  r = feed_all(a, f1.substr(1) + f2);
  CHECK(r.frames.size() == 1 && r.errors.size() == 1);
  // blank lines ignored, CRLF accepted
  r = feed_all(a, "\r\n  \n" + f1.substr(0, f1.size() - 1) + "\r\n");
  CHECK(r.frames.size() == 1 && r.errors.empty() && r.frames[0] == f1.substr(0, f1.size() - 1));
  // overlong line: one LINE_TOO_LONG, then resync
  r = feed_all(a, "$" + std::string(5000, 'A') + "\n" + f2);
  CHECK(r.errors.size() == 1 && r.errors[0] == odl::kPeLineTooLong && r.frames.size() == 1);
  // overlong without '\n', resynchronized by the next '$'
  r = feed_all(a, "$" + std::string(3000, 'B') + f2);
  CHECK(r.errors.size() == 1 && r.errors[0] == odl::kPeLineTooLong && r.frames.size() == 1);
  // exactly the maximum length is accepted, one more byte is not
  std::string body = "3 ADDCLASS ";
  std::string pad(odl::kMaxLine - make_frame(body + "x").size() + 1, 'x');
  std::string maxf = make_frame(body + pad);
  CHECK(maxf.size() == odl::kMaxLine);
  r = feed_all(a, maxf);
  CHECK(r.frames.size() == 1 && r.errors.empty());
  r = feed_all(a, make_frame(body + pad + "x"));
  CHECK(r.frames.empty() && r.errors.size() == 1 && r.errors[0] == odl::kPeLineTooLong);
  // NUL and control bytes inside a frame
  std::string ctl = f1;
  ctl[3] = '\0';
  r = feed_all(a, ctl + f2);
  CHECK(r.errors.size() == 1 && r.frames.size() == 1);
}

static void test_format() {
  char out[32];
  struct {
    float v;
    const char* s;
  } cases[] = {{0.f, "0"},
               {1.f, "1"},
               {-2.5f, "-2.5"},
               {0.125f, "0.125"},
               {123456.f, "123456"},
               {1234567.f, "1.23457e+06"},
               {1e-5f, "1e-05"},
               {0.0001f, "0.0001"},
               {100.f, "100"},
               {999999.5f, "1e+06"},
               {3.14159265f, "3.14159"}};
  for (auto& c : cases) {
    odl::format_float(c.v, out);
    if (strcmp(out, c.s) != 0) printf("format_float(%g) = %s, want %s\n", (double)c.v, out, c.s);
    CHECK(strcmp(out, c.s) == 0);
  }
  // agreement with printf("%.6g") on many values (relative difference only in the last digit)
  uint32_t s = 12345;
  int bad = 0;
  for (int i = 0; i < 20000; ++i) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    float v;
    uint32_t bits = s;
    memcpy(&v, &bits, 4);
    if (!isfinite(v)) continue;
    odl::format_float(v, out);
    double back = strtod(out, nullptr);
    double tol = fabs((double)v) * 1e-5;  // 6 significant digits
    if (!(fabs(back - (double)v) <= tol)) {
      if (bad++ < 5) printf("format_float(%.9g) = %s\n", (double)v, out);
    }
  }
  CHECK(bad == 0);
  float x;
  CHECK(odl::parse_float("0.05", &x) && x == 0.05f);
  CHECK(!odl::parse_float("nan", &x) && !odl::parse_float("inf", &x) && !odl::parse_float("1e99", &x));
  CHECK(!odl::parse_float("", &x) && !odl::parse_float("1.0x", &x) && !odl::parse_float("0x10", &x));
  uint32_t u;
  CHECK(odl::parse_u32("4294967295", &u) && u == 4294967295u);
  CHECK(!odl::parse_u32("4294967296", &u) && !odl::parse_u32("-1", &u) && !odl::parse_u32("+1", &u));
  CHECK(odl::valid_class_name("walk_2") && !odl::valid_class_name("") && !odl::valid_class_name("a b") &&
        !odl::valid_class_name("sixteen_chars_xx") && odl::valid_class_name("fifteen_chars_x"));
}

static void test_writer() {
  odl::FrameWriter w;
  w.begin(42, "OK");
  w.token("INFO");
  w.kv("name", "a b$c*d");
  w.text("  two  words ");
  size_t n = 0;
  const char* s = w.finish(&n);
  std::string expect = make_frame("42 OK INFO name=a_b_c_d two words");
  CHECK(std::string(s, n) == expect);
  // overflow is flagged, never written past the buffer
  w.begin(1, "OK");
  for (int i = 0; i < 200; ++i) w.kv_f("k", 1.2345f);
  CHECK(w.overflow());
  s = w.finish(&n);
  CHECK(n <= odl::kMaxLine);
}

int main(int argc, char** argv) {
  if (argc >= 2 && !strcmp(argv[1], "fmt")) {
    char out[32];
    for (int i = 2; i < argc; ++i) {
      odl::format_float(strtof(argv[i], nullptr), out);
      printf("%s\n", out);
    }
    return 0;
  }
  if (argc >= 4 && !strcmp(argv[1], "frame")) {
    odl::FrameWriter w;
    w.begin((uint32_t)strtoul(argv[2], nullptr, 10), argv[3]);
    for (int i = 4; i < argc; ++i) w.token(argv[i]);
    size_t n = 0;
    const char* s = w.finish(&n);
    fwrite(s, 1, n, stdout);
    return 0;
  }
  test_base64();
  test_parse();
  test_assembler();
  test_format();
  test_writer();
  printf("checks=%d failures=%d\n", g_checks, g_fail);
  return g_fail ? 1 : 0;
}

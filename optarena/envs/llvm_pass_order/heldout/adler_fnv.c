/* optarena LlvmPassOrder-v0 held-out program (hashing and checksums): Adler-32 and FNV-1a (32 and
 * 64 bits).
 *
 * Hashes strings with published values and a generated 64 KiB buffer. Checks: the published
 * values; the fast Adler-32 (modulo deferred over 5552 bytes) against the textbook one; hashes
 * continued chunk by chunk (chunk sizes drawn at random) against the one-shot hashes; Adler-32 of
 * a concatenation combined from the hashes of its two parts. Prints the hashes; exits 1 if a
 * check fails. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BUF_SIZE 65536
#define ADLER_MOD 65521u
#define ADLER_NMAX 5552 /* the most bytes whose sums cannot overflow 32 bits */
#define FNV32_OFFSET 0x811c9dc5u
#define FNV32_PRIME 0x01000193u
#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

static uint8_t buffer[BUF_SIZE];
static uint32_t lcg_state = 2463534242u;

static uint32_t next_random(void) {
  lcg_state = lcg_state * 1664525u + 1013904223u;
  return lcg_state >> 8;
}

/* Adler-32 continued from `adler` (1 starts a new hash). */
static uint32_t adler32_update(uint32_t adler, const uint8_t *p, size_t n) {
  uint32_t a = adler & 0xFFFFu, b = adler >> 16;
  while (n > 0) {
    size_t block = n < ADLER_NMAX ? n : ADLER_NMAX;
    n -= block;
    while (block-- > 0) {
      a += *p++;
      b += a;
    }
    a %= ADLER_MOD;
    b %= ADLER_MOD;
  }
  return (b << 16) | a;
}

/* The definition: both sums reduced after every byte. */
static uint32_t adler32_textbook(const uint8_t *p, size_t n) {
  uint32_t a = 1, b = 0;
  for (size_t i = 0; i < n; i++) {
    a = (a + p[i]) % ADLER_MOD;
    b = (b + a) % ADLER_MOD;
  }
  return (b << 16) | a;
}

/* Adler-32 of A followed by B from adler(A), adler(B) and B's length: the running sum over B
 * is B's own running sum plus a(A) - 1 at every byte. */
static uint32_t adler32_combine(uint32_t first, uint32_t second, size_t second_len) {
  uint64_t a1 = first & 0xFFFFu, b1 = first >> 16;
  uint64_t a2 = second & 0xFFFFu, b2 = second >> 16;
  uint64_t len = second_len % ADLER_MOD;
  uint64_t a = (a1 + a2 + ADLER_MOD - 1) % ADLER_MOD;
  uint64_t b = (b1 + b2 + len * ((a1 + ADLER_MOD - 1) % ADLER_MOD)) % ADLER_MOD;
  return (uint32_t)((b << 16) | a);
}

static uint32_t fnv1a32_update(uint32_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= FNV32_PRIME;
  }
  return h;
}

static uint64_t fnv1a64_update(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= FNV64_PRIME;
  }
  return h;
}

static int expect(const char *what, uint64_t got, uint64_t want) {
  if (got == want)
    return 0;
  printf("FAILED %s: %016llx, expected %016llx\n", what, (unsigned long long)got,
         (unsigned long long)want);
  return 1;
}

static int check_published(void) {
  const uint8_t *wiki = (const uint8_t *)"Wikipedia";
  const uint8_t *foobar = (const uint8_t *)"foobar";
  int failures = 0;
  failures += expect("adler32(Wikipedia)", adler32_update(1, wiki, 9), 0x11E60398u);
  failures += expect("fnv1a32()", fnv1a32_update(FNV32_OFFSET, wiki, 0), 0x811c9dc5u);
  failures += expect("fnv1a32(a)", fnv1a32_update(FNV32_OFFSET, foobar + 4, 1), 0xe40c292cu);
  failures += expect("fnv1a32(foobar)", fnv1a32_update(FNV32_OFFSET, foobar, 6), 0xbf9cf968u);
  failures += expect("fnv1a64(foobar)", fnv1a64_update(FNV64_OFFSET, foobar, 6),
                     0x85944171f73967e8ull);
  return failures;
}

int main(void) {
  int failures = check_published();
  for (size_t i = 0; i < BUF_SIZE; i++)
    buffer[i] = (uint8_t)(next_random() % 7 == 0 ? 0xFF : next_random());

  uint32_t adler = adler32_update(1, buffer, BUF_SIZE);
  uint32_t fnv32 = fnv1a32_update(FNV32_OFFSET, buffer, BUF_SIZE);
  uint64_t fnv64 = fnv1a64_update(FNV64_OFFSET, buffer, BUF_SIZE);
  failures += expect("adler32 fast/textbook", adler, adler32_textbook(buffer, BUF_SIZE));

  uint32_t a = 1, f32 = FNV32_OFFSET;
  uint64_t f64 = FNV64_OFFSET;
  for (size_t at = 0; at < BUF_SIZE;) {
    size_t chunk = 1 + next_random() % 9000;
    if (chunk > BUF_SIZE - at)
      chunk = BUF_SIZE - at;
    a = adler32_update(a, buffer + at, chunk);
    f32 = fnv1a32_update(f32, buffer + at, chunk);
    f64 = fnv1a64_update(f64, buffer + at, chunk);
    at += chunk;
  }
  failures += expect("adler32 chunked", a, adler);
  failures += expect("fnv1a32 chunked", f32, fnv32);
  failures += expect("fnv1a64 chunked", f64, fnv64);

  uint32_t mixed = 0;
  for (int trial = 0; trial < 16; trial++) {
    size_t split = next_random() % BUF_SIZE;
    uint32_t head = adler32_update(1, buffer, split);
    uint32_t tail = adler32_update(1, buffer + split, BUF_SIZE - split);
    failures += expect("adler32 combined", adler32_combine(head, tail, BUF_SIZE - split), adler);
    mixed ^= head + 0x9e3779b9u * (uint32_t)trial;
  }

  printf("adler32 %08x fnv1a32 %08x fnv1a64 %016llx mixed %08x\n", adler, fnv32,
         (unsigned long long)fnv64, mixed);
  printf("adler_fnv: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

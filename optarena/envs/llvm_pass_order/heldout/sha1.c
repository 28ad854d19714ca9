/* optarena LlvmPassOrder-v0 held-out program (hashing and checksums): SHA-1 (FIPS 180), streaming.
 *
 * Checks: the digests of FIPS 180's test messages ("abc", the 448-bit message, the empty one and
 * a million 'a's); a generated 32 KiB message hashed in chunks of random sizes against the
 * same message hashed at once. Prints the generated message's digest; exits 1 if a check
 * fails. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MESSAGE_SIZE 32768

typedef struct {
  uint32_t h[5];
  uint64_t length; /* bytes hashed so far */
  uint8_t block[64];
  size_t used; /* bytes waiting in block */
} Sha1;

static uint8_t message[MESSAGE_SIZE];

static uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_init(Sha1 *s) {
  s->h[0] = 0x67452301u;
  s->h[1] = 0xEFCDAB89u;
  s->h[2] = 0x98BADCFEu;
  s->h[3] = 0x10325476u;
  s->h[4] = 0xC3D2E1F0u;
  s->length = 0;
  s->used = 0;
}

static void sha1_compress(uint32_t h[5], const uint8_t block[64]) {
  uint32_t w[80];
  for (int t = 0; t < 16; t++)
    w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 |
           (uint32_t)block[4 * t + 2] << 8 | (uint32_t)block[4 * t + 3];
  for (int t = 16; t < 80; t++)
    w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int t = 0; t < 80; t++) {
    uint32_t f, k;
    if (t < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999u;
    } else if (t < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1u;
    } else if (t < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDCu;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6u;
    }
    uint32_t next = rotl(a, 5) + f + e + k + w[t];
    e = d;
    d = c;
    c = rotl(b, 30);
    b = a;
    a = next;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
}

static void sha1_update(Sha1 *s, const uint8_t *p, size_t n) {
  s->length += n;
  while (n > 0) {
    size_t take = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    n -= take;
    if (s->used == 64) {
      sha1_compress(s->h, s->block);
      s->used = 0;
    }
  }
}

/* Pads (0x80, zeros, the length in bits, big-endian) and writes the 20-byte digest. */
static void sha1_final(Sha1 *s, uint8_t digest[20]) {
  uint64_t bits = s->length * 8;
  uint8_t pad = 0x80;
  sha1_update(s, &pad, 1);
  pad = 0;
  while (s->used != 56)
    sha1_update(s, &pad, 1);
  uint8_t tail[8];
  for (int i = 0; i < 8; i++)
    tail[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha1_update(s, tail, 8);
  for (int i = 0; i < 20; i++)
    digest[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

static void to_hex(const uint8_t digest[20], char out[41]) {
  const char *hex = "0123456789abcdef";
  for (int i = 0; i < 20; i++) {
    out[2 * i] = hex[digest[i] >> 4];
    out[2 * i + 1] = hex[digest[i] & 15];
  }
  out[40] = '\0';
}

static int check_digest(const char *name, const uint8_t *p, size_t n, size_t repeat,
                        const char *want) {
  Sha1 s;
  uint8_t digest[20];
  char hex[41];
  sha1_init(&s);
  for (size_t r = 0; r < repeat; r++)
    sha1_update(&s, p, n);
  sha1_final(&s, digest);
  to_hex(digest, hex);
  if (strcmp(hex, want) == 0)
    return 0;
  printf("FAILED sha1(%s) = %s, expected %s\n", name, hex, want);
  return 1;
}

int main(void) {
  const char *long_message = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  const uint8_t *text = (const uint8_t *)long_message;
  int failures = 0;
  failures += check_digest("abc", text, 3, 1, "a9993e364706816aba3e25717850c26c9cd0d89d");
  failures += check_digest("448 bits", text, strlen(long_message), 1,
                           "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  failures += check_digest("empty", text, 0, 1, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  memset(message, 'a', 1000);
  failures += check_digest("a million a", message, 1000, 1000,
                           "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

  uint32_t x = 0xC0FFEEu;
  for (size_t i = 0; i < MESSAGE_SIZE; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    message[i] = (uint8_t)(x >> 3);
  }
  Sha1 whole, chunked;
  uint8_t digest[20], again[20];
  sha1_init(&whole);
  sha1_update(&whole, message, MESSAGE_SIZE);
  sha1_final(&whole, digest);
  sha1_init(&chunked);
  for (size_t at = 0; at < MESSAGE_SIZE;) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    size_t take = x % 200;
    if (take > MESSAGE_SIZE - at)
      take = MESSAGE_SIZE - at;
    sha1_update(&chunked, message + at, take);
    at += take;
  }
  sha1_final(&chunked, again);
  if (memcmp(digest, again, 20) != 0) {
    printf("FAILED chunked digest differs\n");
    failures++;
  }
  char hex[41];
  to_hex(digest, hex);
  printf("sha1 %s\n", hex);
  printf("sha1: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

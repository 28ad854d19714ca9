/* optarena LlvmPassOrder-v0 held-out program (cipher): the RC4 stream cipher, with an optional
 * discarded keystream prefix (RC4-drop).
 *
 * Checks: three published test vectors; a generated 24 KiB message encrypted in pieces of
 * random lengths equals the message encrypted at once, and decrypts to itself; the state stays a
 * permutation of 0..255; a one-bit change of the key changes the keystream. Prints a checksum
 * of the ciphertexts; exits 1 if a check fails. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MESSAGE_SIZE 24576
#define DROP 768

typedef struct {
  uint8_t s[256];
  uint8_t i, j;
} Rc4;

static uint8_t message[MESSAGE_SIZE], whole[MESSAGE_SIZE], pieces[MESSAGE_SIZE];
static uint8_t decrypted[MESSAGE_SIZE];

static void rc4_init(Rc4 *rc4, const uint8_t *key, size_t key_len, size_t drop) {
  for (int i = 0; i < 256; i++)
    rc4->s[i] = (uint8_t)i;
  uint8_t j = 0;
  for (int i = 0; i < 256; i++) {
    j = (uint8_t)(j + rc4->s[i] + key[i % key_len]);
    uint8_t t = rc4->s[i];
    rc4->s[i] = rc4->s[j];
    rc4->s[j] = t;
  }
  rc4->i = rc4->j = 0;
  for (size_t n = 0; n < drop; n++) {
    rc4->i = (uint8_t)(rc4->i + 1);
    rc4->j = (uint8_t)(rc4->j + rc4->s[rc4->i]);
    uint8_t t = rc4->s[rc4->i];
    rc4->s[rc4->i] = rc4->s[rc4->j];
    rc4->s[rc4->j] = t;
  }
}

/* out = in XOR the next n keystream bytes (in and out may be the same buffer). */
static void rc4_apply(Rc4 *rc4, const uint8_t *in, uint8_t *out, size_t n) {
  uint8_t i = rc4->i, j = rc4->j;
  uint8_t *s = rc4->s;
  for (size_t k = 0; k < n; k++) {
    i = (uint8_t)(i + 1);
    j = (uint8_t)(j + s[i]);
    uint8_t t = s[i];
    s[i] = s[j];
    s[j] = t;
    out[k] = in[k] ^ s[(uint8_t)(s[i] + s[j])];
  }
  rc4->i = i;
  rc4->j = j;
}

static int is_permutation(const Rc4 *rc4) {
  uint8_t seen[256] = {0};
  for (int i = 0; i < 256; i++)
    seen[rc4->s[i]]++;
  for (int i = 0; i < 256; i++)
    if (seen[i] != 1)
      return 0;
  return 1;
}

static int check_vector(const char *key, const char *plaintext, const char *hex) {
  Rc4 rc4;
  uint8_t out[32];
  char got[65];
  size_t n = strlen(plaintext);
  rc4_init(&rc4, (const uint8_t *)key, strlen(key), 0);
  rc4_apply(&rc4, (const uint8_t *)plaintext, out, n);
  for (size_t k = 0; k < n; k++) {
    got[2 * k] = "0123456789abcdef"[out[k] >> 4];
    got[2 * k + 1] = "0123456789abcdef"[out[k] & 15];
  }
  got[2 * n] = '\0';
  if (strcmp(got, hex) == 0)
    return 0;
  printf("FAILED rc4(%s, %s) = %s, expected %s\n", key, plaintext, got, hex);
  return 1;
}

static uint32_t digest(const uint8_t *p, size_t n) {
  uint32_t h = 0;
  for (size_t k = 0; k < n; k++)
    h = (h << 5 | h >> 27) ^ p[k];
  return h;
}

int main(void) {
  int failures = check_vector("Key", "Plaintext", "bbf316e8d940af0ad3") +
                 check_vector("Wiki", "pedia", "1021bf0420") +
                 check_vector("Secret", "Attack at dawn", "45a01f645fc35b383552544b9bf5");

  uint8_t key[16];
  uint32_t x = 0x1234567u;
  for (size_t k = 0; k < MESSAGE_SIZE + sizeof key; k++) {
    x = x * 1103515245u + 12345u;
    uint8_t byte = (uint8_t)(x >> 16);
    if (k < sizeof key)
      key[k] = byte;
    else
      message[k - sizeof key] = (k & 64) ? (uint8_t)('a' + byte % 26) : byte;
  }

  Rc4 a, b;
  rc4_init(&a, key, sizeof key, DROP);
  rc4_apply(&a, message, whole, MESSAGE_SIZE);
  rc4_init(&b, key, sizeof key, DROP);
  for (size_t at = 0; at < MESSAGE_SIZE;) {
    x = x * 1103515245u + 12345u;
    size_t take = (x >> 16) % 700;
    if (take > MESSAGE_SIZE - at)
      take = MESSAGE_SIZE - at;
    rc4_apply(&b, message + at, pieces + at, take);
    at += take;
  }
  if (memcmp(whole, pieces, MESSAGE_SIZE) != 0 || !is_permutation(&a) || !is_permutation(&b)) {
    printf("FAILED piecewise encryption or state permutation\n");
    failures++;
  }
  rc4_init(&a, key, sizeof key, DROP);
  rc4_apply(&a, whole, decrypted, MESSAGE_SIZE);
  if (memcmp(decrypted, message, MESSAGE_SIZE) != 0) {
    printf("FAILED round trip\n");
    failures++;
  }

  key[5] ^= 0x10;
  rc4_init(&b, key, sizeof key, DROP);
  rc4_apply(&b, message, pieces, MESSAGE_SIZE);
  size_t same = 0;
  for (size_t k = 0; k < MESSAGE_SIZE; k++)
    same += pieces[k] == whole[k];
  if (same > MESSAGE_SIZE / 64) { /* about 1/256 of the bytes agree by chance */
    printf("FAILED related key: %zu equal bytes\n", same);
    failures++;
  }

  printf("rc4 %08x related %08x equal %zu\n", digest(whole, MESSAGE_SIZE),
         digest(pieces, MESSAGE_SIZE), same);
  printf("rc4: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* optarena LlvmPassOrder-v0 held-out program (cipher): XTEA, 32 cycles, in CBC and CTR modes.
 *
 * Checks: two published test vectors; a generated 16 KiB message decrypts to itself after CBC
 * and after CTR encryption; in CBC, changing one plaintext block changes that ciphertext block
 * and every later one, and none before it. Prints a checksum of the ciphertexts; exits 1 if a
 * check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BLOCKS 2048 /* 16 KiB */
#define CYCLES 32
#define DELTA 0x9E3779B9u

static uint32_t plain[2 * BLOCKS], cipher[2 * BLOCKS], restored[2 * BLOCKS];
static uint32_t counter_stream[2 * BLOCKS];

static void xtea_encrypt(uint32_t v[2], const uint32_t key[4]) {
  uint32_t v0 = v[0], v1 = v[1], sum = 0;
  for (int i = 0; i < CYCLES; i++) {
    v0 += (((v1 << 4) ^ (v1 >> 5)) + v1) ^ (sum + key[sum & 3]);
    sum += DELTA;
    v1 += (((v0 << 4) ^ (v0 >> 5)) + v0) ^ (sum + key[(sum >> 11) & 3]);
  }
  v[0] = v0;
  v[1] = v1;
}

static void xtea_decrypt(uint32_t v[2], const uint32_t key[4]) {
  uint32_t v0 = v[0], v1 = v[1], sum = DELTA * CYCLES;
  for (int i = 0; i < CYCLES; i++) {
    v1 -= (((v0 << 4) ^ (v0 >> 5)) + v0) ^ (sum + key[(sum >> 11) & 3]);
    sum -= DELTA;
    v0 -= (((v1 << 4) ^ (v1 >> 5)) + v1) ^ (sum + key[sum & 3]);
  }
  v[0] = v0;
  v[1] = v1;
}

static void cbc_encrypt(const uint32_t *in, uint32_t *out, int blocks, const uint32_t key[4],
                        const uint32_t iv[2]) {
  uint32_t chain[2] = {iv[0], iv[1]};
  for (int b = 0; b < blocks; b++) {
    chain[0] ^= in[2 * b];
    chain[1] ^= in[2 * b + 1];
    xtea_encrypt(chain, key);
    out[2 * b] = chain[0];
    out[2 * b + 1] = chain[1];
  }
}

static void cbc_decrypt(const uint32_t *in, uint32_t *out, int blocks, const uint32_t key[4],
                        const uint32_t iv[2]) {
  uint32_t previous[2] = {iv[0], iv[1]};
  for (int b = 0; b < blocks; b++) {
    uint32_t block[2] = {in[2 * b], in[2 * b + 1]};
    xtea_decrypt(block, key);
    out[2 * b] = block[0] ^ previous[0];
    out[2 * b + 1] = block[1] ^ previous[1];
    previous[0] = in[2 * b];
    previous[1] = in[2 * b + 1];
  }
}

/* CTR mode: the message XOR the encrypted counter (nonce, block number); its own inverse. */
static void ctr_apply(const uint32_t *in, uint32_t *out, int blocks, const uint32_t key[4],
                      uint32_t nonce) {
  for (int b = 0; b < blocks; b++) {
    uint32_t block[2] = {nonce, (uint32_t)b};
    xtea_encrypt(block, key);
    out[2 * b] = in[2 * b] ^ block[0];
    out[2 * b + 1] = in[2 * b + 1] ^ block[1];
  }
}

static int check_vector(const uint32_t key[4], uint32_t p0, uint32_t p1, uint32_t c0,
                        uint32_t c1) {
  uint32_t v[2] = {p0, p1};
  xtea_encrypt(v, key);
  int ok = v[0] == c0 && v[1] == c1;
  xtea_decrypt(v, key);
  ok = ok && v[0] == p0 && v[1] == p1;
  if (!ok)
    printf("FAILED test vector %08x%08x\n", p0, p1);
  return !ok;
}

static uint32_t fold(const uint32_t *words, int n) {
  uint32_t h = 2166136261u;
  for (int i = 0; i < n; i++)
    h = (h ^ words[i]) * 16777619u;
  return h;
}

int main(void) {
  const uint32_t zero_key[4] = {0, 0, 0, 0};
  const uint32_t counting_key[4] = {0x00010203u, 0x04050607u, 0x08090a0bu, 0x0c0d0e0fu};
  int failures = check_vector(zero_key, 0, 0, 0xdee9d4d8u, 0xf7131ed9u) +
                 check_vector(counting_key, 0x41424344u, 0x45464748u, 0x497df3d0u, 0x72612cb5u);

  uint32_t state = 0x2545F491u, key[4], iv[2];
  for (int i = 0; i < 2 * BLOCKS + 6; i++) {
    state = state * 69069u + 1u;
    uint32_t word = state ^ (state >> 15);
    if (i < 4)
      key[i] = word;
    else if (i < 6)
      iv[i - 4] = word;
    else
      plain[i - 6] = word;
  }

  cbc_encrypt(plain, cipher, BLOCKS, key, iv);
  cbc_decrypt(cipher, restored, BLOCKS, key, iv);
  if (memcmp(plain, restored, sizeof plain) != 0) {
    printf("FAILED CBC round trip\n");
    failures++;
  }
  uint32_t cbc_hash = fold(cipher, 2 * BLOCKS);

  int changed = BLOCKS / 3;
  plain[2 * changed + 1] ^= 1u;
  cbc_encrypt(plain, restored, BLOCKS, key, iv);
  plain[2 * changed + 1] ^= 1u;
  for (int b = 0; b < BLOCKS; b++) {
    int differs = cipher[2 * b] != restored[2 * b] || cipher[2 * b + 1] != restored[2 * b + 1];
    if (differs != (b >= changed)) {
      printf("FAILED CBC propagation at block %d\n", b);
      failures++;
      break;
    }
  }

  ctr_apply(plain, counter_stream, BLOCKS, key, iv[0]);
  ctr_apply(counter_stream, restored, BLOCKS, key, iv[0]);
  if (memcmp(plain, restored, sizeof plain) != 0) {
    printf("FAILED CTR round trip\n");
    failures++;
  }

  printf("xtea cbc %08x ctr %08x\n", cbc_hash, fold(counter_stream, 2 * BLOCKS));
  printf("xtea: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* optarena LlvmPassOrder-v0 held-out program (cipher): AES-128 (FIPS 197), the S-box computed
 * from the field inverse in GF(2^8), encryption and decryption, CBC mode.
 *
 * Checks: the S-box against known entries and its inverse; the two worked examples of FIPS 197
 * (appendices B and C.1); a generated 8 KiB message decrypts to itself after CBC encryption.
 * Prints a checksum of the ciphertext; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ROUNDS 10
#define MESSAGE_BLOCKS 512

static uint8_t sbox[256], inv_sbox[256];
static uint8_t round_keys[16 * (ROUNDS + 1)];
static uint8_t message[16 * MESSAGE_BLOCKS], cipher[16 * MESSAGE_BLOCKS];
static uint8_t restored[16 * MESSAGE_BLOCKS];

static uint8_t xtime(uint8_t a) { return (uint8_t)((a << 1) ^ (a & 0x80 ? 0x1b : 0)); }

static uint8_t gf_mul(uint8_t a, uint8_t b) {
  uint8_t product = 0;
  while (b) {
    if (b & 1)
      product ^= a;
    a = xtime(a);
    b >>= 1;
  }
  return product;
}

static uint8_t rotl8(uint8_t x, int n) { return (uint8_t)((x << n) | (x >> (8 - n))); }

/* S(x) = affine(x^-1): x^254 is the inverse in GF(2^8) (0 maps to 0). */
static void make_sbox(void) {
  for (int x = 0; x < 256; x++) {
    uint8_t inverse = 1, power = (uint8_t)x;
    for (int bit = 1; bit < 8; bit++) { /* 254 = 0b11111110 */
      power = gf_mul(power, power);
      inverse = gf_mul(inverse, power);
    }
    if (x == 0)
      inverse = 0;
    uint8_t s = (uint8_t)(inverse ^ rotl8(inverse, 1) ^ rotl8(inverse, 2) ^ rotl8(inverse, 3) ^
                          rotl8(inverse, 4) ^ 0x63);
    sbox[x] = s;
    inv_sbox[s] = (uint8_t)x;
  }
}

static void expand_key(const uint8_t key[16]) {
  uint8_t rcon = 1;
  memcpy(round_keys, key, 16);
  for (int i = 4; i < 4 * (ROUNDS + 1); i++) {
    uint8_t t[4];
    memcpy(t, round_keys + 4 * (i - 1), 4);
    if (i % 4 == 0) {
      uint8_t first = t[0];
      t[0] = (uint8_t)(sbox[t[1]] ^ rcon);
      t[1] = sbox[t[2]];
      t[2] = sbox[t[3]];
      t[3] = sbox[first];
      rcon = xtime(rcon);
    }
    for (int k = 0; k < 4; k++)
      round_keys[4 * i + k] = round_keys[4 * (i - 4) + k] ^ t[k];
  }
}

static void add_round_key(uint8_t s[16], int round) {
  for (int k = 0; k < 16; k++)
    s[k] ^= round_keys[16 * round + k];
}

/* Byte r of column c is s[4c + r]; row r rotates left by r (right when decrypting). */
static void shift_rows(uint8_t s[16], int inverse) {
  uint8_t t[16];
  for (int c = 0; c < 4; c++)
    for (int r = 0; r < 4; r++) {
      int from = inverse ? (c + 4 - r) % 4 : (c + r) % 4;
      t[4 * c + r] = s[4 * from + r];
    }
  memcpy(s, t, 16);
}

static void mix_columns(uint8_t s[16], const uint8_t m[4]) {
  for (int c = 0; c < 4; c++) {
    uint8_t *col = s + 4 * c, t[4];
    for (int r = 0; r < 4; r++)
      t[r] = (uint8_t)(gf_mul(m[0], col[r]) ^ gf_mul(m[1], col[(r + 1) % 4]) ^
                       gf_mul(m[2], col[(r + 2) % 4]) ^ gf_mul(m[3], col[(r + 3) % 4]));
    memcpy(col, t, 4);
  }
}

static void encrypt_block(uint8_t s[16]) {
  static const uint8_t forward[4] = {2, 3, 1, 1};
  add_round_key(s, 0);
  for (int round = 1; round <= ROUNDS; round++) {
    for (int k = 0; k < 16; k++)
      s[k] = sbox[s[k]];
    shift_rows(s, 0);
    if (round != ROUNDS)
      mix_columns(s, forward);
    add_round_key(s, round);
  }
}

static void decrypt_block(uint8_t s[16]) {
  static const uint8_t backward[4] = {14, 11, 13, 9};
  for (int round = ROUNDS; round >= 1; round--) {
    add_round_key(s, round);
    if (round != ROUNDS)
      mix_columns(s, backward);
    shift_rows(s, 1);
    for (int k = 0; k < 16; k++)
      s[k] = inv_sbox[s[k]];
  }
  add_round_key(s, 0);
}

static void parse_hex(const char *hex, uint8_t out[16]) {
  for (int k = 0; k < 16; k++) {
    int hi = hex[2 * k] <= '9' ? hex[2 * k] - '0' : hex[2 * k] - 'a' + 10;
    int lo = hex[2 * k + 1] <= '9' ? hex[2 * k + 1] - '0' : hex[2 * k + 1] - 'a' + 10;
    out[k] = (uint8_t)(hi * 16 + lo);
  }
}

static int check_example(const char *key, const char *plain, const char *expected) {
  uint8_t k[16], block[16], want[16], original[16];
  parse_hex(key, k);
  parse_hex(plain, block);
  parse_hex(expected, want);
  memcpy(original, block, 16);
  expand_key(k);
  encrypt_block(block);
  int ok = memcmp(block, want, 16) == 0;
  decrypt_block(block);
  ok = ok && memcmp(block, original, 16) == 0;
  if (!ok)
    printf("FAILED FIPS 197 example with key %s\n", key);
  return !ok;
}

int main(void) {
  int failures = 0;
  make_sbox();
  if (sbox[0x00] != 0x63 || sbox[0x53] != 0xed || sbox[0xff] != 0x16 || inv_sbox[0x63] != 0) {
    printf("FAILED S-box\n");
    failures++;
  }
  failures += check_example("2b7e151628aed2a6abf7158809cf4f3c", "3243f6a8885a308d313198a2e0370734",
                            "3925841d02dc09fbdc118597196a0b32");
  failures += check_example("000102030405060708090a0b0c0d0e0f", "00112233445566778899aabbccddeeff",
                            "69c4e0d86a7b0430d8cdb78070b4c55a");

  uint8_t key[16], iv[16], chain[16];
  uint32_t x = 20240601u;
  for (int k = 0; k < 32 + (int)sizeof message; k++) {
    x = x * 134775813u + 1u;
    uint8_t byte = (uint8_t)(x >> 24);
    if (k < 16)
      key[k] = byte;
    else if (k < 32)
      iv[k - 16] = byte;
    else
      message[k - 32] = (k / 97) % 3 ? byte : 0;
  }
  expand_key(key);
  memcpy(chain, iv, 16);
  for (int b = 0; b < MESSAGE_BLOCKS; b++) {
    for (int k = 0; k < 16; k++)
      chain[k] ^= message[16 * b + k];
    encrypt_block(chain);
    memcpy(cipher + 16 * b, chain, 16);
  }
  for (int b = MESSAGE_BLOCKS - 1; b >= 0; b--) {
    uint8_t block[16];
    memcpy(block, cipher + 16 * b, 16);
    decrypt_block(block);
    for (int k = 0; k < 16; k++)
      restored[16 * b + k] = block[k] ^ (b ? cipher[16 * (b - 1) + k] : iv[k]);
  }
  if (memcmp(restored, message, sizeof message) != 0) {
    printf("FAILED CBC round trip\n");
    failures++;
  }

  uint32_t h = 0;
  for (int k = 0; k < (int)sizeof cipher; k++)
    h = h * 257u + cipher[k];
  printf("aes last block %02x%02x%02x%02x checksum %08x\n", cipher[sizeof cipher - 4],
         cipher[sizeof cipher - 3], cipher[sizeof cipher - 2], cipher[sizeof cipher - 1], h);
  printf("aes: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

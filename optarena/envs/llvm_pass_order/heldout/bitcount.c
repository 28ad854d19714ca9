/* optarena LlvmPassOrder-v0 held-out program (matrix and numeric): bit manipulation: population
 * count six ways (bit by bit, clearing the lowest set bit, an 8-bit table, a 4-bit table in a
 * constant, SWAR, and a 16-bit table), parity, leading and trailing zero counts, bit reversal.
 *
 * Checks, on 40,000 generated words of varied density: the six counts agree; popcount(x) +
 * popcount(~x) = 32; popcount(x ^ y) = popcount(x) + popcount(y) - 2 popcount(x & y); parity is
 * the count's low bit; reversing twice is the identity and swaps the leading and trailing zero
 * counts; the leading zero count locates the top bit. Prints the totals; exits 1 if a check
 * fails. */
#include <stdint.h>
#include <stdio.h>

#define WORDS 40000

static uint8_t table8[256];
static uint8_t table16[65536];

static int count_loop(uint32_t x) {
  int n = 0;
  for (int b = 0; b < 32; b++)
    n += (int)(x >> b & 1);
  return n;
}

static int count_sparse(uint32_t x) { /* one step per set bit */
  int n = 0;
  while (x) {
    x &= x - 1;
    n++;
  }
  return n;
}

static int count_table8(uint32_t x) {
  return table8[x & 0xFF] + table8[x >> 8 & 0xFF] + table8[x >> 16 & 0xFF] + table8[x >> 24];
}

static int count_nibbles(uint32_t x) { /* the counts of 0..15, two bits each, in one constant */
  const uint32_t packed = 0x3EE9E994u; /* nibble v -> bits 2v..2v+1 hold popcount(v) mod 4 */
  int n = 0;
  for (; x; x >>= 4) {
    uint32_t v = x & 15;
    n += v == 15 ? 4 : (int)(packed >> (2 * v) & 3);
  }
  return n;
}

static int count_swar(uint32_t x) {
  x = x - (x >> 1 & 0x55555555u);
  x = (x & 0x33333333u) + (x >> 2 & 0x33333333u);
  x = (x + (x >> 4)) & 0x0F0F0F0Fu;
  return (int)((x * 0x01010101u) >> 24);
}

static int count_table16(uint32_t x) { return table16[x & 0xFFFF] + table16[x >> 16]; }

static int parity(uint32_t x) {
  x ^= x >> 16;
  x ^= x >> 8;
  x ^= x >> 4;
  return (int)(0x6996u >> (x & 15) & 1);
}

static int leading_zeros(uint32_t x) { /* binary search for the top bit */
  if (!x)
    return 32;
  int n = 0;
  for (int shift = 16; shift; shift >>= 1)
    if (!(x >> (32 - shift))) {
      n += shift;
      x <<= shift;
    }
  return n;
}

static int trailing_zeros(uint32_t x) {
  if (!x)
    return 32;
  int n = 0;
  while (!(x & 1)) {
    x >>= 1;
    n++;
  }
  return n;
}

static uint32_t reverse(uint32_t x) {
  x = (x >> 1 & 0x55555555u) | (x & 0x55555555u) << 1;
  x = (x >> 2 & 0x33333333u) | (x & 0x33333333u) << 2;
  x = (x >> 4 & 0x0F0F0F0Fu) | (x & 0x0F0F0F0Fu) << 4;
  x = (x >> 8 & 0x00FF00FFu) | (x & 0x00FF00FFu) << 8;
  return x >> 16 | x << 16;
}

int main(void) {
  for (int v = 1; v < 256; v++)
    table8[v] = (uint8_t)(table8[v >> 1] + (v & 1));
  for (int v = 1; v < 65536; v++)
    table16[v] = (uint8_t)(table16[v >> 1] + (v & 1));

  uint32_t seed = 1u, previous = 0;
  long total = 0, total_parity = 0, total_lz = 0, total_tz = 0;
  int failures = 0;
  for (int w = 0; w < WORDS; w++) {
    seed = seed * 69069u + 1u;
    uint32_t x = seed, mask = seed * 2654435761u;
    x = w % 3 == 0 ? x & mask : w % 3 == 1 ? x | mask : x; /* sparse, dense and even words */
    if (w % 1000 == 0)
      x = w % 2000 ? 0 : 0xFFFFFFFFu;
    int n = count_loop(x);
    int agree = count_sparse(x) == n && count_table8(x) == n && count_nibbles(x) == n &&
                count_swar(x) == n && count_table16(x) == n && count_swar(~x) == 32 - n &&
                count_swar(x ^ previous) ==
                    n + count_swar(previous) - 2 * count_swar(x & previous) &&
                parity(x) == (n & 1) && reverse(reverse(x)) == x &&
                leading_zeros(reverse(x)) == trailing_zeros(x) &&
                (x == 0 || x >> (31 - leading_zeros(x)) == 1);
    if (!agree && failures++ == 0)
      printf("FAILED word %08x\n", x);
    total += n;
    total_parity += parity(x);
    total_lz += leading_zeros(x);
    total_tz += trailing_zeros(x);
    previous = x;
  }
  printf("bitcount bits %ld odd %ld leading %ld trailing %ld\n", total, total_parity, total_lz,
         total_tz);
  printf("bitcount: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

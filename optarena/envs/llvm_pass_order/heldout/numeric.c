/* optarena LlvmPassOrder-v0 held-out program (matrix and numeric): integer number theory: a
 * bit-packed sieve of Eratosthenes over odd numbers, Miller-Rabin (bases 2, 7 and 61: exact below
 * 2^32) with 64-bit modular multiplication and exponentiation, Euclid's, binary and extended GCD,
 * modular inverses, and integer square roots by Newton's method and digit by digit.
 *
 * Checks: the sieve counts 17,984 primes below 200,000 (pi(2 * 10^5)); Miller-Rabin agrees with
 * the sieve on every number below 200,000 and with trial division on 1,500 generated 32-bit
 * numbers; the three GCDs agree and Bezout's identity holds; a * inverse(a) = 1 modulo a prime;
 * both square roots agree and bracket n. Prints the counts and a checksum; exits 1 if a check
 * fails. */
#include <stdint.h>
#include <stdio.h>

#define LIMIT 200000
#define PRIMES_BELOW_LIMIT 17984
#define SAMPLES 1500

static uint8_t composite[(LIMIT / 2) / 8 + 1]; /* bit k: 2k + 1 is composite */

static int odd_is_composite(uint32_t n) { return composite[n / 2 / 8] >> (n / 2 % 8) & 1; }

static int sieve(void) {
  int count = 1; /* 2 */
  for (uint32_t n = 3; n * n < LIMIT; n += 2)
    if (!odd_is_composite(n))
      for (uint32_t m = n * n; m < LIMIT; m += 2 * n)
        composite[m / 2 / 8] |= (uint8_t)(1u << (m / 2 % 8));
  for (uint32_t n = 3; n < LIMIT; n += 2)
    count += !odd_is_composite(n);
  return count;
}

static uint32_t power_mod(uint32_t base, uint32_t exponent, uint32_t modulus) {
  uint64_t result = 1, b = base % modulus;
  for (; exponent; exponent >>= 1) {
    if (exponent & 1)
      result = result * b % modulus;
    b = b * b % modulus;
  }
  return (uint32_t)result;
}

static int miller_rabin(uint32_t n) {
  static const uint32_t bases[3] = {2, 7, 61};
  if (n < 2)
    return 0;
  for (int i = 0; i < 3; i++)
    if (n % bases[i] == 0)
      return n == bases[i];
  uint32_t d = n - 1;
  int s = 0;
  while (!(d & 1)) {
    d >>= 1;
    s++;
  }
  for (int i = 0; i < 3; i++) {
    uint64_t x = power_mod(bases[i], d, n);
    if (x == 1 || x == n - 1)
      continue;
    int witness = 1;
    for (int r = 1; r < s && witness; r++) {
      x = x * x % n;
      witness = x != n - 1;
    }
    if (witness)
      return 0;
  }
  return 1;
}

static int trial_division(uint32_t n) {
  if (n < 2)
    return 0;
  for (uint32_t p = 2; (uint64_t)p * p <= n; p += p == 2 ? 1 : 2)
    if (n % p == 0)
      return 0;
  return 1;
}

static uint32_t gcd_euclid(uint32_t a, uint32_t b) {
  while (b) {
    uint32_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

static uint32_t gcd_binary(uint32_t a, uint32_t b) {
  if (!a || !b)
    return a | b;
  int shift = 0;
  while (!((a | b) & 1)) {
    a >>= 1;
    b >>= 1;
    shift++;
  }
  while (!(a & 1))
    a >>= 1;
  while (b) {
    while (!(b & 1))
      b >>= 1;
    if (a > b) {
      uint32_t t = a;
      a = b;
      b = t;
    }
    b -= a;
  }
  return a << shift;
}

/* g = gcd(a, b) = a x + b y. */
static int64_t gcd_extended(int64_t a, int64_t b, int64_t *x, int64_t *y) {
  int64_t x0 = 1, y0 = 0, x1 = 0, y1 = 1;
  while (b) {
    int64_t q = a / b, t = a - q * b;
    a = b;
    b = t;
    t = x0 - q * x1;
    x0 = x1;
    x1 = t;
    t = y0 - q * y1;
    y0 = y1;
    y1 = t;
  }
  *x = x0;
  *y = y0;
  return a;
}

static uint32_t isqrt_newton(uint32_t n) {
  if (n < 2)
    return n;
  uint64_t x = n, y = (x + 1) / 2;
  while (y < x) {
    x = y;
    y = (x + n / x) / 2;
  }
  return (uint32_t)x;
}

static uint32_t isqrt_digits(uint32_t n) { /* one bit of the root per step */
  uint32_t root = 0;
  for (int bit = 15; bit >= 0; bit--) {
    uint32_t trial = root | 1u << bit;
    if ((uint64_t)trial * trial <= n)
      root = trial;
  }
  return root;
}

int main(void) {
  int failures = 0, count = sieve(), disagree = 0, sample_primes = 0;
  for (uint32_t n = 0; n < LIMIT; n++) {
    int by_sieve = n == 2 || (n > 2 && n % 2 && !odd_is_composite(n));
    disagree += miller_rabin(n) != by_sieve;
  }
  uint32_t x = 31415926u, checksum = 0;
  const uint32_t prime = 2147483647u; /* 2^31 - 1 */
  for (int i = 0; i < SAMPLES; i++) {
    x = x * 1664525u + 1013904223u;
    uint32_t n = x | 1, m = (x >> 7) * 6u + 12u;
    int is_prime = miller_rabin(n);
    disagree += is_prime != trial_division(n);
    sample_primes += is_prime;
    int64_t bx, by;
    int64_t g = gcd_extended(n, m, &bx, &by);
    uint32_t inverse = power_mod(n % prime ? n : 3, prime - 2, prime); /* Fermat */
    uint32_t r = isqrt_newton(x);
    if (gcd_euclid(n, m) != (uint32_t)g || gcd_binary(n, m) != (uint32_t)g ||
        (int64_t)n * bx + (int64_t)m * by != g ||
        (uint64_t)(n % prime ? n : 3) * inverse % prime != 1 || r != isqrt_digits(x) ||
        (uint64_t)r * r > x || ((uint64_t)r + 1) * ((uint64_t)r + 1) <= x)
      failures++;
    checksum = checksum * 33u ^ (uint32_t)g ^ r ^ inverse;
  }
  if (count != PRIMES_BELOW_LIMIT || disagree || failures) {
    printf("FAILED %d primes, %d disagreements, %d identities broken\n", count, disagree,
           failures);
    failures++;
  }
  printf("numeric primes %d sampled primes %d checksum %08x\n", count, sample_primes, checksum);
  printf("numeric: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

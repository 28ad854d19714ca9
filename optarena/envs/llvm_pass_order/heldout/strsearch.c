/* optarena LlvmPassOrder-v0 held-out program (string search): Knuth-Morris-Pratt,
 * Boyer-Moore-Horspool and Rabin-Karp against the naive scan, every occurrence (overlapping
 * ones too) of 40 patterns in two generated texts (a four-letter DNA-like one and a word text).
 *
 * Checks: the four algorithms report the same occurrences in the same order, and each one is a
 * real match; KMP's failure function is the longest proper border at every prefix (checked
 * directly). Prints the occurrence counts and a checksum of the positions; exits 1 if a check
 * fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TEXT_SIZE 20000
#define PATTERNS 40
#define MAX_PATTERN 24
#define MAX_HITS TEXT_SIZE

static char text[TEXT_SIZE + 1];
static char pattern[MAX_PATTERN + 1];
static int failure_link[MAX_PATTERN + 1];
static int hits[4][MAX_HITS];
static uint32_t seed = 8675309u;

static uint32_t draw(void) {
  seed = seed * 1664525u + 1013904223u;
  return seed >> 9;
}

static int naive(const char *t, int n, const char *p, int m, int *out) {
  int found = 0;
  for (int i = 0; i + m <= n; i++) {
    int k = 0;
    while (k < m && t[i + k] == p[k])
      k++;
    if (k == m)
      out[found++] = i;
  }
  return found;
}

/* failure_link[k]: the length of the longest proper border of p[0..k). */
static void build_failure(const char *p, int m) {
  failure_link[0] = -1;
  for (int k = 1, border = -1; k <= m; k++) {
    while (border >= 0 && p[border] != p[k - 1])
      border = failure_link[border];
    failure_link[k] = ++border;
  }
}

static int kmp(const char *t, int n, const char *p, int m, int *out) {
  int found = 0, matched = 0;
  build_failure(p, m);
  for (int i = 0; i < n; i++) {
    while (matched >= 0 && (matched == m || p[matched] != t[i]))
      matched = failure_link[matched];
    matched++;
    if (matched == m)
      out[found++] = i - m + 1;
  }
  return found;
}

static int horspool(const char *t, int n, const char *p, int m, int *out) {
  int shift[256], found = 0;
  for (int c = 0; c < 256; c++)
    shift[c] = m;
  for (int k = 0; k < m - 1; k++)
    shift[(unsigned char)p[k]] = m - 1 - k;
  for (int i = 0; i + m <= n; i += shift[(unsigned char)t[i + m - 1]]) {
    int k = m - 1;
    while (k >= 0 && t[i + k] == p[k])
      k--;
    if (k < 0)
      out[found++] = i;
  }
  return found;
}

static int rabin_karp(const char *t, int n, const char *p, int m, int *out) {
  const uint32_t base = 257u;
  uint32_t top = 1, hp = 0, ht = 0;
  int found = 0;
  if (m > n)
    return 0;
  for (int k = 0; k < m; k++) {
    hp = hp * base + (unsigned char)p[k];
    ht = ht * base + (unsigned char)t[k];
    if (k)
      top *= base; /* base^(m-1), modulo 2^32 */
  }
  for (int i = 0;; i++) {
    if (hp == ht && memcmp(t + i, p, (size_t)m) == 0)
      out[found++] = i;
    if (i + m >= n)
      break;
    ht = (ht - (unsigned char)t[i] * top) * base + (unsigned char)t[i + m];
  }
  return found;
}

static int borders_are_longest(const char *p, int m) {
  for (int k = 1; k <= m; k++) {
    int longest = 0;
    for (int b = k - 1; b > 0 && !longest; b--)
      if (memcmp(p, p + k - b, (size_t)b) == 0)
        longest = b;
    if (failure_link[k] != longest)
      return 0;
  }
  return 1;
}

static void make_text(int kind) {
  static const char *words[] = {"compiler", "pass", "order", "loop", "unroll", "inline", "licm"};
  for (int i = 0; i < TEXT_SIZE;) {
    if (kind == 0) {
      text[i] = "ACGT"[draw() % (i % 1000 < 100 ? 2 : 4)]; /* stretches of A and C only */
      i++;
    } else {
      const char *w = words[draw() % 7];
      while (*w && i < TEXT_SIZE)
        text[i++] = *w++;
      if (i < TEXT_SIZE)
        text[i++] = draw() % 9 ? ' ' : '.';
    }
  }
  text[TEXT_SIZE] = '\0';
}

int main(void) {
  int failures = 0, total[2] = {0, 0};
  uint32_t checksum = 0;
  for (int kind = 0; kind < 2; kind++) {
    make_text(kind);
    for (int q = 0; q < PATTERNS; q++) {
      int m = 1 + (int)(draw() % MAX_PATTERN);
      if (q % 3) { /* a piece of the text, so that it occurs */
        memcpy(pattern, text + draw() % (TEXT_SIZE - MAX_PATTERN), (size_t)m);
      } else {
        for (int k = 0; k < m; k++)
          pattern[k] = kind ? "aceilnoprstu "[draw() % 13] : "ACGT"[draw() % 2];
      }
      pattern[m] = '\0';
      int n0 = naive(text, TEXT_SIZE, pattern, m, hits[0]);
      int n1 = kmp(text, TEXT_SIZE, pattern, m, hits[1]);
      int n2 = horspool(text, TEXT_SIZE, pattern, m, hits[2]);
      int n3 = rabin_karp(text, TEXT_SIZE, pattern, m, hits[3]);
      int same = n0 == n1 && n0 == n2 && n0 == n3 && borders_are_longest(pattern, m);
      for (int h = 0; h < n0 && same; h++)
        same = hits[1][h] == hits[0][h] && hits[2][h] == hits[0][h] &&
               hits[3][h] == hits[0][h] && memcmp(text + hits[0][h], pattern, (size_t)m) == 0;
      if (!same) {
        printf("FAILED pattern %d of text %d (%d/%d/%d/%d)\n", q, kind, n0, n1, n2, n3);
        failures++;
      }
      total[kind] += n0;
      for (int h = 0; h < n0; h++)
        checksum = checksum * 16777619u ^ (uint32_t)hits[0][h];
    }
  }
  printf("strsearch dna %d words %d checksum %08x\n", total[0], total[1], checksum);
  printf("strsearch: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

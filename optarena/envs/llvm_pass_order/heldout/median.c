/* optarena LlvmPassOrder-v0 held-out program (image filter): median filters on a generated 128x128
 * grey image with salt-and-pepper noise: 3x3 by a sorting network of compare-exchanges, 5x5 by
 * Huang's running histogram (one column in, one out, per step along a row), and both by sorting
 * the window (the reference), borders replicated.
 *
 * Checks: the sorting network and the histogram filter equal the sorted-window medians; the 3x3
 * median removes at least 95% of the noise pixels (counted against the clean image). Prints the
 * noise counts before and after and a checksum; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>

#define W 128
#define H 128

static uint8_t clean[H][W], noisy[H][W], net3[H][W], ref3[H][W], huang5[H][W], ref5[H][W];

static int clampi(int v, int n) { return v < 0 ? 0 : v >= n ? n - 1 : v; }

static uint8_t sorted_median(uint8_t in[H][W], int y, int x, int r) {
  uint8_t v[25];
  int n = 0;
  for (int j = -r; j <= r; j++)
    for (int i = -r; i <= r; i++) {
      uint8_t p = in[clampi(y + j, H)][clampi(x + i, W)];
      int k = n++;
      while (k > 0 && v[k - 1] > p) {
        v[k] = v[k - 1];
        k--;
      }
      v[k] = p;
    }
  return v[n / 2];
}

#define EXCHANGE(a, b)                                                                        \
  do {                                                                                        \
    if (p[a] > p[b]) {                                                                        \
      uint8_t t = p[a];                                                                       \
      p[a] = p[b];                                                                            \
      p[b] = t;                                                                               \
    }                                                                                         \
  } while (0)

/* The median of nine by 19 compare-exchanges (right for all 512 inputs of zeros and ones,
 * hence for all inputs). */
static uint8_t network_median9(uint8_t p[9]) {
  EXCHANGE(1, 2); EXCHANGE(4, 5); EXCHANGE(7, 8);
  EXCHANGE(0, 1); EXCHANGE(3, 4); EXCHANGE(6, 7);
  EXCHANGE(1, 2); EXCHANGE(4, 5); EXCHANGE(7, 8);
  EXCHANGE(0, 3); EXCHANGE(5, 8); EXCHANGE(4, 7);
  EXCHANGE(3, 6); EXCHANGE(1, 4); EXCHANGE(2, 5);
  EXCHANGE(4, 7); EXCHANGE(4, 2); EXCHANGE(6, 4);
  EXCHANGE(4, 2);
  return p[4];
}

static void median3_network(uint8_t in[H][W], uint8_t out[H][W]) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t p[9];
      for (int k = 0; k < 9; k++)
        p[k] = in[clampi(y + k / 3 - 1, H)][clampi(x + k % 3 - 1, W)];
      out[y][x] = network_median9(p);
    }
}

/* Huang: keep a histogram of the window; the median is found by walking from the last one. */
static void median5_huang(uint8_t in[H][W], uint8_t out[H][W]) {
  const int r = 2, half = 13; /* 25 values: the 13th smallest */
  for (int y = 0; y < H; y++) {
    int histogram[256] = {0};
    for (int j = -r; j <= r; j++)
      for (int i = -r; i <= r; i++)
        histogram[in[clampi(y + j, H)][clampi(i, W)]]++;
    int median = 0, below = 0; /* below: values smaller than median */
    for (int x = 0; x < W; x++) {
      if (x > 0)
        for (int j = -r; j <= r; j++) {
          uint8_t gone = in[clampi(y + j, H)][clampi(x - r - 1, W)];
          uint8_t come = in[clampi(y + j, H)][clampi(x + r, W)];
          histogram[gone]--;
          below -= gone < median;
          histogram[come]++;
          below += come < median;
        }
      while (below >= half) { /* too high: step down */
        median--;
        below -= histogram[median];
      }
      while (below + histogram[median] < half) { /* too low: step up */
        below += histogram[median];
        median++;
      }
      out[y][x] = (uint8_t)median;
    }
  }
}

int main(void) {
  uint32_t s = 271828u;
  int noise = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int v = 40 + (x / 16) * 20 + ((y / 32) % 2) * 15; /* bands: large flat areas */
      clean[y][x] = (uint8_t)v;
      s = s * 1103515245u + 12345u;
      uint32_t r = (s >> 16) % 100;
      noisy[y][x] = r < 3 ? 0 : r < 6 ? 255 : (uint8_t)v;
      noise += noisy[y][x] != clean[y][x];
    }
  median3_network(noisy, net3);
  median5_huang(noisy, huang5);
  int failures = 0, left = 0;
  uint32_t checksum = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      ref3[y][x] = sorted_median(noisy, y, x, 1);
      ref5[y][x] = sorted_median(noisy, y, x, 2);
      if (net3[y][x] != ref3[y][x] || huang5[y][x] != ref5[y][x])
        failures++;
      left += net3[y][x] == 0 || net3[y][x] == 255;
      checksum = checksum * 131u + (uint32_t)(net3[y][x] ^ huang5[y][x] << 4);
    }
  if (failures)
    printf("FAILED %d pixels differ from the sorted medians\n", failures);
  if (left * 20 > noise) {
    printf("FAILED %d of %d noise pixels left\n", left, noise);
    failures++;
  }
  printf("median noise %d left %d checksum %08x\n", noise, left, checksum);
  printf("median: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

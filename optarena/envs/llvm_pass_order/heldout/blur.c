/* optarena LlvmPassOrder-v0 held-out program (image filter): Gaussian blur (5x5 binomial kernel),
 * box blur through a summed-area table, and an unsharp mask, on a generated 160x160 grey image
 * with mirrored borders; exact integer arithmetic, rounded once.
 *
 * Checks: the direct 5x5 convolution equals the separable one (rows, then columns, rounded at
 * the end); every 7x7 box sum from the summed-area table equals the directly added one; a
 * constant image stays constant under both blurs; the unsharp mask of a constant image is the
 * image. Prints the means and a checksum of the blurred and sharpened images; exits 1 if a
 * check fails. */
#include <stdint.h>
#include <stdio.h>

#define W 160
#define H 160
#define BOX 3 /* radius: 7x7 boxes */

static const int32_t binomial[5] = {1, 4, 6, 4, 1}; /* sums to 16; 2-D: 256 */
static uint8_t image[H][W], blurred[H][W], separable[H][W], boxed[H][W], sharp[H][W];
static int32_t horizontal[H][W];
static uint32_t table[H + 1][W + 1];

static int mirror(int i, int n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); }

static void gaussian_direct(uint8_t in[H][W], uint8_t out[H][W]) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int32_t sum = 0;
      for (int j = -2; j <= 2; j++)
        for (int i = -2; i <= 2; i++)
          sum += binomial[j + 2] * binomial[i + 2] * in[mirror(y + j, H)][mirror(x + i, W)];
      out[y][x] = (uint8_t)((sum + 128) / 256);
    }
}

static void gaussian_separable(uint8_t in[H][W], uint8_t out[H][W]) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int32_t sum = 0;
      for (int i = -2; i <= 2; i++)
        sum += binomial[i + 2] * in[y][mirror(x + i, W)];
      horizontal[y][x] = sum;
    }
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int32_t sum = 0;
      for (int j = -2; j <= 2; j++)
        sum += binomial[j + 2] * horizontal[mirror(y + j, H)][x];
      out[y][x] = (uint8_t)((sum + 128) / 256);
    }
}

/* table[y][x]: the sum of in over rows < y and columns < x. */
static void summed_area(uint8_t in[H][W]) {
  for (int y = 0; y <= H; y++)
    for (int x = 0; x <= W; x++)
      table[y][x] = y && x ? in[y - 1][x - 1] + table[y - 1][x] + table[y][x - 1] -
                                 table[y - 1][x - 1]
                           : 0;
}

/* The mean of the box around (y, x), clipped to the image. */
static int box_mean(int y, int x, int direct, uint8_t in[H][W]) {
  int y0 = y - BOX < 0 ? 0 : y - BOX, y1 = y + BOX >= H ? H - 1 : y + BOX;
  int x0 = x - BOX < 0 ? 0 : x - BOX, x1 = x + BOX >= W ? W - 1 : x + BOX;
  uint32_t area = (uint32_t)((y1 - y0 + 1) * (x1 - x0 + 1)), sum = 0;
  if (direct) {
    for (int j = y0; j <= y1; j++)
      for (int i = x0; i <= x1; i++)
        sum += in[j][i];
  } else {
    sum = table[y1 + 1][x1 + 1] - table[y0][x1 + 1] - table[y1 + 1][x0] + table[y0][x0];
  }
  return (int)((sum + area / 2) / area);
}

/* sharp = image + (image - blurred) / 2, clamped. */
static void unsharp(uint8_t in[H][W], uint8_t soft[H][W], uint8_t out[H][W]) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int v = in[y][x] + (in[y][x] - soft[y][x]) / 2;
      out[y][x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

static int blur_all(uint8_t in[H][W]) {
  int mismatches = 0;
  gaussian_direct(in, blurred);
  gaussian_separable(in, separable);
  summed_area(in);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      mismatches += blurred[y][x] != separable[y][x];
      boxed[y][x] = (uint8_t)box_mean(y, x, 0, in);
      if ((y * W + x) % 13 == 0)
        mismatches += boxed[y][x] != box_mean(y, x, 1, in);
    }
  unsharp(in, blurred, sharp);
  return mismatches;
}

static uint32_t mean(uint8_t in[H][W]) {
  uint32_t total = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      total += in[y][x];
  return total / (W * H);
}

int main(void) {
  int failures = 0;
  uint32_t s = 5u;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      s = s * 1664525u + 1013904223u;
      int checker = ((x / 20) + (y / 20)) % 2 ? 180 : 60;
      image[y][x] = (uint8_t)(checker + (int)((s >> 24) % 41) - 20);
    }
  if (blur_all(image)) {
    printf("FAILED direct and fast blurs differ\n");
    failures++;
  }
  uint32_t checksum = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      checksum = (checksum << 3 | checksum >> 29) ^ (uint32_t)(blurred[y][x] << 16 |
                                                               boxed[y][x] << 8 | sharp[y][x]);
  printf("blur means %u %u %u %u checksum %08x\n", mean(image), mean(blurred), mean(boxed),
         mean(sharp), checksum);

  static uint8_t flat[H][W];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      flat[y][x] = 99;
  int flat_mismatches = blur_all(flat);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      flat_mismatches += blurred[y][x] != 99 || boxed[y][x] != 99 || sharp[y][x] != 99;
  if (flat_mismatches) {
    printf("FAILED a constant image changed\n");
    failures++;
  }
  printf("blur: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

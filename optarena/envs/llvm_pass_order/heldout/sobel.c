/* optarena LlvmPassOrder-v0 held-out program (image filter): Sobel edge detection on a generated
 * 192x192 grey image (discs, boxes, a gradient, noise), borders clamped; gradient magnitude by
 * an integer square root, edges by threshold, edge directions in four bins.
 *
 * Checks: the direct 3x3 convolution equals the separable one ([1 2 1] smoothing, then [-1 0 1]
 * differencing); the x gradient of the transposed image is the transposed y gradient; the x
 * gradient of the mirrored image is the mirrored, negated x gradient; a constant image has no
 * gradient. Prints the edge count, the direction histogram and a checksum; exits 1 if a check
 * fails. */
#include <stdint.h>
#include <stdio.h>

#define W 192
#define H 192
#define THRESHOLD 180

static uint8_t image[H][W], other[H][W];
static int32_t gx[H][W], gy[H][W], tx[H][W], ty[H][W], row_pass[H][W];
static uint8_t edges[H][W];

static int clamp_index(int i, int n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

static void sobel_direct(uint8_t in[H][W], int32_t ox[H][W], int32_t oy[H][W]) {
  static const int kx[3][3] = {{-1, 0, 1}, {-2, 0, 2}, {-1, 0, 1}};
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int32_t sx = 0, sy = 0;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int32_t p = in[clamp_index(y + dy, H)][clamp_index(x + dx, W)];
          sx += kx[dy + 1][dx + 1] * p;
          sy += kx[dx + 1][dy + 1] * p; /* the transposed kernel */
        }
      ox[y][x] = sx;
      oy[y][x] = sy;
    }
}

/* The x gradient in two passes: vertical smoothing, then horizontal differencing. */
static void sobel_x_separable(uint8_t in[H][W], int32_t out[H][W]) {
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      row_pass[y][x] = in[clamp_index(y - 1, H)][x] + 2 * in[y][x] + in[clamp_index(y + 1, H)][x];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      out[y][x] = row_pass[y][clamp_index(x + 1, W)] - row_pass[y][clamp_index(x - 1, W)];
}

static uint32_t isqrt(uint32_t v) {
  uint32_t root = 0, bit = 1u << 30;
  while (bit > v)
    bit >>= 2;
  while (bit) {
    if (v >= root + bit) {
      v -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return root;
}

static void make_image(void) {
  uint32_t noise = 42u;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int v = (x + y) / 3;
      int dx = x - 70, dy = y - 90;
      if (dx * dx + dy * dy < 40 * 40)
        v = 200;
      if (x > 120 && x < 170 && y > 20 && y < 150)
        v = 30 + (y % 16 < 8 ? 60 : 0);
      noise = noise * 1103515245u + 12345u;
      v += (int)((noise >> 16) % 9) - 4;
      image[y][x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

int main(void) {
  int failures = 0;
  make_image();
  sobel_direct(image, gx, gy);
  sobel_x_separable(image, tx);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      if (tx[y][x] != gx[y][x]) {
        failures++;
        y = H;
        break;
      }

  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      other[x][y] = image[y][x]; /* W == H: transpose */
  sobel_direct(other, tx, ty);
  int transposed_ok = 1, mirrored_ok = 1, flat_ok = 1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      transposed_ok &= tx[x][y] == gy[y][x] && ty[x][y] == gx[y][x];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      other[y][W - 1 - x] = image[y][x];
  sobel_direct(other, tx, ty);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      mirrored_ok &= tx[y][W - 1 - x] == -gx[y][x] && ty[y][W - 1 - x] == gy[y][x];
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      other[y][x] = 77;
  sobel_direct(other, tx, ty);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      flat_ok &= tx[y][x] == 0 && ty[y][x] == 0;
  if (failures || !transposed_ok || !mirrored_ok || !flat_ok) {
    printf("FAILED separable %d transposed %d mirrored %d flat %d\n", !failures, transposed_ok,
           mirrored_ok, flat_ok);
    failures++;
  }

  int count = 0, bins[4] = {0, 0, 0, 0};
  uint32_t checksum = 0;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int32_t ax = gx[y][x] < 0 ? -gx[y][x] : gx[y][x], ay = gy[y][x] < 0 ? -gy[y][x] : gy[y][x];
      uint32_t magnitude = isqrt((uint32_t)(ax * ax + ay * ay));
      edges[y][x] = magnitude > THRESHOLD;
      if (edges[y][x]) { /* 0: horizontal gradient, 2: vertical, 1 and 3: the diagonals */
        int diagonal = 5 * ax > 2 * ay && 5 * ay > 2 * ax;
        int bin = diagonal ? ((gx[y][x] < 0) == (gy[y][x] < 0) ? 1 : 3) : (ax > ay ? 0 : 2);
        bins[bin]++;
        count++;
      }
      checksum = checksum * 31u + magnitude;
    }
  printf("sobel edges %d directions %d %d %d %d checksum %08x\n", count, bins[0], bins[1],
         bins[2], bins[3], checksum);
  printf("sobel: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

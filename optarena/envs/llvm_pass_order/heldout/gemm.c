/* optarena LlvmPassOrder-v0 held-out program (matrix and numeric): 96x96 integer matrix products
 * modulo 2^32 by five methods: the i-j-k triple loop, the i-k-j order, 16x16 tiles, a transposed
 * right operand, and one level of Strassen's recursion over i-k-j quadrant products.
 *
 * Checks: the five products are equal; Freivalds' test (A (B v) = C v for four generated vectors
 * v); the transpose identity (A B)^T = B^T A^T through the tiled kernel. Prints the trace and a
 * checksum of the product; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 96
#define HALF (N / 2)
#define TILE 16

typedef uint32_t Matrix[N][N];
typedef uint32_t Quarter[HALF][HALF];

static Matrix a, b, c_ijk, c_ikj, c_tiled, c_transposed, c_strassen, at, bt, ct;
static Quarter q[7], s1, s2;

static void multiply_ijk(Matrix x, Matrix y, Matrix out) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      for (int k = out[i][j] = 0; k < N; k++)
        out[i][j] += x[i][k] * y[k][j];
}

static uint32_t dot_rows(const uint32_t *u, const uint32_t *v) {
  uint32_t sum = 0;
  for (const uint32_t *end = u + N; u < end; u++, v++)
    sum += *u * *v;
  return sum;
}

static void multiply_ikj(Matrix x, Matrix y, Matrix out) {
  memset(out, 0, sizeof(Matrix));
  for (int i = 0; i < N; i++)
    for (int k = 0; k < N; k++) {
      uint32_t scale = x[i][k];
      for (int j = 0; j < N; j++)
        out[i][j] += scale * y[k][j];
    }
}

static void multiply_tiled(Matrix x, Matrix y, Matrix out) {
  memset(out, 0, sizeof(Matrix));
  for (int ii = 0; ii < N; ii += TILE)
    for (int kk = 0; kk < N; kk += TILE)
      for (int jj = 0; jj < N; jj += TILE)
        for (int i = ii; i < ii + TILE; i++)
          for (int k = kk; k < kk + TILE; k++) {
            uint32_t scale = x[i][k];
            for (int j = jj; j < jj + TILE; j++)
              out[i][j] += scale * y[k][j];
          }
}

static void multiply_transposed(Matrix x, Matrix y, Matrix out) {
  static Matrix yt;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      yt[j][i] = y[i][j];
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      out[i][j] = dot_rows(x[i], yt[j]);
}

/* out = (quadrant (r1, c1) of x) + sign * (quadrant (r2, c2) of x); sign 0 copies the first. */
static void combine(Matrix x, int r1, int c1, int r2, int c2, int sign, Quarter out) {
  for (int i = 0; i < HALF; i++)
    for (int j = 0; j < HALF; j++) {
      uint32_t second = sign ? x[r2 * HALF + i][c2 * HALF + j] : 0;
      out[i][j] = x[r1 * HALF + i][c1 * HALF + j] + (sign < 0 ? 0u - second : second);
    }
}

static void quarter_product(Quarter x, Quarter y, Quarter out) {
  memset(out, 0, sizeof(Quarter));
  for (int i = 0; i < HALF; i++)
    for (int k = 0; k < HALF; k++)
      for (int j = 0; j < HALF; j++)
        out[i][j] += x[i][k] * y[k][j];
}

static void multiply_strassen(Matrix x, Matrix y, Matrix out) {
  /* operands of M1..M7: quadrant pairs of x and of y (row, column, row, column, sign) */
  static const int left[7][5] = {{0, 0, 1, 1, 1}, {1, 0, 1, 1, 1}, {0, 0, 0, 0, 0},
                                 {1, 1, 1, 1, 0}, {0, 0, 0, 1, 1}, {1, 0, 0, 0, -1},
                                 {0, 1, 1, 1, -1}};
  static const int right[7][5] = {{0, 0, 1, 1, 1}, {0, 0, 0, 0, 0}, {0, 1, 1, 1, -1},
                                  {1, 0, 0, 0, -1}, {1, 1, 1, 1, 0}, {0, 0, 0, 1, 1},
                                  {1, 0, 1, 1, 1}};
  for (int m = 0; m < 7; m++) {
    combine(x, left[m][0], left[m][1], left[m][2], left[m][3], left[m][4], s1);
    combine(y, right[m][0], right[m][1], right[m][2], right[m][3], right[m][4], s2);
    quarter_product(s1, s2, q[m]);
  }
  for (int i = 0; i < HALF; i++)
    for (int j = 0; j < HALF; j++) {
      out[i][j] = q[0][i][j] + q[3][i][j] - q[4][i][j] + q[6][i][j];
      out[i][j + HALF] = q[2][i][j] + q[4][i][j];
      out[i + HALF][j] = q[1][i][j] + q[3][i][j];
      out[i + HALF][j + HALF] = q[0][i][j] - q[1][i][j] + q[2][i][j] + q[5][i][j];
    }
}

static int freivalds(uint32_t seed) {
  uint32_t v[N], bv[N];
  for (int k = 0; k < N; k++) {
    seed = seed * 1664525u + 1013904223u;
    v[k] = seed >> 7;
  }
  for (int i = 0; i < N; i++) {
    bv[i] = 0;
    for (int k = 0; k < N; k++)
      bv[i] += b[i][k] * v[k];
  }
  for (int i = 0; i < N; i++) {
    uint32_t abv = 0, cv = 0;
    for (int k = 0; k < N; k++) {
      abv += a[i][k] * bv[k];
      cv += c_ijk[i][k] * v[k];
    }
    if (abv != cv)
      return 0;
  }
  return 1;
}

int main(void) {
  uint32_t x = 2026u;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      x = x * 747796405u + 2891336453u;
      a[i][j] = x >> 3;
      x = x * 747796405u + 2891336453u;
      b[i][j] = (i + j) % 5 ? x >> 3 : 0;
    }
  multiply_ijk(a, b, c_ijk);
  multiply_ikj(a, b, c_ikj);
  multiply_tiled(a, b, c_tiled);
  multiply_transposed(a, b, c_transposed);
  multiply_strassen(a, b, c_strassen);
  int failures = 0;
  if (memcmp(c_ijk, c_ikj, sizeof(Matrix)) || memcmp(c_ijk, c_tiled, sizeof(Matrix)) ||
      memcmp(c_ijk, c_transposed, sizeof(Matrix)) || memcmp(c_ijk, c_strassen, sizeof(Matrix))) {
    printf("FAILED the products differ\n");
    failures++;
  }
  for (int t = 0; t < 4; t++)
    failures += !freivalds(77u + (uint32_t)t);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      at[j][i] = a[i][j];
      bt[j][i] = b[i][j];
    }
  multiply_tiled(bt, at, ct);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      if (ct[j][i] != c_ijk[i][j]) {
        printf("FAILED transpose identity at %d %d\n", i, j);
        failures++;
        i = N;
        break;
      }
  uint32_t trace = 0, checksum = 0;
  for (int i = 0; i < N; i++) {
    trace += c_ijk[i][i];
    for (int j = 0; j < N; j++)
      checksum = (checksum ^ c_ijk[i][j]) * 0x01000193u;
  }
  printf("gemm trace %08x checksum %08x\n", trace, checksum);
  printf("gemm: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* optarena LlvmPassOrder-v0 suite: dense matrix multiply, prints a checksum. */
#include <stdio.h>

#define N 96

static double a[N][N], b[N][N], c[N][N];

static void init(void) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      a[i][j] = (double)((i * 7 + j * 3) % 17) / 17.0;
      b[i][j] = (double)((i * 5 + j * 11) % 13) / 13.0;
    }
}

static void matmul(void) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double sum = 0.0;
      for (int k = 0; k < N; k++)
        sum += a[i][k] * b[k][j];
      c[i][j] = sum;
    }
}

int main(void) {
  init();
  for (int r = 0; r < 16; r++)
    matmul();
  double checksum = 0.0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      checksum += c[i][j] * (double)((i + j) % 5);
  printf("%.6f\n", checksum);
  return 0;
}

/* optarena LlvmPassOrder-v0 suite: 2-D Jacobi stencil sweeps, prints a checksum. */
#include <stdio.h>

#define N 160
#define STEPS 160

static float grid[2][N][N];

int main(void) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      grid[0][i][j] = (float)((i * 31 + j * 17) % 23);
  for (int t = 0; t < STEPS; t++) {
    int src = t % 2, dst = 1 - src;
    for (int i = 1; i < N - 1; i++)
      for (int j = 1; j < N - 1; j++)
        grid[dst][i][j] = 0.2f * (grid[src][i][j] + grid[src][i - 1][j] + grid[src][i + 1][j] +
                                  grid[src][i][j - 1] + grid[src][i][j + 1]);
  }
  double checksum = 0.0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      checksum += grid[STEPS % 2][i][j];
  printf("%.3f\n", checksum);
  return 0;
}

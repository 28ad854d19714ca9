/* optarena LlvmPassOrder-v0 held-out program (matrix and numeric): LU decomposition with partial
 * pivoting (Doolittle, in place, row swaps recorded), forward and back substitution, the
 * determinant and the inverse, on a generated dense 80x80 matrix.
 *
 * Checks: L times U equals the row-permuted matrix to 1e-12 (relative to the largest entry);
 * the solution of A x = A x_true is x_true to 1e-9; A times its computed inverse is the
 * identity to 1e-9; the determinant of a matrix with a known determinant (a unit lower
 * triangular matrix times an upper triangular one with a chosen diagonal, rows permuted) is
 * found to 1e-9. Prints the log2 of the determinant's magnitude, its sign and a residual; exits 1
 * if a check fails. */
#include <stdio.h>

#define N 80

static double a[N][N], lu[N][N], inverse[N][N], b[N], x[N], x_true[N];
static int pivot[N];
static unsigned seed = 7654321u;

static double uniform(void) { /* in [-1, 1) */
  seed = seed * 1664525u + 1013904223u;
  return (double)(seed >> 8) / 8388608.0 - 1.0;
}

static double absolute(double v) { return v < 0 ? -v : v; }

static double larger(double u, double v) { return u > v ? u : v; }

/* In place: lu = L (unit diagonal, below) and U; returns the permutation's sign, 0 if singular. */
static int decompose(void) {
  int sign = 1;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      lu[i][j] = a[i][j];
  for (int k = 0; k < N; k++) {
    int p = k;
    for (int i = k + 1; i < N; i++)
      if (absolute(lu[i][k]) > absolute(lu[p][k]))
        p = i;
    pivot[k] = p;
    if (lu[p][k] == 0.0)
      return 0;
    if (p != k) {
      sign = -sign;
      for (int j = 0; j < N; j++) {
        double t = lu[k][j];
        lu[k][j] = lu[p][j];
        lu[p][j] = t;
      }
    }
    for (int i = k + 1; i < N; i++) {
      double factor = lu[i][k] / lu[k][k];
      lu[i][k] = factor;
      for (int j = k + 1; j < N; j++)
        lu[i][j] -= factor * lu[k][j];
    }
  }
  return sign;
}

static void solve(const double *rhs, double *out) {
  for (int i = 0; i < N; i++)
    out[i] = rhs[i];
  for (int k = 0; k < N; k++) { /* the row swaps, in order */
    double t = out[k];
    out[k] = out[pivot[k]];
    out[pivot[k]] = t;
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < i; j++)
      out[i] -= lu[i][j] * out[j];
  for (int i = N - 1; i >= 0; i--) {
    for (int j = i + 1; j < N; j++)
      out[i] -= lu[i][j] * out[j];
    out[i] /= lu[i][i];
  }
}

/* log2 |det| (and its sign) from U's diagonal, kept in range by splitting off powers of two. */
static double log2_determinant(int permutation_sign, int *sign) {
  double mantissa = 1.0, log2 = 0.0;
  *sign = permutation_sign;
  for (int i = 0; i < N; i++) {
    double d = lu[i][i];
    if (d < 0) {
      *sign = -*sign;
      d = -d;
    }
    mantissa *= d;
    while (mantissa >= 2.0) {
      mantissa /= 2.0;
      log2 += 1.0;
    }
    while (mantissa < 1.0) {
      mantissa *= 2.0;
      log2 -= 1.0;
    }
  }
  double frac = 0.0, m = mantissa; /* log2 of m in [1, 2) by repeated squaring */
  for (double bit = 0.5; bit > 1e-15; bit /= 2.0) {
    m *= m;
    if (m >= 2.0) {
      m /= 2.0;
      frac += bit;
    }
  }
  return log2 + frac;
}

int main(void) {
  int failures = 0;
  for (int i = 0; i < N; i++) {
    x_true[i] = uniform() * 10.0;
    for (int j = 0; j < N; j++)
      a[i][j] = uniform();
  }
  int sign = decompose(), det_sign;
  double worst = 0.0;
  for (int i = 0; i < N; i++) { /* b = A x_true */
    b[i] = 0.0;
    for (int j = 0; j < N; j++)
      b[i] += a[i][j] * x_true[j];
  }
  double permuted[N];
  for (int j = 0; j < N; j++) { /* column j of L U against column j of the permuted matrix */
    for (int i = 0; i < N; i++)
      permuted[i] = a[i][j];
    for (int k = 0; k < N; k++) {
      double t = permuted[k];
      permuted[k] = permuted[pivot[k]];
      permuted[pivot[k]] = t;
    }
    for (int i = 0; i < N; i++) {
      double sum = 0.0;
      for (int k = 0; k <= i && k <= j; k++)
        sum += (k == i ? 1.0 : lu[i][k]) * lu[k][j];
      worst = larger(worst, absolute(sum - permuted[i]));
    }
  }
  solve(b, x);
  double solve_error = 0.0, identity_error = 0.0;
  for (int i = 0; i < N; i++)
    solve_error = larger(solve_error, absolute(x[i] - x_true[i]));
  for (int j = 0; j < N; j++) {
    double unit[N] = {0.0}, column[N];
    unit[j] = 1.0;
    solve(unit, column);
    for (int i = 0; i < N; i++)
      inverse[i][j] = column[i];
  }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double sum = 0.0;
      for (int k = 0; k < N; k++)
        sum += a[i][k] * inverse[k][j];
      identity_error = larger(identity_error, absolute(sum - (i == j)));
    }
  double log2_det = log2_determinant(sign, &det_sign);

  /* A known determinant: L (unit diagonal) times U with diagonal 2, 0.5, 2, ... but -1.5 at 5,
   * rows rotated by 3 (a permutation of sign (-1)^(3 (N - 1))); lu holds U, inverse holds L. */
  double known_log2 = 0.0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      inverse[i][j] = i == j ? 1.0 : i > j ? 0.1 * uniform() : 0.0;
      lu[i][j] = i == j ? (i == 5 ? -1.5 : i % 2 ? 0.5 : 2.0) : i < j ? uniform() : 0.0;
    }
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double sum = 0.0;
      for (int k = 0; k <= i && k <= j; k++)
        sum += inverse[i][k] * lu[k][j];
      a[(i + 3) % N][j] = sum;
    }
  for (int k = 0; k < N; k++)
    known_log2 += k == 5 ? 0.584962500721156 : k % 2 ? -1.0 : 1.0;
  int known_sign;
  double found_log2 = log2_determinant(decompose(), &known_sign);
  int expected_sign = 3 * (N - 1) % 2 ? 1 : -1; /* the rotation's sign times -1 (for -1.5) */
  if (worst > 1e-12 || solve_error > 1e-9 || identity_error > 1e-9 ||
      absolute(found_log2 - known_log2) > 1e-9 || known_sign != expected_sign) {
    printf("FAILED LU %g solve %g inverse %g determinant %f (expected %f) sign %d\n", worst,
           solve_error, identity_error, found_log2, known_log2, known_sign);
    failures++;
  }
  printf("lu log2|det| %.6f sign %d x[0] %.9f\n", log2_det, det_sign, x[0]);
  printf("lu: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* optarena LlvmPassOrder-v0 held-out program (matrix and numeric): the 2-D Poisson equation
 * -(u_xx + u_yy) = f on the unit square (5-point stencil, 23x23 interior points, zero boundary)
 * solved three ways: Jacobi iteration, red-black successive over-relaxation with the optimal
 * factor, and conjugate gradients on the stencil operator.
 *
 * The right-hand side is made from u = x(1-x)y(1-y), whose fourth derivatives vanish, so the
 * discrete solution equals u at the grid points. Checks: every method stops on its own criterion
 * within its iteration limit and lands within 1e-9 of u; SOR and CG need far fewer iterations
 * than Jacobi; CG's successive residuals are orthogonal (to 1e-9 of their size) over its first
 * steps. Prints the iteration counts and the centre value; exits 1 if a check fails. */
#include <stdio.h>

#define M 23 /* interior points per side */
#define H (1.0 / (M + 1))
#define PI 3.14159265358979323846

static double f[M + 2][M + 2], u[M + 2][M + 2], next[M + 2][M + 2], exact[M + 2][M + 2];
static double r[M + 2][M + 2], p[M + 2][M + 2], ap[M + 2][M + 2];

static double larger(double a, double b) { return a > b ? a : b; }
static double magnitude(double v) { return v < 0 ? -v : v; }

static void clear(double g[M + 2][M + 2]) {
  for (int i = 0; i < M + 2; i++)
    for (int j = 0; j < M + 2; j++)
      g[i][j] = 0.0;
}

/* out = A v with A the negative discrete Laplacian (zero outside the interior). */
static void apply_operator(double v[M + 2][M + 2], double out[M + 2][M + 2]) {
  for (int i = 1; i <= M; i++)
    for (int j = 1; j <= M; j++)
      out[i][j] = (4.0 * v[i][j] - v[i - 1][j] - v[i + 1][j] - v[i][j - 1] - v[i][j + 1]) / (H * H);
}

static double dot(double a[M + 2][M + 2], double b[M + 2][M + 2]) {
  double sum = 0.0;
  for (int i = 1; i <= M; i++)
    for (int j = 1; j <= M; j++)
      sum += a[i][j] * b[i][j];
  return sum;
}

static double error_to_exact(void) {
  double worst = 0.0;
  for (int i = 1; i <= M; i++)
    for (int j = 1; j <= M; j++)
      worst = larger(worst, magnitude(u[i][j] - exact[i][j]));
  return worst;
}

static int jacobi(int limit) {
  clear(u);
  clear(next);
  for (int it = 1; it <= limit; it++) {
    double change = 0.0;
    for (int i = 1; i <= M; i++)
      for (int j = 1; j <= M; j++) {
        next[i][j] = 0.25 * (u[i - 1][j] + u[i + 1][j] + u[i][j - 1] + u[i][j + 1]) +
                     0.25 * H * H * f[i][j];
        change = larger(change, magnitude(next[i][j] - u[i][j]));
      }
    for (int i = 1; i <= M; i++)
      for (int j = 1; j <= M; j++)
        u[i][j] = next[i][j];
    if (change < 1e-14)
      return it;
  }
  return -1;
}

static int red_black_sor(int limit, double omega) {
  clear(u);
  for (int it = 1; it <= limit; it++) {
    double change = 0.0;
    for (int colour = 0; colour < 2; colour++)
      for (int i = 1; i <= M; i++)
        for (int j = 1 + (i + colour) % 2; j <= M; j += 2) {
          double gs = 0.25 * (u[i - 1][j] + u[i + 1][j] + u[i][j - 1] + u[i][j + 1]) +
                      0.25 * H * H * f[i][j];
          double step = omega * (gs - u[i][j]);
          u[i][j] += step;
          change = larger(change, magnitude(step));
        }
    if (change < 1e-14)
      return it;
  }
  return -1;
}

/* Conjugate gradients from u = 0; sets *orthogonal to whether residuals stay orthogonal. */
static int conjugate_gradients(int limit, int *orthogonal) {
  clear(u);
  clear(p);
  clear(ap);
  for (int i = 1; i <= M; i++)
    for (int j = 1; j <= M; j++)
      p[i][j] = r[i][j] = f[i][j];
  double rr = dot(r, r), first = rr;
  *orthogonal = 1;
  for (int it = 1; it <= limit; it++) {
    apply_operator(p, ap);
    double alpha = rr / dot(p, ap);
    static double previous[M + 2][M + 2];
    for (int i = 1; i <= M; i++)
      for (int j = 1; j <= M; j++) {
        previous[i][j] = r[i][j];
        u[i][j] += alpha * p[i][j];
        r[i][j] -= alpha * ap[i][j];
      }
    double rr_new = dot(r, r);
    if (it < 5 && magnitude(dot(r, previous)) > 1e-9 * rr)
      *orthogonal = 0;
    if (rr_new < 1e-26 * first)
      return it;
    for (int i = 1; i <= M; i++)
      for (int j = 1; j <= M; j++)
        p[i][j] = r[i][j] + rr_new / rr * p[i][j];
    rr = rr_new;
  }
  return -1;
}

int main(void) {
  for (int i = 0; i < M + 2; i++)
    for (int j = 0; j < M + 2; j++) {
      double x = i * H, y = j * H;
      exact[i][j] = x * (1 - x) * y * (1 - y);
      f[i][j] = 2.0 * (y * (1 - y) + x * (1 - x)); /* -(u_xx + u_yy) */
    }
  int failures = 0, orthogonal;
  int jacobi_steps = jacobi(20000);
  double jacobi_error = error_to_exact();
  double sine = PI * H - PI * H * PI * H * PI * H / 6.0; /* sin(pi h), to 1e-7 */
  int sor_steps = red_black_sor(2000, 2.0 / (1.0 + sine));
  double sor_error = error_to_exact();
  int cg_steps = conjugate_gradients(500, &orthogonal);
  double cg_error = error_to_exact(), centre = u[(M + 1) / 2][(M + 1) / 2];
  if (jacobi_steps < 0 || sor_steps < 0 || cg_steps < 0 || jacobi_error > 1e-9 ||
      sor_error > 1e-9 || cg_error > 1e-9 || 10 * sor_steps > jacobi_steps ||
      10 * cg_steps > jacobi_steps || !orthogonal) {
    printf("FAILED steps %d %d %d errors %g %g %g orthogonal %d\n", jacobi_steps, sor_steps,
           cg_steps, jacobi_error, sor_error, cg_error, orthogonal);
    failures++;
  }
  printf("jacobi steps %d sor %d cg %d centre %.10f\n", jacobi_steps, sor_steps, cg_steps, centre);
  printf("jacobi: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* Functions that stress loads and stores, for the AArch64 peephole corpus.
 * Freestanding (no libc headers): struct copies, stack-heavy code, array kernels,
 * floating point, 32- and 64-bit data, pointer walks that invite pre/post-indexing. */

typedef unsigned long u64;
typedef long i64;
typedef int i32;
typedef unsigned int u32;

struct pair64 { i64 a, b; };
struct quad32 { i32 a, b, c, d; };
struct mixed { i64 id; i32 x, y; double w, h; float s, t; };
struct vec4 { float x, y, z, w; };
struct big { i64 v[8]; };

void copy_pair(struct pair64 *d, const struct pair64 *s) { *d = *s; }
void copy_quad(struct quad32 *d, const struct quad32 *s) { *d = *s; }
void copy_mixed(struct mixed *d, const struct mixed *s) { *d = *s; }
void copy_big(struct big *d, const struct big *s) { *d = *s; }
struct pair64 make_pair(i64 a, i64 b) { struct pair64 p = { a, b }; return p; }

i64 sum2(const i64 *p) { return p[0] + p[1]; }
i64 sum4(const i64 *p) { return p[0] + p[1] + p[2] + p[3]; }
i32 sum4w(const i32 *p) { return p[0] + p[1] + p[2] + p[3]; }
i64 sum_signed_words(const i32 *p) { return (i64)p[0] * p[1] + (i64)p[2] - (i64)p[3]; }
i64 sum_unscaled(const char *base) { return *(const i64 *)(base - 8) + *(const i64 *)(base - 16); }

void swap_adjacent(i64 *p) { i64 a = p[0]; p[0] = p[1]; p[1] = a; }
void rotate4(i32 *p) { i32 a = p[0], b = p[1], c = p[2], d = p[3]; p[0] = d; p[1] = a; p[2] = b; p[3] = c; }
void zero4(i64 *p) { p[0] = 0; p[1] = 0; p[2] = 0; p[3] = 0; }
void fill_words(i32 *p, i32 v) { p[0] = v; p[1] = v + 1; p[2] = v + 2; p[3] = v + 3; }

double dot2(const double *x, const double *y) { return x[0] * y[0] + x[1] * y[1]; }
double dot4(const double *x, const double *y) {
  return x[0] * y[0] + x[1] * y[1] + x[2] * y[2] + x[3] * y[3];
}
float dot4f(const struct vec4 *a, const struct vec4 *b) {
  return a->x * b->x + a->y * b->y + a->z * b->z + a->w * b->w;
}
void scale_vec4(struct vec4 *v, float s) { v->x *= s; v->y *= s; v->z *= s; v->w *= s; }
void complex_mul(double *out, const double *a, const double *b) {
  double re = a[0] * b[0] - a[1] * b[1], im = a[0] * b[1] + a[1] * b[0];
  out[0] = re; out[1] = im;
}
void matvec2(double *y, const double *m, const double *x) {
  y[0] = m[0] * x[0] + m[1] * x[1];
  y[1] = m[2] * x[0] + m[3] * x[1];
}

i64 stack_heavy(i64 a, i64 b, i64 c, i64 d) {
  volatile i64 t[8];
  t[0] = a; t[1] = b; t[2] = c; t[3] = d; t[4] = a + b; t[5] = c + d; t[6] = a - d; t[7] = b - c;
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
i64 many_locals(i64 a, i64 b) {
  i64 x0 = a * 3, x1 = b * 5, x2 = a ^ b, x3 = a | b, x4 = a & b, x5 = a - b;
  return ((x0 + x1) * (x2 - x3)) ^ ((x4 + x5) * (x0 - x5));
}

void copy_array(i64 *d, const i64 *s, int n) { for (int i = 0; i < n; i++) d[i] = s[i]; }
void add_arrays(i32 *d, const i32 *a, const i32 *b, int n) { for (int i = 0; i < n; i++) d[i] = a[i] + b[i]; }
void saxpy(int n, float a, const float *x, float *y) { for (int i = 0; i < n; i++) y[i] = a * x[i] + y[i]; }
i64 walk_sum(const i64 *p, int n) { i64 s = 0; while (n--) s += *p++; return s; }
void walk_store(i64 *p, int n, i64 v) { while (n--) *p++ = v; }
void prefix_sum(i64 *p, int n) { for (int i = 1; i < n; i++) p[i] += p[i - 1]; }
void transpose2(double *m) { double t = m[1]; m[1] = m[2]; m[2] = t; }
void interleave(i32 *out, const i32 *a, const i32 *b, int n) {
  for (int i = 0; i < n; i++) { out[2 * i] = a[i]; out[2 * i + 1] = b[i]; }
}
void stencil3(double *out, const double *in, int n) {
  for (int i = 1; i + 1 < n; i++) out[i] = 0.25 * in[i - 1] + 0.5 * in[i] + 0.25 * in[i + 1];
}
u64 checksum(const u32 *p, int n) { u64 s = 0; for (int i = 0; i + 1 < n; i += 2) s += (u64)p[i] << 32 | p[i + 1]; return s; }

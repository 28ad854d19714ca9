/* optarena LlvmPassOrder-v0 held-out program (signal processing): a 33-tap symmetric FIR low-pass
 * filter in Q15 fixed point (circular delay line, block by block), a polyphase decimator by 4,
 * and a biquad IIR low-pass in double precision in two structures (direct form I and
 * transposed direct form II).
 *
 * Checks: the streaming FIR, fed in blocks of random sizes, equals direct convolution; a
 * constant input comes out unchanged (unit DC gain, exactly); the filter is linear-phase
 * (the reversed input gives the reversed output); the polyphase decimator equals filtering then
 * keeping every fourth sample; the two biquad structures agree to 1e-9 and the step response
 * settles at 1. Prints checksums of the outputs; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>

#define TAPS 33
#define SAMPLES 8192
#define FACTOR 4

static int32_t coefficient[TAPS];
static int16_t input[SAMPLES], reversed[SAMPLES];
static int32_t direct[SAMPLES + TAPS - 1], streamed[SAMPLES], mirrored[SAMPLES + TAPS - 1];
static int32_t decimated[SAMPLES / FACTOR];
static double form1[SAMPLES], form2[SAMPLES];

typedef struct {
  int32_t delay[TAPS];
  int head;
} Fir;

/* A triangular window times a raised cosine approximated by a parabola, scaled to sum 32768. */
static void design(void) {
  int32_t raw[TAPS], total = 0;
  for (int i = 0; i < TAPS; i++) {
    int d = i - TAPS / 2, tri = TAPS / 2 + 1 - (d < 0 ? -d : d);
    raw[i] = tri * (300 - d * d);
    total += raw[i];
  }
  int32_t scaled = 0;
  for (int i = 0; i < TAPS / 2; i++) {
    coefficient[i] = coefficient[TAPS - 1 - i] = raw[i] * 32768 / total;
    scaled += 2 * coefficient[i];
  }
  coefficient[TAPS / 2] = 32768 - scaled; /* the rounding remainder goes to the centre tap */
}

static int32_t round_q15(int64_t acc) { return (int32_t)((acc + 16384) >> 15); }

/* Full convolution: n + TAPS - 1 outputs. */
static void convolve(const int16_t *x, int n, int32_t *y) {
  for (int k = 0; k < n + TAPS - 1; k++) {
    int64_t acc = 0;
    for (int i = 0; i < TAPS; i++)
      if (k - i >= 0 && k - i < n)
        acc += (int64_t)coefficient[i] * x[k - i];
    y[k] = round_q15(acc);
  }
}

static void fir_block(Fir *f, const int16_t *x, int n, int32_t *y) {
  for (int k = 0; k < n; k++) {
    f->head = (f->head + TAPS - 1) % TAPS;
    f->delay[f->head] = x[k];
    int64_t acc = 0;
    for (int i = 0; i < TAPS; i++)
      acc += (int64_t)coefficient[i] * f->delay[(f->head + i) % TAPS];
    y[k] = round_q15(acc);
  }
}

/* Output m is the filter at sample FACTOR*m, from each phase's share of the taps. */
static void decimate(const int16_t *x, int n, int32_t *y) {
  for (int m = 0; m < n / FACTOR; m++) {
    int64_t acc = 0;
    for (int phase = 0; phase < FACTOR; phase++)
      for (int i = phase; i < TAPS; i += FACTOR)
        if (FACTOR * m - i >= 0)
          acc += (int64_t)coefficient[i] * x[FACTOR * m - i];
    y[m] = round_q15(acc);
  }
}

static void biquads(const double *b, const double *a, const int16_t *x, int n) {
  double x1 = 0, x2 = 0, y1 = 0, y2 = 0, s1 = 0, s2 = 0;
  for (int k = 0; k < n; k++) {
    double v = x[k] / 32768.0;
    double y = b[0] * v + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2;
    x2 = x1;
    x1 = v;
    y2 = y1;
    y1 = y;
    form1[k] = y;
    double t = b[0] * v + s1;
    s1 = b[1] * v - a[1] * t + s2;
    s2 = b[2] * v - a[2] * t;
    form2[k] = t;
  }
}

int main(void) {
  int failures = 0;
  design();
  uint32_t s = 97u;
  for (int k = 0; k < SAMPLES; k++) {
    s = s * 1664525u + 1013904223u;
    int noise = (int)((s >> 20) % 4001) - 2000;
    int square = (k / 100) % 2 ? 12000 : -12000;
    input[k] = (int16_t)(square + noise);
    reversed[SAMPLES - 1 - k] = input[k];
  }
  convolve(input, SAMPLES, direct);
  convolve(reversed, SAMPLES, mirrored);
  Fir fir = {{0}, 0};
  for (int at = 0; at < SAMPLES;) {
    s = s * 1664525u + 1013904223u;
    int n = 1 + (int)((s >> 16) % 300);
    n = n < SAMPLES - at ? n : SAMPLES - at;
    fir_block(&fir, input + at, n, streamed + at);
    at += n;
  }
  decimate(input, SAMPLES, decimated);
  int mismatches = 0;
  for (int k = 0; k < SAMPLES; k++)
    mismatches += streamed[k] != direct[k];
  for (int k = 0; k < SAMPLES + TAPS - 1; k++)
    mismatches += mirrored[SAMPLES + TAPS - 2 - k] != direct[k];
  for (int m = 0; m < SAMPLES / FACTOR; m++)
    mismatches += decimated[m] != direct[FACTOR * m];
  int16_t constant[64];
  int32_t flat[64 + TAPS - 1];
  for (int k = 0; k < 64; k++)
    constant[k] = -1234;
  convolve(constant, 64, flat);
  for (int k = TAPS - 1; k < 64; k++)
    mismatches += flat[k] != -1234;
  if (mismatches) {
    printf("FAILED %d FIR outputs differ\n", mismatches);
    failures++;
  }

  const double r2 = 0.81, c = -2.0 * 0.9 * 0.95; /* poles at radius 0.9 */
  const double a[3] = {1.0, c, r2}, gain = (1.0 + c + r2) / 4.0, b[3] = {gain, 2 * gain, gain};
  biquads(b, a, input, SAMPLES);
  double worst = 0.0, sum1 = 0.0;
  for (int k = 0; k < SAMPLES; k++) {
    double d = form1[k] - form2[k];
    worst = d > worst ? d : -d > worst ? -d : worst;
    sum1 += form1[k];
  }
  int16_t step[400];
  for (int k = 0; k < 400; k++)
    step[k] = 16384;
  biquads(b, a, step, 400);
  double settled = form1[399] * 2.0;
  if (worst > 1e-9 || settled < 0.999999 || settled > 1.000001) {
    printf("FAILED biquad: structures differ by %g, step settles at %f\n", worst, settled);
    failures++;
  }

  uint32_t checksum = 0;
  for (int k = 0; k < SAMPLES; k++)
    checksum = checksum * 65599u + (uint32_t)streamed[k];
  printf("fir_iir fir %08x decimated %d iir mean %.6f\n", checksum, decimated[1000],
         sum1 / SAMPLES);
  printf("fir_iir: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

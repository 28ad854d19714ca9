/* optarena LlvmPassOrder-v0 held-out program (signal processing): iterative radix-2 complex FFT
 * (bit-reversal permutation, butterflies) of 1024 points, twiddle factors from a Taylor series on
 * one octant and the circle's symmetries (no libm).
 *
 * Checks: the FFT of a complex signal equals the naive DFT to 1e-9; the inverse FFT gives the
 * signal back to 1e-12; Parseval's identity; the spectrum of a real signal is Hermitian; the
 * five largest peaks of a sum of five tones with noise are at the tones' bins. Prints the peak
 * bins and rounded energies; exits 1 if a check fails. */
#include <stdio.h>

#define N 1024
#define LOG2N 10
#define PI 3.14159265358979323846

typedef struct {
  double re, im;
} Complex;

static Complex twiddle[N], signal[N], spectrum[N], naive[N], back[N];

/* sin and cos for 0 <= t <= pi/4 by their Taylor series (terms below 1e-17 dropped). */
static void sincos_octant(double t, double *s, double *c) {
  double term_s = t, term_c = 1.0, sum_s = 0.0, sum_c = 0.0;
  for (int k = 1; k < 24; k += 2) {
    sum_s += term_s;
    sum_c += term_c;
    term_c = -term_c * t * t / (double)(k * (k + 1));
    term_s = -term_s * t * t / (double)((k + 1) * (k + 2));
  }
  *s = sum_s;
  *c = sum_c;
}

/* twiddle[k] = exp(-2 pi i k / N), from the first octant by symmetry. */
static void make_twiddles(void) {
  for (int k = 0; k <= N / 8; k++) {
    double s, c;
    sincos_octant(2.0 * PI * k / N, &s, &c);
    twiddle[k] = (Complex){c, -s};
    twiddle[N / 4 - k] = (Complex){s, -c};
  }
  for (int k = 0; k < N / 4; k++) {
    twiddle[k + N / 4] = (Complex){twiddle[k].im, -twiddle[k].re};
    twiddle[k + N / 2] = (Complex){-twiddle[k].re, -twiddle[k].im};
    twiddle[k + 3 * N / 4] = (Complex){-twiddle[k].im, twiddle[k].re};
  }
}

static unsigned reverse_bits(unsigned v) {
  unsigned r = 0;
  for (int b = 0; b < LOG2N; b++, v >>= 1)
    r = r << 1 | (v & 1);
  return r;
}

/* In place; inverse uses the conjugate twiddles and divides by N. */
static void fft(Complex *a, int inverse) {
  for (unsigned i = 0; i < N; i++) {
    unsigned j = reverse_bits(i);
    if (j > i) {
      Complex t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
  }
  for (int size = 2; size <= N; size *= 2) {
    int step = N / size;
    for (int start = 0; start < N; start += size)
      for (int k = 0; k < size / 2; k++) {
        Complex w = twiddle[k * step];
        if (inverse)
          w.im = -w.im;
        Complex u = a[start + k], v = a[start + k + size / 2];
        Complex t = {v.re * w.re - v.im * w.im, v.re * w.im + v.im * w.re};
        a[start + k] = (Complex){u.re + t.re, u.im + t.im};
        a[start + k + size / 2] = (Complex){u.re - t.re, u.im - t.im};
      }
  }
  if (inverse)
    for (int i = 0; i < N; i++) {
      a[i].re /= N;
      a[i].im /= N;
    }
}

static double magnitude2(Complex z) { return z.re * z.re + z.im * z.im; }

static double error_between(const Complex *a, const Complex *b) {
  double worst = 0.0;
  for (int i = 0; i < N; i++) {
    double d = magnitude2((Complex){a[i].re - b[i].re, a[i].im - b[i].im});
    if (d > worst)
      worst = d;
  }
  return worst;
}

static unsigned lcg = 1234567u;

static double uniform(double low, double high) { /* in steps of 1/1000 of the range */
  lcg = lcg * 1103515245u + 12345u;
  return low + (high - low) * (double)((lcg >> 8) % 1001) / 1000.0;
}

int main(void) {
  int failures = 0;
  make_twiddles();
  for (int i = 0; i < N; i++) {
    signal[i] = (Complex){uniform(-1.0, 1.0), uniform(-1.0, 1.0)};
    spectrum[i] = signal[i];
  }
  fft(spectrum, 0);
  for (int k = 0; k < N; k++) {
    naive[k] = (Complex){0.0, 0.0};
    for (int n = 0; n < N; n++) {
      Complex w = twiddle[(k * n) % N];
      naive[k].re += signal[n].re * w.re - signal[n].im * w.im;
      naive[k].im += signal[n].re * w.im + signal[n].im * w.re;
    }
  }
  double energy_time = 0.0, energy_freq = 0.0;
  for (int i = 0; i < N; i++) {
    energy_time += magnitude2(signal[i]);
    energy_freq += magnitude2(spectrum[i]) / N;
    back[i] = spectrum[i];
  }
  fft(back, 1);
  double dft_error = error_between(spectrum, naive), round_trip = error_between(back, signal);
  double parseval = (energy_freq - energy_time) / energy_time;
  if (dft_error > 1e-18 || round_trip > 1e-24 || parseval > 1e-12 || parseval < -1e-12) {
    printf("FAILED dft %g round trip %g parseval %g\n", dft_error, round_trip, parseval);
    failures++;
  }

  static const int tones[5] = {17, 60, 101, 250, 333};
  static const double amplitude[5] = {1.0, 0.8, 0.6, 0.5, 0.35};
  for (int i = 0; i < N; i++) {
    double v = 0.0;
    for (int t = 0; t < 5; t++)
      v += amplitude[t] * twiddle[(tones[t] * i) % N].re;
    signal[i] = (Complex){v + uniform(-0.1, 0.1), 0.0};
  }
  fft(signal, 0);
  int hermitian = 1, peaks[5];
  for (int k = 1; k < N / 2; k++)
    hermitian &= magnitude2((Complex){signal[k].re - signal[N - k].re,
                                      signal[k].im + signal[N - k].im}) < 1e-18;
  for (int p = 0; p < 5; p++) { /* the largest bins of the lower half, strongest first */
    int best = 1;
    for (int k = 1; k < N / 2; k++) {
      int taken = 0;
      for (int q = 0; q < p; q++)
        taken |= peaks[q] == k;
      if (!taken && magnitude2(signal[k]) > magnitude2(signal[best]))
        best = k;
    }
    peaks[p] = best;
    if (best != tones[p])
      failures++;
  }
  if (!hermitian || failures) {
    printf("FAILED hermitian %d or peaks\n", hermitian);
    failures++;
  }
  printf("fft peaks %d %d %d %d %d energy %.6f peak %.4f\n", peaks[0], peaks[1], peaks[2],
         peaks[3], peaks[4], energy_time, magnitude2(signal[peaks[0]]));
  printf("fft: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

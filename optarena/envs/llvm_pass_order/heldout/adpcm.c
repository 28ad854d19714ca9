/* optarena LlvmPassOrder-v0 held-out program (signal processing): IMA/DVI ADPCM speech coding,
 * 16-bit samples to 4-bit codes (two per byte, the first in the high nibble) and back.
 *
 * Encodes 6,000 samples of a generated signal (two tones from an integer sine approximation, a
 * chirp and noise). Checks: the packed codes hash to the value an independent encoder gives
 * (Python 3.11's audioop.lin2adpcm on the same samples); the decoder's output equals the
 * encoder's own prediction at every sample; the signal-to-error ratio is above 20 dB. Prints
 * the hash, the ratio and the decoder's final state; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>

#define SAMPLES 6000
#define EXPECTED_HASH 0x220ce9fcu /* FNV-1a of the packed codes, by audioop.lin2adpcm */

static const int16_t step_size[89] = {
    7,     8,     9,     10,    11,    12,    13,    14,    16,    17,    19,    21,    23,
    25,    28,    31,    34,    37,    41,    45,    50,    55,    60,    66,    73,    80,
    88,    97,    107,   118,   130,   143,   157,   173,   190,   209,   230,   253,   279,
    307,   337,   371,   408,   449,   494,   544,   598,   658,   724,   796,   876,   963,
    1060,  1166,  1282,  1411,  1552,  1707,  1878,  2066,  2272,  2499,  2749,  3024,  3327,
    3660,  4026,  4428,  4871,  5358,  5894,  6484,  7132,  7845,  8630,  9493,  10442, 11487,
    12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794, 32767};
static const int8_t index_change[8] = {-1, -1, -1, -1, 2, 4, 6, 8};

typedef struct {
  int predicted; /* the last reconstructed sample */
  int index;     /* into step_size */
} Adpcm;

static int16_t pcm[SAMPLES], predicted[SAMPLES], decoded[SAMPLES];
static uint8_t packed[SAMPLES / 2];

static int clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Moves the state by one code: the new prediction and step index. */
static void advance(Adpcm *s, int code) {
  int step = step_size[s->index], difference = step >> 3;
  if (code & 4)
    difference += step;
  if (code & 2)
    difference += step >> 1;
  if (code & 1)
    difference += step >> 2;
  s->predicted = clamp(code & 8 ? s->predicted - difference : s->predicted + difference, -32768,
                       32767);
  s->index = clamp(s->index + index_change[code & 7], 0, 88);
}

/* The code whose step best approaches the sample: three bits by successive halving. */
static int encode_sample(Adpcm *s, int sample) {
  int step = step_size[s->index], difference = sample - s->predicted, code = 0;
  if (difference < 0) {
    code = 8;
    difference = -difference;
  }
  for (int bit = 4; bit > 0; bit >>= 1, step >>= 1)
    if (difference >= step) {
      code |= bit;
      difference -= step;
    }
  advance(s, code);
  return code;
}

/* A sine in Q14 by Bhaskara's approximation; phase in 1/65536 of a turn. */
static int sine_q14(uint32_t phase) {
  int half = (phase & 0xFFFF) >= 0x8000, x = (int)(phase & 0x7FFF); /* x in [0, half turn) */
  int64_t product = (int64_t)x * (32768 - x);
  int64_t num = 16 * product, den = 5 * 32768LL * 32768 - 4 * product;
  int v = (int)(num * 16384 / den);
  return half ? -v : v;
}

int main(void) {
  uint32_t noise = 12345u, phase1 = 0, phase2 = 0, chirp = 0, rate = 100;
  for (int k = 0; k < SAMPLES; k++) {
    noise = noise * 1103515245u + 12345u;
    phase1 += 1500;
    phase2 += 4100;
    chirp += rate;
    rate += 2;
    int v = sine_q14(phase1) + sine_q14(phase2) / 2 + (k > 3000 ? sine_q14(chirp) / 3 : 0);
    v += (int)((noise >> 16) % 801) - 400;
    pcm[k] = (int16_t)clamp(v, -32768, 32767);
  }

  Adpcm encoder = {0, 0}, decoder = {0, 0};
  for (int k = 0; k < SAMPLES; k++) {
    int code = encode_sample(&encoder, pcm[k]);
    predicted[k] = (int16_t)encoder.predicted;
    packed[k / 2] |= (uint8_t)(k % 2 ? code : code << 4);
  }
  for (int k = 0; k < SAMPLES; k++) {
    int code = k % 2 ? packed[k / 2] & 15 : packed[k / 2] >> 4;
    advance(&decoder, code);
    decoded[k] = (int16_t)decoder.predicted;
  }

  int failures = 0, mismatches = 0;
  int64_t signal = 0, error = 0;
  for (int k = 0; k < SAMPLES; k++) {
    mismatches += decoded[k] != predicted[k];
    signal += (int64_t)pcm[k] * pcm[k];
    error += (int64_t)(pcm[k] - decoded[k]) * (pcm[k] - decoded[k]);
  }
  uint32_t hash = 2166136261u;
  for (int k = 0; k < SAMPLES / 2; k++)
    hash = (hash ^ packed[k]) * 16777619u;
  if (hash != EXPECTED_HASH || mismatches || signal < 100 * error) {
    printf("FAILED hash %08x (expected %08x), %d mismatches, signal/error %lld/%lld\n", hash,
           EXPECTED_HASH, mismatches, (long long)signal, (long long)error);
    failures++;
  }
  printf("adpcm hash %08x signal/error %lld state %d %d\n", hash,
         (long long)(signal / (error ? error : 1)), decoder.predicted, decoder.index);
  printf("adpcm: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* optarena LlvmPassOrder-v0 held-out program (compression): the block-sorting front end of a
 * bzip2-like compressor: Burrows-Wheeler transform, move-to-front, zero-run-length coding.
 *
 * Rotations are sorted by prefix doubling (two counting-sort passes per doubling). Checks: the
 * sorted rotations are in order (compared directly, pairwise); decoding the runs, undoing
 * move-to-front and inverting the transform (LF mapping) give the block back; the coded block has
 * fewer than half as many symbols as the input. Prints the primary index, the coded size and a
 * checksum; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 16384

static uint8_t block[N], last[N], mtf[N], restored[N];
static uint16_t runs[2 * N]; /* symbols 0..255 shifted by one; 0 followed by a count is a run */
static int order[N], rank_of[N], scratch[N], new_rank[N], counts[N + 256];

/* Stable counting sort of `from` into `to` by key[(i + shift) % N]. */
static void sort_by(const int *from, int *to, const int *key, int shift, int keys) {
  memset(counts, 0, (size_t)(keys + 1) * sizeof counts[0]);
  for (int i = 0; i < N; i++)
    counts[key[(from[i] + shift) % N] + 1]++;
  for (int k = 0; k < keys; k++)
    counts[k + 1] += counts[k];
  for (int i = 0; i < N; i++)
    to[counts[key[(from[i] + shift) % N]]++] = from[i];
}

/* order[] = the rotations of block in sorted order. */
static void sort_rotations(void) {
  int keys = 256;
  for (int i = 0; i < N; i++) {
    order[i] = i;
    rank_of[i] = block[i];
  }
  for (int width = 1;; width *= 2) {
    sort_by(order, scratch, rank_of, width, keys); /* minor key first */
    sort_by(scratch, order, rank_of, 0, keys);
    int classes = 0;
    new_rank[order[0]] = 0;
    for (int i = 1; i < N; i++) {
      int a = order[i - 1], b = order[i];
      if (rank_of[a] != rank_of[b] || rank_of[(a + width) % N] != rank_of[(b + width) % N])
        classes++;
      new_rank[b] = classes;
    }
    memcpy(rank_of, new_rank, sizeof rank_of);
    keys = classes + 1;
    if (keys == N || width >= N)
      break;
  }
}

static int compare_rotations(int a, int b) {
  for (int k = 0; k < N; k++) {
    int x = block[(a + k) % N], y = block[(b + k) % N];
    if (x != y)
      return x < y ? -1 : 1;
  }
  return 0;
}

static void move_to_front(const uint8_t *in, uint8_t *out, int decode) {
  uint8_t table[256];
  for (int k = 0; k < 256; k++)
    table[k] = (uint8_t)k;
  for (int i = 0; i < N; i++) {
    int position = 0;
    uint8_t symbol;
    if (decode) {
      position = in[i];
      symbol = table[position];
    } else {
      symbol = in[i];
      while (table[position] != symbol)
        position++;
    }
    memmove(table + 1, table, (size_t)position);
    table[0] = symbol;
    out[i] = decode ? symbol : (uint8_t)position;
  }
}

static int encode_runs(void) {
  int size = 0;
  for (int i = 0; i < N;) {
    int j = i;
    while (j < N && mtf[j] == 0 && j - i < 65535)
      j++;
    if (j > i) {
      runs[size++] = 0;
      runs[size++] = (uint16_t)(j - i);
      i = j;
    } else {
      runs[size++] = (uint16_t)(mtf[i++] + 1);
    }
  }
  return size;
}

static int decode_runs(int size, uint8_t *out) {
  int at = 0;
  for (int k = 0; k < size; k++) {
    if (runs[k] == 0) {
      for (int r = 0; r < runs[k + 1] && at < N; r++)
        out[at++] = 0;
      k++;
    } else if (at < N) {
      out[at++] = (uint8_t)(runs[k] - 1);
    }
  }
  return at;
}

/* The block from the last column and the primary index, by the LF mapping. */
static void inverse_bwt(const uint8_t *l, int primary, uint8_t *out) {
  int before[256] = {0}, seen[256] = {0};
  for (int i = 0; i < N; i++)
    before[l[i]]++;
  for (int c = 255, total = N; c >= 0; c--) {
    total -= before[c];
    before[c] = total;
  }
  for (int i = 0; i < N; i++)
    scratch[i] = before[l[i]] + seen[l[i]]++;
  for (int k = N - 1, row = primary; k >= 0; k--) {
    out[k] = l[row];
    row = scratch[row];
  }
}

int main(void) {
  int failures = 0;
  const char *phrase = "abracadabra, banana bandana, cabbage and a cab ";
  uint32_t x = 4711u;
  int offset = 0;
  for (int i = 0; i < N; i++) {
    x = x * 22695477u + 1u;
    int pick = (int)(x >> 16);
    if (pick % 64 == 0)
      offset = pick % 47;
    block[i] = (uint8_t)(pick % 50 ? phrase[(i + offset) % 47] : 'a' + pick % 26);
  }
  sort_rotations();
  int primary = -1;
  for (int i = 0; i < N; i++) {
    last[i] = block[(order[i] + N - 1) % N];
    if (order[i] == 0)
      primary = i;
    if (i > 0 && i % 7 == 0 && compare_rotations(order[i - 1], order[i]) > 0) {
      printf("FAILED rotations %d and %d out of order\n", i - 1, i);
      failures++;
    }
  }
  move_to_front(last, mtf, 0);
  int coded = encode_runs();
  memset(mtf, 0xAA, sizeof mtf);
  if (decode_runs(coded, mtf) != N) {
    printf("FAILED run decoding\n");
    failures++;
  }
  move_to_front(mtf, restored, 1);
  if (memcmp(restored, last, N) != 0) {
    printf("FAILED move-to-front round trip\n");
    failures++;
  }
  inverse_bwt(restored, primary, mtf);
  if (memcmp(mtf, block, N) != 0 || coded >= N / 2) {
    printf("FAILED inverse transform or no gain (%d symbols)\n", coded);
    failures++;
  }
  uint32_t h = 0;
  for (int k = 0; k < coded; k++)
    h = (h << 7 | h >> 25) + runs[k];
  printf("bwt primary %d coded %d symbols checksum %08x\n", primary, coded, h);
  printf("bwt: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

/* optarena LlvmPassOrder-v0 held-out program (compression): LZ77 with hash chains (LZSS
 * tokens: a flag byte per eight tokens, a literal byte or a 12-bit distance and 4-bit length).
 *
 * Compresses generated text (words drawn from a small vocabulary, with runs of one character)
 * with lazy matching. Checks: decompression gives the input back; at every 61st position the
 * hash-chain search finds a match as long as a brute-force search of the whole window; the text
 * compresses below 60%. Prints the sizes and a checksum of the compressed stream; exits 1 if a
 * check fails. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define INPUT_SIZE 32768
#define WINDOW 4096
#define MIN_MATCH 3
#define MAX_MATCH (MIN_MATCH + 15)
#define HASH_BITS 12
#define NONE (-1)

static uint8_t input[INPUT_SIZE], packed[INPUT_SIZE + INPUT_SIZE / 8 + 16], output[INPUT_SIZE];
static int head[1 << HASH_BITS], previous[INPUT_SIZE];

static unsigned hash3(const uint8_t *p) {
  uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
  return (v * 2654435761u) >> (32 - HASH_BITS);
}

static void insert(int at) {
  if (at + MIN_MATCH > INPUT_SIZE)
    return;
  unsigned h = hash3(input + at);
  previous[at] = head[h];
  head[h] = at;
}

/* The longest match for position `at` among the `depth` most recent chain entries. */
static int longest_match(int at, int depth, int *distance) {
  int best = 0, limit = INPUT_SIZE - at < MAX_MATCH ? INPUT_SIZE - at : MAX_MATCH;
  if (limit < MIN_MATCH)
    return 0;
  for (int candidate = head[hash3(input + at)]; candidate != NONE && depth-- > 0;
       candidate = previous[candidate]) {
    if (at - candidate > WINDOW - 1)
      break;
    int length = 0;
    while (length < limit && input[candidate + length] == input[at + length])
      length++;
    if (length > best) {
      best = length;
      *distance = at - candidate;
    }
  }
  return best >= MIN_MATCH ? best : 0;
}

static int brute_force_match(int at) {
  int best = 0, limit = INPUT_SIZE - at < MAX_MATCH ? INPUT_SIZE - at : MAX_MATCH;
  for (int from = at - 1; from >= 0 && at - from <= WINDOW - 1; from--) {
    int length = 0;
    while (length < limit && input[from + length] == input[at + length])
      length++;
    if (length > best)
      best = length;
  }
  return best >= MIN_MATCH ? best : 0;
}

static size_t compress(int *mismatches) {
  size_t out = 0, flag_at = 0;
  int tokens = 0;
  for (int h = 0; h < (1 << HASH_BITS); h++)
    head[h] = NONE;
  for (int at = 0; at < INPUT_SIZE;) {
    if (tokens % 8 == 0) {
      flag_at = out++;
      packed[flag_at] = 0;
    }
    int distance = 0, length = longest_match(at, 1 << 20, &distance);
    if (at % 61 == 0 && length != brute_force_match(at))
      (*mismatches)++;
    int next_distance = 0; /* lazy: a longer match one byte on makes this a literal */
    if (length && length < MAX_MATCH) {
      insert(at);
      if (longest_match(at + 1, 1 << 20, &next_distance) > length)
        length = 0;
    } else {
      insert(at);
    }
    if (length) {
      packed[flag_at] |= (uint8_t)(1 << (tokens % 8));
      packed[out++] = (uint8_t)(distance >> 4);
      packed[out++] = (uint8_t)((distance & 15) << 4 | (length - MIN_MATCH));
      for (int k = 1; k < length; k++)
        insert(at + k);
      at += length;
    } else {
      packed[out++] = input[at++];
    }
    tokens++;
  }
  return out;
}

static size_t decompress(const uint8_t *in, size_t size) {
  size_t at = 0, out = 0;
  while (at < size) {
    uint8_t flags = in[at++];
    for (int bit = 0; bit < 8 && at < size; bit++) {
      if (flags >> bit & 1) {
        int distance = in[at] << 4 | in[at + 1] >> 4, length = (in[at + 1] & 15) + MIN_MATCH;
        at += 2;
        for (int k = 0; k < length; k++, out++) /* byte by byte: a match may overlap itself */
          output[out] = output[out - (size_t)distance];
      } else {
        output[out++] = in[at++];
      }
    }
  }
  return out;
}

static void make_text(void) {
  static const char *words[] = {"the ", "pass ", "order ", "of ", "an ", "optimizer ",
                                "loop ", "vector ", "register ", "and ", "inline ", "code "};
  uint32_t x = 77u;
  size_t at = 0;
  while (at < INPUT_SIZE) {
    x = x * 1664525u + 1013904223u;
    uint32_t pick = x >> 20;
    if (pick % 17 == 0) {
      for (uint32_t k = 0; k < 3 + pick % 40 && at < INPUT_SIZE; k++)
        input[at++] = (uint8_t)('=' + pick % 3);
      continue;
    }
    const char *word = words[pick % 12];
    for (size_t k = 0; word[k] && at < INPUT_SIZE; k++)
      input[at++] = (uint8_t)(pick % 5 == 0 && k == 0 ? word[k] - 32 : word[k]);
  }
}

int main(void) {
  int failures = 0, mismatches = 0;
  make_text();
  size_t size = compress(&mismatches);
  if (mismatches) {
    printf("FAILED %d matches shorter than the longest\n", mismatches);
    failures++;
  }
  if (decompress(packed, size) != INPUT_SIZE || memcmp(output, input, INPUT_SIZE) != 0) {
    printf("FAILED round trip\n");
    failures++;
  }
  if (size * 10 > (size_t)INPUT_SIZE * 6) {
    printf("FAILED compressed to %zu of %d bytes\n", size, INPUT_SIZE);
    failures++;
  }
  uint32_t h = 5381;
  for (size_t k = 0; k < size; k++)
    h = h * 33u ^ packed[k];
  printf("lz77 %d -> %zu bytes, checksum %08x\n", INPUT_SIZE, size, h);
  printf("lz77: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

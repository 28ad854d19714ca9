/* optarena LlvmPassOrder-v0 held-out program (sorting and searching): quicksort (median of three,
 * insertion sort below 16 elements, an explicit stack of ranges), heapsort, bottom-up merge sort
 * and Shell sort, on five input shapes (random, sorted, reversed, few distinct keys, organ pipe).
 *
 * Checks: every result is in order and a permutation of its input (a multiset fingerprint);
 * the four algorithms agree; merge sort is stable (records with equal keys keep their input
 * order). Prints a checksum of the sorted arrays; exits 1 if a check fails. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 6000
#define SHAPES 5

typedef struct {
  int32_t key;
  int32_t position;
} Record;

static int32_t original[N], work[N], reference[N], buffer[N];
static Record records[N], record_buffer[N];
static uint32_t rng = 123456789u;

static uint32_t draw(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static void insertion_sort(int32_t *a, int lo, int hi) {
  for (int i = lo + 1; i <= hi; i++) {
    int32_t v = a[i];
    int j = i - 1;
    while (j >= lo && a[j] > v) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = v;
  }
}

/* Iterative: the larger part waits on a stack (at most log2 N deep), the smaller is sorted on. */
static void quicksort(int32_t *a, int first, int last) {
  int stack[2 * 64], depth = 0, lo = first, hi = last;
  for (;;) {
    if (hi - lo < 16) {
      insertion_sort(a, lo, hi);
      if (depth == 0)
        return;
      hi = stack[--depth];
      lo = stack[--depth];
      continue;
    }
    int mid = lo + (hi - lo) / 2;
    if (a[mid] < a[lo]) { int32_t t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
    if (a[hi] < a[lo]) { int32_t t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
    if (a[hi] < a[mid]) { int32_t t = a[hi]; a[hi] = a[mid]; a[mid] = t; }
    int32_t pivot = a[mid];
    int i = lo, j = hi;
    while (i <= j) { /* Hoare partition around the median of three */
      while (a[i] < pivot)
        i++;
      while (a[j] > pivot)
        j--;
      if (i <= j) {
        int32_t t = a[i];
        a[i++] = a[j];
        a[j--] = t;
      }
    }
    int left_smaller = j - lo < hi - i;
    stack[depth++] = left_smaller ? i : lo; /* the larger part waits */
    stack[depth++] = left_smaller ? hi : j;
    if (left_smaller)
      hi = j;
    else
      lo = i;
  }
}

static void sift_down(int32_t *a, int root, int size) {
  for (int child; (child = 2 * root + 1) < size; root = child) {
    if (child + 1 < size && a[child + 1] > a[child])
      child++;
    if (a[root] >= a[child])
      return;
    int32_t t = a[root];
    a[root] = a[child];
    a[child] = t;
  }
}

static void heapsort(int32_t *a, int n) {
  for (int i = n / 2 - 1; i >= 0; i--)
    sift_down(a, i, n);
  for (int end = n - 1; end > 0; end--) {
    int32_t t = a[0];
    a[0] = a[end];
    a[end] = t;
    sift_down(a, 0, end);
  }
}

/* Bottom-up merge sort of records by key; equal keys keep their order. */
static void merge_sort(Record *a, int n) {
  for (int width = 1; width < n; width *= 2) {
    for (int lo = 0; lo < n; lo += 2 * width) {
      int mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      int i = lo, j = mid, k = lo;
      while (i < mid && j < hi)
        record_buffer[k++] = a[j].key < a[i].key ? a[j++] : a[i++];
      while (i < mid)
        record_buffer[k++] = a[i++];
      while (j < hi)
        record_buffer[k++] = a[j++];
    }
    memcpy(a, record_buffer, (size_t)n * sizeof *a);
  }
}

static void shell_sort(int32_t *a, int n) {
  static const int gaps[] = {1750, 701, 301, 132, 57, 23, 10, 4, 1}; /* Ciura's, extended */
  for (int g = 0; g < (int)(sizeof gaps / sizeof gaps[0]); g++)
    for (int i = gaps[g]; i < n; i++) {
      int32_t v = a[i];
      int j = i;
      for (; j >= gaps[g] && a[j - gaps[g]] > v; j -= gaps[g])
        a[j] = a[j - gaps[g]];
      a[j] = v;
    }
}

static uint64_t fingerprint(const int32_t *a, int n) {
  uint64_t sum = 0, mix = 0;
  for (int i = 0; i < n; i++) {
    uint64_t v = (uint32_t)a[i];
    sum += v;
    mix += (v * 0x9E3779B97F4A7C15ull) ^ (v >> 7);
  }
  return sum ^ (mix << 1);
}

static void make_input(int shape) {
  for (int i = 0; i < N; i++) {
    int32_t r = (int32_t)(draw() % 2000001u) - 1000000;
    original[i] = shape == 0   ? r
                  : shape == 1 ? i * 3 - N
                  : shape == 2 ? N - i * 2
                  : shape == 3 ? r % 7
                               : (i < N / 2 ? i : N - i);
  }
}

int main(void) {
  int failures = 0;
  uint32_t checksum = 0;
  for (int shape = 0; shape < SHAPES; shape++) {
    make_input(shape);
    uint64_t expected = fingerprint(original, N);
    memcpy(reference, original, sizeof original);
    quicksort(reference, 0, N - 1);
    for (int i = 1; i < N; i++)
      if (reference[i - 1] > reference[i]) {
        printf("FAILED quicksort order, shape %d\n", shape);
        failures++;
        break;
      }
    if (fingerprint(reference, N) != expected) {
      printf("FAILED quicksort permutation, shape %d\n", shape);
      failures++;
    }
    memcpy(work, original, sizeof original);
    heapsort(work, N);
    memcpy(buffer, original, sizeof original);
    shell_sort(buffer, N);
    for (int i = 0; i < N; i++) {
      records[i].key = original[i];
      records[i].position = i;
    }
    merge_sort(records, N);
    for (int i = 0; i < N; i++) {
      int stable = i == 0 || records[i - 1].key != records[i].key ||
                   records[i - 1].position < records[i].position;
      if (work[i] != reference[i] || buffer[i] != reference[i] ||
          records[i].key != reference[i] || !stable) {
        printf("FAILED the sorts disagree at %d, shape %d\n", i, shape);
        failures++;
        break;
      }
      checksum = checksum * 31u + (uint32_t)reference[i] + (uint32_t)records[i].position;
    }
  }
  printf("sorting %d elements x %d shapes checksum %08x\n", N, SHAPES, checksum);
  printf("sorting: %s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
